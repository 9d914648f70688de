//! Host identity, kernel release, sysctls and the probing process's limits.

use crate::evidence::{Host, Kernel, KernelVersion, ProcessLimits, Sysctls};

pub fn host() -> Host {
    Host {
        hostname: sysinfo::System::host_name().unwrap_or_else(|| "unknown".to_string()),
        os: sysinfo::System::long_os_version(),
    }
}

pub fn kernel() -> Kernel {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    Kernel {
        version: KernelVersion::parse(&release),
        release,
    }
}

fn read_sysctl(name: &str) -> Result<String, String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

/// Reads the sysctls of the calling thread's network namespace. Returns what could be read and
/// one message per file that could not.
pub fn sysctls() -> (Sysctls, Vec<String>) {
    let mut problems = Vec::new();
    let mut num = |name: &str| match read_sysctl(name) {
        Ok(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("{name}: not a number: {v:?}"));
                None
            }
        },
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let mut s = Sysctls {
        optmem_max: num("net.core.optmem_max"),
        ip_forward: num("net.ipv4.ip_forward"),
        wmem_max: num("net.core.wmem_max"),
        ..Sysctls::default()
    };
    for name in [
        "net.core.wmem_default",
        "net.ipv4.tcp_wmem",
        "vm.max_map_count",
    ] {
        if let Ok(v) = read_sysctl(name) {
            s.other.insert(
                name.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            );
        }
    }
    (s, problems)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;

/// Effective capabilities of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub fn process_limits() -> ProcessLimits {
    use nix::sys::resource::{Resource, getrlimit};
    let caps = effective_caps();
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let memlock_soft = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == libc::RLIM_INFINITY => None,
        Ok((soft, _)) => Some(soft),
        Err(_) => None,
    };
    let locked_vm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmLck:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
    ProcessLimits {
        memlock_soft,
        locked_vm,
        cap_ipc_lock: has(CAP_IPC_LOCK),
        cap_net_admin: has(CAP_NET_ADMIN),
        cap_sys_ptrace: has(CAP_SYS_PTRACE),
        cap_sys_admin: has(CAP_SYS_ADMIN),
        uid: nix::unistd::geteuid().as_raw(),
    }
}
