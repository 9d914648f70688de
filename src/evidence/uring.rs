//! What the kernel offers for io_uring zerocopy sends, as the live probe found it.

use serde::{Deserialize, Serialize};

use super::OsError;

/// What the kernel offers for io_uring zerocopy sends, as probed: the sysctl, ring set-up, the
/// opcode probe (`IORING_REGISTER_PROBE`) and a `SEND_ZC` with `IORING_SEND_ZC_REPORT_USAGE` on
/// an unconnected socket (accepted flags fail later, with EDESTADDRREQ; unknown ones with EINVAL).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct UringSupport {
    /// `kernel.io_uring_disabled` (6.6+): 0 allowed, 1 only for `kernel.io_uring_group` and
    /// CAP_SYS_ADMIN, 2 disabled; absent on older kernels.
    #[serde(default)]
    pub disabled_sysctl: Option<u8>,
    /// `io_uring_setup` failed: ENOSYS (not built in), EPERM (sysctl or seccomp), …
    #[serde(default)]
    pub setup_error: Option<OsError>,
    /// `IORING_REGISTER_PROBE` failed (5.6+ has it).
    #[serde(default)]
    pub probe_error: Option<OsError>,
    /// `IORING_OP_SEND` (5.6) is supported.
    #[serde(default)]
    pub op_send: Option<bool>,
    /// `IORING_OP_SEND_ZC` (6.0) is supported.
    #[serde(default)]
    pub op_send_zc: Option<bool>,
    /// `IORING_OP_SENDMSG_ZC` (6.1) is supported.
    #[serde(default)]
    pub op_sendmsg_zc: Option<bool>,
    /// `IORING_SEND_ZC_REPORT_USAGE` (6.2) was accepted; `None` when not tried.
    #[serde(default)]
    pub report_usage: Option<bool>,
    /// What the report-usage test send returned (EDESTADDRREQ or ENOTCONN when accepted,
    /// EINVAL when the flag is unknown).
    #[serde(default)]
    pub report_usage_error: Option<OsError>,
    /// `--uring-fixed-buffers`: registering the send buffer failed (ENOMEM: RLIMIT_MEMLOCK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_buffers_error: Option<OsError>,
    /// Rings the probe could not set up while sending (a pattern's phase then did not run):
    /// on 6.x the ring's memory counts against RLIMIT_MEMLOCK, so ENOMEM here is the limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ring_errors: Vec<OsError>,
    /// Why io_uring zerocopy sends cannot be proven here; `None` when they can.
    #[serde(default)]
    pub unavailable: Option<UringUnavailable>,
}

/// Why the io_uring probe could not run, as data.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum UringUnavailable {
    /// `io_uring_setup` does not exist (ENOSYS: not built in, or a seccomp filter that
    /// answers ENOSYS).
    NoSyscall,
    /// `kernel.io_uring_disabled` is 2, or 1 and the prober is neither in
    /// `kernel.io_uring_group` nor CAP_SYS_ADMIN; `io_uring_setup` returned EPERM.
    DisabledBySysctl { value: u8 },
    /// `io_uring_setup` returned EPERM although the sysctl allows it: a seccomp filter (the
    /// default of Docker, containerd and podman since 2023) or an LSM.
    Blocked,
    /// `io_uring_setup` failed otherwise.
    SetupFailed,
    /// The kernel has no `IORING_OP_SEND_ZC` (before 6.0).
    NoSendZc,
    /// `IORING_SEND_ZC_REPORT_USAGE` was refused (before 6.2): copies cannot be seen.
    NoReportUsage,
}

impl std::fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UringUnavailable::NoSyscall => f.write_str("io_uring_setup does not exist in this kernel"),
            UringUnavailable::DisabledBySysctl { value } => {
                write!(f, "io_uring is disabled by kernel.io_uring_disabled = {value}")
            }
            UringUnavailable::Blocked => f.write_str(
                "io_uring_setup was refused although kernel.io_uring_disabled allows it (a seccomp filter or an LSM)",
            ),
            UringUnavailable::SetupFailed => f.write_str("io_uring_setup failed"),
            UringUnavailable::NoSendZc => {
                f.write_str("this kernel has no IORING_OP_SEND_ZC (Linux 6.0+)")
            }
            UringUnavailable::NoReportUsage => f.write_str(
                "this kernel refuses IORING_SEND_ZC_REPORT_USAGE (Linux 6.2+), so io_uring copies cannot be seen",
            ),
        }
    }
}
