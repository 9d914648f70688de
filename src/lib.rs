//! zcdoctor: why MSG_ZEROCOPY sends fall back to copying.
//!
//! One direction: [`probe`] reads the host into [`evidence::Evidence`]; [`check`] judges it into
//! findings without any I/O; [`render`] prints the [`report::Report`].

pub mod check;
pub mod evidence;
pub mod fleet;
pub mod kernel;
pub mod knowledge;
pub mod probe;
pub mod render;
pub mod report;
pub mod sink;
pub mod vocab;
