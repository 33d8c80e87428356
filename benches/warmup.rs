//! `--warm-up` measured with the real mcrouter and real memcached (tests/common/warm.rs): for
//! each change, 3,000 keys set through mcrouter, the change made, and every key read once
//! right after mcrouter confirmed it (with `--warm-up`: once the warm-up phase runs; with the
//! old pod gone there is no warm-up, and the plain config is read once confirmed). The hit
//! ratio with and without `--warm-up`, the requests memcached saw for that read, and the
//! latency of the gets (p50/p99). Without a real mcrouter it says so and measures nothing
//! (the stand-in does not warm). Run with `cargo bench --bench warmup`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::warm::{Change, Fleet, hit_ratio, percentiles};
use common::{Mcrouter, real_mcrouter};

const KEYS: usize = 3000;

fn main() {
    let Some(path) = real_mcrouter() else {
        println!("no real mcrouter found: nothing measured (the stand-in does not warm)");
        return;
    };
    let router = Mcrouter::Real(path);
    let fleet = Fleet::start();
    println!(
        "| change ({KEYS} keys, steady state 100 %) | hits without | hits with --warm-up | requests without / with | get p50 / p99 without | with |"
    );
    println!("|---|---|---|---|---|---|");
    for (change, rendezvous) in [
        (Change::ScaleUp, false),
        (Change::ScaleDown, false),
        (Change::NewIp, false),
        (Change::MiddleLeaves, false),
        (Change::NewIpOldGone, false),
        (Change::ScaleUp, true),
    ] {
        let (plain, plain_requests, mut plain_took) =
            hit_ratio(&fleet, &router, change, rendezvous, None, KEYS);
        let (warm, warm_requests, mut warm_took) =
            hit_ratio(&fleet, &router, change, rendezvous, Some("10s"), KEYS);
        let (p50, p99) = percentiles(&mut plain_took);
        let (w50, w99) = percentiles(&mut warm_took);
        let hash = if rendezvous { " (Rendezvous)" } else { "" };
        println!(
            "| {}{hash} | {:.2} % | {:.2} % | {plain_requests} / {warm_requests} | {p50} / {p99} µs | {w50} / {w99} µs |",
            change.name(),
            plain * 100.0,
            warm * 100.0,
        );
    }
}
