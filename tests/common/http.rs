//! A minimal HTTP/1.1 client for mcw's endpoint and Prometheus' API: one request per
//! connection, the whole reply read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Reply {
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` from `addr`.
pub fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, &[])
}

/// One request; panics if the server cannot be reached or answers garbage.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_request(addr, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, text.clone());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = match chunked {
        true => dechunk(body).ok_or_else(bad)?,
        false => body.to_string(),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A chunked body's data (Prometheus' API sends large answers so).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// The value of the first sample of `series` in a classic or OpenMetrics exposition: the
/// metric's name and, as in PromQL, any subset of its labels (`mcw_writes_total`,
/// `mcw_pool_servers{pool="a"}`).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    let (name, wanted) = name_and_labels(series);
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            // Label values may hold spaces; the value follows the closing brace.
            let end = l.rfind('}').map_or_else(|| l.find(' '), |i| Some(i + 1))?;
            let (key, value) = (&l[..end], l[end..].trim_start());
            let (n, labels) = name_and_labels(key);
            let matches = n == name && wanted.iter().all(|w| labels.contains(w));
            matches.then(|| value.split(' ').next()?.parse().ok())?
        })
}

/// `name{a="x",b="y"}` → (`name`, [`a="x`, `b="y`]).
fn name_and_labels(series: &str) -> (&str, Vec<&str>) {
    let Some((name, labels)) = series.split_once('{') else {
        return (series, Vec::new());
    };
    let labels = labels.trim_end_matches('}');
    let pairs = labels.split("\",").map(|p| p.trim_end_matches('"'));
    (name, pairs.filter(|p| !p.is_empty()).collect())
}
