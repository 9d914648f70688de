//! Why the live probe does not send: the route to the target would not leave through the
//! diagnosed interface (or a slave of the VRF it is), or would prove nothing (a local or
//! non-unicast route); the sentence and its cause are recorded together.

use std::net::IpAddr;

use crate::evidence::{LiveProbe, NotRun, RouteInfo, RouteType};
use crate::probe::netlink::Link;

/// Why nothing was sent: the sentence and the cause, always recorded together.
#[derive(Debug, PartialEq)]
pub(super) struct NotRunFact {
    pub(super) sentence: String,
    pub(super) cause: NotRun,
}

impl NotRunFact {
    pub(super) fn record(self, probe: &mut LiveProbe) {
        probe.not_run = Some(self.sentence);
        probe.not_run_cause = Some(self.cause);
    }
}

/// Why traffic to `ip` is not sent (it would not leave through `iface`, or prove nothing).
pub(super) fn refusal(
    route: &RouteInfo,
    ip: IpAddr,
    iface: &str,
    links: &[Link],
) -> Option<NotRunFact> {
    // A VRF transmits by the slave its table's route names.
    let enslaved_to_iface = |dev: &str| {
        let master = links.iter().find(|l| l.name == dev).and_then(|l| l.master);
        links.iter().any(|l| {
            Some(l.ifindex) == master && l.name == iface && l.link_kind.as_deref() == Some("vrf")
        })
    };
    let (sentence, cause) = if route.route_type == RouteType::Local || ip.is_loopback() {
        (
            format!(
                "{ip} is an address of this host (route type {})",
                route.route_type
            ),
            NotRun::LocalRoute,
        )
    } else if route.route_type != RouteType::Unicast {
        (
            format!(
                "the route to {ip} is of type {}, not unicast",
                route.route_type
            ),
            NotRun::NotUnicast {
                route_type: route.route_type,
            },
        )
    } else {
        match route.device.as_deref() {
            Some(dev) if dev == iface || enslaved_to_iface(dev) => return None,
            Some(dev) => (
                format!("the route to {ip} leaves through {dev}, not {iface}"),
                NotRun::OtherDevice {
                    device: dev.to_string(),
                },
            ),
            None => (
                format!("the route to {ip} names no output device"),
                NotRun::NoDevice,
            ),
        }
    };
    Some(NotRunFact { sentence, cause })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{ApiRequest, Protocol};

    fn route(ty: RouteType, dev: Option<&str>) -> RouteInfo {
        RouteInfo {
            device: dev.map(str::to_string),
            ifindex: None,
            gateway: None,
            source: None,
            route_type: ty,
            mtu: None,
        }
    }

    fn fact(sentence: &str, cause: NotRun) -> Option<NotRunFact> {
        Some(NotRunFact {
            sentence: sentence.to_string(),
            cause,
        })
    }

    #[test]
    fn refuses_local_routes_and_loopback() {
        let ip: IpAddr = "198.18.0.1".parse().expect("literal");
        assert_eq!(
            refusal(&route(RouteType::Local, Some("lo")), ip, "ifbz", &[]),
            fact(
                "198.18.0.1 is an address of this host (route type local)",
                NotRun::LocalRoute
            )
        );
        let ip: IpAddr = "::1".parse().expect("literal");
        assert_eq!(
            refusal(&route(RouteType::Unicast, Some("lo")), ip, "lo", &[]),
            fact(
                "::1 is an address of this host (route type unicast)",
                NotRun::LocalRoute
            )
        );
    }

    #[test]
    fn refuses_other_devices_and_other_route_types() {
        let ip: IpAddr = "198.18.2.2".parse().expect("literal");
        assert_eq!(
            refusal(&route(RouteType::Unicast, Some("eth0")), ip, "ifbz", &[]),
            fact(
                "the route to 198.18.2.2 leaves through eth0, not ifbz",
                NotRun::OtherDevice {
                    device: "eth0".into()
                }
            )
        );
        assert_eq!(
            refusal(&route(RouteType::Blackhole, None), ip, "ifbz", &[]),
            fact(
                "the route to 198.18.2.2 is of type blackhole, not unicast",
                NotRun::NotUnicast {
                    route_type: RouteType::Blackhole
                }
            )
        );
        assert_eq!(
            refusal(&route(RouteType::Unicast, None), ip, "ifbz", &[]),
            fact(
                "the route to 198.18.2.2 names no output device",
                NotRun::NoDevice
            )
        );
        assert_eq!(
            refusal(&route(RouteType::Unicast, Some("ifbz")), ip, "ifbz", &[]),
            None
        );
    }

    #[test]
    fn records_sentence_and_cause_together() {
        let mut probe = LiveProbe::new(
            Protocol::Udp,
            ([198, 18, 0, 2], 9).into(),
            ApiRequest::Sendmsg,
        );
        NotRunFact {
            sentence: "s".into(),
            cause: NotRun::NoDevice,
        }
        .record(&mut probe);
        assert_eq!(probe.not_run.as_deref(), Some("s"));
        assert_eq!(probe.not_run_cause, Some(NotRun::NoDevice));
    }
}
