//! `zcdoctor watch`: counts, in the kernel, every copy of `MSG_ZEROCOPY` data and every
//! completion during a window, without sending anything (issue #17; design in
//! docs/research/watch-design.md, kernel facts in docs/research/watch-kernel-sites.md).
//!
//! BPF programs emitted by zcdoctor ([`programs`], no compiler) run on kprobes attached through
//! `perf_event_open` ([`sys`]); they aggregate in hash maps, so a copy costs a map update and
//! no wakeup of zcdoctor. Offsets come from the kernel's BTF ([`btf`]), addresses and caller
//! names from `/proc/kallsyms` ([`kallsyms`]). Every kernel object is a descriptor of this
//! process: when it ends, however it ends, the kernel removes the kprobes and frees the rest.

pub mod btf;
pub mod insn;
pub mod kallsyms;
mod owners;
pub mod programs;
pub mod sys;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::evidence::watch::{
    CopyCount, NotProbed, SocketCompletions, WatchEvidence, WatchRole, WatchedFunction,
};
use btf::Offsets;
use kallsyms::Kallsyms;
use programs::{Completion, Layout, Maps, Site};

/// What `zcdoctor probes` says of watch.
pub struct About {
    pub name: &'static str,
    pub reads: &'static str,
    pub privileges: &'static str,
}

pub const ABOUT: About = About {
    name: "watch",
    reads: "zcdoctor watch only: kprobes (BPF through perf_event_open) on skb_copy_ubufs, __pskb_pull_tail, skb_segment and the MSG_ZEROCOPY completion; /sys/kernel/btf/vmlinux, /proc/kallsyms, /proc/PID/fd",
    privileges: "root: CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), CAP_SYSLOG for kernel addresses",
};

/// Keys each counting map holds at most; a full map drops events and says how many.
const MAP_ENTRIES: u32 = 4096;

/// Why watch cannot run here: one line naming what is missing.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("watch supports x86-64 kernels only (its programs read x86-64 registers)")]
    Architecture,
    #[error(
        "no kprobe PMU ({path}: {error}): this kernel cannot attach kprobes through perf_event_open (CONFIG_KPROBE_EVENTS, Linux 4.17+)"
    )]
    NoKprobes { path: String, error: String },
    #[error("no kernel BTF: {0} (CONFIG_DEBUG_INFO_BTF)")]
    NoBtf(String),
    #[error("cannot read {path}: {error}")]
    Kallsyms { path: String, error: String },
    #[error("{0} hides kernel addresses from this process: run watch as root")]
    AddressesHidden(&'static str),
    #[error(
        "the kernel refused BPF ({0}): run as root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); a locked-down kernel or kernel.unprivileged_bpf_disabled refuses it too"
    )]
    BpfRefused(String),
    #[error("this kernel's layout is not one watch knows: {0}")]
    Layout(String),
    #[error("cannot probe {function}: {error}")]
    Attach { function: String, error: String },
}

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    pub duration: Duration,
    /// Restrict the report to these processes' sockets.
    pub pids: Vec<u32>,
}

/// The kernel's zerocopy completion function and how it completes.
fn completion_of(k: &Kallsyms) -> Option<(&'static str, Completion)> {
    [
        ("sock_zerocopy_callback", Completion::Callback),
        ("__msg_zerocopy_callback", Completion::Final),
        ("msg_zerocopy_complete", Completion::PerPut),
        ("msg_zerocopy_callback", Completion::PerPut),
    ]
    .into_iter()
    .find(|(name, _)| k.has(name))
}

fn off(btf: &Offsets, strukt: &str, path: &str) -> Result<i32, Refusal> {
    btf.of(strukt, path)
        .map(|o| o as i32)
        .map_err(|e| Refusal::Layout(e.to_string()))
}

/// The running kernel's layout, from its BTF and symbols.
pub fn layout(btf: &Offsets, k: &Kallsyms) -> Result<Layout, Refusal> {
    let (_, completion) = completion_of(k).ok_or_else(|| {
        Refusal::Layout("no MSG_ZEROCOPY completion function in /proc/kallsyms".into())
    })?;
    // The notification's identity: `ops` since 6.10, the callback before.
    let (uarg_ident, ident_symbol) = if btf.has("ubuf_info", "ops") {
        (off(btf, "ubuf_info", "ops")?, "msg_zerocopy_ubuf_ops")
    } else if k.has("msg_zerocopy_callback") {
        (off(btf, "ubuf_info", "callback")?, "msg_zerocopy_callback")
    } else {
        (off(btf, "ubuf_info", "callback")?, "sock_zerocopy_callback")
    };
    let ident_addr = k
        .address(ident_symbol)
        .ok_or_else(|| Refusal::Layout(format!("{ident_symbol} not in /proc/kallsyms")))?;
    // The notification's fields: `struct ubuf_info_msgzc` since 6.0, `ubuf_info` before.
    let msgzc = if btf.has("ubuf_info_msgzc", "len") {
        "ubuf_info_msgzc"
    } else {
        "ubuf_info"
    };
    let (shinfo_flags, zerocopy_flag) = if btf.has("skb_shared_info", "flags") {
        // SKBFL_ZEROCOPY_ENABLE
        (off(btf, "skb_shared_info", "flags")?, 1)
    } else {
        // SKBTX_DEV_ZEROCOPY
        (off(btf, "skb_shared_info", "tx_flags")?, 1 << 3)
    };
    Ok(Layout {
        skb_head: off(btf, "sk_buff", "head")?,
        skb_end: off(btf, "sk_buff", "end")?,
        skb_data_len: off(btf, "sk_buff", "data_len")?,
        skb_dev: off(btf, "sk_buff", "dev")?,
        skb_sk: off(btf, "sk_buff", "sk")?,
        skb_cb: off(btf, "sk_buff", "cb")?,
        shinfo_flags,
        zerocopy_flag,
        shinfo_destructor_arg: off(btf, "skb_shared_info", "destructor_arg")?,
        uarg_ident,
        ident_addr,
        uarg_len: off(btf, msgzc, "len")?,
        uarg_refcnt: off(btf, "ubuf_info", "refcnt")?,
        uarg_zerocopy_bit: btf
            .bits_of(msgzc, "zerocopy")
            .map_err(|e| Refusal::Layout(e.to_string()))? as i32,
        sk_socket: off(btf, "sock", "sk_socket")?,
        socket_ino: off(btf, "socket_alloc", "vfs_inode.i_ino")?,
        dev_ifindex: off(btf, "net_device", "ifindex")?,
        dev_net: off(btf, "net_device", "nd_net")?,
        net_inum: off(btf, "net", "ns.inum")?,
        completion,
    })
}

/// One program on one function.
struct Probe {
    function: &'static str,
    role: WatchRole,
    _prog: OwnedFd,
    _event: OwnedFd,
}

/// The maps and the attached probes; dropping it detaches everything.
struct Attached {
    copies: sys::Map,
    completions: sys::Map,
    stats: sys::Map,
    probes: Vec<Probe>,
    not_probed: Vec<NotProbed>,
}

/// `ENOENT: No such file or directory`, or the error as it prints.
fn errno_text(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).to_string(),
    )
}

fn refused(e: std::io::Error) -> Refusal {
    Refusal::BpfRefused(errno_text(&e))
}

/// Before 5.11 the kernel charges BPF maps and programs to the caller's `RLIMIT_MEMLOCK`
/// (and answers EPERM past it): raise this process's own limit, as libbpf does. Only
/// zcdoctor's process is affected; a failure leaves the kernel's answer to decide.
fn raise_memlock() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = 64 << 20;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MEMLOCK) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_MEMLOCK, want, hard.max(want));
        }
    }
}

/// The three maps: copies, completions, statistics.
fn create_maps() -> Result<(sys::Map, sys::Map, sys::Map), Refusal> {
    let copies = sys::Map::create(
        sys::BPF_MAP_TYPE_HASH,
        "zcd_copies",
        programs::COPY_KEY,
        programs::COUNT_VALUE,
        MAP_ENTRIES,
    )
    .map_err(refused)?;
    let completions = sys::Map::create(
        sys::BPF_MAP_TYPE_HASH,
        "zcd_done",
        programs::DONE_KEY,
        programs::COUNT_VALUE,
        MAP_ENTRIES,
    )
    .map_err(refused)?;
    let stats = sys::Map::create(
        sys::BPF_MAP_TYPE_ARRAY,
        "zcd_stats",
        4,
        programs::STATS_VALUE,
        4,
    )
    .map_err(refused)?;
    Ok((copies, completions, stats))
}

/// The program of `role`, counting into `maps`, its statistics at `index`.
fn program_for(
    l: &Layout,
    role: WatchRole,
    maps: &Maps,
    index: u32,
) -> Result<Vec<insn::Insn>, Refusal> {
    match role {
        WatchRole::CopyUbufs => programs::copy_program(l, Site::CopyUbufs, maps, index),
        WatchRole::FullPull => programs::copy_program(l, Site::FullPull, maps, index),
        WatchRole::SegmentWithoutSg => programs::copy_program(l, Site::SegmentNoSg, maps, index),
        WatchRole::Completion => programs::completion_program(l, maps, index),
    }
    .map_err(|e| Refusal::Layout(e.to_string()))
}

/// Loads `insns` and attaches them to `function`.
fn load_and_attach(
    pmu: u32,
    function: &str,
    index: usize,
    insns: &[insn::Insn],
) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let prog = sys::load_kprobe(&format!("zcd_{index}"), insns).map_err(|e| {
        if e.error.raw_os_error() == Some(libc::EPERM) {
            refused(e.error)
        } else {
            Refusal::Attach {
                function: function.to_string(),
                error: e.to_string(),
            }
        }
    })?;
    let event = sys::attach_kprobe(pmu, function, &prog).map_err(|e| Refusal::Attach {
        function: function.to_string(),
        error: errno_text(&e),
    })?;
    Ok((prog, event))
}

fn attach(l: &Layout, pmu: u32, completion_fn: &'static str) -> Result<Attached, Refusal> {
    raise_memlock();
    let (copies, completions, stats) = create_maps()?;
    let maps = Maps {
        copies: copies.raw(),
        completions: completions.raw(),
        stats: stats.raw(),
    };
    let plan: [(&'static str, WatchRole, bool); 4] = [
        ("skb_copy_ubufs", WatchRole::CopyUbufs, true),
        ("__pskb_pull_tail", WatchRole::FullPull, true),
        ("skb_segment", WatchRole::SegmentWithoutSg, false),
        (completion_fn, WatchRole::Completion, true),
    ];
    let mut probes = Vec::new();
    let mut not_probed = Vec::new();
    for (index, (function, role, required)) in plan.into_iter().enumerate() {
        let insns = program_for(l, role, &maps, index as u32)?;
        let attached = load_and_attach(pmu, function, index, &insns);
        match attached {
            Ok((prog, event)) => probes.push(Probe {
                function,
                role,
                _prog: prog,
                _event: event,
            }),
            Err(e @ Refusal::BpfRefused(_)) => return Err(e),
            Err(e) if required => return Err(e),
            Err(e) => not_probed.push(NotProbed {
                function: function.to_string(),
                role,
                reason: e.to_string(),
            }),
        }
    }
    Ok(Attached {
        copies,
        completions,
        stats,
        probes,
        not_probed,
    })
}

/// Everything watch needs from the kernel before attaching, or the first thing missing.
pub fn preflight() -> Result<(u32, Layout, Kallsyms, &'static str), Refusal> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Refusal::Architecture);
    }
    let pmu = sys::kprobe_pmu().map_err(|e| Refusal::NoKprobes {
        path: sys::KPROBE_PMU_TYPE.into(),
        error: errno_text(&e),
    })?;
    let btf = Offsets::kernel().map_err(|e| Refusal::NoBtf(e.to_string()))?;
    let k = Kallsyms::read().map_err(|e| Refusal::Kallsyms {
        path: kallsyms::KALLSYMS.into(),
        error: errno_text(&e),
    })?;
    if k.hidden() {
        return Err(Refusal::AddressesHidden(kallsyms::KALLSYMS));
    }
    let l = layout(&btf, &k)?;
    let (completion_fn, _) = completion_of(&k)
        .ok_or_else(|| Refusal::Layout("no MSG_ZEROCOPY completion function".into()))?;
    Ok((pmu, l, k, completion_fn))
}

/// Attaches, says so through `on_attached` (the functions probed), waits out the window (or
/// the stop flag), reads the counts and names what they point at.
pub fn run(
    req: &WatchRequest,
    stop: &AtomicBool,
    on_attached: &mut dyn FnMut(&[&str]),
) -> Result<WatchEvidence, Refusal> {
    let (pmu, l, k, completion_fn) = preflight()?;
    let mut pid_sockets = owners::sockets_of(&req.pids);
    let attached = attach(&l, pmu, completion_fn)?;
    let names: Vec<&str> = attached.probes.iter().map(|p| p.function).collect();
    on_attached(&names);
    let start = Instant::now();
    let mut interrupted = false;
    while start.elapsed() < req.duration {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        std::thread::sleep(
            Duration::from_millis(50).min(req.duration.saturating_sub(start.elapsed())),
        );
    }
    let duration_ms = start.elapsed().as_millis() as u64;
    let mut ev = collect(&attached, &k)?;
    drop(attached);
    ev.duration_ms = duration_ms;
    ev.interrupted = interrupted;
    pid_sockets.extend(owners::sockets_of(&req.pids));
    pid_sockets.sort_unstable();
    pid_sockets.dedup();
    ev.pids = req.pids.clone();
    ev.pid_sockets = pid_sockets;
    owners::name_devices(&mut ev.copies);
    ev.sockets = owners::holders(&ev);
    Ok(ev)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// The maps, decoded.
fn collect(a: &Attached, k: &Kallsyms) -> Result<WatchEvidence, Refusal> {
    let read_err = |e: std::io::Error| Refusal::BpfRefused(format!("reading a map: {e}"));
    let mut ev = WatchEvidence {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        not_probed: a.not_probed.clone(),
        ..Default::default()
    };
    let stats = a.stats.entries().map_err(read_err)?;
    for p in &a.probes {
        let v = stats
            .iter()
            .find(|(key, _)| u32_at(key, 0) as usize == plan_index(p.role))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        ev.functions.push(WatchedFunction {
            function: p.function.to_string(),
            role: p.role,
            hits: u64_at(&v, 0),
            bpf_ns: u64_at(&v, 8),
            lost: u64_at(&v, 16),
        });
    }
    for (key, v) in a.copies.entries().map_err(read_err)? {
        let role = match Site::from_index(u32_at(&key, 0)) {
            Some(Site::CopyUbufs) => WatchRole::CopyUbufs,
            Some(Site::FullPull) => WatchRole::FullPull,
            Some(Site::SegmentNoSg) => WatchRole::SegmentWithoutSg,
            None => continue,
        };
        let symbol = k.symbolise(u64_at(&key, 16));
        let ifindex = u32_at(&key, 4);
        ev.copies.push(CopyCount {
            role,
            caller: symbol.map(|s| s.0.to_string()),
            caller_module: symbol.and_then(|s| s.1.map(str::to_string)),
            device: (ifindex != 0).then(|| crate::evidence::watch::WatchDevice {
                ifindex,
                netns_inode: u32_at(&key, 8) as u64,
                name: None,
                netns: None,
                own_netns: false,
            }),
            socket: nonzero(u64_at(&key, 24)),
            count: u64_at(&v, 0),
            bytes: u64_at(&v, 8),
        });
    }
    ev.copies.sort_by_key(|c| std::cmp::Reverse(c.count));
    let mut by_socket: std::collections::BTreeMap<u64, SocketCompletions> = Default::default();
    for (key, v) in a.completions.entries().map_err(read_err)? {
        let socket = u64_at(&key, 0);
        let e = by_socket.entry(socket).or_default();
        e.socket = nonzero(socket);
        e.notifications += u64_at(&v, 0);
        e.sends += u64_at(&v, 8);
        if u64_at(&key, 8) != 0 {
            e.copied_notifications += u64_at(&v, 0);
            e.copied_sends += u64_at(&v, 8);
        }
    }
    ev.completions = by_socket.into_values().collect();
    Ok(ev)
}

/// The statistics entry of a role (the order of `attach`'s plan).
fn plan_index(role: WatchRole) -> usize {
    match role {
        WatchRole::CopyUbufs => 0,
        WatchRole::FullPull => 1,
        WatchRole::SegmentWithoutSg => 2,
        WatchRole::Completion => 3,
    }
}
