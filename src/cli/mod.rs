//! The binary's side of the program: options, signals, progress display. The library does the
//! work; nothing here decides a diagnosis.

pub mod args;
pub mod output;
pub mod parse;
pub mod progress;
pub mod signals;
pub mod usage;
