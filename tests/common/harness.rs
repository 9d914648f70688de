//! The harness of the test binaries (`harness = false`): libtest's command line and output,
//! with privileged cases, and cases that need outside programs, reported as ignored (with the
//! reason) where they cannot run, and failed instead under `ZCDOCTOR_REQUIRE_PRIV=1`.

use super::Netns;

/// Why privileged tests cannot run here (not root, or no network namespace can be made);
/// `None` when they can.
pub fn privilege_problem() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_string());
    }
    Netns::try_new("probe")
        .err()
        .map(|e| format!("cannot create a network namespace: {e}"))
}

/// A test function of a privileged test file, and how the harness treats it.
pub enum Case {
    /// Needs root and network namespaces: ignored (and counted as such) without them, failed
    /// without them when `ZCDOCTOR_REQUIRE_PRIV=1`.
    Privileged(&'static str, fn()),
    /// Runs everywhere.
    Plain(&'static str, fn()),
    /// Run only on request (`-- --ignored NAME`): benchmark helpers.
    OnRequest(&'static str, fn()),
    /// Needs outside programs on PATH (`bash tests/run` installs them): ignored, with the
    /// reason, where one is missing; failed instead under `ZCDOCTOR_REQUIRE_PRIV=1`.
    /// `privileged`: needs root and network namespaces too.
    Needs {
        name: &'static str,
        tools: &'static [&'static str],
        privileged: bool,
        f: fn(),
    },
    /// A `Needs` case whose tools are missing (internal: the harness's resolution).
    Missing(&'static str, String),
}

/// The program `name` on PATH, if any.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The `main` of a privileged test file (`harness = false` in Cargo.toml): libtest's command
/// line and output, with privileged cases reported as *ignored* where they cannot run, so a
/// skipped test never counts as passed.
pub fn run_cases(cases: Vec<Case>) -> ! {
    run_named(cases.into_iter().map(|c| (String::new(), c)).collect())
}

/// The `main` of a test binary made of modules (`harness_modules!`): each module's cases, named
/// `module::case`, run as `run_cases` runs them.
pub fn run_modules(modules: Vec<(&str, Vec<Case>)>) -> ! {
    run_named(
        modules
            .into_iter()
            .flat_map(|(module, cases)| cases.into_iter().map(move |c| (format!("{module}::"), c)))
            .collect(),
    )
}

/// Runs cases, each named by its prefix and its own name.
fn run_named(cases: Vec<(String, Case)>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let problem = privilege_problem();
    let required = std::env::var("ZCDOCTOR_REQUIRE_PRIV").as_deref() == Ok("1");
    if let Some(why) = &problem {
        announce_privilege_problem(why, required);
    }
    let trials = cases
        .into_iter()
        .map(|(prefix, case)| {
            let case = resolve_needs(&prefix, case, required);
            to_trial(
                format!("{prefix}{}", case.name()),
                case,
                problem.as_deref(),
                required,
            )
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Says once, on stderr, why the privileged cases of this binary cannot run, and what happens
/// to them.
fn announce_privilege_problem(why: &str, required: bool) {
    eprintln!(
        "{}: privileged tests cannot run here ({why}){}",
        std::env::args().next().unwrap_or_default(),
        if required {
            "; ZCDOCTOR_REQUIRE_PRIV=1 makes each of them fail"
        } else {
            "; they are reported as ignored (SKIPPED): run as root to include them"
        }
    );
}

/// A `Needs` case as `Privileged` or `Plain` when its tools are on PATH, else `Missing` with
/// the reason (said on stderr); any other case as it is.
fn resolve_needs(prefix: &str, case: Case, required: bool) -> Case {
    let Case::Needs {
        name,
        tools,
        privileged,
        f,
    } = case
    else {
        return case;
    };
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| on_path(t).is_none())
        .collect();
    if missing.is_empty() {
        return if privileged {
            Case::Privileged(name, f)
        } else {
            Case::Plain(name, f)
        };
    }
    let why = format!(
        "{} not installed (bash tests/run installs it)",
        missing.join(", ")
    );
    eprintln!(
        "{prefix}{name}: {why}{}",
        if required { "" } else { ": ignored" }
    );
    Case::Missing(name, why)
}

impl Case {
    fn name(&self) -> &'static str {
        match self {
            Case::Privileged(name, _)
            | Case::Plain(name, _)
            | Case::OnRequest(name, _)
            | Case::Missing(name, _)
            | Case::Needs { name, .. } => name,
        }
    }
}

/// A test that runs `f`.
fn trial(name: String, f: fn()) -> libtest_mimic::Trial {
    libtest_mimic::Trial::test(name, move || {
        f();
        Ok(())
    })
}

/// The libtest trial of a resolved case: run, ignored, or failed with the reason it cannot run
/// under `ZCDOCTOR_REQUIRE_PRIV=1` (`required`).
fn to_trial(
    name: String,
    case: Case,
    problem: Option<&str>,
    required: bool,
) -> libtest_mimic::Trial {
    match case {
        Case::Needs { .. } => unreachable!("resolved by resolve_needs"),
        Case::Missing(_, why) if required => libtest_mimic::Trial::test(name, move || {
            Err(format!("{why}, and ZCDOCTOR_REQUIRE_PRIV=1").into())
        }),
        Case::Missing(_, _) => trial(name, || {}).with_ignored_flag(true),
        Case::Plain(_, f) => trial(name, f),
        Case::OnRequest(_, f) => trial(name, f).with_ignored_flag(true),
        Case::Privileged(_, f) => match (problem, required) {
            (None, _) => trial(name, f),
            (Some(why), true) => {
                let why = why.to_string();
                libtest_mimic::Trial::test(name, move || {
                    Err(
                        format!("privileged test cannot run ({why}) and ZCDOCTOR_REQUIRE_PRIV=1")
                            .into(),
                    )
                })
            }
            (Some(_), false) => trial(name, f).with_ignored_flag(true),
        },
    }
}

/// `cases!(privileged: [a, b needs ["tcpdump"]], plain: [c, d needs ["man"]], on_request: [e]);`
/// writes a test module's `pub fn cases() -> Vec<Case>` (each list optional, in that order):
/// the binary's `main` (`harness_modules!`) runs the cases of all its modules. A case that
/// `needs` outside programs is ignored with the reason where one is missing (failed under
/// `ZCDOCTOR_REQUIRE_PRIV=1`), as `Case::Needs`.
#[macro_export]
macro_rules! cases {
    (privileged: [$($p:ident $(needs [$($tool:literal),* $(,)?])?),* $(,)?]
     $(, plain: [$($t:ident $(needs [$($ptool:literal),* $(,)?])?),* $(,)?])?
     $(, on_request: [$($r:ident),* $(,)?])? $(,)?) => {
        /// This module's test cases.
        #[allow(clippy::vec_init_then_push)]
        pub fn cases() -> Vec<$crate::common::Case> {
            #[allow(unused_mut)]
            let mut cases = vec![$($crate::common::Case::Needs {
                name: stringify!($p),
                tools: &[$($($tool),*)?],
                privileged: true,
                f: $p,
            }),*];
            $($(cases.push($crate::common::Case::Needs {
                name: stringify!($t),
                tools: &[$($($ptool),*)?],
                privileged: false,
                f: $t,
            });)*)?
            $($(cases.push($crate::common::Case::OnRequest(stringify!($r), $r));)*)?
            cases
        }
    };
}

/// `harness_main!(privileged: [a, b needs ["ethtool"]], plain: [c], on_request: [d]);` writes
/// the `main` of a test binary of one file (the lists of `cases!`).
#[macro_export]
macro_rules! harness_main {
    ($($lists:tt)*) => {
        $crate::cases!($($lists)*);
        fn main() {
            $crate::common::run_cases(cases())
        }
    };
}

/// `harness_modules!(cli, probe);` writes the `main` of a test binary of several modules, each
/// with its `cases!`: their cases run as `module::case`.
#[macro_export]
macro_rules! harness_modules {
    ($($module:ident),+ $(,)?) => {
        fn main() {
            $crate::common::run_modules(vec![$((stringify!($module), $module::cases())),+])
        }
    };
}
