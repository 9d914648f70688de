//! `live-probe-not-run`: a live probe was asked for and sent nothing: no route through the
//! diagnosed device, a target that is not unicast, a socket or connection that failed. (A local
//! target is `local-delivery`; io_uring that cannot run is `io-uring-unavailable`.)
//!
//! Reads the live probe's recorded cause, route and target.
//! Explanation and fix text: checks/findings/live-probe-not-run.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::live::{NotSent, not_sent};
use crate::evidence::{Evidence, LiveProbe, NotRun};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    let Step::LiveNotRun(m, fact) = at else {
        return;
    };
    let live = m.live;
    if not_sent(live) != NotSent::Other {
        return;
    }
    out.raise(
        Code::LiveProbeNotRun,
        fact.to_string(),
        json!({"target": live.target, "route": live.route, "cause": live.not_run_cause}),
        vec![not_run_fix(cx.ev, live)],
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

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::{NotRun, OsError};

    fn not_run_finding(cause: Option<NotRun>) -> crate::vocab::Finding {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.not_run = Some("fact".to_string());
        live.not_run_cause = cause;
        live.runs.clear();
        raised(&ev, Code::LiveProbeNotRun).pop().expect("a finding")
    }

    #[test]
    fn each_cause_gets_its_own_fix() {
        let refused = not_run_finding(Some(NotRun::Connect {
            error: Some(OsError::new("connect", nix::errno::Errno::ECONNREFUSED)),
            timed_out: false,
            interrupted: false,
        }));
        assert!(refused.remediation[0].contains("zcdoctor sink --listen"));
        let timed_out = not_run_finding(Some(NotRun::Connect {
            error: None,
            timed_out: true,
            interrupted: false,
        }));
        assert!(timed_out.remediation[0].contains("in time"));
        let interrupted = not_run_finding(Some(NotRun::Connect {
            error: None,
            timed_out: false,
            interrupted: true,
        }));
        assert!(interrupted.remediation[0].contains("interrupted"));
        assert!(!interrupted.remediation[0].contains("sink"));
        let other = not_run_finding(Some(NotRun::OtherDevice {
            device: "eth9".into(),
        }));
        assert!(other.remediation[0].starts_with("Choose a --target"));
    }
}
