//! `lower-device-elsewhere`: a device of the stack sits on a lower device that lives in another
//! network namespace, which the diagnosis did not inspect.
//!
//! Reads each way's device stack (`links`: `IFLA_LINK_NETNSID` lowers).
//! Explanation and fix text: checks/findings/lower-device-elsewhere.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::with_toward;

/// Devices of the way's stack (not already crossed by an earlier way) whose lower device lives
/// in another namespace.
pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::WayStart(start) = at else {
        return;
    };
    let (way, seen) = (start.way, &start.crossed_before);
    for dev in way
        .stack
        .iter()
        .filter(|d| !d.lowers_elsewhere.is_empty() && !seen.contains(&d.ifindex))
    {
        let ifindexes: Vec<String> = dev.lowers_elsewhere.iter().map(u32::to_string).collect();
        let mut evidence = json!({"device": dev.name, "lower_ifindexes": dev.lowers_elsewhere});
        with_toward(&mut evidence, way.toward);
        out.raise(
            Code::LowerDeviceElsewhere,
            format!(
                "{} sits on a device of another network namespace (ifindex {}), which was not inspected{}",
                dev.name,
                ifindexes.join(", "),
                way.label()
            ),
            evidence,
            vec![format!(
                "Run `zcdoctor check` on {}'s lower device inside the namespace that owns it (`ip netns exec NS zcdoctor check DEV`).",
                dev.name
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};

    #[test]
    fn lower_in_another_namespace_is_named() {
        let mut ev = fixture("clean-nic");
        ev.stack[0].lowers_elsewhere = vec![5, 7];
        let f = &raised(&ev, Code::LowerDeviceElsewhere)[0];
        assert!(f.summary.contains("ifindex 5, 7"), "{}", f.summary);
    }
}
