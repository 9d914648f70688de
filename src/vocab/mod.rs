//! The vocabulary every layer shares: finding [`Code`]s, [`Severity`], [`Finding`], [`Passed`]
//! and [`ProcessNote`]. A leaf: it imports nothing of zcdoctor, so probes, checks, renderers
//! and the knowledge base can all use it without a cycle (`tests/layers.rs` keeps it so).

mod code;
mod finding;

pub use code::Code;
pub use finding::{Finding, NoteAbout, Passed, ProcessNote, Severity};
