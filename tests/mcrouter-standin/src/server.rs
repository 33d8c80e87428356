//! The memcache ASCII front: `get`/`set`/`delete` routed to real memcached backends by the
//! active config, and the admin commands mcw relies on (`get __mcrouter__.config_md5_digest`,
//! `stats detailed`). One thread per client connection; backend connections are kept per client.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::Config;

pub struct State {
    pub config: RwLock<Arc<Config>>,
    pub failures: AtomicU64,
    pub attempts: AtomicU64,
    pub last_success: AtomicU64,
    /// Times the reload thread checked its watch (stand-in only, not an mcrouter stat): tests
    /// wait on it to see that polls happened without a reload.
    pub polls: AtomicU64,
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
    Ok(line)
}

fn handle(stream: TcpStream, state: &State) -> io::Result<()> {
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
                    let Some((addr, sent)) = config.backend(key) else {
                        continue;
                    };
                    let b = match backend(&mut backends, &addr) {
                        Ok(b) => b,
                        Err(_) => continue,
                    };
                    write!(b.writer, "get {sent}\r\n")?;
                    loop {
                        let mut l = String::new();
                        b.reader.read_line(&mut l)?;
                        if l.starts_with("END") || l.is_empty() {
                            break;
                        }
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
                let reply = one_line(&config, &mut backends, key, |sent| {
                    let mut request =
                        format!("{cmd} {sent} {flags} {exptime} {n}\r\n").into_bytes();
                    request.extend(&data);
                    request
                })?;
                out.write_all(reply.as_bytes())?;
            }
            ["delete", key, ..] => {
                let reply = one_line(&config, &mut backends, key, |sent| {
                    format!("delete {sent}\r\n").into_bytes()
                })?;
                out.write_all(reply.as_bytes())?;
            }
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
