//! The report's JSON schema: `zcdoctor schema` prints the committed one, and a live report
//! validates against it.

use crate::common::Netns;
use crate::{TmpDir, live_snapshot, root, text, zcdoctor};
use serde_json::Value;

fn schema_command_prints_the_committed_schema() {
    let out = zcdoctor(&["schema"]);
    assert!(out.status.success());
    let committed = std::fs::read(root().join("schema/report.schema.json")).expect("schema");
    assert_eq!(text(&out.stdout), text(&committed));
}

fn live_report_validates_against_the_schema() {
    let ns = Netns::new("schema");
    let dir = TmpDir::new("schema");
    let ev = live_snapshot(&ns, &dir.0);
    let out = zcdoctor(&["check", "--from", &ev, "--json", "--fail-on", "never"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["verdict"]["basis"], "live", "{doc:#}");
    let s = &doc["live_summary"];
    assert!(s["completions"].as_u64().unwrap_or(0) > 0, "{s:#}");
    assert_eq!(
        s["runs"].as_array().map(Vec::len),
        doc["live_probe"]["runs"].as_array().map(Vec::len)
    );
    assert!(
        s["runs"][0]["zerocopy_phase"]["bytes_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    let schema: Value = serde_json::from_slice(&zcdoctor(&["schema"]).stdout).expect("schema");
    let v = jsonschema::validator_for(&schema).expect("compiles");
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

crate::cases!(
    privileged: [live_report_validates_against_the_schema],
    plain: [schema_command_prints_the_committed_schema]
);
