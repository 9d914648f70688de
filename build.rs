//! Derives the finding codes from the knowledge base, so no list of codes is written by hand:
//! each file `checks/findings/<code>.toml` is one code. Generates, in `OUT_DIR`:
//!
//! - `code.rs`: the `Code` enum (one variant per file, in the order of `AREAS` then by name),
//!   `Code::ALL`, the public names and the role predicates (`roles = [...]` in the file);
//! - `findings.toml`: every entry, each under `[[finding]]` with `code = "<file name>"`, which
//!   `knowledge.rs` compiles in.
//!
//! Every file needs `area` and `watch` (which cause `zcdoctor watch` reports for the finding,
//! or what it shows instead).

use std::fmt::Write as _;
use std::path::Path;

/// The areas, in the order `zcdoctor checks` lists them (the order traffic meets them).
const AREAS: [&str; 7] = [
    "kernel", "path", "offloads", "memory", "taps", "live", "process",
];
/// The roles a finding may have, each a predicate of `Code` (`role_<name>`) with its doc.
const ROLES: [(&str, &str); 5] = [
    (
        "predicts-copies",
        "Codes whose finding predicts that sends are copied.",
    ),
    (
        "explains-copies",
        "Codes that can explain copies seen live besides the predictors.",
    ),
    (
        "path-uncertain",
        "Codes that say part of the path could not be inspected.",
    ),
    (
        "oversize-only",
        "Codes that predict copies of the live probe's oversize experiment only.",
    ),
    (
        "contradiction",
        "Codes that say the live result contradicts the prediction.",
    ),
];

struct Entry {
    name: String,
    area: usize,
    roles: Vec<&'static str>,
    body: String,
}

fn main() {
    let dir = Path::new("checks/findings");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut entries = read_entries(dir);
    entries.sort_by(|a, b| (a.area, &a.name).cmp(&(b.area, &b.name)));
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    write(&out.join("code.rs"), &code_rs(&entries));
    let mut toml = String::new();
    for e in &entries {
        let _ = write!(toml, "[[finding]]\ncode = \"{}\"\n{}\n", e.name, e.body);
    }
    write(&out.join("findings.toml"), &toml);
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
}

fn read_entries(dir: &Path) -> Vec<Entry> {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    let mut entries = Vec::new();
    for item in listing.flatten() {
        let path = item.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
        else {
            continue;
        };
        let kebab = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        assert!(
            kebab,
            "{}: a code is kebab-case and starts with a letter",
            path.display()
        );
        let body = match std::fs::read_to_string(&path) {
            Ok(b) => b,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        let table = match body.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => panic!("{} is not TOML: {e}", path.display()),
        };
        assert!(
            !table.contains_key("code"),
            "{}: the file name is the code; no `code` key",
            path.display()
        );
        let watch = table.get("watch").and_then(toml::Value::as_str);
        assert!(
            watch.is_some_and(|w| !w.trim().is_empty()),
            "{}: `watch` is required: which cause `zcdoctor watch` reports for it, or what it shows instead",
            path.display()
        );
        entries.push(Entry {
            name: name.to_string(),
            area: area_of(&path, &table),
            roles: roles_of(&path, &table),
            body,
        });
    }
    entries
}

/// The file's `area`, as its rank in [`AREAS`].
fn area_of(path: &Path, table: &toml::Table) -> usize {
    let area = table
        .get("area")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    match AREAS.iter().position(|a| *a == area) {
        Some(i) => i,
        None => panic!("{}: area {area:?} is not one of {AREAS:?}", path.display()),
    }
}

/// The file's `roles`, each one of [`ROLES`].
fn roles_of(path: &Path, table: &toml::Table) -> Vec<&'static str> {
    let Some(list) = table.get("roles") else {
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        panic!("{}: roles is a list of strings", path.display());
    };
    let mut roles = Vec::new();
    for word in list {
        let word = word.as_str().unwrap_or_default();
        match ROLES.iter().find(|(r, _)| *r == word) {
            Some((r, _)) => roles.push(*r),
            None => panic!("{}: role {word:?} is not one of {ROLES:?}", path.display()),
        }
    }
    roles
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn code_rs(entries: &[Entry]) -> String {
    let mut s = String::from(
        "/// Every finding zcdoctor can raise: one per file of `checks/findings/`.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, \
         serde::Serialize, serde::Deserialize)]\npub enum Code {\n",
    );
    for e in entries {
        let _ = writeln!(
            s,
            "    #[serde(rename = \"{}\")]\n    {},",
            e.name,
            camel(&e.name)
        );
    }
    let _ = write!(
        s,
        "}}\n\nimpl Code {{\n    /// Every code, in the order `zcdoctor checks` lists them.\n    \
         pub const ALL: [Code; {}] = [\n",
        entries.len()
    );
    for e in entries {
        let _ = writeln!(s, "        Code::{},", camel(&e.name));
    }
    s.push_str("    ];\n\n    /// The public name (kebab-case).\n    pub fn as_str(self) -> &'static str {\n        match self {\n");
    for e in entries {
        let _ = writeln!(s, "            Code::{} => \"{}\",", camel(&e.name), e.name);
    }
    s.push_str("        }\n    }\n");
    for (role, doc) in ROLES {
        let names: Vec<String> = entries
            .iter()
            .filter(|e| e.roles.contains(&role))
            .map(|e| format!("Code::{}", camel(&e.name)))
            .collect();
        let body = if names.is_empty() {
            "false".to_string()
        } else {
            format!("matches!(self, {})", names.join(" | "))
        };
        let _ = write!(
            s,
            "\n    /// {doc}\n    pub(crate) fn role_{}(self) -> bool {{\n        {body}\n    }}\n",
            role.replace('-', "_"),
        );
    }
    s.push_str("}\n");
    s
}
