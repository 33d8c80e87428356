//! mcrouter's stats as a scrape needs them: `stats all` and `stats servers`, asked on one
//! connection within a short timeout, parsed into names and values.
//!
//! Owns the conversation and the line formats (`STAT <name> <value…>`; per destination
//! `STAT <destination> k:v …; k:v …`). What the figures are called in Prometheus is
//! [`crate::metrics`]'.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::admin;

/// How long a scrape waits for mcrouter's stats.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(1);

/// One destination's figures from `stats servers`.
pub type Destination = HashMap<String, String>;

/// What mcrouter answered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// `stats all`: name → value.
    pub all: HashMap<String, String>,
    /// `stats servers`: destination → figures, in mcrouter's order.
    pub servers: Vec<(String, Destination)>,
}

/// Ask mcrouter for `stats all` and `stats servers` on one connection, within
/// [`STATS_TIMEOUT`]; `Err` says why there are no stats.
pub async fn fetch(addr: SocketAddr) -> Result<Stats, String> {
    tokio::time::timeout(STATS_TIMEOUT, exchange(addr))
        .await
        .unwrap_or_else(|_| Err(format!("no stats within {STATS_TIMEOUT:?}")))
}

async fn exchange(addr: SocketAddr) -> Result<Stats, String> {
    let io = |e: std::io::Error| e.to_string();
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"stats all\r\n").await.map_err(io)?;
    let all = parse_all(body(&admin::reply(&mut lines).await.map_err(io)?)?)?;
    write.write_all(b"stats servers\r\n").await.map_err(io)?;
    let servers = parse_servers(body(&admin::reply(&mut lines).await.map_err(io)?)?)?;
    Ok(Stats { all, servers })
}

/// The lines of a reply before its `END`; any other ending is mcrouter refusing.
fn body(reply: &[String]) -> Result<&[String], String> {
    match reply.split_last() {
        Some((end, body)) if end == "END" => Ok(body),
        Some((last, _)) => Err(format!("mcrouter answered {last:?}")),
        None => Err("mcrouter closed the connection without answering".into()),
    }
}

/// `STAT <name> <value…>` lines; the value is the rest of the line (`commandargs` has spaces).
pub(crate) fn parse_all(lines: &[String]) -> Result<HashMap<String, String>, String> {
    lines
        .iter()
        .map(|line| {
            let rest = stat_line(line)?;
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// `STAT <destination> k:v k:v …; k:v …` lines: connection figures before the `;`, reply
/// counts after it (only those above 0 are listed).
pub(crate) fn parse_servers(lines: &[String]) -> Result<Vec<(String, Destination)>, String> {
    lines
        .iter()
        .map(|line| {
            let rest = stat_line(line)?;
            let (name, figures) = rest.split_once(' ').unwrap_or((rest, ""));
            let pairs = figures
                .split([' ', ';'])
                .filter_map(|kv| kv.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok((name.to_string(), pairs))
        })
        .collect()
}

fn stat_line(line: &str) -> Result<&str, String> {
    line.strip_prefix("STAT ")
        .ok_or_else(|| format!("mcrouter answered {line:?}, not a STAT line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_reply_that_does_not_end_in_end_is_no_stats() {
        assert_eq!(body(&lines("STAT a 1\nEND")), Ok(&lines("STAT a 1")[..]));
        assert_eq!(
            body(&lines("ERROR")),
            Err("mcrouter answered \"ERROR\"".into())
        );
        assert!(body(&lines("STAT a 1")).is_err(), "cut off before END");
        assert!(body(&[]).is_err());
    }

    #[test]
    fn stats_all_values_keep_their_spaces() {
        let all = parse_all(&lines(
            "STAT version 41.0.0 mcrouter\nSTAT commandargs -p 5000 -f /x\nSTAT cmd_get_count 7",
        ))
        .unwrap();
        assert_eq!(all["version"], "41.0.0 mcrouter");
        assert_eq!(all["commandargs"], "-p 5000 -f /x");
        assert!(parse_all(&lines("ERROR")).is_err());
    }

    #[test]
    fn server_lines_split_at_the_semicolon_and_name_the_destination() {
        let servers = parse_servers(&lines(
            "STAT 10.64.16.110:11211:ascii:plain:notcompressed-1000 avg_latency_us:302.991 pending_reqs:0 inflight_reqs:0 avg_retrans_ratio:0 max_retrans_ratio:0 min_retrans_ratio:0 up:5; deleted:4875 found:112675373 notfound:3493823",
        ))
        .unwrap();
        let (name, figures) = &servers[0];
        assert_eq!(name, "10.64.16.110:11211:ascii:plain:notcompressed-1000");
        assert_eq!(figures["avg_latency_us"], "302.991");
        assert_eq!(figures["up"], "5");
        assert_eq!(figures["notfound"], "3493823");
    }
}
