//! Zerocopy completions: the records the kernel queues on the socket's error queue
//! (`MSG_ERRQUEUE`), each covering a range of notification ids, flagged when the kernel copied.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// `include/uapi/linux/errqueue.h`; libc does not export these two.
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// A transmit timestamp (`--timestamping`): read and dropped.
const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// Waits up to `ms` for the error queue to hold something (POLLERR), or for a hang-up; true
/// when POLLERR was seen.
pub(super) fn wait(fd: BorrowedFd<'_>, ms: u16) -> bool {
    // No events asked for: POLLERR and POLLHUP are always reported.
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR)),
        _ => false,
    }
}

/// Zerocopy notifications read from the error queue.
pub(super) struct Completions {
    /// Ids covered by the ranges read.
    pub completions: u64,
    /// Of those, ids whose record carried SO_EE_CODE_ZEROCOPY_COPIED.
    pub copied: u64,
    /// Records read.
    pub records: u64,
    /// Transmit timestamps read and dropped (`--timestamping`).
    pub timestamps: u64,
    /// Control buffer for `recvmsg`, allocated once (the allocator aligns it for `cmsghdr`).
    control: Vec<u8>,
}

impl Completions {
    pub(super) fn new() -> Completions {
        Completions {
            completions: 0,
            copied: 0,
            records: 0,
            timestamps: 0,
            // One IPV6_RECVERR (or IP_RECVERR) message: the error and the offender's address;
            // and a timestamp's SCM_TIMESTAMPING beside it.
            control: nix::cmsg_space!(
                libc::sock_extended_err,
                libc::sockaddr_in6,
                [libc::timespec; 3]
            ),
        }
    }

    /// Reads the queued records while some of `sent` is outstanding; true when any was read.
    pub(super) fn drain(&mut self, fd: BorrowedFd<'_>, sent: u64) -> bool {
        let mut any = false;
        while self.completions < sent && self.read_one(fd) {
            any = true;
        }
        any
    }

    /// After a phase: waits up to `grace` for the completions still outstanding.
    pub(super) fn settle(&mut self, fd: BorrowedFd<'_>, sent: u64, grace: Duration) {
        let deadline = Instant::now() + grace;
        loop {
            self.drain(fd, sent);
            if self.completions >= sent {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let ms = (deadline - now).as_millis().clamp(1, 50) as u16;
            if !wait(fd, ms) {
                // Timed out, or woke for another reason (a TCP peer hung up): do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Reads one record without blocking; false when the queue is empty.
    pub(super) fn read_one(&mut self, fd: BorrowedFd<'_>) -> bool {
        let mut control = std::mem::take(&mut self.control);
        let read = match recvmsg::<()>(
            fd.as_fd().as_raw_fd(),
            &mut [],
            Some(&mut control),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => {
                // Truncated control data (cannot happen with this buffer) reads as no record.
                // A read without any control message is not a record either: a vsock socket
                // before 6.7 has no error queue and answers a zero-length read with 0 bytes.
                let mut any = false;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for cmsg in cmsgs {
                        any = true;
                        match cmsg {
                            ControlMessageOwned::Ipv4RecvErr(ee, _)
                            | ControlMessageOwned::Ipv6RecvErr(ee, _) => self.count(&ee),
                            ControlMessageOwned::Unknown(u) => {
                                if let Some(ee) = vsock_recverr(&u) {
                                    self.count(&ee);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                any
            }
            Err(_) => false,
        };
        self.control = control;
        read
    }

    /// Counts one extended error if it is a zerocopy completion (or a transmit timestamp,
    /// which is only counted: its payload was not read).
    fn count(&mut self, ee: &libc::sock_extended_err) {
        if ee.ee_origin == SO_EE_ORIGIN_TIMESTAMPING {
            self.timestamps += 1;
            return;
        }
        if ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee.ee_errno != 0 {
            return;
        }
        // ee_info..=ee_data is the id range this record covers.
        let count = u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1;
        self.completions += count;
        if ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0 {
            self.copied += count;
        }
        self.records += 1;
    }
}

/// `SOL_VSOCK` and `VSOCK_RECVERR` (`linux/socket.h`, `linux/vm_sockets.h`): how vsock queues
/// its completions (6.7+).
const SOL_VSOCK: libc::c_int = 287;
const VSOCK_RECVERR: libc::c_int = 1;

/// The extended error of a vsock completion, which nix does not parse.
fn vsock_recverr(u: &nix::sys::socket::UnknownCmsg) -> Option<libc::sock_extended_err> {
    if u.cmsg_header.cmsg_level != SOL_VSOCK || u.cmsg_header.cmsg_type != VSOCK_RECVERR {
        return None;
    }
    let b = u.data_bytes.get(..16)?;
    let word = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    Some(libc::sock_extended_err {
        ee_errno: word(0),
        ee_origin: b[4],
        ee_type: b[5],
        ee_code: b[6],
        ee_pad: b[7],
        ee_info: word(8),
        ee_data: word(12),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ee(origin: u8, code: u8, lo: u32, hi: u32) -> libc::sock_extended_err {
        libc::sock_extended_err {
            ee_errno: 0,
            ee_origin: origin,
            ee_type: 0,
            ee_code: code,
            ee_pad: 0,
            ee_info: lo,
            ee_data: hi,
        }
    }

    #[test]
    fn counts_id_ranges_and_copies() {
        let mut c = Completions::new();
        c.count(&ee(SO_EE_ORIGIN_ZEROCOPY, 0, 0, 9));
        c.count(&ee(
            SO_EE_ORIGIN_ZEROCOPY,
            SO_EE_CODE_ZEROCOPY_COPIED,
            10,
            10,
        ));
        // Ids wrap at 2^32.
        c.count(&ee(SO_EE_ORIGIN_ZEROCOPY, 0, u32::MAX, 1));
        // Not a zerocopy completion.
        c.count(&ee(libc::SO_EE_ORIGIN_LOCAL, 0, 0, 99));
        // A transmit timestamp (OPT_ID 7): dropped, counted apart.
        c.count(&ee(SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 7));
        assert_eq!((c.completions, c.copied, c.records), (14, 1, 3));
        assert_eq!(c.timestamps, 1);
    }

    #[test]
    fn empty_queue_reads_nothing_and_settles_on_time() {
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let mut c = Completions::new();
        assert!(!c.drain(fd.as_fd(), 5));
        assert!(!wait(fd.as_fd(), 1));
        let start = Instant::now();
        c.settle(fd.as_fd(), 5, Duration::from_millis(30));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(1),
            "{took:?}"
        );
        assert_eq!(c.completions, 0);
    }
}
