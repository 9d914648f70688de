//! A process's AF_VSOCK sockets, read on the duplicate `sockets` made (`SO_TYPE`, names,
//! `SO_ZEROCOPY`, `SO_VM_SOCKETS_BUFFER_SIZE`), and whether this kernel takes `SO_ZEROCOPY` on
//! vsock at all.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrLike, SockaddrStorage, getpeername, getsockname,
};

use crate::evidence::{Fact, OsError, VsockSocket, VsockZerocopySupport};
use crate::probe::sockopt::{getsockopt_int, setsockopt_int_raw};

/// `SO_VM_SOCKETS_BUFFER_SIZE` of `linux/vm_sockets.h`, at level `AF_VSOCK`.
const SO_VM_SOCKETS_BUFFER_SIZE: libc::c_int = 0;

/// Reads the vsock socket `dup` (a duplicate of the process's `fd`).
pub(super) fn read(dup: &OwnedFd, fd: i32, inode: u64) -> VsockSocket {
    let kind = match getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_TYPE) {
        Ok(libc::SOCK_STREAM) => "stream",
        Ok(libc::SOCK_SEQPACKET) => "seqpacket",
        Ok(libc::SOCK_DGRAM) => "dgram",
        _ => "other",
    };
    let local = match getsockname::<SockaddrStorage>(dup.as_raw_fd()) {
        Ok(a) => Fact::Read(cid_port(&a)),
        Err(e) => Fact::Failed(OsError::new(format!("getsockname(fd {fd})"), e)),
    };
    let peer = match getpeername::<SockaddrStorage>(dup.as_raw_fd()) {
        Ok(a) => Fact::Read(Some(cid_port(&a))),
        Err(Errno::ENOTCONN) => Fact::Read(None),
        Err(e) => Fact::Failed(OsError::new(format!("getpeername(fd {fd})"), e)),
    };
    let zerocopy = match getsockopt_int(dup, libc::SOL_SOCKET, libc::SO_ZEROCOPY) {
        Ok(v) => Fact::Read(v != 0),
        Err(e) => Fact::Failed(OsError::new(
            format!("getsockopt(fd {fd}, SOL_SOCKET, SO_ZEROCOPY)"),
            e,
        )),
    };
    VsockSocket {
        fd,
        inode,
        kind: kind.to_string(),
        local,
        peer,
        zerocopy,
        buffer_size: buffer_size(dup, fd),
    }
}

/// `SO_VM_SOCKETS_BUFFER_SIZE` (a u64).
pub(crate) fn buffer_size(dup: &OwnedFd, fd: i32) -> Fact<u64> {
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `dup` is an open socket we own; `v` and `len` are live, `len` is `v`'s size,
    // which the kernel writes at most.
    let r = unsafe {
        libc::getsockopt(
            dup.as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_BUFFER_SIZE,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Fact::Failed(OsError::new(
            format!("getsockopt(fd {fd}, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE)"),
            Errno::last(),
        ));
    }
    Fact::Read(v)
}

/// A new AF_VSOCK stream socket.
pub(crate) fn stream_socket() -> Result<OwnedFd, OsError> {
    nix::sys::socket::socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| OsError::new("socket(AF_VSOCK, SOCK_STREAM)", e))
}

/// `CID:PORT`.
fn cid_port(a: &SockaddrStorage) -> String {
    match a.as_vsock_addr() {
        Some(v) => format!("{}:{}", v.cid(), v.port()),
        None => format!("family {:?}", a.family()),
    }
}

/// Whether the kernel sets `SO_ZEROCOPY` on a new, unconnected vsock stream socket (6.7+:
/// with no transport yet it is accepted; before, EOPNOTSUPP). Called only when AF_VSOCK is
/// already in use (the process holds vsock sockets, or a vsock target was given).
pub fn zerocopy_support() -> VsockZerocopySupport {
    let sock = match stream_socket() {
        Ok(s) => s,
        Err(error) => return VsockZerocopySupport::NoVsock { error },
    };
    let op = "setsockopt(AF_VSOCK stream, SOL_SOCKET, SO_ZEROCOPY, 1)";
    match setsockopt_int_raw(&sock, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1, op) {
        Ok(()) => VsockZerocopySupport::Accepted,
        Err(error) => VsockZerocopySupport::Refused { error },
    }
}
