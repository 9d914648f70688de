//! A recording is checked before anything diagnoses it: what the probes cannot produce is
//! refused with the field that is wrong, instead of becoming a confident diagnosis of nonsense.

use std::collections::BTreeMap;

use super::{Device, EVIDENCE_VERSION, Evidence, MAX_ROUTES};

/// What is wrong with a recording: one line, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The JSON path of the field, e.g. `stack[1].features`.
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// `Ok` when the probes could have recorded `ev`.
pub fn validate(ev: &Evidence) -> Result<(), Invalid> {
    if ev.evidence_version > EVIDENCE_VERSION {
        return Err(invalid(
            "evidence_version",
            format!(
                "{} is newer than this build reads ({EVIDENCE_VERSION}); diagnose it with a newer zcdoctor",
                ev.evidence_version
            ),
        ));
    }
    // A vsock target, or `check --pid` with no IP path, records no device: nothing else may
    // then claim one.
    let no_ip_path = ev.vsock.is_some() || (ev.live.is_none() && !ev.processes.is_empty());
    if !(no_ip_path && ev.stack.is_empty() && ev.interface.is_empty() && ev.path.is_none()) {
        check_stack("", &ev.interface, &ev.stack)?;
    }
    if let Some(serving) = &ev.serving {
        if serving.routes.len() > MAX_ROUTES {
            return Err(invalid(
                "serving.routes",
                format!(
                    "{} further destinations; a report diagnoses at most {MAX_ROUTES}",
                    serving.routes.len()
                ),
            ));
        }
        for (i, r) in serving.routes.iter().enumerate() {
            check_stack(&format!("serving.routes[{i}]."), &r.interface, &r.stack)?;
        }
    }
    if let Some(live) = &ev.live {
        for (i, r) in live.runs.iter().enumerate() {
            if r.copied > r.completions {
                return Err(invalid(
                    format!("live.runs[{i}].copied"),
                    format!(
                        "{} copied of {} completions ({} run)",
                        r.copied, r.completions, r.pattern
                    ),
                ));
            }
            if r.completions > r.sends {
                return Err(invalid(
                    format!("live.runs[{i}].completions"),
                    format!(
                        "{} completions of {} sends ({} run)",
                        r.completions, r.sends, r.pattern
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One device stack and the interface it is for: `at` prefixes the field names.
fn check_stack(at: &str, interface: &str, stack: &[Device]) -> Result<(), Invalid> {
    let Some(first) = stack.first() else {
        return Err(invalid(
            format!("{at}stack"),
            "empty: the diagnosed device is always recorded",
        ));
    };
    if first.name != interface {
        return Err(invalid(
            format!("{at}interface"),
            format!(
                "{:?} is not the first device of the stack ({:?})",
                interface, first.name
            ),
        ));
    }
    let mut by_ifindex: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, d) in stack.iter().enumerate() {
        if let Some(first) = by_ifindex.insert(d.ifindex, i) {
            return Err(invalid(
                format!("{at}stack[{i}].ifindex"),
                format!(
                    "{} ({:?}) is also the ifindex of stack[{first}] ({:?})",
                    d.ifindex, d.name, stack[first].name
                ),
            ));
        }
        if d.features.as_ref().is_some_and(|f| f.0.is_empty()) {
            return Err(invalid(
                format!("{at}stack[{i}].features"),
                format!(
                    "present but empty for {:?} (unreadable features are recorded as null)",
                    d.name
                ),
            ));
        }
        for (j, lower) in d.lowers.iter().enumerate() {
            if !stack.iter().any(|x| &x.name == lower) {
                return Err(invalid(
                    format!("{at}stack[{i}].lowers[{j}]"),
                    format!(
                        "{lower:?} (below {:?}) is not a device of the stack",
                        d.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;
    use crate::evidence::Features;

    #[test]
    fn fixtures_are_valid() {
        for name in ["seed", "live-clean", "vlan-no-tx-checksum"] {
            assert_eq!(validate(&fixture(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = fixture("seed");
        let field = |ev: &Evidence| validate(ev).map_err(|e| e.field);

        let mut ev = base.clone();
        ev.evidence_version = EVIDENCE_VERSION + 1;
        assert_eq!(field(&ev), Err("evidence_version".into()));

        let mut ev = base.clone();
        ev.stack.clear();
        assert_eq!(field(&ev), Err("stack".into()));

        let mut ev = base.clone();
        ev.interface = "eth0".into();
        assert_eq!(field(&ev), Err("interface".into()));

        let mut ev = base.clone();
        ev.stack[2].features = Some(Features::default());
        assert_eq!(field(&ev), Err("stack[2].features".into()));

        let mut ev = base.clone();
        ev.stack[2].ifindex = ev.stack[1].ifindex;
        assert_eq!(field(&ev), Err("stack[2].ifindex".into()));

        let mut ev = base.clone();
        ev.stack[0].lowers.push("eth9".into());
        assert_eq!(field(&ev), Err("stack[0].lowers[2]".into()));
    }

    #[test]
    fn other_ways_of_a_process_are_checked_like_the_first() {
        let base = fixture("process-pid-many-ways");
        assert_eq!(validate(&base), Ok(()));
        let field = |ev: &Evidence| validate(ev).map_err(|e| e.field);

        let mut ev = base.clone();
        ev.serving.as_mut().expect("serving").routes[1].interface = "eth9".into();
        assert_eq!(field(&ev), Err("serving.routes[1].interface".into()));

        let mut ev = base.clone();
        ev.serving.as_mut().expect("serving").routes[2]
            .stack
            .clear();
        assert_eq!(field(&ev), Err("serving.routes[2].stack".into()));

        let mut ev = base.clone();
        let serving = ev.serving.as_mut().expect("serving");
        let one = serving.routes[0].clone();
        serving.routes.resize(MAX_ROUTES + 1, one);
        assert_eq!(field(&ev), Err("serving.routes".into()));
    }

    #[test]
    fn live_counts_are_consistent() {
        let base = fixture("live-clean");
        let mut ev = base.clone();
        let run = &mut ev.live.as_mut().expect("live").runs[0];
        run.copied = run.completions + 1;
        assert_eq!(
            validate(&ev).map_err(|e| e.field),
            Err("live.runs[0].copied".into())
        );
        let mut ev = base.clone();
        let run = &mut ev.live.as_mut().expect("live").runs[0];
        run.completions = run.sends + 1;
        assert_eq!(
            validate(&ev).map_err(|e| e.field),
            Err("live.runs[0].completions".into())
        );
    }
}
