//! UDP: the patterns `datagram` (the largest payload that fits the path MTU), `gso`
//! (`UDP_SEGMENT` super-datagrams cut into that payload) and on request `oversize` (one byte
//! over, fragmented), each on its own connected socket.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::socket::{self, sockopt};

use super::phase::{AlignedBuf, Pattern, Transport};
use super::{Ctx, LiveOptions, NotRunFact, socket as probe_socket};
use crate::evidence::{LiveNote, LiveProbe, NotRun, OsError, RunPattern};

/// How long completions may take to arrive after a UDP phase.
const GRACE: Duration = Duration::from_millis(200);
/// `UDP_MAX_SEGMENTS` of older kernels (raised to 128 in 6.x; 64 works everywhere).
const UDP_MAX_SEGMENTS: usize = 64;
/// Used when neither the socket nor the route tells the path MTU.
const FALLBACK_MTU: u32 = 1500;

const TRANSPORT: Transport = Transport {
    grace: GRACE,
    between_phases: |_| {},
};

pub(super) fn run(ctx: &mut Ctx, probe: &mut LiveProbe) {
    let opts = ctx.opts;
    let v6 = opts.target.is_ipv6();
    let first = match connected_socket(opts, &mut probe.notes) {
        Ok(fd) => fd,
        Err(error) => {
            NotRunFact {
                sentence: format!("cannot set up the probe's UDP socket: {error}"),
                cause: NotRun::Socket { error },
            }
            .record(probe);
            return;
        }
    };
    let route_mtu = probe.route.as_ref().and_then(|r| r.mtu);
    let mtu = match probe_socket::path_mtu(&first, v6) {
        Ok(m) if m as usize > headers(v6) => m,
        Ok(_) | Err(_) => route_mtu.unwrap_or(FALLBACK_MTU),
    };
    if let Some(route) = probe.route.as_mut() {
        if route.mtu.is_none() {
            route.mtu = Some(mtu);
        }
    }
    let (patterns, note) = patterns(mtu, v6, opts.oversize);
    probe.notes.extend(note);
    let payload = patterns.first().map_or(1, |p| p.send_size);

    let largest = patterns.iter().map(|p| p.send_size).max().unwrap_or(1);
    let buf = AlignedBuf::new(largest);
    let mut first = Some(first);
    for pattern in &patterns {
        if ctx.stopped() {
            break;
        }
        let fd = match first.take() {
            Some(fd) => fd,
            None => match connected_socket(opts, &mut Vec::new()) {
                Ok(fd) => fd,
                Err(error) => {
                    probe.notes.push(LiveNote::PatternSkipped {
                        pattern: pattern.name,
                        error,
                    });
                    continue;
                }
            },
        };
        if let Some(gso) = pattern.gso_size {
            if let Err(e) = socket::setsockopt(&fd, sockopt::UdpGsoSegment, &libc::c_int::from(gso))
            {
                probe.notes.push(LiveNote::PatternSkipped {
                    pattern: pattern.name,
                    error: OsError::new("setsockopt(UDP_SEGMENT)", e),
                });
                continue;
            }
        }
        let data = &buf.as_slice()[..pattern.send_size];
        let run = super::measure(ctx, &fd, pattern, data, &TRANSPORT);
        probe.runs.push(run);
    }
    if probe
        .notes
        .iter()
        .any(|n| matches!(n, LiveNote::PathMtu { .. }))
    {
        // `--api both`: the second API's pass uses the same path.
        return;
    }
    probe.notes.push(LiveNote::PathMtu {
        mtu,
        payload,
        of_route: route_mtu.is_some(),
    });
}

/// A socket from [`probe_socket::open`], connected to the target.
fn connected_socket(opts: &LiveOptions, notes: &mut Vec<LiveNote>) -> Result<OwnedFd, OsError> {
    let fd = probe_socket::open(opts, notes)?;
    probe_socket::connect(&fd, opts.target)
        .map_err(|e| OsError::new(format!("connect(UDP, {})", opts.target), e))?;
    Ok(fd)
}

/// IP and UDP headers.
fn headers(v6: bool) -> usize {
    if v6 { 40 + 8 } else { 20 + 8 }
}

/// The patterns for a path MTU, and a note when `gso` is left out.
fn patterns(mtu: u32, v6: bool, oversize: bool) -> (Vec<Pattern>, Option<LiveNote>) {
    let payload = (mtu as usize).saturating_sub(headers(v6)).max(1);
    // Largest UDP payload: 65535 minus the IPv4 header and the UDP header (IPv6's payload
    // length excludes its own header).
    let max_udp = if v6 { 65535 - 8 } else { 65535 - 20 - 8 };
    let segments = (max_udp / payload).min(UDP_MAX_SEGMENTS);
    let mut patterns = vec![Pattern {
        name: RunPattern::Datagram,
        send_size: payload,
        gso_size: None,
    }];
    let mut note = None;
    match u16::try_from(payload) {
        Ok(gso) if segments >= 2 => patterns.push(Pattern {
            name: RunPattern::Gso,
            send_size: payload * segments,
            gso_size: Some(gso),
        }),
        _ => note = Some(LiveNote::NoGsoPattern { payload }),
    }
    if oversize {
        patterns.push(Pattern {
            name: RunPattern::Oversize,
            send_size: payload + 1,
            gso_size: None,
        });
    }
    (patterns, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(p: &[Pattern]) -> Vec<(RunPattern, usize, Option<u16>)> {
        p.iter()
            .map(|p| (p.name, p.send_size, p.gso_size))
            .collect()
    }

    #[test]
    fn ethernet_mtu() {
        let (p, note) = patterns(1500, false, false);
        assert_eq!(
            shapes(&p),
            [
                (RunPattern::Datagram, 1472, None),
                (RunPattern::Gso, 44 * 1472, Some(1472))
            ]
        );
        assert_eq!(note, None);
        let (p, _) = patterns(1500, true, true);
        assert_eq!(
            shapes(&p),
            [
                (RunPattern::Datagram, 1452, None),
                (RunPattern::Gso, 45 * 1452, Some(1452)),
                (RunPattern::Oversize, 1453, None)
            ]
        );
    }

    #[test]
    fn small_payloads_are_capped_at_64_segments() {
        let (p, _) = patterns(576, false, false);
        assert_eq!(shapes(&p)[1], (RunPattern::Gso, 64 * 548, Some(548)));
    }

    #[test]
    fn jumbo_payloads_leave_out_gso() {
        let (p, note) = patterns(65535, false, false);
        assert_eq!(shapes(&p), [(RunPattern::Datagram, 65507, None)]);
        assert_eq!(note, Some(LiveNote::NoGsoPattern { payload: 65507 }));
    }
}
