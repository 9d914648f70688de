//! The vocabulary every layer shares: finding [`Code`]s, [`Severity`], [`Finding`] and
//! [`Passed`]. A leaf: it imports nothing of zcdoctor, so probes, checks, renderers and the
//! knowledge base can all use it without a cycle (`tests/layers.rs` keeps it so).

mod code;
mod finding;

pub use code::Code;
pub use finding::{Finding, Passed, Severity};
