//! `device-down`: the device a way starts at is administratively down or has no carrier.
//!
//! Reads the first device of each way's stack (`links`: admin flag and operational state).
//! Explanation and fix text: checks/findings/device-down.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::with_toward;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::WayStart(start) = at else {
        return;
    };
    let (Some(top), way) = (start.new_top, start.way) else {
        return;
    };
    let down = !top.admin_up
        || matches!(
            top.oper_state.as_str(),
            "down" | "lowerlayerdown" | "notpresent"
        );
    if !down {
        return;
    }
    let mut evidence =
        json!({"device": top.name, "admin_up": top.admin_up, "oper_state": top.oper_state});
    with_toward(&mut evidence, way.toward);
    out.raise(
        Code::DeviceDown,
        format!(
            "{} is {} (operational state {}){}",
            top.name,
            if top.admin_up {
                "up but not running"
            } else {
                "administratively down"
            },
            top.oper_state,
            way.label()
        ),
        evidence,
        vec![if top.admin_up {
            format!(
                "{} has no carrier: check its cable or lower devices (`ip link show {}`), then diagnose it again.",
                top.name, top.name
            )
        } else {
            format!("ip link set {} up", top.name)
        }],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};

    #[test]
    fn down_and_no_carrier_are_told_apart() {
        let mut ev = fixture("clean-nic");
        ev.stack[0].admin_up = false;
        ev.stack[0].oper_state = "down".into();
        let f = &raised(&ev, Code::DeviceDown)[0];
        assert!(f.summary.contains("administratively down"), "{}", f.summary);
        assert!(f.remediation[0].starts_with("ip link set "));

        ev.stack[0].admin_up = true;
        ev.stack[0].oper_state = "lowerlayerdown".into();
        let f = &raised(&ev, Code::DeviceDown)[0];
        assert!(f.summary.contains("up but not running"));
    }
}
