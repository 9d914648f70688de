//! errqueue-not-drained: zerocopy sockets whose option memory is filling with unread
//! completion notifications, until the next send fails with ENOBUFS.

use serde_json::json;

use crate::check::findings::{Code, Findings};
use crate::evidence::{InetSocket, ProcessEvidence};
use crate::vocab::Severity;

/// One zerocopy notification skb (`SKB_TRUESIZE(0)`) as measured on Linux 6.18 x86-64: 157
/// unread notifications held 130624 bytes. The next send needs this much headroom under
/// optmem_max, or it fails with ENOBUFS.
pub const NOTIFICATION_BYTES: u64 = 832;
/// Option memory at or above this share of optmem_max (in quarters) is "near" the limit.
const NEAR_QUARTERS: u64 = 3;

/// The optmem_max that applies to socket `s`: its own namespace's, else the process's.
fn optmem_max_for(p: &ProcessEvidence, s: &InetSocket) -> Option<u64> {
    match s.netns.value() {
        Some(ino) => p.optmem_max_of(*ino),
        None => p.netns_inode().and_then(|i| p.optmem_max_of(i)),
    }
}

/// How to set optmem_max in socket `s`'s namespace.
fn sysctl_command(p: &ProcessEvidence, s: &InetSocket, value: u64) -> String {
    let set = format!("sysctl -w net.core.optmem_max={value}");
    let ns = s.netns.value().copied();
    if ns.is_none() || ns == p.netns_inode() {
        return format!("`nsenter --target {} --net {set}`", p.pid);
    }
    match p
        .namespaces
        .iter()
        .find(|n| Some(n.netns.inode) == ns)
        .and_then(|n| n.netns.name.as_deref())
    {
        Some(name) => format!("`ip netns exec {name} {set}`"),
        None => format!("`{set}` inside net:[{}]", ns.unwrap_or_default()),
    }
}

pub(super) fn not_drained(
    p: &ProcessEvidence,
    who: &str,
    qemu: bool,
    notes: &[String],
    out: &mut Findings,
) {
    struct Full<'a> {
        s: &'a InetSocket,
        optmem: u64,
        max: u64,
        in_flight: u64,
    }
    let full: Vec<Full> = p
        .zerocopy_sockets()
        .filter_map(|s| {
            let optmem = s.optmem()?;
            let max = optmem_max_for(p, s)?;
            let in_flight = s.meminfo.value().map_or(0, |m| u64::from(m.wmem_alloc));
            (optmem * 4 >= max * NEAR_QUARTERS).then_some(Full {
                s,
                optmem,
                max,
                in_flight,
            })
        })
        .collect();
    if full.is_empty() {
        return;
    }
    let at_limit = |f: &Full| f.max.saturating_sub(f.optmem) < NOTIFICATION_BYTES;
    let blocker = full.iter().any(at_limit);
    let parts: Vec<String> = full
        .iter()
        .take(4)
        .map(|f| {
            let left = f.max.saturating_sub(f.optmem);
            let room = if at_limit(f) {
                format!("{left} left, less than one {NOTIFICATION_BYTES}-byte notification")
            } else {
                format!("{left} left")
            };
            let flight = if f.in_flight == 0 {
                "nothing in flight (wmem_alloc 0), so all of it is unread notifications".to_string()
            } else {
                format!(
                    "{} bytes still in flight (wmem_alloc), part of it may be sends not yet completed",
                    f.in_flight
                )
            };
            format!(
                "fd {} {} {} holds {} of optmem_max {} bytes ({room}; {flight})",
                f.s.fd,
                f.s.protocol,
                f.s.endpoints(),
                f.optmem,
                f.max,
            )
        })
        .collect();
    let more = if full.len() > 4 {
        format!(" and {} more socket(s)", full.len() - 4)
    } else {
        String::new()
    };
    let consequence = if blocker {
        "the next MSG_ZEROCOPY send fails with ENOBUFS"
    } else {
        "ENOBUFS follows once it reaches the limit"
    };
    let summary = format!(
        "{who}: zerocopy option memory at or near the limit: {}{more}. Completions are not being read from MSG_ERRQUEUE fast enough; {consequence}",
        parts.join("; ")
    );
    let first = full[0].s;
    let raise_to = (full[0].max * 2).max(262_144);
    let mut fix = Vec::new();
    if qemu {
        fix.push(format!("QEMU pid {}: its migration thread drains the error queue; check QMP `query-migrate` (ram.dirty-sync-missed-zero-copy, status) for a stalled migration, and if it fails with ENOBUFS or \"can't lock enough memory\", turn `zero-copy-send` off with `migrate-set-capabilities` until optmem_max is raised.", p.pid));
    } else {
        fix.push(format!(
            "In the application (pid {}): read completions with recvmsg(fd, MSG_ERRQUEUE) whenever poll reports POLLERR, at least once per batch of MSG_ZEROCOPY sends.",
            p.pid
        ));
    }
    fix.push(format!(
        "Raise the limit for headroom in the socket's namespace: {}; persist it in /etc/sysctl.d/ (per namespace since Linux 6.8).",
        sysctl_command(p, first, raise_to)
    ));
    let sockets: Vec<serde_json::Value> = full
        .iter()
        .map(|f| {
            json!({
                "fd": f.s.fd,
                "inode": f.s.inode,
                "protocol": f.s.protocol,
                "local": f.s.local.value(),
                "peer": f.s.peer.value().cloned().flatten(),
                "optmem": f.optmem,
                "optmem_max": f.max,
                "wmem_alloc": f.in_flight,
            })
        })
        .collect();
    let severity = if blocker {
        Severity::Blocker
    } else {
        Severity::Warning
    };
    let f = out.raise_as(
        Code::ErrqueueNotDrained,
        severity,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "notification_bytes": NOTIFICATION_BYTES,
            "sockets": sockets,
        }),
        fix,
    );
    f.notes = notes.to_vec();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::process::testing::{process, run, socket};

    #[test]
    fn full_option_memory_is_a_blocker_near_it_a_warning() {
        // Measured on 6.18: 157 unread notifications, 448 bytes left.
        let out = run(process("app", vec![socket(3, true, 130624, None)]));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ErrqueueNotDrained);
        assert_eq!(f.severity, Severity::Blocker);
        assert!(f.summary.contains("holds 130624 of optmem_max 131072 bytes (448 left, less than one 832-byte notification; nothing in flight"), "{}", f.summary);
        assert!(
            f.remediation[1]
                .contains("nsenter --target 4242 --net sysctl -w net.core.optmem_max=262144")
        );
        let out = run(process("app", vec![socket(3, true, 100_000, None)]));
        assert_eq!(out.findings[0].severity, Severity::Warning);
        // Far from the limit: nothing, but memlock applies (no CAP_IPC_LOCK, 8 MiB).
        let out = run(process("app", vec![socket(3, true, 832, None)]));
        assert_eq!(out.codes_where(|_| true), [Code::ProcessMemlockLimit]);
    }
}
