//! The layering, read from the source: no two modules use each other (at any depth: siblings
//! under one parent, with their subtrees taken as one), and the layers point one way: probes
//! never use checks or renderers, checks never use probes or renderers, renderers never use
//! probes or checks, and the shared vocabulary uses nothing of zcdoctor.
//!
//! A use is any path starting `crate::`, `super::` or `self::`, or naming a child module, in a
//! `use` item or in code (unit tests at the end of a file excluded); it points at the longest
//! module that the path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

struct Crate {
    /// Module path (relative to the crate root) to its source text.
    modules: BTreeMap<Module, String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines: `src/check/rules/mod.rs` is `check::rules`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The library's modules (`lib.rs` and what it declares) and the binary's (`main.rs`, `cli/`).
fn crates() -> (Crate, Crate) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut lib = Crate {
        modules: BTreeMap::new(),
    };
    let mut bin = Crate {
        modules: BTreeMap::new(),
    };
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        let in_bin = file.ends_with("main.rs") && file.parent() == Some(src.as_path())
            || file.starts_with(src.join("cli"));
        let module = module_of(&src, &file);
        if in_bin {
            bin.modules.insert(module, text);
        } else {
            lib.modules.insert(module, text);
        }
    }
    (lib, bin)
}

/// Every path in `text` that starts with `crate`, `super` or `self`, or with a name in
/// `children`, as its segments (`use` groups expanded).
fn paths(text: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let first = &text[start..i];
        let rooted = matches!(first, "crate" | "super" | "self") || children.contains(first);
        if !rooted || !text[i..].starts_with("::") {
            continue;
        }
        let end = path_end(text, i);
        expand(&text[start..end], &mut out);
        i = end;
    }
    out
}

/// Where the path that continues at `from` ends (after a `{...}` group if it has one).
fn path_end(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b if depth == 0 && !(b.is_ascii_alphanumeric() || b == b'_' || b == b':') => break,
            _ => {}
        }
        i += 1;
    }
    i
}

/// `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e` (as segment lists).
fn expand(path: &str, out: &mut Vec<Vec<String>>) {
    let compact: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = compact.find('{') else {
        out.push(segments(&compact));
        return;
    };
    let prefix = &compact[..open];
    let inner = compact[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&compact[open + 1..]);
    let mut depth = 0usize;
    let mut part = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                if !part.is_empty() {
                    expand(&format!("{prefix}{part}"), out);
                }
                part.clear();
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty() && *s != "*")
        .map(str::to_string)
        .collect()
}

impl Crate {
    fn children(&self, m: &Module) -> BTreeSet<String> {
        self.modules
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .map(|k| k[m.len()].clone())
            .collect()
    }

    /// The longest module that `path`, written in module `from`, names.
    fn resolve(&self, from: &Module, path: &[String]) -> Option<Module> {
        let (mut base, rest): (Module, &[String]) = match path.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &path[1..]),
            Some("self") => (from.clone(), &path[1..]),
            Some("super") => {
                let mut base = from.clone();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            Some(_) => (from.clone(), path),
            None => return None,
        };
        let mut best = self.modules.contains_key(&base).then(|| base.clone());
        for seg in rest {
            base.push(seg.clone());
            if self.modules.contains_key(&base) {
                best = Some(base.clone());
            } else {
                break;
            }
        }
        best
    }

    /// Every use between two modules neither of which contains the other, lifted to the two
    /// siblings under their nearest common parent: (parent, from-sibling, to-sibling, where).
    fn sibling_uses(&self) -> BTreeSet<(Module, String, String, String)> {
        let mut out = BTreeSet::new();
        for (m, text) in &self.modules {
            for p in paths(text, &self.children(m)) {
                let Some(to) = self.resolve(m, &p) else {
                    continue;
                };
                let common = m.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == m.len() || common == to.len() {
                    continue; // one contains the other
                }
                out.insert((
                    m[..common].to_vec(),
                    m[common].clone(),
                    to[common].clone(),
                    format!("{} uses {}", m.join("::"), p.join("::")),
                ));
            }
        }
        out
    }
}

/// A cycle among the siblings of one parent, as `a -> b -> a` with the uses that make it.
fn find_cycle(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn assert_acyclic(name: &str, krate: &Crate) {
    let mut levels: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for (parent, from, to, why) in krate.sibling_uses() {
        levels
            .entry(parent)
            .or_default()
            .entry(from)
            .or_default()
            .entry(to)
            .or_insert(why);
    }
    let mut cycles = Vec::new();
    for (parent, edges) in &levels {
        if let Some(cycle) = find_cycle(edges) {
            let uses: Vec<&str> = cycle
                .windows(2)
                .filter_map(|w| edges.get(&w[0])?.get(&w[1]).map(String::as_str))
                .collect();
            cycles.push(format!(
                "under {}: {} ({})",
                if parent.is_empty() {
                    "the crate root".to_string()
                } else {
                    parent.join("::")
                },
                cycle.join(" -> "),
                uses.join("; ")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "{name}: module cycles:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn no_module_cycle_in_the_library_or_the_binary() {
    let (lib, bin) = crates();
    assert!(
        lib.modules.len() > 50,
        "the walk found the library's modules"
    );
    assert_acyclic("library", &lib);
    assert_acyclic("binary", &bin);
}

/// Each top-level module of the library and its layer: a module uses only modules of a lower
/// layer, so probes, checks and the sink (one layer) never use each other, and renderers use no
/// probe or check. A new top-level module needs its line here.
const LAYERS: [(&str, u8); 11] = [
    ("vocab", 0),
    ("evidence", 0),
    ("kernel", 1),
    ("knowledge", 1),
    ("report", 2),
    ("probe", 3),
    ("check", 3),
    ("sink", 3),
    ("render", 4),
    ("fleet", 5),
    ("", 6), // lib.rs itself
];

#[test]
fn layers_point_one_way() {
    let (lib, _) = crates();
    let layer = |m: &str| LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let unranked: Vec<String> = lib
        .modules
        .keys()
        .filter_map(|m| m.first())
        .filter(|m| layer(m).is_none())
        .cloned()
        .collect();
    assert!(
        unranked.is_empty(),
        "modules with no layer in LAYERS: {unranked:?}"
    );
    let mut wrong = Vec::new();
    for (parent, from, to, why) in lib.sibling_uses() {
        if !parent.is_empty() {
            continue;
        }
        if let (Some(f), Some(t)) = (layer(&from), layer(&to))
            && t >= f
        {
            wrong.push(why);
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layering:\n  {}",
        wrong.join("\n  ")
    );
}

/// Only probes (and the sink, which receives the live probe's traffic) touch the OS; outside
/// them, the command line reads the files it is given and writes `--output`, and `fleet` reads
/// the reports it is given. Checks, renderers, evidence and the vocabulary do no I/O at all
/// (`nix::errno` names are data).
#[test]
fn only_probes_touch_the_os() {
    const OS: [&str; 9] = [
        "std::fs",
        "File::",
        "OpenOptions",
        "libc::",
        "Command::new",
        "TcpStream",
        "UdpSocket",
        "std::env::var",
        "nix::",
    ];
    const MAY: [&str; 6] = [
        "probe",
        "sink",
        "fleet",
        "main",
        "cli/output",
        "cli/signals",
    ];
    let (lib, bin) = crates();
    let mut wrong = Vec::new();
    let roots = lib.modules.iter().map(|m| (m, "lib"));
    for ((m, text), root) in roots.chain(bin.modules.iter().map(|m| (m, "main"))) {
        let path = if m.is_empty() {
            root.to_string()
        } else {
            m.join("/")
        };
        if MAY
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in OS {
                if code.contains(word) && !code.contains("nix::errno") {
                    wrong.push(format!("{path}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "OS access outside the probes:\n  {}",
        wrong.join("\n  ")
    );
}

/// A glob import hides which sibling a name comes from (and so a use from this test); only
/// `evidence` re-exports its parts, and unit tests import their module.
#[test]
fn no_glob_imports_but_the_evidence_reexports() {
    let (lib, bin) = crates();
    let mut wrong = Vec::new();
    for (m, text) in lib.modules.iter().chain(bin.modules.iter()) {
        for line in text.lines().filter(|l| {
            l.trim_start().starts_with("use ") || l.trim_start().starts_with("pub use ")
        }) {
            if line.trim_end().ends_with("::*;") && m.as_slice() != ["evidence".to_string()] {
                wrong.push(format!("{}: {}", m.join("::"), line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "glob imports:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_reader_finds_group_uses_and_child_paths() {
    let children: BTreeSet<String> = ["send".to_string()].into();
    let got = paths(
        "use crate::a::{b, c::{d, e}};\nfn f() { send::go(); x::send::no(); super::z::y(); }",
        &children,
    );
    let got: Vec<String> = got.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        got,
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "send::go",
            "super::z::y"
        ]
    );
}
