//! Shared harness for privileged tests: network namespaces with an `ifb` black-hole NIC, real
//! culprit processes ended by pid, and in-process tap sockets. Everything is removed on drop,
//! also when a test panics.
#![allow(dead_code)]

pub mod fixtures;
pub mod path;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The system interpreter, not a pyenv shim: the pid a test starts must be python's own (a shim
/// runs it as a child of `pyenv exec`).
pub fn python() -> &'static str {
    if exists("/usr/bin/python3") {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Path of the binary under test.
pub const ZCDOCTOR: &str = env!("CARGO_BIN_EXE_zcdoctor");

/// Why privileged tests cannot run here (not root, or no network namespace can be made);
/// `None` when they can.
pub fn privilege_problem() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_string());
    }
    Netns::try_new("probe")
        .err()
        .map(|e| format!("cannot create a network namespace: {e}"))
}

/// A test function of a privileged test file, and how the harness treats it.
pub enum Case {
    /// Needs root and network namespaces: ignored (and counted as such) without them, failed
    /// without them when `ZCDOCTOR_REQUIRE_PRIV=1`.
    Privileged(&'static str, fn()),
    /// Runs everywhere.
    Plain(&'static str, fn()),
    /// Run only on request (`-- --ignored NAME`): benchmark helpers.
    OnRequest(&'static str, fn()),
    /// Needs outside programs on PATH (`bash tests/run` installs them): ignored, with the
    /// reason, where one is missing; failed instead under `ZCDOCTOR_REQUIRE_PRIV=1`.
    /// `privileged`: needs root and network namespaces too.
    Needs {
        name: &'static str,
        tools: &'static [&'static str],
        privileged: bool,
        f: fn(),
    },
    /// A `Needs` case whose tools are missing (internal: the harness's resolution).
    Missing(&'static str, String),
}

/// The program `name` on PATH, if any.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The `main` of a privileged test file (`harness = false` in Cargo.toml): libtest's command
/// line and output, with privileged cases reported as *ignored* where they cannot run, so a
/// skipped test never counts as passed.
pub fn run_cases(cases: Vec<Case>) -> ! {
    run_named(cases.into_iter().map(|c| (String::new(), c)).collect())
}

/// The `main` of a test binary made of modules (`harness_modules!`): each module's cases, named
/// `module::case`, run as `run_cases` runs them.
pub fn run_modules(modules: Vec<(&str, Vec<Case>)>) -> ! {
    run_named(
        modules
            .into_iter()
            .flat_map(|(module, cases)| cases.into_iter().map(move |c| (format!("{module}::"), c)))
            .collect(),
    )
}

/// Runs cases, each named by its prefix and its own name.
fn run_named(cases: Vec<(String, Case)>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let problem = privilege_problem();
    let required = std::env::var("ZCDOCTOR_REQUIRE_PRIV").as_deref() == Ok("1");
    if let Some(why) = &problem {
        eprintln!(
            "{}: privileged tests cannot run here ({why}){}",
            std::env::args().next().unwrap_or_default(),
            if required {
                "; ZCDOCTOR_REQUIRE_PRIV=1 makes each of them fail"
            } else {
                "; they are reported as ignored (SKIPPED): run as root to include them"
            }
        );
    }
    let trial = |name: String, f: fn()| {
        libtest_mimic::Trial::test(name, move || {
            f();
            Ok(())
        })
    };
    let trials = cases
        .into_iter()
        .map(|(prefix, case)| {
            let Case::Needs {
                name,
                tools,
                privileged,
                f,
            } = case
            else {
                return (prefix, case);
            };
            let missing: Vec<&str> = tools
                .iter()
                .copied()
                .filter(|t| on_path(t).is_none())
                .collect();
            if missing.is_empty() {
                return if privileged {
                    (prefix, Case::Privileged(name, f))
                } else {
                    (prefix, Case::Plain(name, f))
                };
            }
            let why = format!(
                "{} not installed (bash tests/run installs it)",
                missing.join(", ")
            );
            eprintln!(
                "{prefix}{name}: {why}{}",
                if required { "" } else { ": ignored" }
            );
            (prefix, Case::Missing(name, why))
        })
        .map(|(prefix, case)| match case {
            Case::Needs { .. } => unreachable!("resolved above"),
            Case::Missing(name, why) if required => {
                libtest_mimic::Trial::test(format!("{prefix}{name}"), move || {
                    Err(format!("{why}, and ZCDOCTOR_REQUIRE_PRIV=1").into())
                })
            }
            Case::Missing(name, _) => {
                trial(format!("{prefix}{name}"), || {}).with_ignored_flag(true)
            }
            Case::Plain(name, f) => trial(format!("{prefix}{name}"), f),
            Case::OnRequest(name, f) => trial(format!("{prefix}{name}"), f).with_ignored_flag(true),
            Case::Privileged(name, f) => match (&problem, required) {
                (None, _) => trial(format!("{prefix}{name}"), f),
                (Some(why), true) => {
                    let why = why.clone();
                    libtest_mimic::Trial::test(format!("{prefix}{name}"), move || {
                        Err(format!(
                            "privileged test cannot run ({why}) and ZCDOCTOR_REQUIRE_PRIV=1"
                        )
                        .into())
                    })
                }
                (Some(_), false) => trial(format!("{prefix}{name}"), f).with_ignored_flag(true),
            },
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// `cases!(privileged: [a, b needs ["tcpdump"]], plain: [c], on_request: [d]);` writes a test
/// module's `pub fn cases() -> Vec<Case>` (each list optional, in that order): the binary's
/// `main` (`harness_modules!`) runs the cases of all its modules. A privileged case that
/// `needs` outside programs is ignored with the reason where one is missing (failed under
/// `ZCDOCTOR_REQUIRE_PRIV=1`), as `Case::Needs`.
#[macro_export]
macro_rules! cases {
    (privileged: [$($p:ident $(needs [$($tool:literal),* $(,)?])?),* $(,)?]
     $(, plain: [$($t:ident),* $(,)?])?
     $(, on_request: [$($r:ident),* $(,)?])? $(,)?) => {
        /// This module's test cases.
        #[allow(clippy::vec_init_then_push)]
        pub fn cases() -> Vec<$crate::common::Case> {
            #[allow(unused_mut)]
            let mut cases = vec![$($crate::common::Case::Needs {
                name: stringify!($p),
                tools: &[$($($tool),*)?],
                privileged: true,
                f: $p,
            }),*];
            $($(cases.push($crate::common::Case::Plain(stringify!($t), $t));)*)?
            $($(cases.push($crate::common::Case::OnRequest(stringify!($r), $r));)*)?
            cases
        }
    };
}

/// `harness_main!(privileged: [a, b needs ["ethtool"]], plain: [c], on_request: [d]);` writes
/// the `main` of a test binary of one file (the lists of `cases!`).
#[macro_export]
macro_rules! harness_main {
    ($($lists:tt)*) => {
        $crate::cases!($($lists)*);
        fn main() {
            $crate::common::run_cases(cases())
        }
    };
}

/// `harness_modules!(cli, probe);` writes the `main` of a test binary of several modules, each
/// with its `cases!`: their cases run as `module::case`.
#[macro_export]
macro_rules! harness_modules {
    ($($module:ident),+ $(,)?) => {
        fn main() {
            $crate::common::run_modules(vec![$((stringify!($module), $module::cases())),+])
        }
    };
}

/// `setpriv` arguments that run a command as the unprivileged user nobody, without capabilities.
pub const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// Runs `f` on a thread that entered `ns`'s network namespace (`setns` is per thread), as the
/// CLI would run inside it.
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

/// Runs a command, returning its output; panics with the command line and stderr on failure.
pub fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `zcd<tag><pid>x<n>`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        Netns::try_new(tag).unwrap_or_else(|e| panic!("ip netns add failed: {e}"))
    }

    pub fn try_new(tag: &str) -> Result<Netns, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("zcd{tag}{}x{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let ns = Netns { name };
        ns.ip("link set lo up");
        Ok(ns)
    }

    /// `ip -n NAME <args>`; panics on failure.
    pub fn ip(&self, args: &str) -> Output {
        let mut cmd = vec!["ip", "-n", &self.name];
        cmd.extend(args.split_whitespace());
        run(&cmd)
    }

    /// Runs a command inside the namespace and returns its output (success not required).
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?} in {}: {e}", self.name))
    }

    /// Runs a command inside the namespace; panics on failure.
    pub fn exec_ok(&self, cmd: &[&str]) -> Output {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts a long-running process inside the namespace; it is killed by pid on drop.
    /// `ip netns exec` execs the command, so the child's pid is the culprit's own pid.
    pub fn spawn(&self, cmd: &[&str]) -> Culprit {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Culprit {
            child,
            what: cmd.join(" "),
        }
    }

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

    /// An `ifb` black-hole NIC `name` with `addr` (CIDR), up. It transmits and frees, so
    /// zerocopy completes without copies unless something on the path forces one.
    pub fn ifb(&self, name: &str, addr: &str) {
        self.ip(&format!("link add {name} type ifb"));
        self.ip(&format!("addr add {addr} dev {name}"));
        self.ip(&format!("link set {name} up"));
    }

    /// A veth pair `va` (198.18.1.1/24, here) ↔ `vb` (198.18.1.2/24, in `peer`), both up.
    pub fn veth_to(&self, peer: &Netns) {
        self.ip(&format!(
            "link add va type veth peer name vb netns {}",
            peer.name
        ));
        self.ip("addr add 198.18.1.1/24 dev va");
        peer.ip("addr add 198.18.1.2/24 dev vb");
        self.ip("link set va up");
        peer.ip("link set vb up");
    }

    /// `ethtool -K dev feature on|off` inside the namespace.
    pub fn ethtool_k(&self, dev: &str, feature: &str, state: &str) {
        self.exec_ok(&["ethtool", "-K", dev, feature, state]);
    }

    /// Runs zcdoctor inside the namespace with `args`.
    pub fn zcdoctor(&self, args: &[&str]) -> Output {
        let mut cmd = vec![ZCDOCTOR];
        cmd.extend_from_slice(args);
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(&cmd)
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run zcdoctor: {e}"))
    }

    /// `zcdoctor check --json --fail-on never <args>` inside the namespace as user nobody,
    /// without capabilities: the document.
    pub fn check_json_as_nobody(&self, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(AS_NOBODY)
            .args([ZCDOCTOR, "check", "--json", "--fail-on", "never"])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run zcdoctor as nobody: {e}"));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON as nobody ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `zcdoctor check <args> --json` inside the namespace: the exit code and the document.
    pub fn check_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["check", "--json", "--fail-on", "never"];
        all.extend_from_slice(args);
        let out = self.zcdoctor(&all);
        let code = out.status.code().unwrap_or(-1);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "zcdoctor {all:?} printed no JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, doc)
    }

    /// Opens an ETH_P_ALL packet socket inside the namespace, held by this test process.
    /// `bind` names the device to bind to (None: all devices).
    pub fn tap_socket(&self, bind: Option<&str>, ignore_outgoing: bool) -> TapSocket {
        let path = format!("/run/netns/{}", self.name);
        let bind = bind.map(str::to_string);
        let fd = std::thread::spawn(move || open_tap_in(&path, bind.as_deref(), ignore_outgoing))
            .join()
            .expect("tap thread panicked");
        TapSocket { fd }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn open_tap_in(netns_path: &str, bind: Option<&str>, ignore_outgoing: bool) -> OwnedFd {
    use nix::sched::{CloneFlags, setns};
    let nsfile = std::fs::File::open(netns_path).expect("open netns file");
    setns(&nsfile, CloneFlags::CLONE_NEWNET).expect("setns");
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: plain socket(2) call; the result is checked before it is owned.
    // CLOEXEC: processes spawned by parallel tests must not inherit (and co-own) the tap.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    assert!(
        raw >= 0,
        "socket(AF_PACKET): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if ignore_outgoing {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "PACKET_IGNORE_OUTGOING: {}",
            std::io::Error::last_os_error()
        );
    }
    if let Some(dev) = bind {
        let ifindex = nix::net::if_::if_nametoindex(dev).expect("if_nametoindex");
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind with a properly sized sockaddr_ll.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    }
    fd
}

/// A packet socket held by the test process itself; closed on drop.
pub struct TapSocket {
    pub fd: OwnedFd,
}

impl TapSocket {
    /// The socket's inode, as /proc/net/packet lists it.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .expect("stat own fd")
            .ino()
    }
}

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

/// Polls `ready` until it holds, at most `timeout`; panics naming `what` after that.
pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "not after {timeout:?}: {what}");
        // Pacing of the poll, not synchronisation: `ready` is what is waited for.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds the finding with `code` in a JSON report.
pub fn finding<'a>(doc: &'a Value, code: &str) -> Option<&'a Value> {
    doc["findings"]
        .as_array()?
        .iter()
        .find(|f| f["code"] == code)
}

/// All finding codes of a JSON report.
pub fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
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

/// Pids named in a finding's evidence.
pub fn pids(f: &Value) -> Vec<u64> {
    f["evidence"]["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
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

impl Netns {
    /// A `dummy` black-hole NIC `name`, up (the guest tier's `ifb`: it transmits and frees,
    /// with scatter-gather and checksum offload on). `addr` (CIDR) is optional.
    pub fn dummy(&self, name: &str, addr: Option<&str>) {
        self.ip(&format!("link add {name} type dummy"));
        if let Some(addr) = addr {
            self.ip(&format!("addr add {addr} dev {name}"));
        }
        self.ip(&format!("link set {name} up"));
    }

    /// True when the neighbour entry of `addr` in this namespace has a link-layer address (its
    /// resolution answered; on a bridge, the answer also taught the FDB the answering port).
    pub fn neighbour_resolved(&self, addr: &str) -> bool {
        let out = self.exec(&["ip", "neigh", "show", "to", addr]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.contains("lladdr") && !text.contains("INCOMPLETE") && !text.contains("FAILED")
    }

    /// The counter `stat` (`tx_packets`, …) of `dev` in this namespace.
    pub fn stat(&self, dev: &str, stat: &str) -> u64 {
        let out = self.exec_ok(&["cat", &format!("/sys/class/net/{dev}/statistics/{stat}")]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}
