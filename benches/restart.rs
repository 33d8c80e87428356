//! Restarts of mcrouter under `mcw run`, with a client connecting every 10 ms throughout: how
//! many connections were refused, broken or served, and the longest wait, for each kind of
//! restart (a SIGKILL under `--restart on-failure`, a lost watch on a deleted config, SIGUSR2),
//! with the port mcw holds and, beside it, with `--hold-port false` (mcrouter binds its own
//! port, as before). Ten restarts of each kind in a row, but three SIGKILLs (their backoff
//! doubles: 1, 2, 4 s); the real mcrouter when there is one, and the stand-in. Run with
//! `cargo bench --bench restart`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::probe::{Prober, Seen};
use common::{
    DnsServer, Mcrouter, Watcher, Workdir, free_port, real_mcrouter, run_router_to, wait_for,
};

const RESTARTS: usize = 10;
/// SIGKILLs in a row back off 1, 2, 4 s…: three of them.
const CRASHES: usize = 3;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Kind {
    Sigkill,
    LostWatch,
    Sigusr2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sigkill => "SIGKILL ×3, --restart on-failure (backoff 1, 2, 4 s)",
            Kind::LostWatch => "lost watch (config deleted) ×10",
            Kind::Sigusr2 => "SIGUSR2 ×10",
        }
    }

    fn count(self) -> usize {
        match self {
            Kind::Sigkill => CRASHES,
            Kind::LostWatch | Kind::Sigusr2 => RESTARTS,
        }
    }
}

fn main() {
    let mut routers = vec![Mcrouter::Standin];
    match real_mcrouter() {
        Some(path) => routers.insert(0, Mcrouter::Real(path)),
        None => println!("no real mcrouter found: the stand-in only"),
    }
    println!("| mcrouter | restarts | port | connections | refused | broken | longest wait |");
    println!("|---|---|---|---|---|---|---|");
    for router in &routers {
        for kind in [Kind::Sigkill, Kind::LostWatch, Kind::Sigusr2] {
            for hold in [true, false] {
                let seen = restarts(router, kind, hold);
                let name = match router {
                    Mcrouter::Real(_) => "real",
                    Mcrouter::Standin => "stand-in",
                };
                let port = match hold {
                    true => "held by mcw",
                    false => "mcrouter's own (`--hold-port false`)",
                };
                println!(
                    "| {name} | {} | {port} | {} | {} | {} | {} ms |",
                    kind.name(),
                    seen.served + seen.refused + seen.broken,
                    seen.refused,
                    seen.broken,
                    seen.longest.as_millis()
                );
            }
        }
    }
}

fn confirmations(w: &Watcher) -> usize {
    w.log().matches("mcrouter runs the new config").count()
}

/// `RESTARTS` restarts of `kind` with a client probing throughout; what it saw.
fn restarts(router: &Mcrouter, kind: Kind, hold: bool) -> Seen {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", common::ONE_TOKEN);
    let port = free_port();
    let output = work.path("run/out.json");
    let hold = if hold { "true" } else { "false" };
    let extra = [
        "--restart",
        "on-failure",
        "--restart-limit",
        "100",
        "--hold-port",
        hold,
        "--template-poll",
        "24h",
    ];
    let w = run_router_to(&work, &dns, &extra, router, port, &output);
    wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
    let prober = Prober::start(&format!("127.0.0.1:{port}"));
    prober.wait_served(10);
    for n in 1..=kind.count() {
        match kind {
            Kind::Sigkill => {
                let pid = last_pid(&w);
                mcw::supervise::signals::send(pid, libc::SIGKILL).unwrap();
            }
            Kind::LostWatch => std::fs::remove_file(&output).unwrap(),
            Kind::Sigusr2 => w.signal(libc::SIGUSR2),
        }
        wait_for("the restarted mcrouter's confirmation", WAIT, || {
            confirmations(&w) == n + 1
        });
        prober.wait_served(10);
    }
    prober.finish()
}

/// The pid of the mcrouter mcw started last, from its log.
fn last_pid(w: &Watcher) -> i32 {
    let log = w.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("started mcrouter"))
        .expect("mcrouter was started");
    line.split("pid=")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap()
}
