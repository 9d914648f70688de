//! Processes for the unit tests of the process checks: one with given sockets, diagnosed on
//! the clean NIC recording.

use crate::check::context::Context;
use crate::check::findings::Findings;
use crate::check::rules;
use crate::check::testing::fixture;
use crate::evidence::{
    Fact, InetSocket, Memlock, NamespaceSysctls, NetnsRef, ProcessEvidence, SkMeminfo,
    TimestampingFlags,
};

const NS: u64 = 4026531840;

pub(crate) fn socket(fd: i32, zerocopy: bool, optmem: u32, peer: Option<&str>) -> InetSocket {
    InetSocket {
        fd,
        inode: 1000 + fd as u64,
        family: "ipv4".into(),
        protocol: if peer.is_some() { "tcp" } else { "udp" }.into(),
        netns: Fact::Read(NS),
        local: Fact::Read(format!("198.18.0.1:{}", 40000 + fd)),
        peer: Fact::Read(peer.map(str::to_string)),
        tcp_state: peer.map(|_| Fact::Read("established".to_string())),
        zerocopy: Fact::Read(zerocopy),
        meminfo: Fact::Read(SkMeminfo {
            optmem,
            sndbuf: 212992,
            ..SkMeminfo::default()
        }),
        uid: Some(0),
        mark: Some(0),
        bound_ifindex: Some(0),
        bound_device: None,
        timestamping: Some(Fact::Read(TimestampingFlags(0))),
        ulp: None,
    }
}

pub(crate) fn process(comm: &str, sockets: Vec<InetSocket>) -> ProcessEvidence {
    ProcessEvidence {
        pid: 4242,
        comm: comm.into(),
        exe: Fact::Read(format!("/usr/bin/{comm}")),
        cmdline: vec![comm.into()],
        cmdline_truncated: false,
        uid: Some(107),
        netns: Fact::Read(NetnsRef {
            inode: NS,
            name: None,
        }),
        cgroup: Some("/system.slice/app.service".into()),
        unit: Some("app.service".into()),
        container: None,
        memlock: Fact::Read(Memlock {
            soft: Some(8 << 20),
            hard: Some(8 << 20),
        }),
        capeff: Fact::Read(0),
        vm_lck: Some(0),
        vm_pin: Some(0),
        namespaces: vec![NamespaceSysctls {
            netns: NetnsRef {
                inode: NS,
                name: None,
            },
            optmem_max: Fact::Read(131072),
        }],
        sockets,
        sockets_not_read: 0,
        other_sockets: 0,
        unreadable_sockets: Vec::new(),
        sockets_unreadable: 0,
        io_urings: Vec::new(),
        vsock_sockets: Vec::new(),
        vsock_zerocopy: None,
        problems: Vec::new(),
    }
}

pub(crate) fn run(p: ProcessEvidence) -> Findings<'static> {
    let mut ev = fixture("clean-nic");
    ev.processes = vec![p];
    let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
    rules::processes(&Context::new(&ev, crate::evidence::Protocol::Udp), &mut out);
    out
}
