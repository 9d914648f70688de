//! The probe's sockets, UDP and TCP alike: `SO_ZEROCOPY`, bound to the diagnosed device, with a
//! send timeout; and the path MTU of a connected socket.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, sockopt};
use nix::sys::time::TimeVal;

use super::{LiveOptions, Protocol};
use crate::evidence::{LiveNote, OsError, TimestampingFlags};
use crate::probe::sockopt::{getsockopt_int, setsockopt_int};

/// `SO_TIMESTAMPING` of `--timestamping`: `TX_SCHED|TX_SOFTWARE|SOFTWARE|OPT_ID`, without
/// `OPT_TSONLY`. `TX_SCHED` is taken by every device (at the qdisc, `__dev_queue_xmit`);
/// `TX_SOFTWARE` only by drivers that call `skb_tx_timestamp` (ifb does not).
pub(super) const TIMESTAMPING: u32 = TimestampingFlags::TX_SCHED
    | TimestampingFlags::TX_SOFTWARE
    | TimestampingFlags::SOFTWARE
    | TimestampingFlags::OPT_ID;

/// `SO_SNDTIMEO`: a blocked send returns EAGAIN after this, so a stop request is seen.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// A socket for `opts.protocol` with `SO_ZEROCOPY`, bound to `opts.iface`, with a send timeout.
/// A refused `SO_ZEROCOPY` (or `SO_TIMESTAMPING`, asked for) is an error (the probe cannot
/// run); a refused `SO_BINDTODEVICE` or `SO_SNDTIMEO` is a note.
pub(super) fn open(opts: &LiveOptions, notes: &mut Vec<LiveNote>) -> Result<OwnedFd, OsError> {
    let (family, family_name) = if opts.target.is_ipv6() {
        (AddressFamily::Inet6, "AF_INET6")
    } else {
        (AddressFamily::Inet, "AF_INET")
    };
    let (ty, ty_name) = match opts.protocol {
        Protocol::Udp => (SockType::Datagram, "SOCK_DGRAM"),
        Protocol::Tcp => (SockType::Stream, "SOCK_STREAM"),
    };
    let fd = socket::socket(family, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| OsError::new(format!("socket({family_name}, {ty_name})"), e))?;
    // nix has no typed SO_ZEROCOPY option.
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1)
        .map_err(|e| OsError::new("setsockopt(SO_ZEROCOPY)", e))?;
    if opts.timestamping {
        setsockopt_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            TIMESTAMPING as i32,
        )
        .map_err(|e| OsError::new("setsockopt(SO_TIMESTAMPING)", e))?;
    }
    if let Err(e) = socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(&opts.iface)) {
        notes.push(LiveNote::BindToDeviceRefused {
            device: opts.iface.clone(),
            error: OsError::new("setsockopt(SO_BINDTODEVICE)", e),
        });
    }
    let timeout = TimeVal::new(0, SEND_TIMEOUT.as_micros() as libc::suseconds_t);
    if let Err(e) = socket::setsockopt(&fd, sockopt::SendTimeout, &timeout) {
        notes.push(LiveNote::SendTimeoutRefused {
            error: OsError::new("setsockopt(SO_SNDTIMEO)", e),
        });
    }
    Ok(fd)
}

pub(super) fn connect(fd: &OwnedFd, target: SocketAddr) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    socket::connect(fd.as_raw_fd(), &socket::SockaddrStorage::from(target))
}

/// `IP_MTU` / `IPV6_MTU` of a connected socket: the path MTU the kernel will use for it.
pub(super) fn path_mtu(fd: &OwnedFd, v6: bool) -> Result<u32, Errno> {
    let v = if v6 {
        // nix has no typed IPV6_MTU option.
        getsockopt_int(fd, libc::SOL_IPV6, libc::IPV6_MTU)?
    } else {
        socket::getsockopt(fd, sockopt::IpMtu)?
    };
    u32::try_from(v).map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::time::TimeValLike;

    #[test]
    fn opens_a_zerocopy_socket_with_a_send_timeout() {
        // Bound to `lo`, which exists everywhere; nothing is sent.
        let opts = LiveOptions::new("127.0.0.1:9".parse().expect("literal"), "lo");
        let mut notes = Vec::new();
        let fd = open(&opts, &mut notes).expect("UDP socket with SO_ZEROCOPY");
        assert_eq!(
            getsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY),
            Ok(1)
        );
        let timeout = socket::getsockopt(&fd, sockopt::SendTimeout).expect("SO_SNDTIMEO");
        assert_eq!(
            timeout.num_milliseconds(),
            SEND_TIMEOUT.as_millis() as i64,
            "SO_SNDTIMEO; notes: {notes:?}"
        );
    }

    #[test]
    fn path_mtu_of_a_connected_loopback_socket() {
        let opts = LiveOptions::new("127.0.0.1:9".parse().expect("literal"), "lo");
        let fd = open(&opts, &mut Vec::new()).expect("socket");
        assert_eq!(path_mtu(&fd, false), Err(Errno::ENOTCONN));
        connect(&fd, opts.target).expect("connect UDP to loopback");
        let mtu = path_mtu(&fd, false).expect("IP_MTU");
        assert!(mtu >= 1280, "{mtu}");
    }
}
