//! An mcrouter stand-in for mcw's tests (docs/mcrouter.md): the options, reload behaviour,
//! config dumps and the startup fallback to them, data path, admin commands, stats, signals
//! and exit codes mcw relies on, each checked against a real mcrouter by
//! `tests/conformance.rs`. Not shipped. It leaves out macros, flavors, and every route and
//! hash mcw does not render.

mod config;
mod dump;
mod hash;
mod options;
mod reload;
mod server;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use options::{Options, log};
use server::State;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = Options::parse(&args);
    std::process::exit(run(o));
}

fn run(o: Options) -> i32 {
    if o.config_file.is_some() && o.config_str.is_some() {
        log("-f and --config-str together: fatal");
        return 1;
    }
    // --config=file:PATH silently wins over -f; inline configs never reload.
    let (path, inline) = match (&o.config_arg, &o.config_str, &o.config_file) {
        (Some(c), _, _) => match c.strip_prefix("file:") {
            Some(p) => (Some(p.to_string()), None),
            None => (None, Some(c.clone())),
        },
        (None, Some(s), _) => (None, Some(s.clone())),
        (None, None, Some(f)) => (Some(f.clone()), None),
        (None, None, None) => {
            log("no config source: fatal");
            return 1;
        }
    };
    if o.ports.is_empty() && o.listen_sock_fd < 0 {
        log("no port (-p): invalid options");
        return 3;
    }
    let bytes = match (&path, inline) {
        (Some(p), _) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                log(&format!("cannot read {p}: {e}"));
                return if o.validate { 3 } else { 1 };
            }
        },
        (None, Some(s)) => s.into_bytes(),
        (None, None) => return 1,
    };
    let dump = path
        .as_deref()
        .and_then(|p| dump::Dump::new(&o.config_dump_root, &o.ports, p));
    let (cfg, from_disk, failures) = match config::build(&bytes, &o.route_prefix) {
        Ok(c) => (c, 0, 0),
        Err(e) if o.validate => {
            // mcrouter's words for a config that does not build, as it logs them.
            log(&format!(
                "FAILURE [invalid-config] Failed to reconfigure: {e}"
            ));
            return 3;
        }
        // mcrouter's fallback: the last good config it dumped, if young enough.
        Err(e) => match dump
            .as_ref()
            .and_then(|d| d.load(o.max_dumped_config_age))
            .and_then(|b| config::build(&b, &o.route_prefix).ok())
        {
            Some(c) => {
                log(&format!(
                    "FAILURE Failed to configure initial config: {e}; serving the config dumped earlier"
                ));
                (c, 1, 1)
            }
            None => {
                log(&format!("Failed to configure, initial error '{e}'"));
                return 1;
            }
        },
    };
    if o.validate {
        log("config is valid");
        return 0;
    }
    if from_disk == 0
        && let Some(d) = &dump
    {
        d.save(&bytes);
    }
    let state = Arc::new(State {
        config: RwLock::new(Arc::new(cfg)),
        failures: AtomicU64::new(failures),
        attempts: AtomicU64::new(1),
        last_success: AtomicU64::new(server::unix_now()),
        polls: AtomicU64::new(0),
        start_time: server::unix_now(),
        commandargs: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        clients: AtomicU64::new(0),
        counts: Default::default(),
        from_disk: AtomicU64::new(from_disk),
        last_attempt: AtomicU64::new(server::unix_now()),
    });
    // SIGTERM/SIGINT: graceful exit 0 once startup has finished, which clients see as the port
    // answering, so the handlers go in before the listeners. SIGHUP, SIGUSR1 and SIGUSR2 keep
    // their default action (they kill it).
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
    }
    // The config watch is armed before the port answers, like the signal handlers above.
    if let (Some(p), false) = (path, o.disable_reload) {
        reload::spawn(
            p.into(),
            o.reconfiguration_delay,
            o.route_prefix.clone(),
            state.clone(),
            dump,
        );
    }
    // A socket to take over: mcrouter then binds nothing itself and ignores -p and
    // --listen-addresses.
    if o.listen_sock_fd >= 0 {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor was passed to this process for it to take over, as
        // --listen-sock-fd says; nothing else in the process owns it.
        let l = unsafe { TcpListener::from_raw_fd(o.listen_sock_fd) };
        // A predecessor may have left the shared socket non-blocking; this one accepts
        // blocking, a thread per connection.
        if let Err(e) = l.set_nonblocking(false) {
            log(&format!("cannot take over fd {}: {e}", o.listen_sock_fd));
            return 1;
        }
        let state = state.clone();
        std::thread::spawn(move || server::serve(l, state));
    }
    let hosts = match (o.listen_sock_fd >= 0, o.listen_addresses.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => vec!["0.0.0.0".to_string()],
        (false, false) => o.listen_addresses.clone(),
    };
    for host in &hosts {
        for port in &o.ports {
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            match TcpListener::bind(&addr) {
                Ok(l) => {
                    let state = state.clone();
                    std::thread::spawn(move || server::serve(l, state));
                }
                Err(e) => {
                    log(&format!("cannot listen on {addr}: {e}"));
                    return 1;
                }
            }
        }
    }
    match o.listen_sock_fd {
        fd if fd >= 0 => log(&format!(
            "serving on the socket taken over from fd {fd}, route prefix {}",
            o.route_prefix
        )),
        _ => log(&format!(
            "serving on ports {:?}, route prefix {}",
            o.ports, o.route_prefix
        )),
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    log("shutting down");
    0
}
