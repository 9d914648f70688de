//! schema/report.schema.json is the JSON Schema generated from the Report types (`zcdoctor
//! schema`): it must match what the types generate now, and every fixture's report (recorded and
//! diagnosed anew, live ones included) must validate against it.
//!
//! After an intended change of the types, `ZCDOCTOR_BLESS=1 cargo test --profile fast --test
//! schema` rewrites the committed schema; review the diff (an added field keeps
//! `schema_version` 1, a changed meaning bumps it).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use zcdoctor::check::{Protocol, diagnose};
use zcdoctor::evidence::Evidence;

use common::fixtures;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> String {
    let schema = zcdoctor::report::json_schema();
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}

fn committed_path() -> PathBuf {
    root().join("schema/report.schema.json")
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&generated()).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn committed_schema_matches_the_types() {
    let now = generated();
    let path = committed_path();
    if std::env::var_os("ZCDOCTOR_BLESS").is_some() {
        std::fs::write(&path, &now).expect("write schema");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == now,
        "schema/report.schema.json differs from the schema the types generate: \
         rerun with ZCDOCTOR_BLESS=1 and review the diff"
    );
}

#[test]
fn every_fixture_report_validates() {
    let v = validator();
    let mut checked = 0;
    let mut live = 0;
    for dir in fixtures::dirs() {
        let name = fixtures::name(&dir);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).expect(file);
        let doc: Value = serde_json::from_str(&read("report.json")).expect(&name);
        let e = errors(&v, &doc);
        assert!(e.is_empty(), "{name}/report.json: {e:?}");
        checked += 1;
        // Diagnosed anew, for both protocols: the report the binary would print.
        let ev: Evidence = serde_json::from_str(&read("evidence.json")).expect(&name);
        for proto in [Protocol::Udp, Protocol::Tcp] {
            let report = diagnose(&ev, proto, zcdoctor::knowledge::Knowledge::builtin());
            let doc = serde_json::to_value(&report).expect("report serializes");
            let e = errors(&v, &doc);
            assert!(e.is_empty(), "{name} ({proto}): {e:?}");
            if report.live_summary.is_some() {
                live += 1;
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} fixtures checked");
    assert!(live > 10, "only {live} live reports checked");
}

#[test]
fn the_schema_rejects_what_is_not_a_report() {
    let v = validator();
    let p = fixtures::dir("live-clean").join("report.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
    assert!(v.is_valid(&doc));
    doc["verdict"]["zerocopy"] = Value::from("maybe");
    assert!(!v.is_valid(&doc));
    doc["verdict"]["zerocopy"] = Value::from("yes");
    doc["live_summary"]["sends"] = Value::from(-1);
    assert!(!v.is_valid(&doc));
    if let Some(o) = doc.as_object_mut() {
        o.remove("host");
    }
    assert!(!v.is_valid(&doc));
}
