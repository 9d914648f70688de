//! QEMU: recognized by comm or executable; its connected TCP sockets named as migration
//! channels, and notes on `zero-copy-send` and `dirty-sync-missed-zero-copy`, given whatever
//! its findings.

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

/// `fd 31 (SO_ZEROCOPY), fd 32`.
fn fd_list(socks: &[&InetSocket]) -> String {
    let fds: Vec<String> = socks
        .iter()
        .map(|s| match s.zerocopy.value() {
            Some(true) => format!("fd {} (SO_ZEROCOPY)", s.fd),
            _ => format!("fd {}", s.fd),
        })
        .collect();
    fds.join(", ")
}

/// That the process is QEMU, and its migration channels as its connected TCP sockets show them.
fn channels_note(p: &ProcessEvidence, who: &str) -> String {
    let groups = migration_channels(p);
    if groups.is_empty() {
        return format!(
            "{who} is QEMU. It has no connected TCP socket, so no outgoing migration now: run this again during one to see its main and multifd channels."
        );
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(peer, socks)| {
            let what = match socks.len() {
                1 => "a migration channel".to_string(),
                n => format!("the main channel and {} multifd channel(s)", n - 1),
            };
            format!("to {peer} {what}, {}", fd_list(socks))
        })
        .collect();
    format!(
        "{who} is QEMU, and if this is the sending side its migration channels are its connected TCP sockets: {}.",
        parts.join("; ")
    )
}

/// The libvirt domain id in the machine name `qemu-3-vm1` (`virsh` takes an id for a name).
fn libvirt_domain_id(p: &ProcessEvidence) -> Option<u32> {
    let machine = p.container.as_deref()?.strip_prefix("machine:")?;
    let rest = machine.replace("\\x2d", "-");
    let (id, _) = rest.strip_prefix("qemu-")?.split_once('-')?;
    id.parse().ok()
}

/// What SO_ZEROCOPY means on QEMU's sockets, and where QEMU counts its copies.
fn counter_note(p: &ProcessEvidence) -> String {
    let virsh = match libvirt_domain_id(p) {
        Some(id) => format!(
            "`virsh qemu-monitor-command {id} --pretty '{{\"execute\":\"query-migrate\"}}'` ({id}: the domain id in its machine name)"
        ),
        None => "`virsh qemu-monitor-command DOMAIN --pretty '{\"execute\":\"query-migrate\"}'`"
            .to_string(),
    };
    format!(
        "QEMU sets SO_ZEROCOPY on every outgoing migration socket, the main channel too, even with `zero-copy-send` off: the flag shows zerocopy allowed, not used. Only multifd channels send with MSG_ZEROCOPY, and only with the capability on (QMP `query-migrate-capabilities`); option memory in use on them shows it used. QEMU's own count of copies is dirty-sync-missed-zero-copy: read it with QMP `query-migrate` (ram.dirty-sync-missed-zero-copy, QEMU 7.1+), or under libvirt with {virsh}. It counts a channel's sync only when none of its sends avoided a copy."
    )
}

/// QEMU's notes: that it is QEMU and its migration channels, then where it counts its copies.
pub(super) fn qemu_notes(p: &ProcessEvidence, who: &str) -> [String; 2] {
    [channels_note(p, who), counter_note(p)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::findings::{Code, Findings};
    use crate::check::testing::process::{process, run, socket};
    use crate::vocab::NoteAbout;

    fn texts(out: &Findings, about: NoteAbout) -> Vec<String> {
        out.notes
            .iter()
            .filter(|n| n.about == about && n.pid == 4242)
            .map(|n| n.text.clone())
            .collect()
    }

    /// QEMU migrating out: one peer, three SO_ZEROCOPY sockets.
    fn migrating(optmem: u32) -> ProcessEvidence {
        let peer = Some("198.18.0.2:4444");
        let mut p = process(
            "qemu-system-x86",
            vec![
                socket(30, true, 0, peer),
                socket(31, true, optmem, peer),
                socket(32, true, 130000, peer),
            ],
        );
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        p.unit = Some("machine-qemu\\x2d1\\x2dvm1.scope".into());
        p
    }

    #[test]
    fn qemu_names_migration_channels() {
        let out = run(migrating(130624));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ErrqueueNotDrained);
        assert!(f.notes.is_empty(), "the process's notes are not repeated");
        assert!(f.remediation[0].contains("zero-copy-send"));
        let qemu = texts(&out, NoteAbout::Qemu);
        assert!(
            qemu[0].contains("qemu-system-x86 (pid 4242, machine-qemu"),
            "{}",
            qemu[0]
        );
        assert!(qemu[0].contains("is QEMU"));
        assert!(qemu[0].contains("fd 30 (SO_ZEROCOPY), fd 31 (SO_ZEROCOPY), fd 32 (SO_ZEROCOPY)"));
        assert!(qemu[0].contains("2 multifd channel(s)"));
        assert!(qemu[1].contains("`query-migrate` (ram.dirty-sync-missed-zero-copy, QEMU 7.1+)"));
        assert!(qemu[1].contains(
            r#"`virsh qemu-monitor-command DOMAIN --pretty '{"execute":"query-migrate"}'`"#
        ));
        let watch = texts(&out, NoteAbout::Watch);
        assert!(
            watch[0].contains("`zcdoctor watch --pid 4242`"),
            "{watch:?}"
        );
        assert!(watch[0].contains("each multifd channel's copied fraction"));
        assert!(is_qemu(&process("qemu-kvm", vec![])));
    }

    /// Nothing to flag (option memory drained, CAP_IPC_LOCK): the notes are there all the same,
    /// and libvirt's domain id is read from the machine name.
    #[test]
    fn qemu_without_findings_still_gets_its_notes() {
        let mut p = migrating(0);
        p.sockets[2] = socket(32, true, 0, Some("198.18.0.2:4444"));
        p.container = Some("machine:qemu-3-vm1".into());
        let out = run(p);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(out.passed[0].detail.contains("pid 4242"));
        let qemu = texts(&out, NoteAbout::Qemu);
        assert_eq!(qemu.len(), 2);
        assert!(qemu[0].contains("is QEMU") && qemu[0].contains("2 multifd channel(s)"));
        assert!(qemu[1].contains("dirty-sync-missed-zero-copy"));
        assert!(
            qemu[1].contains(
                r#"`virsh qemu-monitor-command 3 --pretty '{"execute":"query-migrate"}'`"#
            )
        );
        assert!(texts(&out, NoteAbout::Watch)[0].contains("zcdoctor watch --pid 4242"));
    }

    /// QEMU not migrating: no TCP socket, so no channel and no zerocopy socket (and so no
    /// `watch`), but it is still named as QEMU beside its finding.
    #[test]
    fn qemu_without_sockets_is_named_as_qemu() {
        let out = run(process("qemu-system-x86", vec![]));
        assert_eq!(out.codes_where(|_| true), [Code::ZerocopyNotRequested]);
        let qemu = texts(&out, NoteAbout::Qemu);
        assert!(
            qemu[0].contains("is QEMU. It has no connected TCP socket"),
            "{}",
            qemu[0]
        );
        assert!(qemu[1].contains("query-migrate"));
        assert!(texts(&out, NoteAbout::Watch).is_empty());
    }
}
