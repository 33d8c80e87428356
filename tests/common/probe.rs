//! A client that connects to mcrouter every 10 ms and asks it one question each time,
//! counting what it sees: answered, refused (nothing listening), broken (accepted by an
//! mcrouter that then died), and the longest wait. For the restart tests and benchmark.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wait_for;

/// How long a test waits for the client to be served.
const WAIT: Duration = Duration::from_secs(20);

/// What a client that connects every 10 ms saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Connections made and answered.
    pub served: usize,
    /// Connections the kernel refused (nothing listening).
    pub refused: usize,
    /// Connections made but closed before the answer (accepted by an mcrouter that then
    /// died).
    pub broken: usize,
    /// The longest time from connect to the end of the answer.
    pub longest: Duration,
}

/// A client asking mcrouter for its md5 on a new connection every 10 ms, until dropped.
pub struct Prober {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    pub fn start(addr: &str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, seen2, addr) = (stop.clone(), seen.clone(), addr.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let started = Instant::now();
                let outcome = ask_once(&addr);
                let took = started.elapsed();
                let mut seen = seen2.lock().unwrap();
                match outcome {
                    Ok(()) => seen.served += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        seen.refused += 1
                    }
                    Err(_) => seen.broken += 1,
                }
                seen.longest = seen.longest.max(took);
                drop(seen);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Prober {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `n` more connections were answered than when it was called.
    pub fn wait_served(&self, n: usize) {
        let from = self.seen().served;
        wait_for("clients to be served", WAIT, || {
            self.seen().served >= from + n
        });
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.seen()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection, one question, the whole answer.
fn ask_once(addr: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(b"get __mcrouter__.config_md5_digest\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "END\r\n" {
            return Ok(());
        }
    }
}
