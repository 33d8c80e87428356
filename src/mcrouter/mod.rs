//! Talking to mcrouter over its admin port (memcache ASCII): which config it runs, and its
//! stats for the scrape.
//!
//! - [`admin`]: the md5 of the running config and the failed-reload count; the reply framing.
//! - [`stats`]: `stats all` and `stats servers` for the exporter.
//!
//! Plus where to ask: the address mcrouter listens on, from its arguments.

pub mod admin;
pub mod stats;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where to ask: mcrouter's first port, on its first listen address (loopback when it listens
/// on all addresses or none was given).
pub fn admin_addr(ports: &[String], listen: &[String]) -> Option<SocketAddr> {
    let port: u16 = ports.first()?.parse().ok()?;
    let ip = match listen.first().map(|a| a.trim_matches(['[', ']'])) {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(a) => match a.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            Ok(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Ok(ip) => ip,
            Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_address_follows_port_and_listen_address() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            admin_addr(&s(&["5000"]), &[]),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            admin_addr(&s(&["5000", "5001"]), &s(&["10.1.1.1"])),
            Some("10.1.1.1:5000".parse().unwrap())
        );
        assert_eq!(
            admin_addr(&s(&["5000"]), &s(&["0.0.0.0"])),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            admin_addr(&s(&["5000"]), &s(&["[::]"])),
            Some("[::1]:5000".parse().unwrap())
        );
        assert_eq!(admin_addr(&[], &[]), None);
    }
}
