//! The rules: one file per finding code, named for it (`tap_forces_copy.rs` raises
//! `tap-forces-copy`). Each file says what the finding is and which evidence it reads, decides
//! it, writes its summary, evidence and remediation, and holds its tests; its explanation and
//! usual severity are in `checks/findings/<code>.toml`.
//!
//! Every rule has the same entry point, `pub fn check(cx: &Context, at: &Step, out: &mut
//! Findings)`, and answers only the [`Step`]s it is about. [`RULES`] lists them in the order
//! they are asked at each step, which is the order their findings are raised in (the report
//! ranks by severity, then by that order). Adding a finding is its rule file and one line here.

use super::context::{Context, Step};
use super::findings::Findings;
use super::live::Measured;
use super::process::{Subject, notes, pass_line};

/// A rule's entry point.
pub type Rule = fn(&Context, &Step, &mut Findings);

macro_rules! rules {
    ($($rule:ident),* $(,)?) => {
        $(pub mod $rule;)*
        /// Every rule, in the order it is asked at each step.
        pub const RULES: &[(&str, Rule)] = &[$((stringify!($rule), $rule::check)),*];
    };
}

rules! {
    kernel_too_old,
    local_delivery,
    tunnel_encrypts,
    veth_path,
    device_down,
    lower_device_elsewhere,
    path_incomplete,
    tunnel_mtu_fragments,
    tc_mirred_copies,
    tc_action_writes,
    tc_bpf_program,
    nfqueue_on_path,
    features_unreadable,
    no_scatter_gather,
    no_tx_checksum,
    optmem_low,
    taps_not_checked,
    tap_forces_copy,
    tap_ignores_outgoing,
    tap_unknown_setting,
    zerocopy_not_requested,
    tx_timestamp_copies,
    ktls_refuses_zerocopy,
    errqueue_not_drained,
    process_memlock_limit,
    io_uring_in_use,
    io_uring_unavailable,
    live_probe_not_run,
    udp_fragmentation,
    live_nothing_transmitted,
    live_sample_too_small,
    live_copied,
    copies_unexplained,
    live_contradicts_prediction,
    zerocopy_enobufs,
    zerocopy_enomem,
    memlock_limit,
    completions_missing,
    live_timing_unreliable,
    zerocopy_slower,
    vsock_zerocopy_unsupported,
    vsock_send_over_credit,
}

/// Asks every rule at `step`.
fn ask(cx: &Context, step: &Step, out: &mut Findings) {
    for (_, rule) in RULES {
        rule(cx, step, out);
    }
}

/// Walks the steps in the order traffic meets them, asking every rule at each.
pub fn run(cx: &Context, out: &mut Findings) {
    // A vsock target has no IP path, taps or IP live probe: its limits, the processes and the
    // vsock probe.
    if let Some(v) = &cx.ev.vsock {
        ask(cx, &Step::Limits, out);
        processes(cx, out);
        ask(cx, &Step::Vsock(v), out);
        return;
    }
    // `check --pid` with no IP path (no default route, no connected zerocopy socket): the
    // host, its limits and the processes.
    if cx.ev.stack.is_empty() && !cx.ev.processes.is_empty() && cx.ev.live.is_none() {
        ask(cx, &Step::Host, out);
        ask(cx, &Step::Limits, out);
        processes(cx, out);
        return;
    }
    ask(cx, &Step::Host, out);
    for start in &cx.way_starts() {
        ask(cx, &Step::WayStart(start), out);
    }
    ask(cx, &Step::Path, out);
    for way in &cx.ways {
        ask(cx, &Step::WayEnd(way), out);
    }
    ask(cx, &Step::Devices, out);
    ask(cx, &Step::Limits, out);
    taps(cx, out);
    processes(cx, out);
    live(cx, out);
}

fn taps(cx: &Context, out: &mut Findings) {
    ask(cx, &Step::TapsStart, out);
    let Some(scan) = &cx.taps else {
        return;
    };
    for group in &scan.groups {
        ask(cx, &Step::Tap(group), out);
    }
    ask(cx, &Step::TapsEnd(scan), out);
}

/// Each process diagnosed by pid; one none of the rules flagged gets its pass line, and every
/// one its notes.
pub(crate) fn processes(cx: &Context, out: &mut Findings) {
    for p in &cx.ev.processes {
        let before = out.findings.len();
        let subject = Subject::of(p);
        ask(cx, &Step::Process(&subject), out);
        if out.findings.len() == before {
            out.pass("process", pass_line(p));
        }
        for (about, text) in notes(&subject) {
            out.note(p.pid, about, text);
        }
    }
}

fn live(cx: &Context, out: &mut Findings) {
    let Some(live) = &cx.ev.live else {
        return;
    };
    let measured = Measured::of(live);
    ask(cx, &Step::LiveStart(&measured), out);
    if let Some(fact) = &live.not_run {
        ask(cx, &Step::LiveNotRun(&measured, fact), out);
        return;
    }
    ask(cx, &Step::Live(&measured), out);
    ask(cx, &Step::LiveEnd(&measured), out);
}

#[cfg(test)]
mod tests {
    use crate::vocab::Code;

    /// One rule per code and one code per rule: `tap_forces_copy` is the rule of
    /// `tap-forces-copy` (the code list comes from checks/findings/, the rule list from here).
    #[test]
    fn every_code_has_its_rule_and_every_rule_its_code() {
        let rules: Vec<String> = super::RULES
            .iter()
            .map(|(n, _)| n.replace('_', "-"))
            .collect();
        for code in Code::ALL {
            assert!(
                rules.iter().any(|r| r == code.as_str()),
                "{code} has no rule: add src/check/rules/{}.rs and its line in rules!",
                code.as_str().replace('-', "_")
            );
        }
        for rule in &rules {
            assert!(
                rule.parse::<Code>().is_ok(),
                "rule {rule} raises no code of checks/findings/"
            );
        }
    }
}
