//! What the counted numbers point at: the processes holding the sockets (`/proc/PID/fd`), and
//! the devices' names in their namespaces. Read after the window, bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;

use crate::evidence::watch::{CopyCount, SocketHolder, WatchEvidence};
use crate::probe::netns::{in_netns, named_netns};

/// Processes looked at, at most.
const MAX_PROCESSES: usize = 65_536;
/// Descriptors read per process, at most.
const MAX_FDS: usize = 65_536;

fn socket_inode(link: &std::path::Path) -> Option<u64> {
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// `(fd, inode)` of each socket process `pid` holds.
fn sockets(pid: u32) -> Vec<(i32, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .take(MAX_FDS)
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((fd, socket_inode(&link)?))
        })
        .collect()
}

/// The socket inodes of these processes.
pub fn sockets_of(pids: &[u32]) -> Vec<u64> {
    pids.iter()
        .flat_map(|p| sockets(*p).into_iter().map(|(_, i)| i))
        .collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().chars().take(64).collect())
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .take(MAX_PROCESSES)
        .collect()
}

/// The holders of every socket the window saw, the watched processes first; the walk stops
/// when each socket has one.
pub fn holders(ev: &WatchEvidence) -> Vec<SocketHolder> {
    let wanted: BTreeSet<u64> = ev
        .copies
        .iter()
        .filter_map(|c| c.socket)
        .chain(ev.completions.iter().filter_map(|c| c.socket))
        .collect();
    let mut found: BTreeMap<u64, SocketHolder> = BTreeMap::new();
    let mut order = ev.pids.clone();
    order.extend(pids());
    for pid in order {
        if found.len() == wanted.len() {
            break;
        }
        for (fd, inode) in sockets(pid) {
            if wanted.contains(&inode) && !found.contains_key(&inode) {
                found.insert(
                    inode,
                    SocketHolder {
                        inode,
                        pid,
                        comm: comm(pid),
                        fd,
                    },
                );
            }
        }
    }
    found.into_values().collect()
}

fn nsfs_inode(path: &str) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Names each copy's device in its namespace, and the namespace by its `/run/netns` name.
pub fn name_devices(copies: &mut [CopyCount]) {
    let own = nsfs_inode("/proc/self/ns/net");
    let named = named_netns();
    let mut wanted: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for d in copies.iter().filter_map(|c| c.device.as_ref()) {
        wanted.entry(d.netns_inode).or_default().insert(d.ifindex);
    }
    let mut names: HashMap<(u64, u32), String> = HashMap::new();
    let mut unentered: BTreeSet<u64> = wanted.keys().copied().collect();
    let mut paths: Vec<(u64, String)> = named
        .iter()
        .map(|n| (n.inode, n.path.display().to_string()))
        .collect();
    if let Some(own) = own {
        paths.insert(0, (own, "/proc/self/ns/net".into()));
    }
    for pid in pids() {
        if unentered.iter().all(|i| paths.iter().any(|p| p.0 == *i)) {
            break;
        }
        let path = format!("/proc/{pid}/ns/net");
        if let Some(i) = nsfs_inode(&path) {
            if unentered.contains(&i) && !paths.iter().any(|p| p.0 == i) {
                paths.push((i, path));
            }
        }
    }
    for (inode, path) in paths {
        let Some(indexes) = wanted.get(&inode) else {
            continue;
        };
        if !unentered.remove(&inode) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let read = |indexes: &BTreeSet<u32>| {
            indexes
                .iter()
                .filter_map(|i| {
                    nix::net::if_::if_indextoname(*i)
                        .ok()
                        .map(|n| (*i, n.to_string_lossy().into_owned()))
                })
                .collect::<Vec<_>>()
        };
        let got = if Some(inode) == own {
            read(indexes)
        } else {
            in_netns(&file, || read(indexes)).unwrap_or_default()
        };
        for (i, n) in got {
            names.insert((inode, i), n);
        }
    }
    for d in copies.iter_mut().filter_map(|c| c.device.as_mut()) {
        d.own_netns = Some(d.netns_inode) == own;
        d.name = names.get(&(d.netns_inode, d.ifindex)).cloned();
        d.netns = named
            .iter()
            .find(|n| n.inode == d.netns_inode)
            .and_then(|n| n.name.clone());
    }
}
