//! `tc-bpf-program`: a BPF program runs on the path as a tc filter (cls_bpf) or action
//! (act_bpf). It may pull data into the header, write the packet or redirect it, any of which
//! can copy zerocopy pages, and none of which can be told without running it: the finding names
//! the program (id, name, tag) and leaves the verdict to the live probe or `watch`. With tc
//! filters on the path and nothing that copies, the pass line names them.
//!
//! Reads each hop's tc filters, their actions and programs (`tc`).
//! Explanation and fix text: checks/findings/tc-bpf-program.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::tc::{OnPath, on_path};
use crate::evidence::BpfProgram;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Path) {
        return;
    }
    let filters = on_path(&cx.hops);
    for f in &filters {
        if let Some(p) = &f.filter.bpf {
            raise(cx, f, p, None, out);
        }
        for action in f.filter.actions.iter().filter(|a| a.kind == "bpf") {
            let program = action.bpf.clone().unwrap_or_default();
            raise(cx, f, &program, Some(OnPath::action_name(action)), out);
        }
    }
    pass(&filters, out);
}

fn raise(cx: &Context, f: &OnPath, p: &BpfProgram, action: Option<String>, out: &mut Findings) {
    let runs = match &action {
        Some(a) => format!("runs {a}, BPF program {}", p.label()),
        None => format!("runs BPF program {}", p.label()),
    };
    let summary = format!(
        "{} {runs}: a BPF program cannot be judged statically: it may pull data into the header (bpf_skb_pull_data), write the packet (bpf_skb_store_bytes) or redirect it (bpf_redirect) where zcdoctor's walk does not follow, and any of these can copy your zerocopy sends",
        f.name()
    );
    let mut evidence = f.evidence(None);
    evidence["program"] = serde_json::json!(p);
    let iface = &cx.ev.interface;
    let mut fix = vec![format!(
        "Prove it with the kernel's count: zcdoctor check {iface} --target ADDR (the live probe's COPIED completions), or zcdoctor watch {iface} on the real traffic."
    )];
    if let Some(id) = p.id {
        fix.push(format!(
            "See what the program does: bpftool prog show id {id}; bpftool prog dump xlated id {id} (calls to bpf_skb_pull_data, bpf_skb_store_bytes, bpf_redirect*)."
        ));
    }
    out.raise(Code::TcBpfProgram, summary, evidence, fix);
}

/// The filters on the path when none of the tc codes fired: what they are.
fn pass(filters: &[OnPath], out: &mut Findings) {
    let tc_codes = [
        Code::TcMirredCopies,
        Code::TcActionWrites,
        Code::TcBpfProgram,
    ];
    if filters.is_empty() || tc_codes.iter().any(|c| out.has(*c)) {
        return;
    }
    let named: Vec<String> = filters
        .iter()
        .take(4)
        .map(|f| {
            let kinds: Vec<&str> = f.filter.actions.iter().map(|a| a.kind.as_str()).collect();
            let actions = if kinds.is_empty() {
                "no action".to_string()
            } else {
                format!("actions {}", kinds.join(", "))
            };
            format!("{} ({actions})", f.name().trim_start_matches("tc "))
        })
        .collect();
    let more = match filters.len() {
        n if n > 4 => format!(" and {} more", n - 4),
        _ => String::new(),
    };
    out.pass(
        "tc",
        format!(
            "{} tc filter(s) on the path, none that copies: {}{more}",
            filters.len(),
            named.join("; ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{evidence_with_kernel, run};
    use crate::evidence::{BpfProgram, Protocol, TcAction, TcFilter, TcFilters, TcHook};

    fn filter(kind: &str, bpf: Option<BpfProgram>, actions: Vec<TcAction>) -> TcFilter {
        TcFilter {
            hook: TcHook::Egress,
            kind: kind.into(),
            pref: 1,
            protocol: 3,
            handle: 1,
            chain: None,
            bpf,
            actions,
        }
    }

    #[test]
    fn a_cls_bpf_program_is_named_and_left_to_the_live_probe() {
        let mut ev = evidence_with_kernel("6.18.0");
        let program = BpfProgram {
            id: Some(42),
            name: Some("lb.o:[tc]".into()),
            tag: Some("a04f5eef06a7f555".into()),
            direct_action: true,
        };
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![filter("bpf", Some(program), Vec::new())],
            ..TcFilters::default()
        });
        let out = run(&ev, Protocol::Udp);
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::TcBpfProgram)
            .expect("raised");
        assert!(
            f.summary.contains("runs BPF program id 42 name lb.o:[tc] tag a04f5eef06a7f555 (direct-action): a BPF program cannot be judged statically"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["program"]["id"], 42);
        assert!(f.remediation[1].contains("bpftool prog dump xlated id 42"));
        assert!(Code::TcBpfProgram.leaves_path_uncertain());
    }

    #[test]
    fn harmless_filters_get_a_pass_line() {
        let mut ev = evidence_with_kernel("6.18.0");
        let skbedit = TcAction {
            order: 1,
            kind: "skbedit".into(),
            index: Some(1),
            mirred: None,
            bpf: None,
        };
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![filter("u32", None, vec![skbedit])],
            ..TcFilters::default()
        });
        let out = run(&ev, Protocol::Udp);
        assert!(out.findings.iter().all(|f| f.code != Code::TcBpfProgram));
        let line = &out
            .passed
            .iter()
            .find(|p| p.check == "tc")
            .expect("pass")
            .detail;
        assert!(
            line.starts_with("1 tc filter(s) on the path, none that copies: egress filter u32 pref 1 handle 0::1 on"),
            "{line}"
        );
        assert!(line.ends_with("(actions skbedit)"), "{line}");
    }
}
