//! Integer socket options: the two raw calls the live and tap probes share.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

pub fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> Result<(), Errno> {
    // SAFETY: an int option with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// [`setsockopt_int`] that keeps the raw errno: nix maps an errno it does not know (the
/// kernel-internal ENOTSUPP, 524, that Linux before 6.7 returns for SO_ZEROCOPY on vsock) to 0.
pub fn setsockopt_int_raw(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    op: &str,
) -> Result<(), crate::evidence::OsError> {
    setsockopt_int(fd, level, name, value).map_err(|_| crate::evidence::OsError {
        op: op.to_string(),
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    })
}

pub fn getsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> Result<libc::c_int, Errno> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int option with its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(value)
    }
}
