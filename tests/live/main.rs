//! The live probe: the kernel's own answer (completions flagged COPIED) on real paths.
//! - `cli`: `zcdoctor check IFACE --target ADDR` proves verdicts and names culprits (`live-copied`,
//!   `zerocopy-enobufs`, `udp-fragmentation`, `local-delivery` in the peer).
//! - `probe`: `probe::live::run` in a namespace: phases, not-run causes, stop flag, byte cap.
//! - `proof`: what a proof needs: exit 3 when not proven, tiny samples, concurrent probes,
//!   SIGTERM and --max-run-time (`live-sample-too-small`, `live-timing-unreliable`).
//! - `uring`: `--api io_uring|both`: SEND_ZC proves the same verdicts (`zerocopy-enomem`,
//!   `io-uring-unavailable`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod probe;
mod proof;
mod uring;

harness_modules!(cli, probe, proof, uring);
