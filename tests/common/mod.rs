//! Shared harness for privileged tests: network namespaces with an `ifb` black-hole NIC, real
//! culprit processes ended by pid, and in-process tap sockets. Everything is removed on drop,
//! also when a test panics.
//! - `harness`: the `main` of a test binary (`cases!`, `harness_modules!`, `harness_main!`).
//! - `netns`, `tap`: namespaces and what is built in them; packet sockets of this process.
//! - `culprit`: processes started in a namespace (tcpdump, dhclient, lldpd), scratch files.
//! - `sockets`: the sockets a process holds, from /proc; `report`: reading the JSON report.
//! - `fixtures`, `path`: recorded hosts; assertions about the path and its copies.
#![allow(dead_code)]

pub mod fixtures;
pub mod path;

mod culprit;
mod harness;
mod netns;
mod report;
mod sockets;
mod tap;

// Each binary uses some of these: the rest are unused there, as `dead_code` allows above.
#[allow(unused_imports)]
pub use culprit::*;
#[allow(unused_imports)]
pub use harness::*;
#[allow(unused_imports)]
pub use netns::*;
#[allow(unused_imports)]
pub use report::*;
#[allow(unused_imports)]
pub use sockets::*;
#[allow(unused_imports)]
pub use tap::*;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// Numbers the namespaces and scratch paths of this process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

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

/// `setpriv` arguments that run a command as the unprivileged user nobody, without capabilities.
pub const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

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

/// Polls `ready` until it holds, at most `timeout`; panics naming `what` after that.
pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "not after {timeout:?}: {what}");
        // Pacing of the poll, not synchronisation: `ready` is what is waited for.
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
