//! Asking mcrouter which config it runs.
//!
//! Owns the admin conversation (`get __mcrouter__.config_md5_digest` and `stats detailed`,
//! memcache ASCII, on mcrouter's own port), the reply framing every mcrouter conversation
//! shares, and what counts as an answer: a well-formed digest, or "cannot tell". One question
//! at a time; when to ask, and what the answers mean for a write (confirmed, rejected, no
//! verdict), is the engine's business.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::engine::Observed;

/// How often mcrouter is asked while a reload is pending (mcrouter itself checks its file
/// every `--reconfiguration-delay-ms`, 1 s by default).
pub const POLL: Duration = Duration::from_millis(100);
/// How often it is asked once `--confirm-timeout` has passed without a verdict, until mcw can
/// tell (a slow start, a slow reload).
pub const SLOW_POLL: Duration = Duration::from_secs(1);
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Ask mcrouter once which config it runs and how many reloads have failed: the digest (or
/// why mcw cannot tell: no connection, no reply in time, an answer that is no digest) and
/// `config_failures` from `stats detailed`, when it gave one.
pub async fn ask(addr: SocketAddr) -> Observed {
    match timeout(ASK_TIMEOUT, exchange(addr, true)).await {
        Err(_) => Observed {
            running: Err(format!("no reply within {ASK_TIMEOUT:?}")),
            failures: None,
            from_disk: false,
        },
        Ok(Err(e)) => Observed {
            running: Err(e.to_string()),
            failures: None,
            from_disk: false,
        },
        Ok(Ok((reply, stats))) => Observed {
            running: digest(&reply),
            failures: stat(&stats, "config_failures").and_then(|v| v.parse().ok()),
            from_disk: stat(&stats, "configs_from_disk").is_some_and(|v| v != "0"),
        },
    }
}

/// Whether mcrouter answers on its admin port within `limit` (any reply counts: this asks
/// whether it serves, not what it runs).
pub async fn answers(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    match timeout(limit, exchange(addr, false)).await {
        Err(_) => Err(format!("no reply within {limit:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((reply, _))) if reply.is_empty() => Err("it closed the connection".into()),
        Ok(Ok(_)) => Ok(()),
    }
}

/// One `get` of the digest, and with `stats` a `stats detailed` after it on the same
/// connection; each reply's lines up to `END` or an error line.
async fn exchange(addr: SocketAddr, stats: bool) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let ask: &[u8] = match stats {
        true => b"get __mcrouter__.config_md5_digest\r\nstats detailed\r\n",
        false => b"get __mcrouter__.config_md5_digest\r\n",
    };
    write.write_all(ask).await?;
    let mut lines = BufReader::new(read).lines();
    let digest = reply(&mut lines).await?;
    let stats = match stats && !digest.is_empty() {
        true => reply(&mut lines).await?,
        false => Vec::new(),
    };
    Ok((digest, stats))
}

/// The value of `STAT name value` in a stats reply.
pub fn stat<'a>(reply: &'a [String], name: &str) -> Option<&'a str> {
    reply.iter().find_map(|line| {
        let rest = line.strip_prefix("STAT ")?.strip_prefix(name)?;
        rest.strip_prefix(' ').map(str::trim)
    })
}

/// The lines of one reply on mcrouter's admin port, up to and including the one that ends it
/// (`END`, `ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`), or all there were if the connection
/// closed first.
pub async fn reply<R: AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> std::io::Result<Vec<String>> {
    let mut reply = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let last = line == "END"
            || line == "ERROR"
            || line.starts_with("CLIENT_ERROR")
            || line.starts_with("SERVER_ERROR");
        reply.push(line);
        if last {
            break;
        }
    }
    Ok(reply)
}

/// The md5 in mcrouter's reply: `VALUE <key> <flags> 32`, the digest, `END`. A digest is 32
/// lowercase hex digits; anything else (`ERROR`, `SERVER_ERROR …`, an empty `END`, garbage)
/// means mcw cannot tell, which is never a verdict.
pub fn digest(reply: &[String]) -> Result<String, String> {
    let cannot = || match reply.first() {
        Some(first) => format!("mcrouter answered {first:?}, not a digest"),
        None => "mcrouter closed the connection without answering".to_string(),
    };
    match reply {
        [value, md5, end, ..] if value.starts_with("VALUE ") && end == "END" && is_md5(md5) => {
            Ok(md5.clone())
        }
        _ => Err(cannot()),
    }
}

fn is_md5(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_digest_counts() {
        let lines = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let value = "VALUE __mcrouter__.config_md5_digest 0 32";
        assert_eq!(digest(&lines(&[value, md5, "END"])), Ok(md5.to_string()));
        for bad in [
            lines(&["ERROR"]),
            lines(&["SERVER_ERROR out of memory"]),
            lines(&["END"]),
            lines(&[]),
            lines(&[value, &md5.to_uppercase(), "END"]),
            lines(&[value, &md5[1..], "END"]),
            lines(&[value, "not-a-digest-but-32-characters!!", "END"]),
        ] {
            assert!(digest(&bad).is_err(), "{bad:?}");
        }
        assert!(
            digest(&lines(&["ERROR"]))
                .unwrap_err()
                .contains("\"ERROR\"")
        );
    }

    #[test]
    fn a_stat_is_found_by_its_whole_name() {
        let lines = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let reply = lines(&[
            "STAT config_failures_total 9",
            "STAT config_failures 2",
            "END",
        ]);
        assert_eq!(stat(&reply, "config_failures"), Some("2"));
        assert_eq!(stat(&reply, "config"), None);
    }
}
