//! vsock probes for the unit tests of the vsock checks, asked on the clean NIC recording.

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::rules::RULES;
use crate::check::testing::fixture;
use crate::evidence::{Fact, VsockProbe, VsockRun};
use crate::vocab::Finding;

pub(crate) fn run(message: u64, messages: u64, completions: u64, copied: u64) -> VsockRun {
    VsockRun {
        message,
        messages,
        bytes: message * messages,
        completions,
        copied,
        records: completions.min(1),
        error: None,
    }
}

pub(crate) fn probe(runs: Vec<VsockRun>) -> VsockProbe {
    VsockProbe {
        cid: 1,
        port: 5201,
        so_zerocopy: Fact::Read(()),
        connect: Fact::Read(()),
        buffer_size: Some(262144),
        buffer_requested: None,
        runs,
        interrupted: false,
    }
}

/// What every rule answers to the vsock step about `p`.
pub(crate) fn all(p: VsockProbe) -> Findings<'static> {
    let mut ev = fixture("clean-nic");
    ev.kernel.release = "6.1.0-50-amd64".to_string();
    ev.vsock = Some(p);
    let cx = Context::new(&ev, crate::evidence::Protocol::Udp);
    let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
    if let Some(v) = &ev.vsock {
        for (_, rule) in RULES {
            rule(&cx, &Step::Vsock(v), &mut out);
        }
    }
    out
}

pub(crate) fn raised(p: VsockProbe, code: Code) -> Vec<Finding> {
    all(p)
        .findings
        .into_iter()
        .filter(|f| f.code == code)
        .collect()
}
