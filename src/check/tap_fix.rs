//! Remediation for tap owners: the known daemons' entries of `checks/tap-daemons.toml`, filled
//! in with the owner's pid, unit, device and namespace.

use crate::evidence::{Owner, PacketSocket, Unreadable};
use crate::knowledge::Knowledge;

/// What to do so the setting of a tap can be read, by why it could not be.
pub fn unreadable(cause: Option<&Unreadable>) -> String {
    let as_root = "Run zcdoctor as root (pidfd_getfd needs CAP_SYS_PTRACE over the owner) to read the setting.".to_string();
    match cause {
        None => as_root,
        Some(Unreadable::NoOwner) => "Run zcdoctor as root: finding a socket's owner reads every process's /proc/PID/fd.".to_string(),
        Some(Unreadable::OwnerGone { pid }) => format!("Process {pid} went away while it was being read: run zcdoctor again."),
        Some(Unreadable::Refused { cap_sys_ptrace: false, .. }) => as_root,
        Some(Unreadable::Refused { yama_ptrace_scope: Some(3), .. }) => "Yama ptrace_scope=3 forbids all ptrace access, pidfd_getfd included, even to root: read the setting after a reboot with kernel.yama.ptrace_scope below 3, or take the tap off the path.".to_string(),
        Some(Unreadable::Refused { pid, .. }) => format!("zcdoctor has CAP_SYS_PTRACE, yet a security module (SELinux, AppArmor) or the user namespace of pid {pid} forbids ptrace access: allow it for zcdoctor, or take the tap off the path."),
        Some(Unreadable::Unsupported { error }) => format!("This kernel lacks what reading the setting needs ({error}): pidfd_getfd needs Linux 5.6, PACKET_IGNORE_OUTGOING 4.20."),
        Some(Unreadable::Failed { error, .. }) => format!("Reading the setting failed ({error}): run zcdoctor again as root."),
    }
}

/// Fills a knowledge-base line for one owner. Without a systemd unit, `systemctl … {unit}`
/// would be a broken command, so it becomes the pid-based equivalent.
fn fill_daemon_line(line: &str, o: &Owner, device: &str, netns: &str) -> String {
    let mut line = line.to_string();
    if o.unit.is_none() {
        line = line
            .replace("`systemctl stop {unit}`", "`kill {pid}`")
            .replace("`systemctl restart {unit}`", "restart it")
            .replace("`systemctl disable --now {unit}`", "`kill {pid}`")
            .replace("{unit}", "its service");
    }
    line.replace("{pid}", &o.pid.to_string())
        .replace("{comm}", &o.comm)
        .replace("{unit}", o.unit.as_deref().unwrap_or_default())
        .replace("{device}", device)
        .replace("{netns}", netns)
}

/// What the owner is (notes) and the remediation specific to it, from the known tap daemons;
/// generic for unknown owners. `receive`: the traffic is received where the tap is, so what the
/// setting would change is left out.
pub fn for_socket(kb: &Knowledge, s: &PacketSocket, receive: bool) -> (Vec<String>, Vec<String>) {
    let device = s
        .device
        .clone()
        .unwrap_or_else(|| "every device (unbound socket)".to_string());
    let netns = s
        .netns
        .name
        .clone()
        .unwrap_or_else(|| format!("net:[{}]", s.netns.inode));
    let mut notes = Vec::new();
    let mut fix = Vec::new();
    for o in &s.owners {
        match kb.daemon(&o.comm, o.exe.as_deref()) {
            Some(d) => {
                notes.push(format!("{}: {}", d.title, d.what.trim()));
                let transmit = d.fix_transmit.iter().filter(|_| !receive);
                fix.extend(
                    transmit
                        .chain(&d.fix)
                        .map(|l| fill_daemon_line(l, o, &device, &netns)),
                );
            }
            None if receive => fix.push(format!(
                "{} (pid {}) is not a known tap daemon: stop it if the capture is not needed (`kill {}`).",
                o.comm, o.pid, o.pid
            )),
            None => fix.push(format!(
                "{} (pid {}) is not a known tap daemon: stop it if the capture is not needed (`kill {}`), or change it to set PACKET_IGNORE_OUTGOING (setsockopt SOL_PACKET 23) on its socket.",
                o.comm, o.pid, o.pid
            )),
        }
    }
    for o in s.owners.iter().filter(|o| o.container.is_some()) {
        fix.push(format!(
            "pid {} runs in container {}: stop it there (`docker stop`/`crictl stop` on that container, or `kill {}` from the host), and keep captures out of production containers.",
            o.pid,
            o.container.as_deref().unwrap_or_default(),
            o.pid
        ));
    }
    if s.owners.is_empty() {
        fix.push(format!(
            "Find the owner of socket inode {} (`ss -0 -p | grep {}`) and stop it, or have it set PACKET_IGNORE_OUTGOING.",
            s.inode, s.inode
        ));
    }
    (notes, fix)
}
