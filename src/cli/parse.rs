//! Values of options: live-probe targets (with IPv6 scopes) and durations.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use zcdoctor::probe::TargetSpec;

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT`, `gateway`, `gateway:PORT`; the port defaults to 9 (discard),
/// and 0 is refused. A link-local IPv6 address takes its scope as `fe80::1%eth0` or
/// `[fe80::1%eth0]:9` (an interface name, or its index).
pub fn parse_target(s: &str) -> Result<TargetSpec, String> {
    const DISCARD: u16 = 9;
    let bad = || {
        format!(
            "{s:?} is not an address: use ADDR, ADDR:PORT, [IPV6]:PORT, [IPV6%IFACE]:PORT or gateway[:PORT]"
        )
    };
    let port_of = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) => Err(format!("{s:?}: port 0 is not a port to send to")),
            Ok(port) => Ok(port),
            Err(_) => Err(bad()),
        }
    };
    if let Some(rest) = s.strip_prefix("vsock:") {
        return parse_vsock(s, rest);
    }
    if let Some(rest) = s.strip_prefix("gateway") {
        let port = match rest.strip_prefix(':') {
            Some(p) => port_of(p)?,
            None if rest.is_empty() => DISCARD,
            None => return Err(bad()),
        };
        return Ok(TargetSpec::Gateway { port });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(TargetSpec::Addr(SocketAddr::new(ip, DISCARD)));
    }
    // `[V6%SCOPE]:PORT`, `[V6%SCOPE]` and `V6%SCOPE`.
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => port_of(p)?,
                None if after.is_empty() => DISCARD,
                None => return Err(bad()),
            };
            (host, port)
        }
        None if s.contains('%') => (s, DISCARD),
        None => {
            let addr = s.parse::<SocketAddr>().map_err(|_| bad())?;
            if addr.port() == 0 {
                return Err(format!("{s:?}: port 0 is not a port to send to"));
            }
            return Ok(TargetSpec::Addr(addr));
        }
    };
    let (ip, scope) = match host.split_once('%') {
        Some((ip, scope)) => (ip, Some(scope)),
        None => (host, None),
    };
    let ip: Ipv6Addr = ip.parse().map_err(|_| bad())?;
    let scope_id = match scope {
        None => 0,
        Some(scope) => match parse_scope(scope).map_err(|why| format!("{s:?}: {why}"))? {
            Scope::Index(index) => index,
            Scope::Name(iface) => return Ok(TargetSpec::ScopedByName { ip, port, iface }),
        },
    };
    Ok(TargetSpec::Addr(SocketAddr::V6(SocketAddrV6::new(
        ip, port, 0, scope_id,
    ))))
}

/// `vsock:CID:PORT`: CID a number, or `local` (1, the loopback transport) or `host` (2).
fn parse_vsock(s: &str, rest: &str) -> Result<TargetSpec, String> {
    let bad = || {
        format!("{s:?} is not a vsock address: use vsock:CID:PORT (CID a number, local or host)")
    };
    let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
    let cid = match cid {
        "local" => 1,
        "host" => 2,
        n => n.parse::<u32>().map_err(|_| bad())?,
    };
    // VMADDR_CID_ANY and VMADDR_PORT_ANY (u32::MAX) are wildcards, not destinations.
    if cid == u32::MAX {
        return Err(format!("{s:?}: CID {cid} is VMADDR_CID_ANY, not a peer"));
    }
    let port = port.parse::<u32>().map_err(|_| bad())?;
    if port == u32::MAX {
        return Err(format!(
            "{s:?}: port {port} is VMADDR_PORT_ANY, not a port to send to"
        ));
    }
    Ok(TargetSpec::Vsock { cid, port })
}

enum Scope {
    Index(u32),
    /// Resolved by the live probe, in the namespace it runs in.
    Name(String),
}

/// An IPv6 scope: an interface index, or the name of one (an interface name is at most 15
/// bytes, without `/`, whitespace or `%`).
fn parse_scope(scope: &str) -> Result<Scope, String> {
    if scope.is_empty() {
        return Err("the scope after % is empty".to_string());
    }
    if let Ok(index) = scope.parse::<u32>() {
        return if index == 0 {
            Err("scope 0 is no interface".to_string())
        } else {
            Ok(Scope::Index(index))
        };
    }
    let valid = scope.len() < 16
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'%' | b':'));
    if valid {
        Ok(Scope::Name(scope.to_string()))
    } else {
        Err(format!("{scope:?} is not an interface name"))
    }
}

/// `1s`, `500ms`, `2m`, `1m30s` (humantime), or a bare number of seconds; over 0, at most 1 hour.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => {
            return Err(format!(
                "{s:?}: a duration must be over 0 and at most 1 hour"
            ));
        }
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration ({e}): use e.g. 500ms, 1s, 2m"))?,
    };
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(format!(
            "{s:?}: a duration must be over 0 and at most 1 hour"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("198.18.0.2"),
            Ok(TargetSpec::Addr("198.18.0.2:9".parse().unwrap()))
        );
        assert_eq!(
            parse_target("198.18.0.2:5201"),
            Ok(TargetSpec::Addr("198.18.0.2:5201".parse().unwrap()))
        );
        assert_eq!(
            parse_target("[2001:db8::2]:7"),
            Ok(TargetSpec::Addr("[2001:db8::2]:7".parse().unwrap()))
        );
        assert_eq!(
            parse_target("2001:db8::2"),
            Ok(TargetSpec::Addr("[2001:db8::2]:9".parse().unwrap()))
        );
        assert_eq!(parse_target("gateway"), Ok(TargetSpec::Gateway { port: 9 }));
        assert_eq!(
            parse_target("gateway:80"),
            Ok(TargetSpec::Gateway { port: 80 })
        );
        assert!(parse_target("gatewayx").is_err());
        assert!(parse_target("198.18.0.300").is_err());
        assert!(parse_target("host.example").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("NaN").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("61m").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
