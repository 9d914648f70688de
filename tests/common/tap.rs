//! Packet sockets held by the test process itself, opened inside a test namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::Netns;

impl Netns {
    /// Opens an ETH_P_ALL packet socket inside the namespace, held by this test process.
    /// `bind` names the device to bind to (None: all devices).
    pub fn tap_socket(&self, bind: Option<&str>, ignore_outgoing: bool) -> TapSocket {
        let path = format!("/run/netns/{}", self.name);
        let bind = bind.map(str::to_string);
        let fd = std::thread::spawn(move || open_tap_in(&path, bind.as_deref(), ignore_outgoing))
            .join()
            .expect("tap thread panicked");
        TapSocket { fd }
    }
}

fn open_tap_in(netns_path: &str, bind: Option<&str>, ignore_outgoing: bool) -> OwnedFd {
    use nix::sched::{CloneFlags, setns};
    let nsfile = std::fs::File::open(netns_path).expect("open netns file");
    setns(&nsfile, CloneFlags::CLONE_NEWNET).expect("setns");
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: plain socket(2) call; the result is checked before it is owned.
    // CLOEXEC: processes spawned by parallel tests must not inherit (and co-own) the tap.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    assert!(
        raw >= 0,
        "socket(AF_PACKET): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if ignore_outgoing {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "PACKET_IGNORE_OUTGOING: {}",
            std::io::Error::last_os_error()
        );
    }
    if let Some(dev) = bind {
        let ifindex = nix::net::if_::if_nametoindex(dev).expect("if_nametoindex");
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind with a properly sized sockaddr_ll.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    }
    fd
}

/// A packet socket held by the test process itself; closed on drop.
pub struct TapSocket {
    pub fd: OwnedFd,
}

impl TapSocket {
    /// The socket's inode, as /proc/net/packet lists it.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .expect("stat own fd")
            .ino()
    }
}
