//! io_uring instances of a process: descriptors whose link is `anon_inode:[io_uring]`, with the
//! key fields of `/proc/PID/fdinfo/FD` (read at most 4 KiB).

use crate::evidence::IoUring;

use super::limits::read_bounded;

pub(super) const LINK: &str = "anon_inode:[io_uring]";
const FDINFO_MAX: usize = 4096;

pub(super) fn read(pid: u32, fd: i32) -> IoUring {
    match read_bounded(&format!("/proc/{pid}/fdinfo/{fd}"), FDINFO_MAX) {
        Ok((bytes, _)) => parse(fd, &String::from_utf8_lossy(&bytes)),
        Err(e) => IoUring {
            fd,
            fdinfo_error: Some(e),
            ..IoUring::default()
        },
    }
}

/// The fields of an io_uring fdinfo. Ring sizes come from `SqEntries`/`CqEntries` where a
/// kernel prints them, else from `SqMask`/`CqMask` plus one (6.x prints only the masks).
fn parse(fd: i32, text: &str) -> IoUring {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let num = |key: &str| -> Option<u64> {
        let v = field(key)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    let entries = |n: &str, mask: &str| num(n).or_else(|| num(mask).map(|m| m + 1));
    IoUring {
        fd,
        sq_entries: entries("SqEntries", "SqMask"),
        cq_entries: entries("CqEntries", "CqMask"),
        sq_thread: field("SqThread").and_then(|v| v.parse().ok()),
        user_files: num("UserFiles"),
        user_bufs: num("UserBufs"),
        fdinfo_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18's fdinfo of a fresh 4-entry ring.
    const FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t504976\nSqMask:\t0x3\n\
SqHead:\t0\nSqTail:\t0\nCachedSqHead:\t0\nCqMask:\t0x7\nCqHead:\t0\nCqTail:\t0\n\
CachedCqTail:\t0\nSQEs:\t0\nCQEs:\t0\nSqThread:\t-1\nSqThreadCpu:\t-1\nSqTotalTime:\t0\n\
SqWorkTime:\t0\nUserFiles:\t0\nUserBufs:\t2\nPollList:\nCqOverflowList:\nNAPI:\tdisabled\n";

    #[test]
    fn parses_fdinfo() {
        assert_eq!(
            parse(7, FDINFO),
            IoUring {
                fd: 7,
                sq_entries: Some(4),
                cq_entries: Some(8),
                sq_thread: Some(-1),
                user_files: Some(0),
                user_bufs: Some(2),
                fdinfo_error: None,
            }
        );
        let old = "SqEntries:\t128\nCqEntries:\t256\nSqThread:\t4242\n";
        let u = parse(3, old);
        assert_eq!(
            (u.sq_entries, u.cq_entries, u.sq_thread),
            (Some(128), Some(256), Some(4242))
        );
        assert_eq!(
            parse(1, ""),
            IoUring {
                fd: 1,
                ..IoUring::default()
            }
        );
    }

    #[test]
    fn reads_an_own_ring() {
        let mut params = [0u8; 120];
        // SAFETY: io_uring_setup(entries, params) with a zeroed io_uring_params-sized buffer;
        // it returns a new descriptor or -1.
        let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
        if r < 0 {
            // io_uring disabled (kernel.io_uring_disabled, seccomp): nothing to read.
            return;
        }
        let fd = r as i32;
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("link");
        assert_eq!(link.to_string_lossy(), LINK);
        let u = read(std::process::id(), fd);
        // SAFETY: fd is the ring this test just created.
        unsafe { libc::close(fd) };
        assert_eq!(u.sq_entries, Some(4));
        assert!(u.fdinfo_error.is_none());
    }
}
