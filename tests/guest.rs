//! The guest tier: scenarios that this host's kernel cannot build (bonds, VLANs, ipvlan, VRF,
//! tunnels) or that need a kernel on the other side of a version boundary, run on Debian's 5.10,
//! 6.1 and 6.12 kernels in QEMU guests (virtme-ng, the host's root file system shared).
//!
//! One binary, two roles. On the host it boots each kernel of the cache once (`tests/guest/
//! setup.sh` fills it; README's test command runs that), runs *itself* inside the guest with the
//! selected scenarios, and turns the guest's results file into one test case per scenario and
//! kernel (`k6_1::bond_active_backup_tap_on_slave`): passed, failed with the guest's message, or
//! ignored with the reason. A guest that cannot boot fails its cases under
//! `ZCDOCTOR_REQUIRE_PRIV=1` and is ignored otherwise; a case never passes without having run.
//! Inside the guest (`ZCDOCTOR_GUEST_RESULTS` set) it runs the scenarios one by one, each judged
//! against what the kernel did (the live probe's COPIED completions), and appends one JSON line
//! per scenario to the results file.
//!
//! One scenario on one kernel: `cargo test --profile fast --test guest -- k6_1::bond_active`.

mod common;
#[path = "guest/harness.rs"]
mod harness;
#[path = "guest/scenarios/mod.rs"]
mod scenarios;

fn main() {
    if std::env::var_os(harness::RESULTS_ENV).is_some() {
        harness::inside_guest(scenarios::ALL);
    } else {
        harness::on_host(scenarios::ALL);
    }
}
