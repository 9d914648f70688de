//! `zerocopy-enobufs`: live zerocopy sends failed with ENOBUFS; says which limit they hit
//! (`RLIMIT_MEMLOCK` when it applies to the prober, else `optmem_max`) and how to raise it.
//!
//! Reads the live probe's ENOBUFS counts, the prober's limits (`limits`) and `optmem_max`.
//! Explanation and fix text: checks/findings/zerocopy-enobufs.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::memory::{Limit, enobufs_limit};
use crate::evidence::Evidence;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::Live(m) = at {
        enobufs_failed(cx.ev, m.totals.enobufs, out);
    }
}

/// `enobufs` zerocopy sends failed: says which limit, from evidence.
fn enobufs_failed(ev: &Evidence, enobufs: u64, out: &mut Findings) {
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

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};

    #[test]
    fn optmem_fix_does_not_overflow() {
        let mut ev = fixture("live-enobufs-optmem");
        ev.sysctls.optmem_max = Some(u64::MAX);
        if let Some(p) = ev.process.as_mut() {
            p.memlock_soft = None;
        }
        let f = &raised(&ev, Code::ZerocopyEnobufs)[0];
        assert!(f.remediation[0].contains(&u64::MAX.to_string()));
    }
}
