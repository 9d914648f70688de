//! The `nfqueue` probe: the nftables rules that hand packets to a userspace queue (`queue`,
//! iptables-nft's `NFQUEUE`), read through nfnetlink in the diagnosed namespace and in the
//! namespace of each path segment. iptables-legacy tables are named, not read.

use super::netns;
use super::tc::segment_netns;
use super::{Context, GatherError, Outcome, Probe, netlink};
use crate::evidence::{
    BoundQueue, Evidence, NfQueueProblem, NfQueueScan, OsError, ProbeName, Segment,
};

pub struct NfQueueProbe;

impl Probe for NfQueueProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Nfqueue
    }
    fn reads(&self) -> &'static str {
        "nfnetlink NFT_MSG_GETCHAIN and NFT_MSG_GETRULE dumps of the diagnosed namespace and of each path segment's: rules with a queue expression or an xt NFQUEUE target (table, chain, hook, handle, queue numbers, flags, the matches before it); /proc/net/netfilter/nfnetlink_queue for the bound queues; /proc/net/ip{,6}_tables_names for iptables-legacy tables. Not asked when nf_tables is an unloaded module (asking would load it)"
    }
    fn privileges(&self) -> &'static str {
        "CAP_NET_ADMIN to dump the rule set; CAP_SYS_ADMIN to enter the namespaces of the path's other hops"
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        ev.nfqueue = Some(scan());
        for seg in ev.path.iter_mut().flat_map(|p| p.segments.iter_mut()) {
            read_segment(seg);
        }
        Ok(outcome(ev))
    }
}

/// The calling thread's namespace.
fn scan() -> NfQueueScan {
    let mut out = NfQueueScan {
        legacy_tables: legacy_tables(),
        bound: bound_queues(),
        ..NfQueueScan::default()
    };
    if !nf_tables_present() {
        out.nf_tables_absent = true;
        return out;
    }
    match netlink::queue_rules() {
        Ok(r) => {
            out.rules = r.rules;
            out.rules_read = r.rules_read;
            out.truncated = r.truncated;
        }
        Err(e) => out.problems.push(match e.errno() {
            Some(errno) => NfQueueProblem::DumpFailed {
                error: OsError::new(e.op(), errno),
            },
            None => NfQueueProblem::Malformed {
                detail: e.to_string(),
            },
        }),
    }
    out
}

/// Whether nf_tables may hold rules: loaded (`/sys/module/nf_tables`), built in
/// (`modules.builtin`), or not knowable (no `/proc/modules`). A netlink request to an unloaded
/// nfnetlink subsystem makes the kernel load it (`request_module("nfnetlink-subsys-10")`): a
/// diagnosis must not load modules.
fn nf_tables_present() -> bool {
    if std::path::Path::new("/sys/module/nf_tables").exists()
        || std::fs::metadata("/proc/modules").is_err()
    {
        return true;
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    // A file on disk, not a kernel file: read at most 4 MiB of it (Debian's is ~60 KiB).
    let Ok(file) = std::fs::File::open(format!("/lib/modules/{release}/modules.builtin")) else {
        return false;
    };
    std::io::BufRead::lines(std::io::BufReader::new(std::io::Read::take(file, 4 << 20)))
        .map_while(Result::ok)
        .any(|l| l.ends_with("/nf_tables.ko"))
}

/// The iptables-legacy tables of the calling thread's namespace (`/proc/thread-self/net`: a
/// thread that entered another namespace sees that one's, `/proc/self/net` the process's).
fn legacy_tables() -> Vec<String> {
    ["ip_tables_names", "ip6_tables_names"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).ok())
        .zip(["ip", "ip6"])
        .flat_map(|(text, family)| {
            text.lines()
                .map(|t| format!("{family} {}", t.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The queues bound in the calling thread's namespace; none when nfnetlink_queue is not loaded.
fn bound_queues() -> Option<Vec<BoundQueue>> {
    match std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue") {
        Ok(text) => Some(text.lines().filter_map(BoundQueue::parse).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
        Err(_) => None,
    }
}

fn read_segment(seg: &mut Segment) {
    let scanned = match segment_netns(seg) {
        Ok(None) => Ok(scan()),
        Ok(Some(file)) => netns::in_netns(&file, scan)
            .map_err(|e| format!("cannot enter its namespace: {}", e.desc())),
        Err(e) => Err(e),
    };
    seg.nfqueue = Some(scanned.unwrap_or_else(|error| NfQueueScan {
        problems: vec![NfQueueProblem::Unenterable { error }],
        ..NfQueueScan::default()
    }));
}

/// `2 queue rule(s) of 40 rule(s) in 3 namespace(s)`, and what could not be read.
fn outcome(ev: &Evidence) -> Outcome {
    let scans: Vec<(String, &NfQueueScan)> = ev
        .nfqueue
        .iter()
        .map(|s| ("this namespace".to_string(), s))
        .chain(ev.path.iter().flat_map(|p| &p.segments).filter_map(|s| {
            let name = s.netns.name.clone();
            let label = name.unwrap_or_else(|| format!("net:[{}]", s.netns.inode));
            Some((label, s.nfqueue.as_ref()?))
        }))
        .collect();
    let queue: usize = scans.iter().map(|(_, s)| s.rules.len()).sum();
    let read: usize = scans.iter().map(|(_, s)| s.rules_read).sum();
    let absent = if scans.iter().any(|(_, s)| s.nf_tables_absent) {
        " (nf_tables not loaded: the rule set was not asked for)"
    } else {
        ""
    };
    let detail = format!(
        "{queue} queue rule(s) of {read} nftables rule(s) in {} namespace reading(s){absent}",
        scans.len()
    );
    let problems: Vec<String> = scans
        .iter()
        .flat_map(|(ns, s)| s.problems.iter().map(move |p| format!("{ns}: {p}")))
        .collect();
    Outcome::with_problems(detail, &problems)
}
