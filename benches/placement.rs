//! Key placement through a real data path (tests/common/placement.rs) and mcrouter (the real
//! one when there is one, else the stand-in): for each event, the
//! share of keys measured to have moved between real memcached, beside the share mcw predicted
//! with mcrouter's hash functions. First, what a change of a 20,000-server Rendezvous pool
//! costs the event loop. Run with `cargo bench --bench placement` (`MCW_BENCH_ONLY=loop`: the
//! latter alone).

#[path = "../tests/common/mod.rs"]
mod common;

use common::placement::{Fleet, N, ROWS, scenario};
use common::{Mcrouter, real_mcrouter};

const KEYS: usize = 10_000;

fn main() {
    large_rendezvous_change();
    if std::env::var("MCW_BENCH_ONLY").as_deref() == Ok("loop") {
        return;
    }
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

/// What a change of a 20,000-server Rendezvous pool costs the event loop: the engine renders
/// and reports it without measuring the share of keys it remaps (0.44 s of hashing, when it
/// did), which `mcw` then measures on a thread of its own.
fn large_rendezvous_change() {
    use mcw::dns::{Answer, Family, Query, Records};
    use mcw::engine::{Action, Engine, Event, Refresh, Report, Settings, Wrote};
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    const SERVERS: usize = 20_000;
    let template = r#"{"pools": {"a": {"servers": ["dns://big.test"]}},
        "route": {"type": "HashRoute", "hash_func": "Rendezvous", "children": "Pool|a"}}"#;
    let settings = Settings {
        template: "bench.json".into(),
        refresh: Refresh {
            min_refresh: Duration::from_secs(5),
            max_refresh: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(60),
            allow_empty: false,
            hold_removed: Duration::ZERO,
        },
        supervision: None,
        warm_up: None,
    };
    let now = Instant::now();
    let mut engine = Engine::new(settings, template.into(), now, 1).unwrap();
    let query = Query {
        name: "big.test".into(),
        srv: false,
        family: Family::Ipv4,
    };
    let answer = |first: u32| {
        let addrs = (first..first + SERVERS as u32)
            .map(|n| std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
            .collect();
        Event::Looked(HashMap::from([(
            query.clone(),
            Ok(Answer::new(Records::Addrs(addrs), 30)),
        )]))
    };
    let write = |engine: &mut Engine, event: Event| -> (Duration, Vec<Action>) {
        let start = Instant::now();
        let actions = engine.handle(event, now);
        let generation = actions
            .iter()
            .find_map(|a| match a {
                Action::Write { generation, .. } => Some(*generation),
                _ => None,
            })
            .expect("a write");
        let mut done = engine.handle(
            Event::Wrote {
                generation,
                result: Ok(Wrote::Replaced),
            },
            now,
        );
        (start.elapsed(), {
            done.extend(actions);
            done
        })
    };
    engine.handle(Event::Tick, now);
    write(&mut engine, answer(0));
    // One server replaced: the pool changes, and its share of keys is to be measured.
    let (on_loop, actions) = write(&mut engine, answer(1));
    let change = actions
        .into_iter()
        .find_map(|a| match a {
            Action::Report(Report::PoolChanged { change, .. }) => Some(change),
            _ => None,
        })
        .expect("a pool change");
    let start = Instant::now();
    let share = change.remapped().unwrap();
    let off_loop = start.elapsed();
    println!(
        "a change of a {SERVERS}-server Rendezvous pool: {:.1} ms on the event loop (render, write, report); the share of keys it remaps ({share}) measured off the loop in {:.0} ms",
        on_loop.as_secs_f64() * 1000.0,
        off_loop.as_secs_f64() * 1000.0
    );
}
