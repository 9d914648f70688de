//! Probes: the only code that touches the OS. Each fills a part of [`crate::evidence::Evidence`].

pub mod host;
pub mod live;
pub mod netlink;
pub mod stack;
pub mod taps;
