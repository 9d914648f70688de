//! What a probe could not read, as data: the kind of failure and its particulars, so a check or
//! a summary matches on the kind instead of on words. Each has a one-line description of fact
//! (`Display`), never advice. Recordings made before evidence version 2 hold sentences; those
//! still load, as [`ScanProblem::Text`] and the like.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{OsError, RunPattern, UringUnavailable};

/// Something the tap scan could not read, and therefore what the scan misses.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum ScanProblem {
    /// The descriptors of this many processes could not be read (permission): taps held only
    /// by them have no owner.
    DescriptorsUnreadable { processes: u32 },
    /// A process's descriptor directory failed otherwise than by permission.
    DescriptorsFailed { path: String, error: String },
    /// /proc could not be listed: no process was scanned.
    ProcUnlisted { error: String },
    /// Listing /proc stopped early: the process list is incomplete.
    ProcListIncomplete { error: String },
    /// The network namespace of this many processes could not be read: namespaces only they
    /// use are not scanned.
    NamespacesUnreadable { processes: u32 },
    /// /run/netns could not be listed: named namespaces without a process are not scanned.
    NamedNamespacesUnlisted { error: String },
    /// A thread of the owner walk panicked: its share of the processes is missing.
    OwnerWalkPanicked,
    /// The diagnosed namespace could not be identified.
    OwnNamespaceUnknown { error: String },
    /// A namespace's packet table could not be read (`netns` as the report labels it).
    PacketTableUnreadable {
        netns: String,
        diagnosed: bool,
        error: String,
    },
    /// A namespace's table was read through /proc/PID/net, where bound devices cannot always be
    /// named.
    DevicesUnnamed {
        netns: String,
        count: u32,
        why: String,
    },
    /// Lines of /proc/net/packet that did not parse and were skipped.
    LinesSkipped { lines: u32 },
    /// A packet socket's fanout group could not be read.
    FanoutUnreadable { inode: u64, error: OsError },
    /// As recorded by zcdoctor before evidence version 2.
    #[serde(untagged)]
    Text(String),
}

impl std::fmt::Display for ScanProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanProblem::DescriptorsUnreadable { processes } => write!(
                f,
                "the descriptors of {processes} process(es) could not be read: taps held only by them have no owner"
            ),
            ScanProblem::DescriptorsFailed { path, error } => {
                write!(f, "cannot read {path}: {error}")
            }
            ScanProblem::ProcUnlisted { error } => {
                write!(f, "cannot list /proc ({error}): no process was scanned")
            }
            ScanProblem::ProcListIncomplete { error } => write!(
                f,
                "reading /proc stopped early ({error}): the process list is incomplete"
            ),
            ScanProblem::NamespacesUnreadable { processes } => write!(
                f,
                "the network namespace of {processes} process(es) could not be read: namespaces only they use are not scanned"
            ),
            ScanProblem::NamedNamespacesUnlisted { error } => write!(
                f,
                "cannot list /run/netns ({error}): named namespaces without a process are not scanned"
            ),
            ScanProblem::OwnerWalkPanicked => f.write_str("an owner walk thread panicked"),
            ScanProblem::OwnNamespaceUnknown { error } => write!(
                f,
                "cannot stat /proc/thread-self/ns/net ({error}): the diagnosed namespace is unknown"
            ),
            ScanProblem::PacketTableUnreadable {
                netns,
                diagnosed,
                error,
            } => {
                let which = if *diagnosed {
                    "the diagnosed namespace"
                } else {
                    "namespace"
                };
                write!(f, "packet table of {which} {netns} unreadable: {error}")
            }
            ScanProblem::DevicesUnnamed { netns, count, why } => write!(
                f,
                "namespace {netns}: {count} bound device(s) could not be named ({why}; read through /proc/PID/net instead)"
            ),
            ScanProblem::LinesSkipped { lines } => write!(
                f,
                "{lines} line(s) of /proc/net/packet did not parse and were skipped"
            ),
            ScanProblem::FanoutUnreadable { inode, error } => write!(
                f,
                "socket {inode}: {error}: its fanout group is not recorded"
            ),
            ScanProblem::Text(text) => f.write_str(text),
        }
    }
}

/// Something about a diagnosed process that could not be read.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum ProcessProblem {
    /// A file of /proc/PID could not be read (comm, cmdline, cgroup).
    Unreadable { error: OsError },
    /// /proc/PID/cgroup was read but did not parse.
    CgroupUnparsed { pid: u32, error: String },
    /// /proc/PID/fd could not be listed: the sockets and io_uring instances are not read.
    DescriptorsUnlisted { error: OsError },
    /// Socket descriptors closed or reused while being read.
    SocketsVanished { sockets: u32 },
    /// Socket descriptors that could not be read, of which the first `listed` are listed.
    SocketsUnread { sockets: u32, listed: u32 },
    /// More io_uring instances than are recorded.
    UringsCapped { urings: usize, recorded: usize },
    /// As recorded by zcdoctor before evidence version 2.
    #[serde(untagged)]
    Text(String),
}

impl std::fmt::Display for ProcessProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessProblem::Unreadable { error } => write!(f, "{error}"),
            ProcessProblem::CgroupUnparsed { pid, error } => {
                write!(f, "/proc/{pid}/cgroup: {error}")
            }
            ProcessProblem::DescriptorsUnlisted { error } => write!(
                f,
                "{error}: its sockets and io_uring instances are not read"
            ),
            ProcessProblem::SocketsVanished { sockets } => write!(
                f,
                "{sockets} socket descriptor(s) were closed or reused while being read"
            ),
            ProcessProblem::SocketsUnread { sockets, listed } => write!(
                f,
                "{sockets} socket descriptor(s) could not be read; the first {listed} are listed"
            ),
            ProcessProblem::UringsCapped { urings, recorded } => write!(
                f,
                "{urings} io_uring instances; the first {recorded} are recorded"
            ),
            ProcessProblem::Text(text) => f.write_str(text),
        }
    }
}

/// What the live probe noticed while setting up or sending, besides its counts.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "note", rename_all = "kebab-case")]
pub enum LiveNote {
    /// The path MTU the UDP patterns were sized for (from the route, or from the socket).
    PathMtu {
        mtu: u32,
        payload: usize,
        of_route: bool,
    },
    /// No `gso` pattern: a payload of this size leaves no room for several segments.
    NoGsoPattern { payload: usize },
    /// A pattern did not run: its socket could not be set up.
    PatternSkipped { pattern: RunPattern, error: OsError },
    /// `SO_BINDTODEVICE` was refused: traffic follows the routing table.
    BindToDeviceRefused { device: String, error: OsError },
    /// `SO_SNDTIMEO` was refused: a blocked send may delay a stop request.
    SendTimeoutRefused { error: OsError },
    /// The io_uring runs of `--api both` did not run (`LiveProbe::io_uring` says why, with the
    /// kernel's errors).
    UringRunsSkipped { why: UringUnavailable },
    /// The io_uring send buffer could not be registered: the zerocopy phase sent from an
    /// unregistered buffer.
    UringBufferUnregistered { error: OsError },
    /// Another io_uring call failed.
    UringError { error: OsError },
    /// As recorded by zcdoctor before evidence version 2.
    #[serde(untagged)]
    Text(String),
}

impl std::fmt::Display for LiveNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveNote::PathMtu {
                mtu,
                payload,
                of_route,
            } => write!(
                f,
                "path MTU {mtu}: datagrams of {payload} bytes fit it{}",
                if *of_route { " (MTU of the route)" } else { "" }
            ),
            LiveNote::NoGsoPattern { payload } => write!(
                f,
                "no gso pattern: a payload of {payload} bytes leaves no room for several segments"
            ),
            LiveNote::PatternSkipped { pattern, error } => {
                write!(f, "{pattern} pattern skipped: {error}")
            }
            LiveNote::BindToDeviceRefused { device, error } => write!(
                f,
                "SO_BINDTODEVICE {device} refused ({error}): traffic follows the routing table, which also leads through {device}"
            ),
            LiveNote::SendTimeoutRefused { error } => write!(
                f,
                "SO_SNDTIMEO refused ({error}): a blocked send may delay a stop request"
            ),
            LiveNote::UringRunsSkipped { why } => write!(f, "io_uring runs skipped: {why}"),
            LiveNote::UringBufferUnregistered { error } => write!(
                f,
                "registering the io_uring send buffer failed ({error}): the zerocopy phase sent from an unregistered buffer"
            ),
            LiveNote::UringError { error } => write!(f, "io_uring: {error}"),
            LiveNote::Text(text) => f.write_str(text),
        }
    }
}

/// A destination of the diagnosed processes' zerocopy sockets whose way out this report does
/// not diagnose, and why (`peer` with its `sockets`, as `Serving::sockets` lists them).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum NotDiagnosed {
    /// Destinations past the `limit` a report reads, only counted.
    PastReadLimit {
        destinations: usize,
        sockets: usize,
        limit: usize,
    },
    /// The sockets live in another network namespace than the diagnosed one.
    OtherNamespace {
        peer: IpAddr,
        sockets: Vec<String>,
        netns: u64,
    },
    /// The run was stopped before this way was read.
    Interrupted { peer: IpAddr, sockets: Vec<String> },
    /// The kernel has no route to the peer here.
    NoRoute {
        peer: IpAddr,
        sockets: Vec<String>,
        error: String,
    },
    /// The way out could not be read.
    Unreadable {
        peer: IpAddr,
        sockets: Vec<String>,
        error: String,
    },
    /// Past the `limit` of ways out a report follows.
    PastWayLimit {
        peer: IpAddr,
        sockets: Vec<String>,
        limit: usize,
    },
    /// As recorded by zcdoctor before evidence version 2.
    #[serde(untagged)]
    Text(String),
}

/// `peer: fd …, fd …` (at most 4 sockets named, then how many more).
fn listed(peer: &IpAddr, sockets: &[String]) -> String {
    const NAMED: usize = 4;
    match sockets.get(..NAMED) {
        Some(named) if sockets.len() > NAMED => format!(
            "{peer}: {} and {} more",
            named.join(", "),
            sockets.len() - NAMED
        ),
        _ => format!("{peer}: {}", sockets.join(", ")),
    }
}

impl std::fmt::Display for NotDiagnosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotDiagnosed::PastReadLimit {
                destinations,
                sockets,
                limit,
            } => write!(
                f,
                "{destinations} more destination(s) with {sockets} socket(s), not read: a report reads the ways of the {limit} largest groups"
            ),
            NotDiagnosed::OtherNamespace {
                peer,
                sockets,
                netns,
            } => write!(
                f,
                "{} (in another network namespace, net:[{netns}])",
                listed(peer, sockets)
            ),
            NotDiagnosed::Interrupted { peer, sockets } => {
                write!(f, "{} (not read: interrupted)", listed(peer, sockets))
            }
            NotDiagnosed::NoRoute {
                peer,
                sockets,
                error,
            } => write!(
                f,
                "{} (no route to it here: {error})",
                listed(peer, sockets)
            ),
            NotDiagnosed::Unreadable {
                peer,
                sockets,
                error,
            } => write!(
                f,
                "{} (its way out could not be read: {error})",
                listed(peer, sockets)
            ),
            NotDiagnosed::PastWayLimit {
                peer,
                sockets,
                limit,
            } => write!(
                f,
                "{} (not diagnosed: a report follows at most {limit} ways out)",
                listed(peer, sockets)
            ),
            NotDiagnosed::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_problems_round_trip_and_old_sentences_still_load() {
        let typed = ScanProblem::PacketTableUnreadable {
            netns: "net:[4026532]".into(),
            diagnosed: false,
            error: "EACCES".into(),
        };
        let json = serde_json::to_value(&typed).expect("serialize");
        assert_eq!(json["problem"], "packet-table-unreadable");
        assert_eq!(
            serde_json::from_value::<ScanProblem>(json).expect("load"),
            typed
        );
        let old: ScanProblem =
            serde_json::from_str("\"an owner walk thread panicked\"").expect("a sentence loads");
        assert_eq!(
            old,
            ScanProblem::Text("an owner walk thread panicked".into())
        );
    }
}
