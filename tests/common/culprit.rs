//! Real culprit processes (tcpdump, dhclient, lldpd, …) started in a test namespace, ended by
//! pid on drop, with the scratch files and children they leave.

use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{COUNTER, Netns, exists, pid_holds_packet_socket};

/// A process the test started; killed (by its own pid) and reaped on drop.
pub struct Culprit {
    pub child: Child,
    pub what: String,
}

impl Culprit {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `ready` holds (polling), or panics with the process's stderr.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, ready: impl Fn() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{} exited ({status}) before {what}: {err}", self.what);
            }
            // Pacing of the poll, not synchronisation: `ready` is what is waited for.
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} not ready after {timeout:?}: {what}", self.what);
    }
}

impl Drop for Culprit {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // Pacing of the poll for the exit, bounded by the 3 s above.
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Netns {
    /// A real tcpdump inside the namespace with `args` (device, filter, …) after `-n -w
    /// /dev/null`, returned once it holds its packet socket; ended by pid on drop.
    pub fn tcpdump(&self, args: &[&str]) -> Culprit {
        let mut cmd = vec!["tcpdump", "-n", "-w", "/dev/null"];
        cmd.extend_from_slice(args);
        let mut culprit = self.spawn(&cmd);
        let pid = culprit.pid();
        // libpcap opens its ETH_P_ALL socket, then binds it and sets up its ring (which takes
        // the socket off the device for a moment): only "listening on" says it is done. The
        // reader keeps draining stderr so tcpdump never blocks on it.
        let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(stderr) = culprit.child.stderr.take() {
            let flag = listening.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    if line.contains("listening on") {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
        culprit.wait_until("tcpdump is listening", Duration::from_secs(20), || {
            listening.load(Ordering::SeqCst) && pid_holds_packet_socket(pid)
        });
        culprit
    }
}

/// A unique scratch path for a culprit's private files (pid, lease, control socket).
pub fn tmp_path(what: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("/tmp/zcd-{}-{n}.{what}", std::process::id())
}

/// Removes files on drop.
pub struct TmpFiles(pub Vec<String>);

impl Drop for TmpFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Kills pids this test caused to exist (a daemon's children) if still alive on drop.
pub struct KillOnDrop(pub Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let pid = nix::unistd::Pid::from_raw(*pid as i32);
            if nix::sys::signal::kill(pid, None).is_ok() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Direct children of `pid` (from /proc/*/stat).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(") ")?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

const CULPRIT_WAIT: Duration = Duration::from_secs(10);

/// ISC dhclient on `dev` with private pid/lease files and no script, started and waited for.
pub struct Dhclient {
    pub culprit: Culprit,
    _files: TmpFiles,
}

/// lldpd on `dev` with a private control socket. Its privileged monitor hands the raw socket to
/// an unprivileged child, which holds it: both are ended on drop, then /run/lldpd is removed
/// if lldpd created it.
pub struct Lldpd {
    pub culprit: Culprit,
    pub children: KillOnDrop,
    _files: TmpFiles,
    _chroot: RemoveDirIfNew,
}

pub struct RemoveDirIfNew(Option<&'static str>);

impl Drop for RemoveDirIfNew {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Netns {
    pub fn start_dhclient(&self, dev: &str) -> Dhclient {
        let (pf, lf) = (tmp_path("pid"), tmp_path("leases"));
        let files = TmpFiles(vec![pf.clone(), lf.clone()]);
        let mut culprit = self.spawn(&[
            "dhclient",
            "-d",
            "-pf",
            &pf,
            "-lf",
            &lf,
            "-sf",
            "/bin/true",
            dev,
        ]);
        let pid = culprit.pid();
        culprit.wait_until("dhclient opens its socket", CULPRIT_WAIT, || {
            pid_holds_packet_socket(pid)
        });
        Dhclient {
            culprit,
            _files: files,
        }
    }

    pub fn start_lldpd(&self, dev: &str) -> Lldpd {
        let chroot = (!exists("/run/lldpd")).then_some("/run/lldpd");
        let ctl = tmp_path("socket");
        let files = TmpFiles(vec![ctl.clone()]);
        let mut culprit = self.spawn(&["lldpd", "-d", "-I", dev, "-u", &ctl]);
        let monitor = culprit.pid();
        culprit.wait_until("lldpd's child opens its socket", CULPRIT_WAIT, || {
            children_of(monitor)
                .into_iter()
                .any(pid_holds_packet_socket)
        });
        Lldpd {
            culprit,
            children: KillOnDrop(children_of(monitor)),
            _files: files,
            _chroot: RemoveDirIfNew(chroot),
        }
    }
}
