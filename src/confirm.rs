//! Asking mcrouter which config it runs.
//!
//! Owns the admin conversation (`get __mcrouter__.config_md5_digest`, memcache ASCII, on
//! mcrouter's own port) and the polling that turns "we wrote bytes with md5 X" into confirmed,
//! rejected (mcrouter still reports the previous md5 when the time is up) or unreachable. It
//! does not act on the verdict; the event loop does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// How often mcrouter is asked while a reload is pending (mcrouter itself checks its file
/// every `--reconfiguration-delay-ms`, 1 s by default).
const POLL: Duration = Duration::from_millis(100);
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Lowercase hex md5, as mcrouter reports it.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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

/// Ask once for the md5 of the config mcrouter runs.
pub async fn running_md5(addr: SocketAddr) -> std::io::Result<String> {
    let ask = async {
        let stream = TcpStream::connect(addr).await?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"get __mcrouter__.config_md5_digest\r\n")
            .await?;
        let mut lines = BufReader::new(read).lines();
        let mut digest = None;
        while let Some(line) = lines.next_line().await? {
            if line == "END" {
                break;
            }
            if !line.starts_with("VALUE ") {
                digest = Some(line.trim().to_string());
            }
        }
        digest.ok_or_else(|| std::io::Error::other("no config_md5_digest in the reply"))
    };
    timeout(ASK_TIMEOUT, ask)
        .await
        .map_err(|_| std::io::Error::other("no reply within 1s"))?
}

/// The verdict on one written config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Confirmed {
        md5: String,
        after: Duration,
    },
    /// The time ran out while mcrouter reported another md5.
    Rejected {
        md5: String,
        running: String,
    },
    /// mcrouter never answered.
    Unreachable {
        md5: String,
        reason: String,
    },
}

/// Poll until mcrouter runs `md5` or `limit` passes.
pub async fn confirm(addr: SocketAddr, md5: String, limit: Duration) -> Verdict {
    let start = Instant::now();
    loop {
        let last = match running_md5(addr).await {
            Ok(running) if running == md5 => {
                return Verdict::Confirmed {
                    md5,
                    after: start.elapsed(),
                };
            }
            Ok(running) => Ok(running),
            Err(e) => Err(e.to_string()),
        };
        if start.elapsed() >= limit {
            return match last {
                Ok(running) => Verdict::Rejected { md5, running },
                Err(reason) => Verdict::Unreachable { md5, reason },
            };
        }
        sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_lowercase_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
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
