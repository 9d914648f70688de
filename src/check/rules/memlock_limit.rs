//! `memlock-limit`: the probing process has a finite `RLIMIT_MEMLOCK` and no CAP_IPC_LOCK, so
//! pinned zerocopy pages count against it: a blocker when ENOBUFS (sendmsg) or ENOMEM
//! (io_uring) was attributed to it, a warning otherwise.
//!
//! Reads the prober's limits and capabilities (`limits`) and the live probe's failures.
//! Explanation and fix text: checks/findings/memlock-limit.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::memory::{Limit, enobufs_limit};
use crate::evidence::{Evidence, NotRun};
use crate::vocab::Severity;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::LiveStart(m)
            if m.live.not_run_cause == Some(NotRun::IoUringUnavailable) && m.ring_enomem > 0 =>
        {
            memlock_limit(cx.ev, 0, m.ring_enomem, out)
        }
        Step::Live(m) => memlock_limit(
            cx.ev,
            m.totals.enobufs,
            m.totals.enomem + m.ring_enomem,
            out,
        ),
        _ => {}
    }
}

/// The prober's RLIMIT_MEMLOCK, when it applies; a blocker when ENOBUFS (sendmsg) or ENOMEM
/// (io_uring) was attributed to it.
fn memlock_limit(ev: &Evidence, enobufs: u64, enomem: u64, out: &mut Findings) {
    let Some(p) = ev.process.as_ref().filter(|p| !p.cap_ipc_lock) else {
        return;
    };
    let Some(limit) = p.memlock_soft else {
        return;
    };
    let hit = (enobufs > 0 || enomem > 0) && enobufs_limit(ev) == Limit::Memlock;
    let failed = match (enobufs > 0, enomem > 0) {
        (true, true) => ", and sends failed with ENOBUFS (sendmsg) and ENOMEM (io_uring)",
        (true, false) => ", and sends failed with ENOBUFS",
        (false, true) => ", and io_uring sends failed with ENOMEM",
        (false, false) => "",
    };
    out.raise_as(
        Code::MemlockLimit,
        if hit { Severity::Blocker } else { Severity::Warning },
        format!(
            "the probing process (uid {}) has RLIMIT_MEMLOCK {} KiB and no CAP_IPC_LOCK: pinned zerocopy pages count against it{}",
            p.uid,
            limit / 1024,
            if hit { failed } else { "" }
        ),
        json!({"memlock_soft": limit, "locked_vm": p.locked_vm, "cap_ipc_lock": false, "uid": p.uid, "enobufs": enobufs}),
        vec![
            "Give the sending service `LimitMEMLOCK=infinity` (systemd) or `ulimit -l unlimited`, or CAP_IPC_LOCK.".to_string(),
            "The charge is per user: other processes of the same user share the limit.".to_string(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::memory::{Limit, enobufs_limit};
    use crate::check::testing::{fixture, raised};
    use crate::vocab::Severity;

    #[test]
    fn enobufs_blames_memlock_only_when_it_applies() {
        let mut ev = fixture("live-enobufs-memlock");
        assert_eq!(enobufs_limit(&ev), Limit::Memlock);
        let found = raised(&ev, Code::MemlockLimit);
        assert_eq!(found[0].severity, Severity::Blocker);
        if let Some(p) = ev.process.as_mut() {
            p.cap_ipc_lock = true;
        }
        assert_eq!(enobufs_limit(&ev), Limit::OptmemMax);
        assert!(raised(&ev, Code::MemlockLimit).is_empty());
    }
}
