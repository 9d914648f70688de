//! Nothing was sent: a local target is itself the diagnosis; anything else says what to change.

use serde_json::json;

use crate::check::findings::{Code, Findings};
use crate::check::path;
use crate::evidence::{Evidence, LiveProbe, NotRun, RouteType};

/// Nothing was sent: a local target is itself the diagnosis; anything else says what to change.
pub(super) fn not_run(ev: &Evidence, live: &LiveProbe, fact: &str, out: &mut Findings) {
    let local = match &live.not_run_cause {
        Some(cause) => *cause == NotRun::LocalRoute,
        // Recordings made before the cause was recorded.
        None => live
            .route
            .as_ref()
            .is_some_and(|r| r.route_type == RouteType::Local),
    };
    if live.not_run_cause == Some(NotRun::IoUringUnavailable) {
        // io-uring-unavailable (raised above) says what is missing.
        return;
    }
    if local {
        if !out.has(Code::LocalDelivery) {
            path::raise_local_delivery(ev, path::LocalDelivery::Target(live), out);
        }
        return;
    }
    out.raise(
        Code::LiveProbeNotRun,
        fact.to_string(),
        json!({"target": live.target, "route": live.route, "cause": live.not_run_cause}),
        vec![not_run_fix(ev, live)],
    );
}

/// What the operator changes so the probe can send, by the cause the probe recorded.
fn not_run_fix(ev: &Evidence, live: &LiveProbe) -> String {
    let iface = &ev.interface;
    let target = &live.target;
    let choose = format!(
        "Choose a --target whose route leaves through {iface} (`ip route get ADDR` shows the device)."
    );
    match &live.not_run_cause {
        None
        | Some(
            NotRun::OtherDevice { .. }
            | NotRun::NoDevice
            | NotRun::LocalRoute
            | NotRun::IoUringUnavailable,
        ) => choose,
        Some(NotRun::NotUnicast { route_type }) => format!(
            "The route to {target} is {route_type}; the probe sends only unicast traffic. {choose}"
        ),
        Some(NotRun::RouteLookup { .. }) => format!(
            "Add a route to {target} through {iface}, or choose a --target this host can reach (`ip route get ADDR`)."
        ),
        Some(NotRun::Socket { error }) => match error.errno() {
            nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => format!(
                "Run the probe as root (binding to {iface} needs CAP_NET_RAW), or from the namespace that owns it."
            ),
            nix::errno::Errno::ENOPROTOOPT | nix::errno::Errno::EOPNOTSUPP => {
                "This kernel refuses SO_ZEROCOPY for this socket: see `zcdoctor explain kernel-too-old`.".to_string()
            }
            _ => format!("The probe's socket could not be set up ({error}); fix that, then probe again."),
        },
        Some(NotRun::Connect {
            interrupted: true, ..
        }) => "The probe was interrupted while connecting; run it again and let it finish.".to_string(),
        Some(NotRun::Connect {
            timed_out: true, ..
        }) => format!(
            "Nothing answered {target} in time: check that the host is up and no firewall drops the connection, and that `zcdoctor sink --listen {target}` runs there."
        ),
        Some(NotRun::Connect { .. }) => format!(
            "Start the receiver first: `zcdoctor sink --listen {target}` on the target host, then probe again."
        ),
    }
}
