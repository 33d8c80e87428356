//! The memcache ASCII front: `get`/`set`/`delete` routed to real memcached backends by the
//! active config, and the admin commands mcw relies on (`get __mcrouter__.config_md5_digest`,
//! `stats detailed`, and `stats all`/`stats servers` with live counts of requests and of each
//! destination's replies). One thread per client connection; backend connections are kept per
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
}

/// Live counts behind `stats all` and `stats servers`.
#[derive(Default)]
pub struct Counts {
    /// Requests received, by operation (`get` counts each key).
    pub commands: BTreeMap<&'static str, u64>,
    /// Replies by destination (`ip:port`), by mcrouter's reply names (`found`, `notfound`, …).
    pub replies: BTreeMap<String, BTreeMap<&'static str, u64>>,
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

    /// `stats all`: a subset of mcrouter's names (stat_list.h), the counts live.
    fn stats_all(&self, config: &Config) -> String {
        let c = self.counts.lock().expect("counts lock");
        let mut lines = vec![
            ("version".to_string(), "41.0.0 mcrouter-standin".to_string()),
            ("commandargs".into(), self.commandargs.clone()),
            ("start_time".into(), self.start_time.to_string()),
            (
                "num_clients".into(),
                self.clients.load(Ordering::Relaxed).to_string(),
            ),
        ];
        let destinations = config.destinations();
        let up = destinations
            .iter()
            .filter(|d| c.replies.contains_key(*d))
            .count();
        lines.push(("num_servers".into(), destinations.len().to_string()));
        lines.push(("num_servers_up".into(), up.to_string()));
        lines.push((
            "num_servers_new".into(),
            (destinations.len() - up).to_string(),
        ));
        lines.push(("num_servers_down".into(), "0".into()));
        for op in ["get", "set", "add", "replace", "delete"] {
            let n = c.commands.get(op).copied().unwrap_or(0);
            lines.push((format!("cmd_{op}_count"), n.to_string()));
            lines.push((format!("cmd_{op}_out_count"), n.to_string()));
            lines.push((format!("cmd_{op}_out_all_count"), n.to_string()));
        }
        let failures = self.failures.load(Ordering::Relaxed);
        lines.push(("config_failures".into(), failures.to_string()));
        let success = self.last_success.load(Ordering::Relaxed);
        lines.push(("config_last_success".into(), success.to_string()));
        let mut reply: String = lines
            .iter()
            .map(|(k, v)| format!("STAT {k} {v}\r\n"))
            .collect();
        reply += "END\r\n";
        reply
    }

    /// `stats servers`: one line per destination that has been used, connection figures before
    /// the `;`, reply counts (those above 0) after it.
    fn stats_servers(&self) -> String {
        let c = self.counts.lock().expect("counts lock");
        let mut reply = String::new();
        for (addr, replies) in &c.replies {
            let counts: Vec<String> = replies.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            reply += &format!(
                "STAT {addr}:ascii:plain:notcompressed-1000 avg_latency_us:0 pending_reqs:0 inflight_reqs:0 avg_retrans_ratio:0 max_retrans_ratio:0 min_retrans_ratio:0 up:1; {}\r\n",
                counts.join(" ")
            );
        }
        reply += "END\r\n";
        reply
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

fn backend<'a>(pool: &'a mut HashMap<String, Backend>, addr: &str) -> io::Result<&'a mut Backend> {
    if !pool.contains_key(addr) {
        let stream = TcpStream::connect(addr)?;
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
    let Ok(b) = backend(backends, &addr) else {
        return Ok("SERVER_ERROR backend unreachable\r\n".into());
    };
    b.writer.write_all(&request(sent))?;
    let mut line = String::new();
    b.reader.read_line(&mut line)?;
    state.count_reply(&addr, &line);
    Ok(line)
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
                    if *key == "__mcrouter__.config_md5_digest" {
                        reply.extend(
                            format!("VALUE {key} 0 {}\r\n{}\r\n", config.md5.len(), config.md5)
                                .as_bytes(),
                        );
                        continue;
                    }
                    state.count_command("get");
                    let Some((addr, sent)) = config.backend(key) else {
                        continue;
                    };
                    let b = match backend(&mut backends, &addr) {
                        Ok(b) => b,
                        Err(_) => continue,
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
                reply.extend(b"END\r\n");
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
            ["stats", "all"] => out.write_all(state.stats_all(&config).as_bytes())?,
            ["stats", "servers"] => out.write_all(state.stats_servers().as_bytes())?,
            ["stats", ..] => {
                let stat = |name: &str, v: u64| format!("STAT {name} {v}\r\n");
                let mut reply = String::new();
                reply += &stat("config_failures", state.failures.load(Ordering::Relaxed));
                reply += &stat(
                    "config_full_attempt",
                    state.attempts.load(Ordering::Relaxed),
                );
                reply += &stat(
                    "config_last_success",
                    state.last_success.load(Ordering::Relaxed),
                );
                reply += &stat("configs_from_disk", 0);
                reply += &stat("reload_polls", state.polls.load(Ordering::Relaxed));
                reply += "END\r\n";
                out.write_all(reply.as_bytes())?;
            }
            ["version"] => out.write_all(b"VERSION mcrouter-standin\r\n")?,
            ["quit"] => return Ok(()),
            _ => out.write_all(b"ERROR\r\n")?,
        }
    }
}
