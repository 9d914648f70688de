//! `/proc/kallsyms`: the addresses watch compares against (the `MSG_ZEROCOPY` notification's
//! callback or ops) and the symbol of each caller it recorded. Read once, bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};

pub const KALLSYMS: &str = "/proc/kallsyms";
/// Lines read at most (a distribution kernel with its modules has ~200,000).
const MAX_LINES: usize = 2_000_000;

/// Text symbols sorted by address, and every symbol's address by name.
#[derive(Debug, Default)]
pub struct Kallsyms {
    text: Vec<(u64, String, Option<String>)>,
    by_name: HashMap<String, u64>,
}

impl Kallsyms {
    pub fn read() -> std::io::Result<Kallsyms> {
        let file = std::fs::File::open(KALLSYMS)?;
        let mut k = Kallsyms::parse(BufReader::new(file))?;
        k.text.sort_by_key(|t| t.0);
        Ok(k)
    }

    fn parse(input: impl BufRead) -> std::io::Result<Kallsyms> {
        let mut k = Kallsyms::default();
        for line in input.lines().take(MAX_LINES) {
            let line = line?;
            let mut parts = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let module = parts
                .next()
                .map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
            if matches!(kind, "t" | "T" | "w" | "W") {
                k.text.push((addr, name.to_string(), module.clone()));
            }
            if module.is_none() {
                k.by_name.entry(name.to_string()).or_insert(addr);
            }
        }
        Ok(k)
    }

    /// Addresses are hidden (`kptr_restrict`, or read without `CAP_SYSLOG`): all zero.
    pub fn hidden(&self) -> bool {
        self.by_name.values().all(|a| *a == 0)
    }

    /// The address of the (built-in) symbol `name`.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied().filter(|a| *a != 0)
    }

    pub fn has(&self, name: &str) -> bool {
        self.address(name).is_some()
    }

    /// The text symbol covering `addr` (the nearest at or below it) and its module.
    pub fn symbolise(&self, addr: u64) -> Option<(&str, Option<&str>)> {
        if addr == 0 {
            return None;
        }
        let i = self.text.partition_point(|t| t.0 <= addr);
        let (_, name, module) = self.text.get(i.checked_sub(1)?)?;
        Some((name.as_str(), module.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolises_callers_and_finds_data_symbols() {
        let text = "\
ffffffff81000000 T _stext
ffffffffb7e62940 T dev_queue_xmit_nit
ffffffffb7e63000 t __netif_receive_skb_core.constprop.0
ffffffffb8553f80 D msg_zerocopy_ubuf_ops
ffffffffc0a01000 t tun_net_xmit\t[tun]
";
        let mut k = Kallsyms::parse(text.as_bytes()).expect("parses");
        k.text.sort_by_key(|t| t.0);
        assert!(!k.hidden());
        assert_eq!(k.address("msg_zerocopy_ubuf_ops"), Some(0xffffffffb8553f80));
        assert_eq!(
            k.symbolise(0xffffffffb7e62990),
            Some(("dev_queue_xmit_nit", None))
        );
        assert_eq!(
            k.symbolise(0xffffffffb7e63010),
            Some(("__netif_receive_skb_core.constprop.0", None))
        );
        assert_eq!(
            k.symbolise(0xffffffffc0a01044),
            Some(("tun_net_xmit", Some("tun")))
        );
        assert_eq!(k.symbolise(0), None);
        let hidden = Kallsyms::parse("0000000000000000 T _stext\n".as_bytes()).expect("parses");
        assert!(hidden.hidden());
    }
}
