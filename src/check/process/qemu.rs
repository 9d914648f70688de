//! QEMU: recognized by comm or executable; its connected TCP sockets named as migration
//! channels, and notes on `zero-copy-send` and `dirty-sync-missed-zero-copy` for its findings.

use crate::evidence::{Fact, InetSocket, ProcessEvidence};

/// QEMU by comm (`qemu-system-x86` is comm's 15-byte cut) or executable.
pub fn is_qemu(p: &ProcessEvidence) -> bool {
    let exe_name = p
        .exe
        .value()
        .and_then(|e| e.rsplit('/').next())
        .unwrap_or_default();
    [p.comm.as_str(), exe_name]
        .iter()
        .any(|n| n.starts_with("qemu-system-") || *n == "qemu-kvm")
}

/// Connected TCP sockets grouped by peer: a group of several is QEMU's main migration channel
/// and its multifd channels (when this is the sending side).
fn migration_channels(p: &ProcessEvidence) -> Vec<(String, Vec<&InetSocket>)> {
    let mut groups: Vec<(String, Vec<&InetSocket>)> = Vec::new();
    for s in p.sockets.iter().filter(|s| s.is_connected_tcp()) {
        let Fact::Read(Some(peer)) = &s.peer else {
            continue;
        };
        match groups.iter_mut().find(|(k, _)| k == peer) {
            Some((_, v)) => v.push(s),
            None => groups.push((peer.clone(), vec![s])),
        }
    }
    groups
}

pub(super) fn qemu_notes(p: &ProcessEvidence) -> Vec<String> {
    let mut notes = Vec::new();
    for (peer, socks) in migration_channels(p) {
        let fds: Vec<String> = socks
            .iter()
            .map(|s| {
                format!(
                    "fd {}{}",
                    s.fd,
                    if s.zerocopy.value() == Some(&true) {
                        " (SO_ZEROCOPY)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let what = if socks.len() > 1 {
            format!(
                "the main migration channel and {} multifd channel(s) if this is the sending side",
                socks.len() - 1
            )
        } else {
            "a migration channel if this is the sending side".to_string()
        };
        notes.push(format!(
            "Connected TCP sockets to {peer}: {} ({what}).",
            fds.join(", ")
        ));
    }
    notes.push("QEMU sets SO_ZEROCOPY on every outgoing migration socket, the main channel too, even with `zero-copy-send` off: the flag shows zerocopy allowed, not used. Only multifd channels send with MSG_ZEROCOPY, and only with the capability on; option memory in use on them shows it used. Check with QMP `query-migrate-capabilities` (zero-copy-send) and `query-migrate`: ram.dirty-sync-missed-zero-copy (QEMU 7.1+) counts syncs in which no send avoided a copy.".to_string());
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::findings::Code;
    use crate::check::testing::process::{process, run, socket};

    #[test]
    fn qemu_names_migration_channels() {
        let peer = Some("198.18.0.2:4444");
        let mut p = process(
            "qemu-system-x86",
            vec![
                socket(30, true, 0, peer),
                socket(31, true, 130624, peer),
                socket(32, true, 130000, peer),
            ],
        );
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        p.unit = Some("machine-qemu\\x2d1\\x2dvm1.scope".into());
        let out = run(p);
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ErrqueueNotDrained);
        assert!(
            f.notes[0].contains("fd 30 (SO_ZEROCOPY), fd 31 (SO_ZEROCOPY), fd 32 (SO_ZEROCOPY)")
        );
        assert!(f.notes[0].contains("2 multifd channel(s)"));
        assert!(f.notes[1].contains("dirty-sync-missed-zero-copy"));
        assert!(f.remediation[0].contains("zero-copy-send"));
        assert!(is_qemu(&process("qemu-kvm", vec![])));
    }
}
