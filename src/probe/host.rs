//! Host identity, kernel release, sysctls and the probing process's limits: the `kernel`,
//! `sysctls` and `limits` probes.

use super::{Context, GatherError, Outcome, Probe};
use crate::evidence::{
    Evidence, Host, Kernel, KernelVersion, ProbeName, ProbeState, ProcessLimits, Sysctls,
};

pub struct KernelProbe;

impl Probe for KernelProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Kernel
    }
    fn reads(&self) -> &'static str {
        "uname(2): the kernel release every version rule is judged against"
    }
    fn privileges(&self) -> &'static str {
        "none"
    }
    fn required(&self) -> bool {
        true
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        ev.kernel = kernel();
        Ok(Outcome::ok(ev.kernel.release.clone()))
    }
}

pub struct SysctlsProbe;

impl Probe for SysctlsProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Sysctls
    }
    fn reads(&self) -> &'static str {
        "/proc/sys: net.core.optmem_max, wmem, ip_forward, in the diagnosed namespace"
    }
    fn privileges(&self) -> &'static str {
        "none"
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let (sysctls, problems) = sysctls();
        ev.sysctls = sysctls;
        Ok(if problems.is_empty() {
            Outcome::ok("read in the diagnosed namespace")
        } else {
            Outcome::new(ProbeState::Error, problems.join("; "))
        })
    }
}

pub struct LimitsProbe;

impl Probe for LimitsProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Limits
    }
    fn reads(&self) -> &'static str {
        "this process's RLIMIT_MEMLOCK, locked memory and capabilities (/proc/self/status)"
    }
    fn privileges(&self) -> &'static str {
        "none"
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let limits = process_limits();
        let detail = format!(
            "uid {}, RLIMIT_MEMLOCK {}, CAP_IPC_LOCK {}",
            limits.uid,
            limits
                .memlock_soft
                .map_or("unlimited".to_string(), |b| format!("{} KiB", b / 1024)),
            if limits.cap_ipc_lock { "yes" } else { "no" }
        );
        ev.process = Some(limits);
        Ok(Outcome::ok(detail))
    }
}

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

/// Reads `name` in the initial network namespace (pid 1's), on a short-lived thread that
/// enters it: `net.core.optmem_max` and `wmem_max` are per namespace only since Linux 6.8, so
/// before that a container's /proc/sys/net/core has no such file and the host's value applies.
fn read_sysctl_in_initial_netns(name: &str) -> Result<String, String> {
    let name = name.to_string();
    std::thread::spawn(move || {
        let ns =
            std::fs::File::open("/proc/1/ns/net").map_err(|e| format!("/proc/1/ns/net: {e}"))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("entering the initial network namespace: {e}"))?;
        read_sysctl(&name)
    })
    .join()
    .map_err(|_| "the sysctl reader thread panicked".to_string())?
}

/// Reads the sysctls of the calling thread's network namespace. Returns what could be read and
/// one message per file that could not.
pub fn sysctls() -> (Sysctls, Vec<String>) {
    let mut problems = Vec::new();
    let mut host_wide = Vec::new();
    let mut num = |name: &str| match read_sysctl(name).or_else(|e| {
        // Missing in this namespace: a host-wide sysctl on this kernel (net.core before 6.8).
        if name.starts_with("net.core.") && e.contains("No such file") {
            let v = read_sysctl_in_initial_netns(name).map_err(|e2| format!("{e}; {e2}"))?;
            host_wide.push(name.to_string());
            Ok(v)
        } else {
            Err(e)
        }
    }) {
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
    s.host_wide = host_wide;
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

/// The limits and capabilities of this process; what cannot be read counts as absent.
pub fn process_limits() -> ProcessLimits {
    use nix::sys::resource::{Resource, getrlimit};
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok();
    let caps = status.as_ref().map_or(0, |s| s.capeff);
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let memlock_soft = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == libc::RLIM_INFINITY => None,
        Ok((soft, _)) => Some(soft),
        Err(_) => None,
    };
    ProcessLimits {
        memlock_soft,
        locked_vm: status
            .and_then(|s| s.vmlck)
            .map(|kb| kb.saturating_mul(1024)),
        cap_ipc_lock: has(CAP_IPC_LOCK),
        cap_net_admin: has(CAP_NET_ADMIN),
        cap_sys_ptrace: has(CAP_SYS_PTRACE),
        cap_sys_admin: has(CAP_SYS_ADMIN),
        uid: nix::unistd::geteuid().as_raw(),
    }
}
