//! `ktls-refuses-zerocopy`: a process's TCP sockets that run kernel TLS (`TCP_ULP` "tls") and
//! have `SO_ZEROCOPY` set: software kTLS refuses `MSG_ZEROCOPY` (EOPNOTSUPP), NIC offload
//! ignores it, so the application either fails or copies.
//!
//! Reads the process's sockets, their `SO_ZEROCOPY` and their `TCP_ULP` (`process`).
//! Explanation and fix text: checks/findings/ktls-refuses-zerocopy.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::process::socket_evidence;
use crate::evidence::{InetSocket, ProcessEvidence};

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    if let Step::Process(s) = at {
        refused(s.p, &s.who, out);
    }
}

/// Whether `s` runs kernel TLS.
fn is_ktls(s: &InetSocket) -> bool {
    s.ulp
        .as_ref()
        .and_then(|u| u.value())
        .is_some_and(|u| u == "tls")
}

fn refused(p: &ProcessEvidence, who: &str, out: &mut Findings) {
    let found: Vec<&InetSocket> = p.zerocopy_sockets().filter(|s| is_ktls(s)).collect();
    let Some(first) = found.first() else {
        return;
    };
    let fds: Vec<String> = found
        .iter()
        .take(8)
        .map(|s| format!("fd {} (tcp {})", s.fd, s.endpoints()))
        .collect();
    let more = if found.len() > 8 {
        format!(" and {} more", found.len() - 8)
    } else {
        String::new()
    };
    out.raise(
        Code::KtlsRefusesZerocopy,
        format!(
            "{who}: kernel TLS (TCP_ULP tls) with SO_ZEROCOPY set on {}{more}: software kTLS refuses MSG_ZEROCOPY sends with EOPNOTSUPP (tls_sw_sendmsg) and NIC offload copies them without a completion, so these sockets never send zerocopy",
            fds.join(", ")
        ),
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "sockets": found.iter().map(|s| socket_evidence(s)).collect::<Vec<_>>(),
        }),
        vec![
            format!(
                "In the application (pid {}, fd {}): do not send with MSG_ZEROCOPY on kTLS sockets; clear SO_ZEROCOPY there, setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 0), and send plainly: kTLS encrypts from a copy anyway, and a fallback on EOPNOTSUPP already copies.",
                p.pid, first.fd
            ),
            "With a NIC that offloads TLS, send files with sendfile() after setsockopt(fd, SOL_TLS, TLS_TX_ZEROCOPY_RO, 1) (Linux 6.0+): the only zero-copy kTLS transmit path.".to_string(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};
    use crate::evidence::Fact;

    fn with_ulp(fd: i32, zerocopy: bool, ulp: &str) -> InetSocket {
        let mut s = socket(fd, zerocopy, 0, Some("198.18.1.2:5201"));
        s.ulp = Some(Fact::Read(ulp.to_string()));
        s
    }

    fn raised(sockets: Vec<InetSocket>) -> Vec<crate::vocab::Finding> {
        run(process("app", sockets))
            .findings
            .into_iter()
            .filter(|f| f.code == Code::KtlsRefusesZerocopy)
            .collect()
    }

    #[test]
    fn ktls_with_so_zerocopy_is_named_and_without_it_is_not() {
        let found = raised(vec![
            with_ulp(7, true, "tls"),
            with_ulp(8, false, "tls"),
            with_ulp(9, true, ""),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert!(f.summary.contains("fd 7"), "{}", f.summary);
        assert!(!f.summary.contains("fd 8") && !f.summary.contains("fd 9"));
        assert!(f.remediation[0].contains("pid 4242, fd 7"), "{:?}", f.remediation);
        assert!(raised(vec![with_ulp(8, false, "tls"), with_ulp(9, true, "")]).is_empty());
    }
}
