//! The recorded hosts: `fixtures/<area>/<name>/` holds `evidence.json` (the recording),
//! `expect.toml` (its expected findings and verdict), `report.json` and `report.txt` (its exact
//! reports). Names are unique across areas: `fixture::NAME` is one test case.

use std::path::{Path, PathBuf};

/// `fixtures/` of the repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture's directory, sorted by area, then name.
pub fn dirs() -> Vec<PathBuf> {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    let all: Vec<PathBuf> = subdirs(&root()).iter().flat_map(|a| subdirs(a)).collect();
    let mut names: Vec<String> = all.iter().map(|d| name(d)).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        panic!(
            "two fixtures are named {} (names are unique across areas)",
            w[0]
        );
    }
    all
}

/// The directory of the fixture `name`, whatever its area.
pub fn dir(name: &str) -> PathBuf {
    dirs()
        .into_iter()
        .find(|d| d.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no fixture named {name} in fixtures/<area>/"))
}

/// A fixture's name: its directory's.
pub fn name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string()
}
