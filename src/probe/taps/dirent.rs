//! Streaming a `/proc` directory without allocating: `getdents64` into a stack buffer, and the
//! decimal names found there (pids, descriptor numbers). Shared by the two hot loops, the
//! namespace stat over `/proc` and the descriptor walk over `/proc/PID/fd`; `nix::dir` would
//! allocate a `DIR` per directory and go through libc's `readdir`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

/// Calls `f` with each entry name of the open directory `dir` (including `.` and `..`) until
/// it returns false. getdents64 into a stack buffer: no allocation, one system call per
/// buffer-full of entries.
pub(super) fn for_each_dirent(
    dir: &OwnedFd,
    mut f: impl FnMut(&CStr) -> bool,
) -> Result<(), Errno> {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    const NAME_OFFSET: usize = 19;
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf; dir is open.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Errno::last());
        }
        let n = usize::try_from(n).map_err(|_| Errno::EIO)?.min(buf.len());
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off + NAME_OFFSET < n {
            let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
            if reclen <= NAME_OFFSET || off + reclen > n {
                return Err(Errno::EIO);
            }
            let name = CStr::from_bytes_until_nul(&buf[off + NAME_OFFSET..off + reclen])
                .map_err(|_| Errno::EIO)?;
            if !f(name) {
                return Ok(());
            }
            off += reclen;
        }
    }
}

/// A decimal directory entry name (`1234`) as a number; `None` for anything else.
pub(super) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;

    #[test]
    fn parses_decimal_names() {
        assert_eq!(parse_u32(b"123"), Some(123));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b"."), None);
        assert_eq!(parse_u32(b""), None);
    }

    fn open_dir(path: &std::path::Path) -> OwnedFd {
        nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open test directory")
    }

    #[test]
    fn lists_every_entry_across_buffers_and_stops_on_request() {
        let dir = std::env::temp_dir().join(format!("zcd-dirent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create test directory");
        // Long names: more than one 8 KiB getdents64 buffer.
        let names: Vec<String> = (0..300).map(|i| format!("{i:0>40}")).collect();
        for n in &names {
            std::fs::write(dir.join(n), b"").expect("create test file");
        }
        let fd = open_dir(&dir);
        let mut seen: Vec<String> = Vec::new();
        for_each_dirent(&fd, |n| {
            seen.push(n.to_string_lossy().into_owned());
            true
        })
        .expect("list");
        seen.retain(|n| n != "." && n != "..");
        seen.sort();
        assert_eq!(seen, names);

        let fd = open_dir(&dir);
        let mut calls = 0;
        for_each_dirent(&fd, |_| {
            calls += 1;
            calls < 3
        })
        .expect("list");
        assert_eq!(calls, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
