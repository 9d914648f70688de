//! The sockets a process holds, read from /proc: how a test waits for a culprit or a sink to
//! be ready.

/// Inodes of the sockets `pid` holds (its `socket:[INODE]` descriptors).
pub fn socket_inodes(pid: u32) -> std::collections::HashSet<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let ino = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(ino.to_string())
        })
        .collect()
}

/// Rows of `/proc/PID/net/FILE` (`packet`, `tcp`, `tcp6`: the table of `pid`'s namespace) whose
/// socket `pid` holds, split into fields; `inode` is the index of the inode field.
pub fn held_rows(pid: u32, file: &str, inode: usize) -> Vec<Vec<String>> {
    let held = socket_inodes(pid);
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.get(inode).is_some_and(|i| held.contains(i)))
        .collect()
}

/// True when a packet socket shows in the namespace's table held by `pid` (used to wait for a
/// culprit to open its socket).
pub fn pid_holds_packet_socket(pid: u32) -> bool {
    !held_rows(pid, "packet", 8).is_empty()
}

/// TCP sockets `pid` holds in state `st` (`0A` listening, `01` established), IPv4 and IPv6,
/// with their local port.
pub fn tcp_sockets(pid: u32, st: &str) -> Vec<u16> {
    ["tcp", "tcp6"]
        .into_iter()
        .flat_map(|file| held_rows(pid, file, 9))
        .filter(|f| f[3] == st)
        .filter_map(|f| u16::from_str_radix(f[1].rsplit_once(':')?.1, 16).ok())
        .collect()
}

/// True when `pid` listens on TCP `port` (a sink is ready for its clients).
pub fn listens_on(pid: u32, port: u16) -> bool {
    tcp_sockets(pid, "0A").contains(&port)
}
