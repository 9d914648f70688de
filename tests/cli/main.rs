//! The command line end to end.
//! - `errors`: refusals: usage errors, bounded and validated recordings, escaped messages,
//!   buffered output (no privileges: every `check` reads a recording).
//! - `codes`: findings that need an unusual host state built for real (a device down, a lower
//!   device elsewhere, taps not checked or unreadable, a probe that could not send).
//! - `watch`: `zcdoctor watch`'s refusal on this host (no kprobe PMU) and its usage errors.

#[path = "../common/mod.rs"]
mod common;

mod codes;
mod errors;
mod watch;

harness_modules!(errors, codes, watch);
