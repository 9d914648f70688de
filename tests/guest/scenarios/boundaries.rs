//! The version boundaries the knowledge base states, on kernels on each side of them.

use super::{blockers, live, summary};
use crate::common::path::{every_send_copied, forwarding_pair, no_send_copied};
use crate::common::{Netns, codes, finding};
use crate::harness::{Kernel, Outcome, Scenario};

/// Before 6.15 unbound taps lived on one host-wide list: a tap in any namespace copies.
fn unbound_tap_in_another_namespace(k: &Kernel) -> Outcome {
    let a = Netns::new("gbnsa");
    a.dummy("d0", Some("198.18.0.1/24"));
    let b = Netns::new("gbnsb");
    let _tap = b.tap_socket(None, false);
    let (_, doc) = live(&a, "d0", "198.18.0.2");
    if k.at_least(6, 15) {
        no_send_copied(&doc);
        assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    } else {
        every_send_copied(&doc);
        let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(tap["severity"], "blocker", "{tap:#}");
    }
    Outcome::Ran(summary(&doc))
}

/// Before 6.17 traffic arriving through a veth was copied even when forwarded out of a NIC.
fn forwarded_from_a_veth(k: &Kernel) -> Outcome {
    let (a, b) = forwarding_pair();
    b.ip("neigh replace 198.18.2.2 lladdr 02:00:00:00:00:02 dev ifbz nud permanent");
    let (_, doc) = live(&a, "va", "198.18.2.2");
    if k.at_least(6, 17) {
        no_send_copied(&doc);
    } else {
        every_send_copied(&doc);
        let f = finding(&doc, "veth-path").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(f["severity"], "blocker", "{f:#}");
    }
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    Outcome::Ran(summary(&doc))
}

pub const UNBOUND_TAP_IN_ANOTHER_NAMESPACE: Scenario = Scenario {
    name: "boundary_unbound_tap_in_another_namespace",
    run: unbound_tap_in_another_namespace,
};
pub const FORWARDED_FROM_A_VETH: Scenario = Scenario {
    name: "boundary_forwarded_from_a_veth",
    run: forwarded_from_a_veth,
};
