//! `zerocopy-enomem`: io_uring zerocopy sends (or ring set-ups) failed with ENOMEM: pinned
//! pages over `RLIMIT_MEMLOCK` when it applies to the prober, memory pressure otherwise.
//!
//! Reads the live probe's io_uring errors and ring set-up errors, and the prober's limits.
//! Explanation and fix text: checks/findings/zerocopy-enomem.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::memory::{Limit, enobufs_limit};
use crate::evidence::{Evidence, NotRun};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        // io_uring could not even set up a ring: that is all the probe has to say.
        Step::LiveStart(m) if m.live.not_run_cause == Some(NotRun::IoUringUnavailable) => {
            enomem_failed(cx.ev, 0, m.ring_enomem, out)
        }
        Step::Live(m) => enomem_failed(cx.ev, m.totals.enomem, m.ring_enomem, out),
        _ => {}
    }
}

/// `enomem` io_uring zerocopy sends failed with ENOMEM: pinned pages over RLIMIT_MEMLOCK when
/// the limit applies to the prober (a finite limit and no CAP_IPC_LOCK), memory pressure
/// otherwise.
/// `rings` counts io_uring set-ups (a ring, a buffer registration) that failed with ENOMEM:
/// on 6.x ring memory and registered buffers count against the same limit.
fn enomem_failed(ev: &Evidence, enomem: u64, rings: u64, out: &mut Findings) {
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

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::SendApi;

    fn with_enomem(cap_ipc_lock: bool) -> crate::evidence::Evidence {
        let mut ev = fixture("live-enobufs-memlock");
        if let Some(p) = ev.process.as_mut() {
            p.cap_ipc_lock = cap_ipc_lock;
        }
        let live = ev.live.as_mut().expect("live");
        let run = &mut live.runs[0];
        run.api = SendApi::IoUring;
        run.errors.insert("ENOMEM".into(), 5);
        ev
    }

    #[test]
    fn enomem_blames_memlock_only_when_it_applies() {
        let f = &raised(&with_enomem(false), Code::ZerocopyEnomem)[0];
        assert!(
            f.summary.contains("RLIMIT_MEMLOCK (8192 KiB"),
            "{}",
            f.summary
        );
        let f = &raised(&with_enomem(true), Code::ZerocopyEnomem)[0];
        assert!(f.summary.contains("not RLIMIT_MEMLOCK"), "{}", f.summary);
        assert!(raised(&fixture("live-clean"), Code::ZerocopyEnomem).is_empty());
    }
}
