//! Key placement through a real data path (tests/common/placement.rs) and mcrouter (the real
//! one when there is one, else the stand-in): for each event, the
//! share of keys measured to have moved between real memcached, beside the share mcw predicted
//! with mcrouter's hash functions. Run with `cargo bench --bench placement`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::placement::{Fleet, N, ROWS, scenario};
use common::{Mcrouter, real_mcrouter};

const KEYS: usize = 10_000;

fn main() {
    let fleet = Fleet::start();
    // The real mcrouter when there is one (as the tests find it), else the stand-in.
    let mcrouter = real_mcrouter().map_or(Mcrouter::Standin, Mcrouter::Real);
    println!("through {mcrouter}");
    println!(
        "| pool of {N}, {KEYS} keys | hash | keys moved (measured) | mcw's prediction | expected |"
    );
    println!("|---|---|---|---|---|");
    for row in &ROWS {
        let (moved, predicted) = scenario(&fleet, &mcrouter, row, KEYS);
        let predicted = predicted.map_or("none".to_string(), |p| format!("{:.1} %", p * 100.0));
        println!(
            "| {} | {} | {:.1} % | {predicted} | {} |",
            row.3,
            row.4,
            moved * 100.0,
            row.5
        );
    }
}
