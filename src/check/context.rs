//! What every rule is asked with: the evidence and its shared analyses ([`Context`]), and the
//! step of the walk the rules are asked at ([`Step`]).
//!
//! The steps follow the traffic: the host, the start of each way out, the path as a whole, how
//! each way's walk ended, the devices, the host's limits, the taps (each group of them), the
//! processes diagnosed by pid (each of them), then the live probe. At each step every rule of
//! the registry (`rules/mod.rs`) is asked in turn and answers only the steps it is about, so a
//! finding raised for the first way comes before one raised for the second, as a reader of the
//! report expects.

use super::hops::{Hop, Way, WayStart, hops, way_starts, ways};
use super::live::Measured;
use super::offloads::Carriers;
use super::process::Subject;
use super::taps::{TapGroup, TapsOnPath};
use crate::evidence::{Evidence, Protocol};

/// The evidence, the protocol diagnosed, and the analyses more than one rule reads.
pub struct Context<'a> {
    pub ev: &'a Evidence,
    pub protocol: Protocol,
    /// Every way out ([`ways`]): the diagnosed one first.
    pub ways: Vec<Way<'a>>,
    /// Every stack on the path, each device once ([`hops`]).
    pub hops: Vec<Hop<'a>>,
    /// The ETH_P_ALL sockets on the path, grouped by owner and setting; `None` when the tap
    /// probe did not run.
    pub taps: Option<TapsOnPath<'a>>,
    /// The transmitting hops, by the address families crossing their devices (offloads).
    pub carriers: Carriers<'a>,
}

impl<'a> Context<'a> {
    pub fn new(ev: &'a Evidence, protocol: Protocol) -> Context<'a> {
        let hops = hops(ev);
        let ways = ways(ev);
        let taps = TapsOnPath::of(ev, &hops);
        let carriers = Carriers::of(ev, &ways, &hops);
        Context {
            ev,
            protocol,
            ways,
            hops,
            taps,
            carriers,
        }
    }

    /// Where each way starts ([`WayStart`]), in the order of [`Context::ways`].
    pub fn way_starts(&self) -> Vec<WayStart<'_, 'a>> {
        way_starts(&self.ways)
    }
}

/// The step of the walk a rule is asked at.
pub enum Step<'s, 'a> {
    /// The host as a whole: its kernel.
    Host,
    /// The device a way starts at (each device once) and the devices of its stack.
    WayStart(&'s WayStart<'s, 'a>),
    /// The path as a whole, once every way's start was seen: tunnels, veths further on.
    Path,
    /// How the walk of a way beyond its stack ended.
    WayEnd(&'s Way<'a>),
    /// The devices of every hop: tunnel MTUs and offloads.
    Devices,
    /// The host's and namespace's limits (sysctls).
    Limits,
    /// Before the taps: whether they could be checked at all.
    TapsStart,
    /// One group of taps on the path (one owner, one setting).
    Tap(&'s TapGroup<'a>),
    /// After the taps: what the scan could not read.
    TapsEnd(&'s TapsOnPath<'a>),
    /// A process diagnosed by pid.
    Process(&'s Subject<'a>),
    /// A live probe was asked for: what io_uring lacked, before anything else.
    LiveStart(&'s Measured<'a>),
    /// The live probe did not send: `fact` says why.
    LiveNotRun(&'s Measured<'a>, &'s str),
    /// The live probe sent: what the kernel said about its sends.
    Live(&'s Measured<'a>),
    /// After every live finding: the live probe's own pass line.
    LiveEnd(&'s Measured<'a>),
    /// The vsock live probe (`--target vsock:CID:PORT`).
    Vsock(&'a crate::evidence::VsockProbe),
}
