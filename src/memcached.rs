//! Whether memcached servers answer (for `--warm-up`, which warms only from old servers that
//! do, and `mcw diff`, which says what a warm-up would do): a TCP connection within a short
//! timeout and, for a plain ASCII server, an answer to `version`.

use std::collections::HashSet;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How long a server may take to answer.
const TIMEOUT: Duration = Duration::from_millis(300);

/// The servers of `servers` (as a config lists them: `host:port[:protocol[:security…]]`, IPv6
/// in brackets) that answered.
pub async fn answering(servers: Vec<String>) -> HashSet<String> {
    let mut asks = JoinSet::new();
    for server in servers {
        asks.spawn(async move {
            let ok = tokio::time::timeout(TIMEOUT, answers(&server)).await;
            (server, matches!(ok, Ok(true)))
        });
    }
    let mut alive = HashSet::new();
    while let Some(done) = asks.join_next().await {
        if let Ok((server, true)) = done {
            alive.insert(server);
        }
    }
    alive
}

/// `host:port` of a server string, and whether it speaks plain ASCII memcache.
fn address(server: &str) -> Option<(String, bool)> {
    let (host, rest) = match server.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6.split_once(']')?;
            (format!("[{ip}]"), rest.strip_prefix(':')?)
        }
        None => server.split_once(':').map(|(h, r)| (h.to_string(), r))?,
    };
    let mut parts = rest.split(':');
    let port = parts.next()?;
    let protocol = parts.next().unwrap_or("ascii");
    let security = parts.next().unwrap_or("plain");
    let ascii = protocol == "ascii" && security == "plain";
    Some((format!("{host}:{port}"), ascii))
}

async fn answers(server: &str) -> bool {
    let Some((addr, ascii)) = address(server) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return false;
    };
    if !ascii {
        return true;
    }
    if stream.write_all(b"version\r\n").await.is_err() {
        return false;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    reader.read_line(&mut line).await.is_ok() && line.starts_with("VERSION")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_strings_give_their_address() {
        assert_eq!(
            address("10.0.0.1:11211"),
            Some(("10.0.0.1:11211".into(), true))
        );
        assert_eq!(
            address("[::1]:11211:ascii:ssl"),
            Some(("[::1]:11211".into(), false))
        );
        assert_eq!(
            address("h.example:1:caret"),
            Some(("h.example:1".into(), false))
        );
        assert_eq!(address("nonsense"), None);
    }
}
