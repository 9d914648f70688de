//! Keeps README.md and docs/*.md in step with the binary, which is asked at test time (never a
//! list written here): every finding code of `zcdoctor checks` is in docs/codes.md with its
//! severity and title, and no other code is; every long option of every subcommand's `--help` is
//! mentioned somewhere, and no option is mentioned that no subcommand has; every relative link
//! points at a file, and at a heading of it when it names one. Needs no root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of other tools that the docs quote (cargo, systemctl, prlimit), and the one that is
/// meant not to exist. Every other `--option` in the docs must be one of zcdoctor's.
const OTHER_TOOLS_OPTIONS: &[&str] = &[
    "--all-targets", // cargo clippy
    "--locked",      // cargo install
    "--no-run",      // cargo test
    "--profile",     // cargo
    "--release",     // cargo
    "--test",        // cargo test
    "--now",         // systemctl enable
    "--memlock",     // prlimit
    "--bogus",       // the example of a usage error: an option that does not exist
];

fn zcdoctor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_zcdoctor"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("zcdoctor {args:?}: {e}"));
    assert!(
        out.status.success(),
        "zcdoctor {args:?} exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("zcdoctor prints UTF-8")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/, as (path relative to the root, text).
fn doc_files() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    let dir = root().join("docs");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut pages: Vec<String> = entries
        .map(|e| {
            e.expect("a docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    names.extend(pages);
    names
        .into_iter()
        .map(|n| {
            let text =
                std::fs::read_to_string(root().join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

fn is_code(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Code → (severity, title), from `zcdoctor checks`: one line per code, `SEVERITY code  title`.
fn binary_codes() -> BTreeMap<String, (String, String)> {
    let mut codes = BTreeMap::new();
    for line in zcdoctor(&["checks", "--color", "never"])
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        let (Some(severity), Some(code)) = (words.next(), words.next()) else {
            panic!("`zcdoctor checks` line not understood: {line:?}");
        };
        assert!(
            ["BLOCKER", "WARNING", "INFO"].contains(&severity) && is_code(code),
            "`zcdoctor checks` line not understood (did its format change?): {line:?}"
        );
        let title = words.collect::<Vec<_>>().join(" ");
        codes.insert(code.to_string(), (severity.to_lowercase(), title));
    }
    assert!(codes.len() > 10, "`zcdoctor checks` listed only {codes:?}");
    codes
}

/// The codes docs/codes.md documents: its table rows (`| `code` | severity | title |`) and its
/// headings (`### `code``).
fn documented_codes(text: &str) -> (BTreeMap<String, (String, String)>, BTreeSet<String>) {
    let mut table = BTreeMap::new();
    let mut headings = BTreeSet::new();
    for line in text.lines() {
        if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let code = cells[0].trim_end_matches('`');
            if is_code(code) && cells.len() >= 3 {
                let previous = table.insert(
                    code.to_string(),
                    (cells[1].to_string(), cells[2].to_string()),
                );
                assert!(
                    previous.is_none(),
                    "docs/codes.md: `{code}` has two table rows"
                );
            }
        } else if let Some(code) = line.strip_prefix("### `").and_then(|h| h.strip_suffix('`')) {
            assert!(
                headings.insert(code.to_string()),
                "docs/codes.md: `{code}` has two headings"
            );
        }
    }
    (table, headings)
}

#[test]
fn codes_page_lists_every_code_and_no_other() {
    let codes = binary_codes();
    let page = std::fs::read_to_string(root().join("docs/codes.md")).expect("docs/codes.md");
    let (table, headings) = documented_codes(&page);
    let mut problems = Vec::new();
    for (code, (severity, title)) in &codes {
        match table.get(code) {
            None => problems.push(format!("`{code}` has no row in the table")),
            Some(row) if row != &(severity.clone(), title.clone()) => problems.push(format!(
                "`{code}`: the table says {row:?}, `zcdoctor checks` says ({severity:?}, {title:?})"
            )),
            Some(_) => {}
        }
        if !headings.contains(code) {
            problems.push(format!("`{code}` has no heading ### `{code}`"));
        }
    }
    let named = table.keys().chain(&headings).collect::<BTreeSet<_>>();
    for code in named.into_iter().filter(|c| !codes.contains_key(*c)) {
        problems.push(format!(
            "`{code}` is documented but `zcdoctor checks` does not list it"
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/codes.md is out of step:\n{}",
        problems.join("\n")
    );
}

/// The subcommands `zcdoctor --help` lists (its `Commands:` block), `help` left out.
fn subcommands() -> Vec<String> {
    let help = zcdoctor(&["--help"]);
    let block = help
        .split_once("Commands:\n")
        .unwrap_or_else(|| panic!("no Commands: in `zcdoctor --help`:\n{help}"))
        .1;
    let subs: Vec<String> = block
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect();
    assert!(
        subs.iter().any(|s| s == "check"),
        "subcommands read: {subs:?}"
    );
    subs
}

/// The long options a `--help` text declares: on each option line, the names before the
/// description (`  -o, --output <FILE>  Write…` gives `--output`).
fn declared_options(help: &str) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for line in help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let spec = line.split("  ").next().unwrap_or(line);
        options.extend(options_in(spec).into_iter().map(|(option, _)| option));
    }
    options
}

/// Every `--option` written in a text, with its line number.
fn options_in(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        for (i, _) in line.match_indices("--") {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                continue;
            }
            let name: String = line[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            let name = name.trim_end_matches('-');
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                found.push((format!("--{name}"), number + 1));
            }
        }
    }
    found
}

#[test]
fn every_option_is_documented_and_every_documented_option_exists() {
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for option in declared_options(&zcdoctor(&["--help"])) {
        options.entry(option).or_default().push("zcdoctor".into());
    }
    for sub in subcommands() {
        for option in declared_options(&zcdoctor(&[&sub, "--help"])) {
            options.entry(option).or_default().push(sub.clone());
        }
    }
    assert!(
        options.contains_key("--target"),
        "options read: {options:?}"
    );

    let mut mentioned = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, text) in doc_files() {
        for (option, line) in options_in(&text) {
            if !options.contains_key(&option) && !OTHER_TOOLS_OPTIONS.contains(&option.as_str()) {
                problems.push(format!(
                    "{name}:{line}: {option} is no option of any subcommand"
                ));
            }
            mentioned.insert(option);
        }
    }
    for (option, subs) in &options {
        if !mentioned.contains(option) {
            problems.push(format!(
                "{option} ({}) is not mentioned in README.md or docs/",
                subs.join(", ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs and options out of step:\n{}",
        problems.join("\n")
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code blocks), repeated ones numbered as
/// GitHub numbers them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else {
            continue;
        };
        if in_code || !heading.starts_with(' ') {
            continue;
        }
        let base = anchor(heading);
        let n = seen.entry(base.clone()).or_default();
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// The targets of the inline links `[text](target)` of a Markdown text, with their line numbers.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("](") {
            if let Some(end) = line[i + 2..].find(')') {
                found.push((line[i + 2..i + 2 + end].to_string(), number + 1));
            }
        }
    }
    found
}

#[test]
fn every_relative_link_points_at_what_exists() {
    let mut problems = Vec::new();
    let mut count = 0;
    for (name, text) in doc_files() {
        let dir = Path::new(&name).parent().unwrap_or(Path::new(""));
        for (target, line) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            count += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                PathBuf::from(&name)
            } else {
                dir.join(path)
            };
            let full = root().join(&file);
            if !full.exists() {
                problems.push(format!(
                    "{name}:{line}: {target}: {} does not exist",
                    file.display()
                ));
            } else if !fragment.is_empty() && (path.is_empty() || path.ends_with(".md")) {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(fragment) {
                    problems.push(format!(
                        "{name}:{line}: {target}: no heading #{fragment} in {}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        count > 5,
        "only {count} relative links found: is the link syntax still read?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_parsers_read_markdown_and_help_as_meant() {
    assert_eq!(
        anchor("The guest tier: real bonds, VLANs, VRFs and tunnels on 5.10, 6.1 and 6.12"),
        "the-guest-tier-real-bonds-vlans-vrfs-and-tunnels-on-510-61-and-612"
    );
    assert_eq!(
        anchor("`zcdoctor check` without a live probe"),
        "zcdoctor-check-without-a-live-probe"
    );
    let options = options_in("a --target x, `--fail-on`; |---|---| a--b --- --Big -- --api=both");
    let names: Vec<&str> = options.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(names, ["--target", "--fail-on", "--api"]);
    let help = "Options:\n  -o, --output <FILE>  Write it (same as --format json)\n      --json\n";
    assert_eq!(
        declared_options(help),
        BTreeSet::from(["--output".into(), "--json".into()])
    );
    let (table, headings) = documented_codes("| `a-b` | info | T |\n| code | x | y |\n### `a-b`\n");
    assert_eq!(table["a-b"], ("info".into(), "T".into()));
    assert_eq!(headings, BTreeSet::from(["a-b".to_string()]));
}
