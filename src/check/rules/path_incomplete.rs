//! `path-incomplete`: the walk beyond a way's stack stopped at a hop zcdoctor could not follow
//! (a namespace it could not enter, a lookup that failed); the verdict is then not "yes".
//!
//! Reads the end of each way's path walk (`path`).
//! Explanation and fix text: checks/findings/path-incomplete.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::with_toward;
use nix::errno::Errno;

use crate::evidence::{OsError, PathEnd, PathStop};

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::WayEnd(way) = at else {
        return;
    };
    let Some(path) = way.path else {
        return;
    };
    let PathEnd::Incomplete {
        stop,
        reason,
        error,
    } = &path.end
    else {
        return;
    };
    let hops = path.segments.len();
    let mut evidence =
        json!({"interface": way.interface, "segments": hops, "reason": reason, "error": error});
    if !stop.is_unknown() {
        evidence["stop"] = json!(stop);
    }
    with_toward(&mut evidence, way.toward);
    out.raise(
        Code::PathIncomplete,
        format!(
            "the path from {}{} could not be followed after {} hop{}: {reason}",
            way.interface,
            way.label(),
            hops + 1,
            if hops == 0 { "" } else { "s" }
        ),
        evidence,
        vec![advice(*stop, error.as_ref())],
    );
}

/// What helps where the walk stopped. Root helps only where the kernel refused for want of
/// privilege (or no namespace could be opened by its id); a loop, a route or a tunnel is looked
/// at where it is.
fn advice(stop: PathStop, error: Option<&OsError>) -> String {
    let refused = error.is_some_and(|e| matches!(e.errno(), Errno::EPERM | Errno::EACCES));
    let text = match stop {
        _ if refused => {
            "Run zcdoctor as root from the host namespace (it enters other namespaces with setns), or inside the namespace the path continues in."
        }
        PathStop::NamespaceUnknown => {
            "Run zcdoctor as root from the host namespace; a namespace with neither a name nor a process cannot be opened by its id: name it (`ip netns attach NAME PID`) or diagnose from inside it with --netns."
        }
        PathStop::HopLimit => {
            "Look for a routing loop: `ip route get DESTINATION` in each namespace the path crosses."
        }
        PathStop::RouteLookup | PathStop::RouteNowhere | PathStop::NotForwarded => {
            "Check the route and forwarding of the namespace named above (`ip -n NS route get DESTINATION`, `sysctl net.ipv4.ip_forward`): the traffic does not leave it the way the walk can follow."
        }
        PathStop::Tunnel | PathStop::TunnelRemote => {
            "Diagnose the tunnel's underlay directly: `zcdoctor check DEV` for the device its encapsulated packets leave by (`ip -d link show TUNNEL` names its remote and underlay)."
        }
        _ => {
            "Diagnose the rest of the path from the namespace it continues in: `zcdoctor check --netns NS` (a name, a path, or the pid of a process living there), with the device named above."
        }
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root is advised only where it helps; a loop, a route or a tunnel is looked at where it is.
    #[test]
    fn advice_follows_where_the_walk_stopped() {
        let eperm = OsError::new("setns(CLONE_NEWNET)", Errno::EPERM);
        assert!(
            advice(PathStop::NamespaceUnenterable, Some(&eperm))
                .starts_with("Run zcdoctor as root")
        );
        assert!(advice(PathStop::NamespaceUnknown, None).contains("ip netns attach"));
        assert!(advice(PathStop::HopLimit, None).contains("routing loop"));
        assert!(advice(PathStop::TunnelRemote, None).contains("underlay"));
        assert!(advice(PathStop::NotForwarded, None).contains("ip_forward"));
        for stop in [PathStop::DeviceMissing, PathStop::Unknown] {
            let text = advice(stop, None);
            assert!(
                !text.contains("as root") && text.contains("--netns"),
                "{text}"
            );
        }
    }
}
