//! `errqueue-not-drained`: a process's zerocopy sockets whose option memory is filling with
//! unread completion notifications, until the next send fails with ENOBUFS (a blocker when
//! less than one notification fits, a warning near the limit).
//!
//! Reads the process's zerocopy sockets (option memory, wmem_alloc) and each namespace's
//! `optmem_max` (`process`).
//! Explanation and fix text: checks/findings/errqueue-not-drained.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::{InetSocket, ProcessEvidence};
use crate::vocab::Severity;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    if let Step::Process(s) = at {
        not_drained(s.p, &s.who, s.qemu, out);
    }
}

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

/// A zerocopy socket whose option memory is at or near its namespace's `optmem_max`.
struct Full<'a> {
    s: &'a InetSocket,
    optmem: u64,
    max: u64,
    in_flight: u64,
}

impl Full<'_> {
    /// Less than one notification fits: the next send fails with ENOBUFS.
    fn at_limit(&self) -> bool {
        self.max.saturating_sub(self.optmem) < NOTIFICATION_BYTES
    }

    /// `fd 3 udp A -> B holds N of optmem_max M bytes (room; in flight)`.
    fn describe(&self) -> String {
        let left = self.max.saturating_sub(self.optmem);
        let room = if self.at_limit() {
            format!("{left} left, less than one {NOTIFICATION_BYTES}-byte notification")
        } else {
            format!("{left} left")
        };
        let flight = if self.in_flight == 0 {
            "nothing in flight (wmem_alloc 0), so all of it is unread notifications".to_string()
        } else {
            format!(
                "{} bytes still in flight (wmem_alloc), part of it may be sends not yet completed",
                self.in_flight
            )
        };
        format!(
            "fd {} {} {} holds {} of optmem_max {} bytes ({room}; {flight})",
            self.s.fd,
            self.s.protocol,
            self.s.endpoints(),
            self.optmem,
            self.max,
        )
    }

    fn evidence(&self) -> serde_json::Value {
        json!({
            "fd": self.s.fd,
            "inode": self.s.inode,
            "protocol": self.s.protocol,
            "local": self.s.local.value(),
            "peer": self.s.peer.value().cloned().flatten(),
            "optmem": self.optmem,
            "optmem_max": self.max,
            "wmem_alloc": self.in_flight,
        })
    }
}

/// The process's zerocopy sockets at or near the limit.
fn full_sockets(p: &ProcessEvidence) -> Vec<Full<'_>> {
    p.zerocopy_sockets()
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
        .collect()
}

fn not_drained(p: &ProcessEvidence, who: &str, qemu: bool, out: &mut Findings) {
    let full = full_sockets(p);
    if full.is_empty() {
        return;
    }
    let blocker = full.iter().any(Full::at_limit);
    let parts: Vec<String> = full.iter().take(4).map(Full::describe).collect();
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
    let sockets: Vec<serde_json::Value> = full.iter().map(Full::evidence).collect();
    let severity = if blocker {
        Severity::Blocker
    } else {
        Severity::Warning
    };
    out.raise_as(
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
        remediation(p, qemu, &full[0]),
    );
}

/// Drain the error queue (QEMU: check its migration), and raise the limit in the namespace of
/// the first full socket.
fn remediation(p: &ProcessEvidence, qemu: bool, first: &Full) -> Vec<String> {
    let raise_to = (first.max * 2).max(262_144);
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
        sysctl_command(p, first.s, raise_to)
    ));
    fix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};

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
