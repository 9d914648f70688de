//! `process-memlock-limit`: RLIMIT_MEMLOCK caps the pages a process pins with zerocopy sends
//! in flight (no CAP_IPC_LOCK, a finite limit, a socket that allows MSG_ZEROCOPY).
//!
//! Reads the process's limits, capabilities and zerocopy sockets (`process`).
//! Explanation and fix text: checks/findings/process-memlock-limit.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::ProcessEvidence;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    if let Step::Process(s) = at {
        memlock(s.p, &s.who, s.qemu, out);
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn memlock(p: &ProcessEvidence, who: &str, qemu: bool, out: &mut Findings) {
    let zc = p.zerocopy_sockets().count();
    let Some(limit) = p.memlock.value() else {
        return;
    };
    let Some(soft) = limit.soft else {
        return;
    };
    if zc == 0 || p.cap_ipc_lock() != Some(false) {
        return;
    }
    let hard = limit.hard.map_or("unlimited".to_string(), bytes);
    let own = match (p.vm_pin, p.vm_lck) {
        (Some(pin), Some(lck)) => format!("VmPin {}, VmLck {}", bytes(pin), bytes(lck)),
        _ => "VmPin and VmLck unread".to_string(),
    };
    let uid = p.uid.map_or("its user".to_string(), |u| format!("uid {u}"));
    let summary = format!(
        "{who} has RLIMIT_MEMLOCK {} (hard {hard}) and no CAP_IPC_LOCK while {zc} socket(s) allow MSG_ZEROCOPY: the pages of every zerocopy send in flight are charged to {uid}'s locked_vm, shared by all its processes, and checked against this limit; sends over it fail with ENOBUFS. This process shows {own}; the user's total locked_vm is not exposed by procfs.",
        bytes(soft)
    );
    let mut fix = Vec::new();
    match p.unit.as_deref() {
        Some(unit) if unit.ends_with(".service") => {
            fix.push(format!(
                "`systemctl edit {unit}`: add `[Service]` `LimitMEMLOCK=infinity` (or a size covering the sends in flight), then `systemctl restart {unit}`."
            ));
        }
        _ => {}
    }
    fix.push(format!(
        "Now, without a restart: `prlimit --pid {} --memlock=unlimited:unlimited` (raising the hard limit needs CAP_SYS_RESOURCE).",
        p.pid
    ));
    if qemu {
        fix.push("With libvirt, `virsh migrate --zerocopy` (VIR_MIGRATE_ZEROCOPY) lets QEMU lock all guest memory; set `<memtune><hard_limit>` so the limit libvirt derives covers it.".to_string());
    }
    out.raise(
        Code::ProcessMemlockLimit,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "uid": p.uid,
            "memlock_soft": soft,
            "memlock_hard": limit.hard,
            "vm_pin": p.vm_pin,
            "vm_lck": p.vm_lck,
            "zerocopy_sockets": zc,
        }),
        fix,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};
    use crate::evidence::{Fact, Memlock, OsError};

    #[test]
    fn memlock_applies_only_without_cap_ipc_lock_and_with_a_limit() {
        let out = run(process("app", vec![socket(3, true, 0, None)]));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ProcessMemlockLimit);
        assert!(
            f.summary.contains("RLIMIT_MEMLOCK 8 MiB (hard 8 MiB)"),
            "{}",
            f.summary
        );
        assert!(f.remediation[0].contains("systemctl edit app.service"));
        assert!(f.remediation[1].contains("prlimit --pid 4242 --memlock="));
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        let out = run(p);
        assert!(out.findings.is_empty());
        assert!(
            out.passed[0].detail.contains("CAP_IPC_LOCK"),
            "{}",
            out.passed[0].detail
        );
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.memlock = Fact::Read(Memlock {
            soft: None,
            hard: None,
        });
        assert!(run(p).findings.is_empty());
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.capeff = Fact::Failed(OsError::new("read", nix::errno::Errno::EACCES));
        assert!(run(p).findings.is_empty());
    }
}
