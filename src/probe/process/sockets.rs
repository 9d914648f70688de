//! A process's TCP and UDP sockets, read through duplicates: `pidfd_open` once, then for each
//! socket descriptor `pidfd_getfd` (the duplicate's inode is checked against the one its link
//! named, so a reused descriptor number is never misread), a handful of `getsockopt`s
//! (`SO_ZEROCOPY`, `SO_TIMESTAMPING`, `SO_MEMINFO`, …),
//! `getsockname`/`getpeername` and `SIOCGSKNS`, and the duplicate is closed at once. Nothing is
//! ever read from the socket: no data and no error queue (reading it would dequeue the
//! application's completions).

use std::fs::File;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use crate::evidence::{Fact, InetSocket, OsError, SkMeminfo, TimestampingFlags, UnreadableSocket};
use crate::probe::sockopt::getsockopt_int;
use crate::probe::taps::setting::{pidfd_getfd, pidfd_open};

/// `SIOCGSKNS` of `linux/sockios.h`: a descriptor on the socket's network namespace.
const SIOCGSKNS: libc::c_ulong = 0x894C;
/// At most this many unreadable descriptors are listed (all are counted).
pub(super) const UNREADABLE_LISTED: usize = 16;

/// What reading the socket descriptors gave.
#[derive(Debug, Default)]
pub(super) struct SocketScan {
    pub(super) sockets: Vec<InetSocket>,
    pub(super) vsock: Vec<crate::evidence::VsockSocket>,
    pub(super) other: u32,
    pub(super) unreadable: Vec<UnreadableSocket>,
    pub(super) unreadable_count: u32,
    /// Descriptors closed or reused between listing and duplicating.
    pub(super) vanished: u32,
    /// A handle on each socket namespace seen, by inode (first socket's).
    pub(super) namespaces: Vec<(u64, File)>,
    /// Why no socket could be duplicated at all (`pidfd_open` failed).
    pub(super) pidfd_error: Option<OsError>,
}

impl SocketScan {
    fn unreadable(&mut self, fd: i32, inode: u64, error: OsError) {
        self.unreadable_count += 1;
        if self.unreadable.len() < UNREADABLE_LISTED {
            self.unreadable.push(UnreadableSocket { fd, inode, error });
        }
    }
}

/// Reads each `(fd, inode)` of `pid`.
pub(super) fn read_all(pid: u32, fds: &[(i32, u64)]) -> SocketScan {
    let mut scan = SocketScan::default();
    if fds.is_empty() {
        return scan;
    }
    let pidfd = match pidfd_open(pid) {
        Ok(p) => p,
        Err(e) => {
            let err = OsError::new(format!("pidfd_open(pid {pid})"), e);
            for (fd, inode) in fds {
                scan.unreadable(*fd, *inode, err.clone());
            }
            scan.pidfd_error = Some(err);
            return scan;
        }
    };
    for &(fd, inode) in fds {
        let dup = match pidfd_getfd(&pidfd, fd) {
            Ok(d) => d,
            Err(Errno::EBADF) => {
                scan.vanished += 1;
                continue;
            }
            Err(e) => {
                let op = format!("pidfd_getfd(pid {pid}, fd {fd})");
                scan.unreadable(fd, inode, OsError::new(op, e));
                continue;
            }
        };
        // The socket inode's owner is the socket's `sk_uid` (set from the creator's fsuid).
        let uid = match nix::sys::stat::fstat(dup.as_fd()) {
            Ok(st) if st.st_ino == inode => st.st_uid,
            Ok(_) => {
                scan.vanished += 1;
                continue;
            }
            Err(e) => {
                let op = format!("fstat(duplicate of fd {fd} of pid {pid})");
                scan.unreadable(fd, inode, OsError::new(op, e));
                continue;
            }
        };
        match read_one(&dup, fd, inode, uid, &mut scan.namespaces) {
            Ok(Read::Inet(s)) => scan.sockets.push(*s),
            Ok(Read::Vsock(s)) => scan.vsock.push(s),
            Ok(Read::Other) => scan.other += 1,
            Err(e) => scan.unreadable(fd, inode, e),
        }
        drop(dup);
    }
    scan
}

/// What one socket descriptor is.
enum Read {
    Inet(Box<InetSocket>),
    Vsock(crate::evidence::VsockSocket),
    /// Not TCP or UDP over IPv4/IPv6, nor vsock.
    Other,
}

/// Reads one duplicated socket.
fn read_one(
    dup: &OwnedFd,
    fd: i32,
    inode: u64,
    uid: u32,
    namespaces: &mut Vec<(u64, File)>,
) -> Result<Read, OsError> {
    let op = |what: &str| format!("getsockopt(fd {fd}, {what})");
    let domain = getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_DOMAIN)
        .map_err(|e| OsError::new(op("SO_DOMAIN"), e))?;
    let family = match domain {
        libc::AF_INET => "ipv4",
        libc::AF_INET6 => "ipv6",
        libc::AF_VSOCK => return Ok(Read::Vsock(super::vsock::read(dup, fd, inode))),
        _ => return Ok(Read::Other),
    };
    let proto = getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_PROTOCOL)
        .map_err(|e| OsError::new(op("SO_PROTOCOL"), e))?;
    let protocol = match proto {
        libc::IPPROTO_TCP => "tcp",
        libc::IPPROTO_UDP => "udp",
        _ => return Ok(Read::Other),
    };
    let netns = socket_netns(dup, fd, namespaces);
    let local = match nix::sys::socket::getsockname::<SockaddrStorage>(dup.as_raw_fd()) {
        Ok(a) => Fact::Read(format_addr(&a)),
        Err(e) => Fact::Failed(OsError::new(format!("getsockname(fd {fd})"), e)),
    };
    let peer = match nix::sys::socket::getpeername::<SockaddrStorage>(dup.as_raw_fd()) {
        Ok(a) => Fact::Read(Some(format_addr(&a))),
        Err(Errno::ENOTCONN) => Fact::Read(None),
        Err(e) => Fact::Failed(OsError::new(format!("getpeername(fd {fd})"), e)),
    };
    let tcp_state = (protocol == "tcp").then(|| match tcp_state(dup) {
        Ok(s) => Fact::Read(tcp_state_name(s).to_string()),
        Err(e) => Fact::Failed(OsError::new(op("IPPROTO_TCP, TCP_INFO"), e)),
    });
    let zerocopy = sol_socket(dup, fd, libc::SO_ZEROCOPY, "SO_ZEROCOPY", |v| v != 0);
    let timestamping = sol_socket(dup, fd, libc::SO_TIMESTAMPING, "SO_TIMESTAMPING", |v| {
        TimestampingFlags(v as u32)
    });
    let meminfo = match meminfo(dup) {
        Ok(a) => match SkMeminfo::from_array(&a) {
            Some(m) => Fact::Read(m),
            None => Fact::Malformed(format!("SO_MEMINFO returned {} entries", a.len())),
        },
        Err(e) => Fact::Failed(OsError::new(op("SOL_SOCKET, SO_MEMINFO"), e)),
    };
    let (mark, bound_ifindex, bound_device) = binding(dup);
    Ok(Read::Inet(Box::new(InetSocket {
        uid: Some(uid),
        mark,
        bound_ifindex,
        bound_device,
        fd,
        inode,
        family: family.to_string(),
        protocol: protocol.to_string(),
        netns,
        local,
        peer,
        tcp_state,
        zerocopy,
        meminfo,
        timestamping: Some(timestamping),
        ulp: (protocol == "tcp").then(|| tcp_ulp(dup, fd)),
    })))
}

/// `SO_MARK`, `SO_BINDTOIFINDEX` and the bound device's name. Plain reads any socket answers;
/// a kernel without SO_BINDTOIFINDEX (before 5.0) leaves the binding unread.
fn binding(dup: &OwnedFd) -> (Option<u32>, Option<u32>, Option<String>) {
    let mark = getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_MARK)
        .ok()
        .map(|m| m as u32);
    let bound_ifindex = getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX)
        .ok()
        .and_then(|i| u32::try_from(i).ok());
    let bound_device = match bound_ifindex {
        Some(1..) => nix::sys::socket::getsockopt(dup, nix::sys::socket::sockopt::BindToDevice)
            .ok()
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty()),
        _ => None,
    };
    (mark, bound_ifindex, bound_device)
}

/// `TCP_ULP` of the duplicate of `fd`: the upper-layer protocol's name, empty for none.
fn tcp_ulp(dup: &OwnedFd, fd: i32) -> Fact<String> {
    // TCP_ULP_NAME_MAX is 16.
    let mut name = [0u8; 16];
    let mut len = name.len() as libc::socklen_t;
    // SAFETY: `dup` is an open socket we own; `name` and `len` are live and `len` is the
    // buffer's size, which the kernel writes at most (and updates to what it wrote).
    let r = unsafe {
        libc::getsockopt(
            dup.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_ULP,
            name.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Fact::Failed(OsError::new(
            format!("getsockopt(fd {fd}, IPPROTO_TCP, TCP_ULP)"),
            Errno::last(),
        ));
    }
    let used = &name[..(len as usize).min(name.len())];
    let end = used.iter().position(|b| *b == 0).unwrap_or(used.len());
    Fact::Read(String::from_utf8_lossy(&used[..end]).into_owned())
}

/// An integer `SOL_SOCKET` option `what` of the duplicate of `fd`, as a fact.
fn sol_socket<T>(
    dup: &OwnedFd,
    fd: i32,
    name: libc::c_int,
    what: &str,
    read: impl Fn(libc::c_int) -> T,
) -> Fact<T> {
    match getsockopt_int(dup, libc::SOL_SOCKET, name) {
        Ok(v) => Fact::Read(read(v)),
        Err(e) => Fact::Failed(OsError::new(
            format!("getsockopt(fd {fd}, SOL_SOCKET, {what})"),
            e,
        )),
    }
}

/// The socket's namespace inode through `SIOCGSKNS`; the handle is kept for the first socket
/// of each namespace (its optmem_max is read through it), else closed.
fn socket_netns(dup: &OwnedFd, fd: i32, namespaces: &mut Vec<(u64, File)>) -> Fact<u64> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor or -1.
    let r = unsafe { libc::ioctl(dup.as_raw_fd(), SIOCGSKNS as _, 0) };
    if r < 0 {
        return Fact::Failed(OsError::new(
            format!("ioctl(fd {fd}, SIOCGSKNS)"),
            Errno::last(),
        ));
    }
    // SAFETY: r is a fresh descriptor the kernel just returned; nothing else owns it.
    let ns = unsafe { File::from(OwnedFd::from_raw_fd(r)) };
    match nix::sys::stat::fstat(ns.as_fd()) {
        Ok(st) => {
            if !namespaces.iter().any(|(ino, _)| *ino == st.st_ino) && namespaces.len() < 64 {
                namespaces.push((st.st_ino, ns));
            }
            Fact::Read(st.st_ino)
        }
        Err(e) => Fact::Failed(OsError::new(format!("fstat(netns of fd {fd})"), e)),
    }
}

/// `SO_MEMINFO`: the kernel's `SK_MEMINFO_*` array (up to 16 entries).
fn meminfo(fd: &OwnedFd) -> Result<Vec<u32>, Errno> {
    let mut buf = [0u32; 16];
    let mut len = std::mem::size_of_val(&buf) as libc::socklen_t;
    // SAFETY: a u32 array with its size in bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    let n = (len as usize / 4).min(buf.len());
    Ok(buf[..n].to_vec())
}

/// `tcpi_state`, the first byte of `struct tcp_info`.
fn tcp_state(fd: &OwnedFd) -> Result<u8, Errno> {
    let mut buf = [0u8; 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: a byte buffer with its size; TCP_INFO copies at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(buf[0])
    }
}

/// `include/net/tcp_states.h`.
fn tcp_state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait1",
        5 => "fin-wait2",
        6 => "time-wait",
        7 => "close",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "new-syn-recv",
        _ => "unknown",
    }
}

/// `198.18.0.1:9`, `[2001:db8::1]:9` (with `%scope` when set).
fn format_addr(a: &SockaddrStorage) -> String {
    if let Some(v4) = a.as_sockaddr_in() {
        return SocketAddrV4::from(*v4).to_string();
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return SocketAddrV6::from(*v6).to_string();
    }
    format!("family {:?}", a.family())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn inode(fd: i32) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .expect("stat own fd")
            .ino()
    }

    #[test]
    fn names_states_and_addresses() {
        assert_eq!(tcp_state_name(1), "established");
        assert_eq!(tcp_state_name(10), "listen");
        assert_eq!(tcp_state_name(99), "unknown");
        let a = SockaddrStorage::from(std::net::SocketAddr::from(([198, 18, 0, 1], 9)));
        assert_eq!(format_addr(&a), "198.18.0.1:9");
        let a = SockaddrStorage::from("[2001:db8::1]:443".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(format_addr(&a), "[2001:db8::1]:443");
    }

    #[test]
    fn reads_own_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        udp.connect("127.0.0.1:9").expect("connect");
        let zc = std::net::UdpSocket::bind("[::1]:0").expect("udp6");
        let zc_fd = OwnedFd::from(zc.try_clone().expect("clone"));
        crate::probe::sockopt::setsockopt_int(&zc_fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1)
            .expect("SO_ZEROCOPY");
        // TX_SOFTWARE|SOFTWARE|OPT_ID, as an application that timestamps its sends sets it.
        crate::probe::sockopt::setsockopt_int(
            &zc_fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            0x92,
        )
        .expect("SO_TIMESTAMPING");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        let (ufd, zfd, lfd) = (udp.as_raw_fd(), zc.as_raw_fd(), listener.as_raw_fd());
        let fds = [
            (ufd, inode(ufd)),
            (zfd, inode(zfd)),
            (lfd, inode(lfd)),
            // A reused descriptor number (wrong inode) is skipped, not misread.
            (ufd, inode(ufd) + 1),
        ];
        let scan = read_all(std::process::id(), &fds);
        if let Some(e) = &scan.pidfd_error {
            // Kernels before 5.6 or a seccomp filter: every socket is unreadable, with why.
            assert_eq!(scan.unreadable_count, 4, "{e}");
            return;
        }
        assert_eq!(scan.sockets.len(), 3, "{:?}", scan.unreadable);
        assert_eq!(scan.vanished, 1);
        let u = &scan.sockets[0];
        assert_eq!((u.family.as_str(), u.protocol.as_str()), ("ipv4", "udp"));
        assert_eq!(u.peer, Fact::Read(Some("127.0.0.1:9".to_string())));
        assert_eq!(u.zerocopy, Fact::Read(false));
        assert!(u.meminfo.value().is_some_and(|m| m.sndbuf > 0));
        assert_eq!(u.tcp_state, None);
        let z = &scan.sockets[1];
        assert_eq!(z.family, "ipv6");
        assert_eq!(z.zerocopy, Fact::Read(true));
        assert_eq!(z.timestamping, Some(Fact::Read(TimestampingFlags(0x92))));
        assert_eq!(u.timestamping, Some(Fact::Read(TimestampingFlags(0))));
        assert_eq!(z.peer, Fact::Read(None));
        assert!(z.local.value().is_some_and(|l| l.starts_with("[::1]:")));
        let l = &scan.sockets[2];
        assert_eq!(l.tcp_state, Some(Fact::Read("listen".to_string())));
        let own = std::fs::metadata("/proc/self/ns/net").expect("netns").ino();
        assert_eq!(l.netns, Fact::Read(own));
        assert_eq!(scan.namespaces.len(), 1);
        // The originals are untouched by closing the duplicates.
        udp.send(b"x").expect("still open");
    }
}
