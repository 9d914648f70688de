//! Memory limits: `net.core.optmem_max` (notifications are charged to the socket's option
//! memory until read) and `RLIMIT_MEMLOCK` (pinned pages are charged to the user), and which
//! of them an ENOBUFS hit.

use serde_json::json;

use super::findings::{Code, Findings};
use crate::evidence::Evidence;
use crate::vocab::Severity;

/// One notification skb (SKB_TRUESIZE(0) on x86-64) is charged to optmem until its completion
/// is read; this many sends in flight per socket is a modest burst.
pub const NOTIFICATION_TRUESIZE: u64 = 576;
pub const BURST_IN_FLIGHT: u64 = 64;

/// The limit a zerocopy ENOBUFS ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    OptmemMax,
    Memlock,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::OptmemMax => "net.core.optmem_max",
            Limit::Memlock => "RLIMIT_MEMLOCK",
        }
    }
}

/// Which limit an ENOBUFS hit, from evidence: MEMLOCK only when it applies to the prober
/// (a finite limit and no CAP_IPC_LOCK).
pub fn enobufs_limit(ev: &Evidence) -> Limit {
    match &ev.process {
        Some(p) if !p.cap_ipc_lock && p.memlock_soft.is_some() => Limit::Memlock,
        _ => Limit::OptmemMax,
    }
}

pub fn check_optmem(ev: &Evidence, out: &mut Findings) {
    let Some(optmem) = ev.sysctls.optmem_max else {
        return;
    };
    let in_flight = optmem / NOTIFICATION_TRUESIZE;
    let needed = BURST_IN_FLIGHT * NOTIFICATION_TRUESIZE;
    if in_flight >= BURST_IN_FLIGHT {
        out.pass(
            Code::OptmemLow.as_str(),
            format!(
                "net.core.optmem_max {optmem} allows about {in_flight} sends in flight per socket"
            ),
        );
        return;
    }
    out.raise(
        Code::OptmemLow,
        format!(
            "net.core.optmem_max is {optmem}: about {in_flight} zerocopy sends can be in flight per socket before ENOBUFS (a burst of {BURST_IN_FLIGHT} needs {needed})"
        ),
        json!({
            "optmem_max": optmem,
            "sends_in_flight": in_flight,
            "notification_bytes": NOTIFICATION_TRUESIZE,
            "burst": BURST_IN_FLIGHT,
            "needed": needed,
        }),
        vec![
            "sysctl -w net.core.optmem_max=131072".to_string(),
            "Persist it: `echo net.core.optmem_max=131072 > /etc/sysctl.d/90-zerocopy.conf` (on 6.8+ set it in the namespace that sends).".to_string(),
        ],
    );
}

/// `enobufs` zerocopy sends failed: says which limit, from evidence.
pub fn check_enobufs(ev: &Evidence, enobufs: u64, out: &mut Findings) {
    if enobufs == 0 {
        return;
    }
    let limit = enobufs_limit(ev);
    let fix = match limit {
        Limit::Memlock => "Raise the sending service's locked-memory limit (`LimitMEMLOCK=infinity` in its unit, `ulimit -l unlimited`) or grant it CAP_IPC_LOCK.".to_string(),
        Limit::OptmemMax => format!(
            "sysctl -w net.core.optmem_max={} (in the namespace that sends), and read completions from the error queue promptly.",
            (ev.sysctls.optmem_max.unwrap_or(20480).saturating_mul(4)).max(131072)
        ),
    };
    out.raise(
        Code::ZerocopyEnobufs,
        format!(
            "{enobufs} zerocopy sends failed with ENOBUFS; the limit hit is {}",
            limit.as_str()
        ),
        json!({"enobufs": enobufs, "limit": limit.as_str(), "optmem_max": ev.sysctls.optmem_max, "process": ev.process}),
        vec![fix],
    );
}

/// `enomem` io_uring zerocopy sends failed with ENOMEM: pinned pages over RLIMIT_MEMLOCK when
/// the limit applies to the prober (a finite limit and no CAP_IPC_LOCK), memory pressure
/// otherwise.
/// `rings` counts io_uring set-ups (a ring, a buffer registration) that failed with ENOMEM:
/// on 6.x ring memory and registered buffers count against the same limit.
pub fn check_enomem(ev: &Evidence, enomem: u64, rings: u64, out: &mut Findings) {
    if enomem == 0 && rings == 0 {
        return;
    }
    let memlock = enobufs_limit(ev) == Limit::Memlock;
    let (cause, fix) = if memlock {
        let p = ev.process.as_ref();
        (
            format!(
                "RLIMIT_MEMLOCK ({} KiB, no CAP_IPC_LOCK): io_uring charges the pages each SEND_ZC pins to the user's locked_vm",
                p.and_then(|p| p.memlock_soft).unwrap_or(0) / 1024
            ),
            "Raise the sending service's locked-memory limit (`LimitMEMLOCK=infinity` in its unit, `ulimit -l unlimited`) or grant it CAP_IPC_LOCK; registered buffers (IORING_RECVSEND_FIXED_BUF) are charged once instead of per send.".to_string(),
        )
    } else {
        (
            "not RLIMIT_MEMLOCK (it does not apply to the prober): the kernel could not allocate or pin memory".to_string(),
            "Check memory pressure (`grep -E 'MemAvailable|Mlocked' /proc/meminfo`) and the cgroup's memory limit, then probe again.".to_string(),
        )
    };
    let what = match (enomem, rings) {
        (0, r) => {
            format!("{r} io_uring set-up(s) (ring or buffer registration) failed with ENOMEM")
        }
        (n, 0) => format!("{n} io_uring zerocopy sends failed with ENOMEM"),
        (n, r) => {
            format!("{n} io_uring zerocopy sends and {r} io_uring set-up(s) failed with ENOMEM")
        }
    };
    out.raise(
        Code::ZerocopyEnomem,
        format!("{what}; the limit hit is {cause}"),
        json!({"enomem": enomem, "setup_enomem": rings, "limit": if memlock { Some(Limit::Memlock.as_str()) } else { None }, "process": ev.process}),
        vec![fix],
    );
}

/// The prober's RLIMIT_MEMLOCK, when it applies; a blocker when ENOBUFS (sendmsg) or ENOMEM
/// (io_uring) was attributed to it.
pub fn check_memlock(ev: &Evidence, enobufs: u64, enomem: u64, out: &mut Findings) {
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
    use super::*;
    use crate::check::testing::fixture;

    #[test]
    fn optmem_20480_is_low_and_131072_is_not() {
        let mut ev = fixture("clean-nic");
        ev.sysctls.optmem_max = Some(20480);
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_optmem(&ev, &mut out);
        assert!(out.has(Code::OptmemLow));
        assert!(out.findings[0].summary.contains("about 35 zerocopy sends"));
        ev.sysctls.optmem_max = Some(131072);
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_optmem(&ev, &mut out);
        assert!(out.findings.is_empty());
        assert_eq!(out.passed.len(), 1);
    }

    #[test]
    fn enobufs_blames_memlock_only_when_it_applies() {
        let mut ev = fixture("live-enobufs-memlock");
        assert_eq!(enobufs_limit(&ev), Limit::Memlock);
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_memlock(&ev, 3, 0, &mut out);
        assert_eq!(out.findings[0].severity, Severity::Blocker);
        if let Some(p) = ev.process.as_mut() {
            p.cap_ipc_lock = true;
        }
        assert_eq!(enobufs_limit(&ev), Limit::OptmemMax);
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_memlock(&ev, 3, 0, &mut out);
        assert!(out.findings.is_empty());
    }

    #[test]
    fn optmem_fix_does_not_overflow() {
        let mut ev = fixture("live-enobufs-optmem");
        ev.sysctls.optmem_max = Some(u64::MAX);
        if let Some(p) = ev.process.as_mut() {
            p.memlock_soft = None;
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_enobufs(&ev, 1, &mut out);
        assert!(out.findings[0].remediation[0].contains(&u64::MAX.to_string()));
    }

    #[test]
    fn enomem_blames_memlock_only_when_it_applies() {
        let mut ev = fixture("live-enobufs-memlock");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_enomem(&ev, 5, 0, &mut out);
        assert_eq!(out.findings[0].code, Code::ZerocopyEnomem);
        assert!(out.findings[0].summary.contains("RLIMIT_MEMLOCK (8192 KiB"));
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_memlock(&ev, 0, 5, &mut out);
        assert_eq!(out.findings[0].severity, Severity::Blocker);
        assert!(out.findings[0].summary.contains("ENOMEM"));
        if let Some(p) = ev.process.as_mut() {
            p.cap_ipc_lock = true;
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_enomem(&ev, 5, 0, &mut out);
        assert!(out.findings[0].summary.contains("not RLIMIT_MEMLOCK"));
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check_enomem(&ev, 0, 0, &mut out);
        assert!(out.findings.is_empty());
    }
}
