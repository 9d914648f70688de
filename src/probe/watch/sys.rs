//! The `bpf(2)` commands watch uses (create a map, load a kprobe program, read a map) and the
//! kprobe attachment through `perf_event_open(2)` with the kprobe PMU (Linux 4.17+). Every
//! object is an owned descriptor: when watch ends, however it ends (SIGKILL included), the
//! kernel closes them, which detaches the kprobes and frees the programs and maps. Nothing is
//! written to tracefs, so nothing can be left behind for the next run to remove.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::insn::Insn;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_KPROBE: u32 = 2;
/// Where the kprobe PMU says which `perf_event_attr.type` it answers to.
pub const KPROBE_PMU_TYPE: &str = "/sys/bus/event_source/devices/kprobe/type";

/// `union bpf_attr` for `BPF_MAP_CREATE` (the prefix every kernel since 4.15 knows).
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    _pad: u32,
}

/// `union bpf_attr` for the element commands.
#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union bpf_attr` and its size
    // is passed with it; the kernel reads at most that many bytes and writes only within it.
    // Pointers inside it (keys, values, instructions, log) point at buffers the caller keeps
    // alive for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf(2)/perf_event_open(2) call that creates
    // a new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// A BPF map, with the sizes it was created with.
#[derive(Debug)]
pub struct Map {
    pub fd: OwnedFd,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
}

impl Map {
    pub fn create(
        map_type: u32,
        name: &str,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
    ) -> io::Result<Map> {
        let mut attr = MapCreate {
            map_type,
            key_size: key_size as u32,
            value_size: value_size as u32,
            max_entries,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
        Ok(Map {
            fd: owned(fd),
            key_size,
            value_size,
            max_entries,
        })
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn lookup(&self, key: &[u8]) -> io::Result<Vec<u8>> {
        let mut value = vec![0u8; self.value_size];
        let mut attr = MapElem {
            map_fd: self.raw() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
        Ok(value)
    }

    /// Every (key, value), at most `max_entries` of them (a key deleted while walking ends
    /// nothing: watch never deletes).
    pub fn entries(&self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        for _ in 0..self.max_entries {
            let mut next = vec![0u8; self.key_size];
            let mut attr = MapElem {
                map_fd: self.raw() as u32,
                key: key.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(e),
            }
            match self.lookup(&next) {
                Ok(v) => out.push((next.clone(), v)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            key = Some(next);
        }
        Ok(out)
    }
}

/// Why the kernel refused a program: the error and the verifier's last lines.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", if verifier.is_empty() { String::new() } else { format!(" (verifier: {verifier})") })]
pub struct LoadError {
    pub error: io::Error,
    pub verifier: String,
}

/// Loads a kprobe program (license GPL: `bpf_probe_read_kernel` is GPL-only). The verifier's
/// log is kept only when it refuses, and then only its last lines.
pub fn load_kprobe(name: &str, insns: &[Insn]) -> Result<OwnedFd, LoadError> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 << 10];
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name16(name),
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(error) => {
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0');
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let verifier = lines[lines.len().saturating_sub(3)..].join(" | ");
            Err(LoadError {
                error,
                verifier: verifier.chars().take(400).collect(),
            })
        }
    }
}

/// The kprobe PMU's event type, or why there is none.
pub fn kprobe_pmu() -> io::Result<u32> {
    let text = std::fs::read_to_string(KPROBE_PMU_TYPE)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{KPROBE_PMU_TYPE}: not a number: {text:?}")))
}

/// A kprobe on `function` running `prog`: a perf event of the kprobe PMU (on CPU 0: a kprobe
/// program runs wherever the function runs), with the program attached and enabled. Dropping
/// the descriptor removes the kprobe.
pub fn attach_kprobe(pmu: u32, function: &str, prog: &OwnedFd) -> io::Result<OwnedFd> {
    use perf_event_open_sys as perf;
    let name = CString::new(function).map_err(|_| io::Error::other("NUL in a symbol"))?;
    let mut attr = perf::bindings::perf_event_attr {
        type_: pmu,
        size: std::mem::size_of::<perf::bindings::perf_event_attr>() as u32,
        config: 0,
        ..Default::default()
    };
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    attr.kprobe_func = name.as_ptr() as u64;
    attr.probe_offset = 0;
    // SAFETY: `attr` is a valid, zero-initialised perf_event_attr whose `kprobe_func` points at
    // `name`, alive until the call returns; pid -1 with cpu 0 is a system-wide event.
    let fd = unsafe {
        perf::perf_event_open(
            &mut attr,
            -1,
            0,
            -1,
            perf::bindings::PERF_FLAG_FD_CLOEXEC as _,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let event = owned(fd as libc::c_long);
    // SAFETY: both descriptors are open and owned by us; SET_BPF takes a program descriptor by
    // value, ENABLE takes no argument.
    let r = unsafe { perf::ioctls::SET_BPF(event.as_raw_fd(), prog.as_raw_fd() as _) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let r = unsafe { perf::ioctls::ENABLE(event.as_raw_fd(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(event)
}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `union bpf_attr` for `BPF_PROG_GET_NEXT_ID` / `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetId {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The names of every BPF program loaded in the kernel (at most 65,536), so a test or a
/// start can see whether any of zcdoctor's (`zcd_…`) outlived its watch.
pub fn loaded_program_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut id = 0u32;
    for _ in 0..65_536 {
        let mut attr = GetId {
            id,
            ..Default::default()
        };
        match bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr.next_id,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        let mut by_id = GetId {
            id,
            ..Default::default()
        };
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) else {
            continue;
        };
        let fd = owned(fd);
        // struct bpf_prog_info: the name is at byte 64.
        let mut info = [0u8; 96];
        let mut attr = InfoByFd {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: info.len() as u32,
            info: info.as_mut_ptr() as u64,
        };
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).is_ok() {
            let name = &info[64..80];
            let end = name.iter().position(|b| *b == 0).unwrap_or(16);
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        }
    }
    Ok(names)
}
