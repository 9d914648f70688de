//! Taps: packet sockets that make zerocopy sends copy (`tap-forces-copy`, `tap-ignores-outgoing`,
//! `tap-unknown-setting`, `taps-not-checked`).
//! - `cli`: `zcdoctor check` with real culprits (tcpdump, dhclient, lldpd) and sockets of this
//!   process in throwaway namespaces: every tap on the path named with its pid and fix.
//! - `probe`: the tap probe (`probe::taps::scan`) against real packet sockets: owners, bound
//!   devices, PACKET_IGNORE_OUTGOING, fanout, unreadable owners.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod probe;

harness_modules!(cli, probe);
