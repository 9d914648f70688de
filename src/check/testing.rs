//! Recorded hosts for the checks' unit tests (the same files `tests/fixtures.rs` diagnoses).

#[cfg(test)]
pub mod process;
#[cfg(test)]
pub mod vsock;

use super::context::Context;
use super::findings::{Code, Findings};
use super::rules;
use crate::evidence::{Evidence, KernelVersion, Protocol};
use crate::knowledge::Knowledge;
use crate::vocab::Finding;

/// A recording from `fixtures/`, by name.
pub fn fixture(name: &str) -> Evidence {
    let text = match name {
        "clean-nic" => include_str!("../../fixtures/taps/clean-nic/evidence.json"),
        "loopback" => include_str!("../../fixtures/path/loopback/evidence.json"),
        "bond-sg-requested-on" => {
            include_str!("../../fixtures/offloads/bond-sg-requested-on/evidence.json")
        }
        "vlan-no-tx-checksum" => {
            include_str!("../../fixtures/offloads/vlan-no-tx-checksum/evidence.json")
        }
        "seed" => include_str!("../../fixtures/taps/seed-bond1-lldpd-dhclient/evidence.json"),
        "container-5.15" => {
            include_str!("../../fixtures/taps/container-tcpdump-5.15/evidence.json")
        }
        "container-6.18" => {
            include_str!("../../fixtures/taps/container-tcpdump-6.18/evidence.json")
        }
        "live-clean" => include_str!("../../fixtures/live/live-clean/evidence.json"),
        "live-tap-copied" => include_str!("../../fixtures/live/live-tap-copied/evidence.json"),
        "live-enobufs-optmem" => {
            include_str!("../../fixtures/live/live-enobufs-optmem/evidence.json")
        }
        "live-enobufs-memlock" => {
            include_str!("../../fixtures/live/live-enobufs-memlock/evidence.json")
        }
        "live-uring-disabled-sysctl" => {
            include_str!("../../fixtures/live/live-uring-disabled-sysctl/evidence.json")
        }
        "process-pid-many-ways" => {
            include_str!("../../fixtures/process/process-pid-many-ways/evidence.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture parses")
}

/// The clean NIC recording with another kernel release.
pub fn evidence_with_kernel(release: &str) -> Evidence {
    let mut ev = fixture("clean-nic");
    ev.kernel.release = release.to_string();
    ev.kernel.version = KernelVersion::parse(release);
    ev
}

/// Every rule run over `ev`, as `diagnose` runs them (findings in the order raised, unranked).
pub fn run(ev: &Evidence, protocol: Protocol) -> Findings<'static> {
    let cx = Context::new(ev, protocol);
    let mut out = Findings::new(Knowledge::builtin());
    rules::run(&cx, &mut out);
    out
}

/// The findings of `code` that every rule run over `ev` (UDP) raises.
pub fn raised(ev: &Evidence, code: Code) -> Vec<Finding> {
    run(ev, Protocol::Udp)
        .findings
        .into_iter()
        .filter(|f| f.code == code)
        .collect()
}
