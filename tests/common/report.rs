//! Reading zcdoctor's JSON report: findings, their codes, the pids they name.

use serde_json::Value;

/// Finds the finding with `code` in a JSON report.
pub fn finding<'a>(doc: &'a Value, code: &str) -> Option<&'a Value> {
    doc["findings"]
        .as_array()?
        .iter()
        .find(|f| f["code"] == code)
}

/// All finding codes of a JSON report.
pub fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Pids named in a finding's evidence.
pub fn pids(f: &Value) -> Vec<u64> {
    f["evidence"]["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}
