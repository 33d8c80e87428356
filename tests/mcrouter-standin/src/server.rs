//! The memcache ASCII front: `get`/`set`/`delete` routed to real memcached backends by the
//! active config, and the admin commands mcw relies on (`get __mcrouter__.config_md5_digest`
//! and `__mcrouter__.route(get,KEY)`, `stats`, `stats detailed`, and `stats all`/`stats
//! servers` with live counts of requests and of each destination's state and replies), in
//! mcrouter's formats. One thread per client connection; backend connections are kept per
//! client.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::Config;

pub struct State {
    pub config: RwLock<Arc<Config>>,
    pub failures: AtomicU64,
    pub attempts: AtomicU64,
    pub last_success: AtomicU64,
    /// Times the reload thread checked its watch (stand-in only, not an mcrouter stat): tests
    /// wait on it to see that polls happened without a reload.
    pub polls: AtomicU64,
    /// Unix time of start, and the command line, for `stats all`.
    pub start_time: u64,
    pub commandargs: String,
    pub clients: AtomicU64,
    pub counts: Mutex<Counts>,
    /// The startup config came from a dump (`configs_from_disk`), until a reload succeeds.
    pub from_disk: AtomicU64,
    /// Unix time of the last reload attempt.
    pub last_attempt: AtomicU64,
}

/// Unix time now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The version this stand-in reports for itself (mcrouter says `2026.08.17.00 mcrouter`).
pub const VERSION: &str = "41.0.0 mcrouter-standin";

/// Live counts behind `stats all` and `stats servers`.
#[derive(Default)]
pub struct Counts {
    /// Requests received, by operation (`get` counts each key).
    pub commands: BTreeMap<&'static str, u64>,
    /// Replies by destination (`ip:port`), by mcrouter's reply names (`found`, `notfound`, …).
    pub replies: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Destinations whose last connection attempt failed (mcrouter marks them down, TKO).
    pub down: std::collections::BTreeSet<String>,
}

impl State {
    fn count_command(&self, op: &'static str) {
        let mut c = self.counts.lock().expect("counts lock");
        *c.commands.entry(op).or_default() += 1;
    }

    /// Count a destination's reply: its first line as memcached sent it.
    fn count_reply(&self, addr: &str, reply: &str) {
        let name = match reply.trim_end() {
            "STORED" => "stored",
            "NOT_STORED" => "notstored",
            "EXISTS" => "exists",
            "DELETED" => "deleted",
            "NOT_FOUND" => "notfound",
            "TOUCHED" => "touched",
            "FOUND" => "found",
            _ => "remote_error",
        };
        let mut c = self.counts.lock().expect("counts lock");
        *c.replies
            .entry(addr.to_string())
            .or_default()
            .entry(name)
            .or_default() += 1;
    }

    /// `stats` (`group` empty), `stats detailed` and `stats all`: a subset of mcrouter's names
    /// (stat_list.h) in the groups mcrouter puts them, the counts live.
    fn stats(&self, config: &Config, group: &str) -> String {
        let c = self.counts.lock().expect("counts lock");
        let now = unix_now();
        let mut lines = vec![
            ("version".to_string(), VERSION.to_string()),
            ("commandargs".into(), self.commandargs.clone()),
            ("time".into(), now.to_string()),
            (
                "uptime".into(),
                now.saturating_sub(self.start_time).to_string(),
            ),
        ];
        if group == "all" {
            let clients = self.clients.load(Ordering::Relaxed);
            lines.push(("num_client_connections".into(), clients.to_string()));
        }
        let destinations = config.destinations();
        let down = destinations.iter().filter(|d| c.down.contains(*d)).count();
        let up = destinations
            .iter()
            .filter(|d| c.replies.contains_key(*d) && !c.down.contains(*d))
            .count();
        lines.push(("num_servers".into(), destinations.len().to_string()));
        lines.push((
            "num_servers_new".into(),
            (destinations.len() - up - down).to_string(),
        ));
        lines.push(("num_servers_up".into(), up.to_string()));
        lines.push(("num_servers_down".into(), down.to_string()));
        lines.push(("num_servers_closed".into(), "0".into()));
        for op in ["get", "set", "add", "replace", "delete"] {
            let n = c.commands.get(op).copied().unwrap_or(0);
            lines.push((format!("cmd_{op}_count"), n.to_string()));
            lines.push((format!("cmd_{op}_out_count"), n.to_string()));
            lines.push((format!("cmd_{op}_out_all_count"), n.to_string()));
        }
        if matches!(group, "detailed" | "all") {
            let counter = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
            lines.push(("config_last_attempt".into(), counter(&self.last_attempt)));
            lines.push(("config_last_success".into(), counter(&self.last_success)));
            lines.push(("config_failures".into(), counter(&self.failures)));
            lines.push(("configs_from_disk".into(), counter(&self.from_disk)));
            lines.push(("config_full_attempt".into(), counter(&self.attempts)));
            // Not an mcrouter stat: the tests wait on it to see polls happen without a reload.
            lines.push(("reload_polls".into(), counter(&self.polls)));
        }
        let mut reply: String = lines
            .iter()
            .map(|(k, v)| format!("STAT {k} {v}\r\n"))
            .collect();
        reply += "END\r\n";
        reply
    }

    /// `stats servers`: one line per destination of the config, as mcrouter prints it:
    /// connection figures, ` hard_tko; ` for one that is down, the state (`new` before the
    /// first request, `up`, `down`), then after a `;` the reply counts above 0.
    fn stats_servers(&self, config: &Config) -> String {
        let c = self.counts.lock().expect("counts lock");
        let mut reply = String::new();
        for addr in config.destinations() {
            let replies = c.replies.get(&addr);
            let down = c.down.contains(&addr);
            let state = match (down, replies) {
                (true, _) => "down:1",
                (false, Some(_)) => "up:1",
                (false, None) => "new:1",
            };
            let tko = if down { "hard_tko;  " } else { "" };
            let counts: Vec<String> = replies
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let counts = match counts.is_empty() {
                true => String::new(),
                false => format!("; {}", counts.join(" ")),
            };
            reply += &format!(
                "STAT {addr}:ascii:plain:notcompressed-1000 avg_latency_us:0 pending_reqs:0 inflight_reqs:0 {tko}avg_retrans_ratio:0 max_retrans_ratio:0 min_retrans_ratio:0 {state}{counts}\r\n"
            );
        }
        reply += "END\r\n";
        reply
    }

    /// A connection to `addr` failed: it is down, and the failure counts as its reply.
    fn connect_failed(&self, addr: &str) {
        let mut c = self.counts.lock().expect("counts lock");
        c.down.insert(addr.to_string());
        *c.replies
            .entry(addr.to_string())
            .or_default()
            .entry("connect_error")
            .or_default() += 1;
    }

    /// A connection to `addr` worked: it is up.
    fn connected(&self, addr: &str) {
        self.counts.lock().expect("counts lock").down.remove(addr);
    }
}

impl State {
    pub fn current(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }
}

pub fn serve(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming().flatten() {
        let state = state.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &state);
        });
    }
}

struct Backend {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn backend<'a>(
    state: &State,
    pool: &'a mut HashMap<String, Backend>,
    addr: &str,
) -> io::Result<&'a mut Backend> {
    if !pool.contains_key(addr) {
        let stream = TcpStream::connect(addr).inspect_err(|_| state.connect_failed(addr))?;
        state.connected(addr);
        // Requests go out as they are written, as mcrouter's do (no Nagle delay).
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        pool.insert(
            addr.to_string(),
            Backend {
                reader,
                writer: stream,
            },
        );
    }
    Ok(pool.get_mut(addr).expect("just inserted"))
}

/// Send `request(key as sent)` to `key`'s backend and return its one-line reply.
fn one_line(
    state: &State,
    config: &Config,
    backends: &mut HashMap<String, Backend>,
    key: &str,
    request: impl FnOnce(&str) -> Vec<u8>,
) -> io::Result<String> {
    let Some((addr, sent)) = config.backend(key) else {
        return Ok("SERVER_ERROR no route\r\n".into());
    };
    let Ok(b) = backend(state, backends, &addr) else {
        return Ok(CONNECT_FAILED.into());
    };
    b.writer.write_all(&request(sent))?;
    let mut line = String::new();
    b.reader.read_line(&mut line)?;
    state.count_reply(&addr, &line);
    Ok(line)
}

/// What mcrouter answers when it cannot reach the key's destination.
const CONNECT_FAILED: &str =
    "SERVER_ERROR AsyncSocketException: connect failed, type = Socket not open\r\n";

/// An admin `get __mcrouter__.COMMAND`: its value, or `ERROR: …` as mcrouter answers one it
/// does not know.
fn admin(config: &Config, command: &str) -> String {
    if command == "config_md5_digest" {
        return config.md5.clone();
    }
    if command == "version" {
        return VERSION.into();
    }
    if let Some(key) = command
        .strip_prefix("route(get,")
        .and_then(|k| k.strip_suffix(')'))
    {
        return config
            .backend(key)
            .map_or_else(String::new, |(addr, _)| addr);
    }
    format!("ERROR: unknown command: {command}")
}

fn handle(stream: TcpStream, state: &State) -> io::Result<()> {
    state.clients.fetch_add(1, Ordering::Relaxed);
    let result = converse(stream, state);
    state.clients.fetch_sub(1, Ordering::Relaxed);
    result
}

fn converse(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut backends: HashMap<String, Backend> = HashMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let config = state.current();
        match words.as_slice() {
            ["get" | "gets", keys @ ..] => {
                let mut reply = Vec::new();
                for key in keys {
                    if let Some(command) = key.strip_prefix("__mcrouter__.") {
                        let value = admin(&config, command);
                        reply.extend(
                            format!("VALUE {key} 0 {}\r\n{value}\r\n", value.len()).as_bytes(),
                        );
                        continue;
                    }
                    state.count_command("get");
                    let Some((addr, sent)) = config.backend(key) else {
                        continue;
                    };
                    let b = match backend(state, &mut backends, &addr) {
                        Ok(b) => b,
                        // mcrouter answers the error alone.
                        Err(_) => {
                            reply = CONNECT_FAILED.as_bytes().to_vec();
                            break;
                        }
                    };
                    b.writer.write_all(format!("get {sent}\r\n").as_bytes())?;
                    let mut found = false;
                    loop {
                        let mut l = String::new();
                        b.reader.read_line(&mut l)?;
                        if l.starts_with("END") || l.is_empty() {
                            state.count_reply(&addr, if found { "FOUND" } else { "NOT_FOUND" });
                            break;
                        }
                        found = true;
                        // VALUE <key> <flags> <bytes>: relay header (with the client's key) and data.
                        let parts: Vec<&str> = l.split_whitespace().collect();
                        let n: usize = parts.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
                        let mut data = vec![0u8; n + 2];
                        b.reader.read_exact(&mut data)?;
                        reply.extend(
                            format!("VALUE {key} {} {n}\r\n", parts.get(2).unwrap_or(&"0"))
                                .as_bytes(),
                        );
                        reply.extend(&data);
                    }
                }
                if !reply.starts_with(b"SERVER_ERROR") {
                    reply.extend(b"END\r\n");
                }
                out.write_all(&reply)?;
            }
            [
                cmd @ ("set" | "add" | "replace"),
                key,
                flags,
                exptime,
                bytes,
                ..,
            ] => {
                let n: usize = bytes.parse().unwrap_or(0);
                let mut data = vec![0u8; n + 2];
                reader.read_exact(&mut data)?;
                state.count_command(match *cmd {
                    "set" => "set",
                    "add" => "add",
                    _ => "replace",
                });
                let reply = one_line(state, &config, &mut backends, key, |sent| {
                    let mut request =
                        format!("{cmd} {sent} {flags} {exptime} {n}\r\n").into_bytes();
                    request.extend(&data);
                    request
                })?;
                out.write_all(reply.as_bytes())?;
            }
            ["delete", key, ..] => {
                state.count_command("delete");
                let reply = one_line(state, &config, &mut backends, key, |sent| {
                    format!("delete {sent}\r\n").into_bytes()
                })?;
                out.write_all(reply.as_bytes())?;
            }
            ["stats"] => out.write_all(state.stats(&config, "").as_bytes())?,
            ["stats", group @ ("detailed" | "all")] => {
                out.write_all(state.stats(&config, group).as_bytes())?
            }
            ["stats", "servers"] => out.write_all(state.stats_servers(&config).as_bytes())?,
            ["stats", ..] => out.write_all(b"CLIENT_ERROR bad stats command\r\n")?,
            ["version"] => out.write_all(format!("VERSION {VERSION}\r\n").as_bytes())?,
            ["quit"] => return Ok(()),
            _ => out.write_all(b"ERROR\r\n")?,
        }
    }
}
