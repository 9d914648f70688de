//! Network namespaces of the tests (`zcd<tag><pid>x<n>`, deleted on drop) and what is built
//! and run inside them: black-hole NICs, veth pairs, zcdoctor itself.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{AS_NOBODY, COUNTER, Culprit, ZCDOCTOR, run};

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

    /// Starts `cmd` (a test sender) here, reads the one JSON line it prints once ready (its
    /// pid and what the kernel answered it), runs `zcdoctor check ARGS --pid PID --json` while
    /// it holds its sockets, then closes its stdin (it exits) and waits for it.
    pub fn check_sender(&self, cmd: &[&str], args: &[&str]) -> (Value, Value) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        println!("{cmd:?}: {}", line.trim());
        let said: Value =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let pid = said["pid"].as_u64().unwrap_or(0).to_string();
        let mut all = args.to_vec();
        all.extend(["--pid", &pid]);
        let (_, doc) = self.check_json(&all);
        drop(child.stdin.take());
        let _ = child.wait();
        (said, doc)
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

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
