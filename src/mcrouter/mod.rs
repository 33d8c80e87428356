//! Talking to mcrouter over its admin port (memcache ASCII): which config it runs, and its
//! stats for the scrape.
//!
//! - [`admin`]: the md5 of the running config and the failed-reload count; the reply framing.
//! - [`stats`]: `stats all` and `stats servers` for the exporter.
//!
//! Plus where to ask (the address mcrouter listens on, from its arguments), and what its log
//! says when a config fails to load or when it stops watching its config file.

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

/// Whether a line of mcrouter's log says it could not watch its config file `path` again
/// (the file was deleted, or its directory): `… Check <path> for update failed: Can not add
/// inotify watch for '<path>'`. mcrouter then drops the watch and never reloads again.
pub fn stopped_watching(line: &str, path: &str) -> bool {
    line.split_once("Can not add inotify watch for '")
        .and_then(|(_, rest)| rest.strip_prefix(path))
        .is_some_and(|rest| rest.starts_with('\''))
}

/// The reason in a line of mcrouter's log that says a config failed to load: `FAILURE …
/// Failed to reconfigure: <reason>` after a reload, `… Failed to configure, initial error
/// '<reason>' …` at startup. `None` for every other line.
pub fn failure_reason(line: &str) -> Option<&str> {
    if let Some((_, reason)) = line.split_once("Failed to reconfigure: ") {
        return Some(reason.trim_end());
    }
    line.find("Failed to configure")
        .map(|at| line[at..].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines the real mcrouter printed (v2026.08.17.00; the source path it logs is shortened).
    #[test]
    fn a_failed_load_is_read_from_mcrouters_log_line() {
        let reload = "FAILURE 1796176443.532673 16033 [libmcrouter.mcrouter.25000] [invalid-config] [mcrcfg-25000] mcrouter/CarbonRouterInstance-inl.h:526] Failed to reconfigure: TypeError: expected dynamic type 'object', but had type 'string'\n";
        assert_eq!(
            failure_reason(reload),
            Some("TypeError: expected dynamic type 'object', but had type 'string'")
        );
        let start = "E20261202 01:54:11.574388 16040 Server-inl.h:582] mcrouter error (router name '25001', flavor 'unknown', service 'mcrouter'): Failed to configure, initial error 'json parse error on line 0 near `not json': expected json value'";
        assert!(
            failure_reason(start)
                .unwrap()
                .starts_with("Failed to configure, initial error 'json")
        );
        assert_eq!(
            failure_reason(
                "I20261202 01:53:55.526707 16038 CarbonRouterInstance-inl.h:535] reconfigured 1 proxies"
            ),
            None
        );
    }

    /// The line the real mcrouter printed when its config file was deleted (v2026.08.17.00;
    /// the file's path is the test's own).
    #[test]
    fn a_lost_watch_is_read_from_mcrouters_log_line() {
        let lost = "E20261202 01:55:06.121377 16921 ConfigApi.cpp:180] Check /srv/mcw/live.json for update failed: Can not add inotify watch for '/srv/mcw/live.json'\n";
        assert!(stopped_watching(lost, "/srv/mcw/live.json"));
        // Another file's watch (a runtime-vars file, say) is not the config's.
        assert!(!stopped_watching(lost, "/run/mcw/mcrouter.json"));
        assert!(!stopped_watching(
            "I20261202 01:53:55.526547 16038 CarbonRouterInstance-inl.h:517] started reconfiguring",
            "/srv/mcw/live.json"
        ));
    }

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
