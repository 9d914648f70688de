//! `tunnel-mtu-fragments`: a tunnel whose MTU leaves no room for its own headers on the
//! underlay. Its full-size packets are fragmented after encapsulation (`ip_fragment` of the
//! outer packet builds new skbs from the data), so every full-size zerocopy send is copied;
//! smaller ones are not, which is why it is a warning until a live probe shows the copies.
//!
//! Reads the tunnels the path walk crossed (`path`: kind, MTU, remote) and the MTUs of the
//! devices their outer packets cross.
//! Explanation and fix text: checks/findings/tunnel-mtu-fragments.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::{every_hop, with_toward};
use crate::evidence::Encapsulation;

/// The bytes a tunnel adds to each inner packet, outer IP header included (the minimum: GRE
/// keys, checksums and sequence numbers, and geneve options, add more).
fn overhead(e: &Encapsulation) -> Option<u32> {
    let outer_ip = if e.remote.is_ipv4() { 20 } else { 40 };
    let inner = match e.kind.as_str() {
        // UDP 8 + vxlan/geneve header 8 + the inner Ethernet header 14
        "vxlan" | "geneve" => 30,
        // GRE header 4 + the inner Ethernet header 14
        "gretap" | "ip6gretap" => 18,
        "gre" | "ip6gre" => 4,
        "ipip" | "sit" | "ip6tnl" => 0,
        // UDP 8 + WireGuard data header 16 + the authentication tag 16
        "wireguard" => 40,
        _ => return None,
    };
    Some(outer_ip + inner)
}

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Devices) {
        return;
    }
    let hops = every_hop(cx.ev);
    let mut at = 0;
    let mut seen: Vec<&str> = Vec::new();
    for way in &cx.ways {
        let segments = way.path.map_or(&[][..], |p| p.segments.as_slice());
        let way_hops = &hops[at..(at + 1 + segments.len()).min(hops.len())];
        at += 1 + segments.len();
        for (i, seg) in segments.iter().enumerate() {
            let Some(e) = &seg.encapsulates else {
                continue;
            };
            let Some(overhead) = overhead(e) else {
                continue;
            };
            // The outer packet crosses this segment's devices and every one after it.
            let Some((underlay, mtu)) = segments[i..]
                .iter()
                .filter_map(|s| s.stack.first())
                .map(|d| (d.name.as_str(), d.mtu))
                .filter(|(_, m)| *m > 0)
                .min_by_key(|(_, m)| *m)
            else {
                continue;
            };
            if e.mtu + overhead <= mtu || seen.contains(&e.tunnel.as_str()) {
                continue;
            }
            seen.push(&e.tunnel);
            let fits = mtu.saturating_sub(overhead);
            let family = if e.remote.is_ipv4() { "IPv4" } else { "IPv6" };
            let tunnel_hop = way_hops.get(i);
            let mut evidence = json!({
                "device": e.tunnel, "kind": e.kind, "mtu": e.mtu, "overhead": overhead,
                "underlay": underlay, "underlay_mtu": mtu, "fitting_mtu": fits, "hop": i + 2,
            });
            with_toward(&mut evidence, way.toward);
            let set = format!("ip link set {} mtu {fits}", e.tunnel);
            out.raise(
                Code::TunnelMtuFragments,
                format!(
                    "{} ({}) has MTU {}, but {} adds {overhead} bytes over {family} and {underlay} carries at most {mtu}: its full-size packets ({} bytes) are fragmented after encapsulation, and fragmenting copies every such zerocopy send{}",
                    e.tunnel,
                    e.kind,
                    e.mtu,
                    e.kind,
                    e.mtu + overhead,
                    way.label()
                ),
                evidence,
                vec![
                    tunnel_hop.map_or(set.clone(), |h| h.command(&set)),
                    format!(
                        "Or raise the underlay's MTU to {} where the network carries it (jumbo frames), and persist either in the interface's configuration.",
                        e.mtu + overhead
                    ),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encap(kind: &str, mtu: u32, remote: &str) -> Encapsulation {
        Encapsulation {
            tunnel: "t0".into(),
            kind: kind.into(),
            mtu,
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn overheads_follow_the_kind_and_the_outer_family() {
        assert_eq!(overhead(&encap("vxlan", 1500, "198.18.5.2")), Some(50));
        assert_eq!(overhead(&encap("vxlan", 1500, "2001:db8::2")), Some(70));
        assert_eq!(overhead(&encap("gre", 1476, "198.18.5.2")), Some(24));
        assert_eq!(overhead(&encap("wireguard", 1420, "198.18.5.2")), Some(60));
        assert_eq!(overhead(&encap("ip6tnl", 1452, "2001:db8::2")), Some(40));
        assert_eq!(overhead(&encap("macsec", 1500, "198.18.5.2")), None);
    }
}
