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

use crate::evidence::{OsError, PathEnd};

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::WayEnd(way) = at else {
        return;
    };
    let Some(path) = way.path else {
        return;
    };
    let PathEnd::Incomplete { reason, error } = &path.end else {
        return;
    };
    let hops = path.segments.len();
    let mut evidence =
        json!({"interface": way.interface, "segments": hops, "reason": reason, "error": error});
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
        vec![advice(error.as_ref())],
    );
}

/// Root helps only where the kernel refused for want of privilege; any other stop (no peer, no
/// tunnel parameters, a routing loop) is diagnosed from the namespace the path continues in.
fn advice(error: Option<&OsError>) -> String {
    let refused = error.is_some_and(|e| matches!(e.errno(), Errno::EPERM | Errno::EACCES));
    if refused {
        "Run zcdoctor as root from the host namespace (it enters other namespaces with setns), or inside the namespace the path continues in.".to_string()
    } else {
        "Diagnose the rest of the path from the namespace it continues in: `zcdoctor check --netns NS` (a name, a path, or the pid of a process living there), with the device named above.".to_string()
    }
}
