//! `--warm-up` with the real mcrouter and real memcached: every phase's config validates (on
//! the stand-in too); right after a change the keys are still found; no command returns a
//! value older than the last acknowledged write or delete in any phase; two replicas whose
//! refreshes are out of step serve no stale value under a mixed workload, through a second
//! change during the warm-up too; and an old server that is dead costs no client error. The
//! stand-in loads warm-up configs but does not warm (it serves a composite by its primary
//! route), so what the routes do is checked against the real mcrouter only.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::warm::*;
use common::*;
use mcw::warmup::{self, Phase, routes};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);

/// Run `body` against the real mcrouter; without one, say loudly that it did not run.
fn with_real_mcrouter(mut body: impl FnMut(&Mcrouter)) {
    match real_mcrouter() {
        Some(path) => body(&Mcrouter::Real(path)),
        None => eprintln!(
            "NOT RUN: this test needs a real mcrouter (MCW_TEST_MCROUTER or mcrouter on PATH: docs/real-mcrouter.md); the stand-in does not warm"
        ),
    }
}

/// A rendered static config.
fn rendered(config: &Value) -> mcw::template::Rendered {
    let t = mcw::template::Template::parse("t.json".as_ref(), &config.to_string()).unwrap();
    mcw::template::render(&t, &Default::default()).unwrap()
}

fn servers(ips: &[u8]) -> Vec<String> {
    ips.iter().map(|n| format!("127.0.3.{n}:11211")).collect()
}

/// Every phase of every kind of change, and configs that name their pools in each form mcw
/// rewrites, validate on mcrouter (`--validate-config=exit`): the real one and the stand-in.
#[test]
fn every_phase_config_validates() {
    let ch3 = |s: &[String]| json!({"pools": {"p": {"servers": s}}, "route": "PoolRoute|p"});
    let rv = |s: &[String]| {
        json!({"pools": {"p": {"servers": s}},
               "route": {"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Rendezvous"}}})
    };
    let two = |s: &[String], t: &[String]| {
        json!({"pools": {"p": {"servers": s}, "q": {"servers": t}},
               "route": {"type": "PrefixSelectorRoute",
                         "policies": {"q:": {"type": "HashRoute", "hash_func": "Ch3", "children": "Pool|q"}},
                         "wildcard": {"type": "PoolRoute", "pool": "p"}}})
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "Ch3 growth",
            ch3(&servers(&[1, 2, 3])),
            ch3(&servers(&[1, 2, 3, 4])),
        ),
        (
            "Ch3 new IP",
            ch3(&servers(&[1, 2, 3])),
            ch3(&servers(&[1, 5, 3])),
        ),
        (
            "Ch3 shrink",
            ch3(&servers(&[1, 2, 3, 4])),
            ch3(&servers(&[1, 2, 3])),
        ),
        (
            "Ch3 middle",
            ch3(&servers(&[1, 2, 3, 4])),
            ch3(&servers(&[1, 3, 4])),
        ),
        (
            "Rendezvous growth",
            rv(&servers(&[1, 2, 3])),
            rv(&servers(&[1, 2, 3, 4])),
        ),
        (
            "Rendezvous shrink",
            rv(&servers(&[1, 2, 3, 4])),
            rv(&servers(&[1, 2, 3])),
        ),
        (
            "Rendezvous new IP",
            rv(&servers(&[1, 2, 3])),
            rv(&servers(&[1, 5, 3])),
        ),
        (
            "two pools at once",
            two(&servers(&[1, 2]), &servers(&[3])),
            two(&servers(&[1, 2, 4]), &servers(&[3, 5])),
        ),
    ];
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        for (what, before, after) in &cases {
            let (b, a) = (rendered(before), rendered(after));
            // Every old server answers.
            let alive: HashSet<String> = warmup::old_servers(&b, &a).into_iter().collect();
            let plan = warmup::plan(&b, &a, &alive);
            assert!(plan.warms() && plan.skipped.is_empty(), "{what}: {plan:?}");
            let (bv, av): (Value, Value) = (
                serde_json::from_slice(&b.bytes).unwrap(),
                serde_json::from_slice(&a.bytes).unwrap(),
            );
            for phase in [Phase::FirstBracket, Phase::WarmUp, Phase::LastBracket] {
                let config = routes::phase_config(&av, &bv, &plan, phase, 600).unwrap();
                let path = work.write(
                    "candidate.json",
                    &String::from_utf8(routes::bytes(&config)).unwrap(),
                );
                let out = router.validate(work.dir.path(), &path);
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{what}, {phase:?} on {router}: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    serde_json::to_string_pretty(&config).unwrap()
                );
            }
        }
    });
}

/// Right after a change is confirmed, reading every key once finds them all with `--warm-up`
/// (the old servers still serve), where without it the keys that moved are misses; where the
/// old server is gone, as many as without.
#[test]
fn right_after_a_change_the_keys_are_still_found() {
    with_real_mcrouter(|router| {
        let fleet = Fleet::start();
        for (change, rendezvous) in [
            (Change::ScaleUp, false),
            (Change::NewIp, false),
            (Change::ScaleDown, false),
            (Change::MiddleLeaves, false),
            (Change::ScaleUp, true),
        ] {
            let (plain, _, _) = hit_ratio(&fleet, router, change, rendezvous, None, 600);
            let (warm, _, _) = hit_ratio(&fleet, router, change, rendezvous, Some("3s"), 600);
            eprintln!(
                "{} (Rendezvous: {rendezvous}): {plain:.3} without, {warm:.3} with",
                change.name()
            );
            assert!(
                plain < 0.95,
                "{}: the change should move keys: {plain}",
                change.name()
            );
            assert!(warm >= 0.99, "{}: {warm}", change.name());
        }
        // With the old pod gone there is nothing to warm from: the same hits as without
        // (the keys of the pod that left are lost either way), and no error.
        let gone = Change::NewIpOldGone;
        let (plain, _, _) = hit_ratio(&fleet, router, gone, false, None, 600);
        let (warm, _, _) = hit_ratio(&fleet, router, gone, false, Some("3s"), 600);
        assert!(
            plain < 0.95 && (warm - plain).abs() < 1e-9,
            "{plain} without, {warm} with"
        );
    });
}

/// The old server of a moved key holds V1, written straight to memcached.
fn seed(fleet: &Fleet, change: Change, key: &str, value: &str) {
    let (old, _) = servers_of(change, key);
    let reply = memcache(
        &fleet.addr(old),
        &format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()),
    );
    assert_eq!(reply, "STORED\r\n");
}

/// "Cold loss": the new server loses the key (an eviction, a restarted pod).
fn cold_loss(fleet: &Fleet, change: Change, key: &str) {
    let (_, new) = servers_of(change, key);
    memcache(&fleet.addr(new), &format!("delete {key}\r\n"));
}

/// The value a get through mcrouter returns, `None` for a miss; an error fails the test.
fn get(c: &mut MemcacheConn, key: &str) -> Option<String> {
    let reply = c.ask(&format!("get {key}\r\n"));
    assert!(!reply.contains("ERROR"), "get {key}: {reply}");
    reply
        .lines()
        .nth(1)
        .filter(|_| reply.starts_with("VALUE"))
        .map(str::to_string)
}

fn store(c: &mut MemcacheConn, verb: &str, key: &str, ttl: u32, value: &str) -> String {
    c.ask(&format!(
        "{verb} {key} 0 {ttl} {}\r\n{value}\r\n",
        value.len()
    ))
}

/// One run of the hazards of the warm-up study on fresh moved keys (`tag` names them), each
/// checking that no read returns a value older than the last acknowledged write or delete.
fn hazards(fleet: &Fleet, addr: &str, change: Change, tag: &str) -> Vec<String> {
    let keys = moved_keys(change, tag, 16);
    let k = |i: usize| keys[i].as_str();
    let mut c = MemcacheConn::open(addr);
    let mut stale = Vec::new();
    let mut never = |what: &str, got: Option<String>, old: &[&str]| {
        if got.as_deref().is_some_and(|g| old.contains(&g)) {
            stale.push(format!("{tag} {what}: read {got:?}"));
        }
    };
    for i in 0..16 {
        seed(
            fleet,
            change,
            k(i),
            if matches!(i, 7 | 8) { "5" } else { "V1" },
        );
    }
    // The keys do go through the phase's routes: the old list's V1 is read in the first
    // bracket and the warm-up (copied over in the warm-up), never in the last bracket.
    let control = get(&mut c, k(13));
    let expected = match tag {
        "last_bracket" => None,
        _ => Some("V1".to_string()),
    };
    assert_eq!(control, expected, "{tag}: a moved key's read");
    // delete, then get (the old copy not yet copied over).
    c.ask(&format!("delete {}\r\n", k(0)));
    never("delete; get", get(&mut c, k(0)), &["V1"]);
    // get (copies it), delete, get.
    get(&mut c, k(1));
    c.ask(&format!("delete {}\r\n", k(1)));
    never("get; delete; get", get(&mut c, k(1)), &["V1"]);
    // set V2, the new server loses it, get.
    store(&mut c, "set", k(2), 0, "V2");
    cold_loss(fleet, change, k(2));
    never("set V2; cold loss; get", get(&mut c, k(2)), &["V1"]);
    // set V2 with a TTL of 2 s: later a miss, never V1.
    store(&mut c, "set", k(3), 2, "V2");
    // get, replace V2, cold loss, get.
    get(&mut c, k(4));
    store(&mut c, "replace", k(4), 0, "V2");
    cold_loss(fleet, change, k(4));
    never(
        "get; replace V2; cold loss; get",
        get(&mut c, k(4)),
        &["V1"],
    );
    // get, append / prepend, cold loss, get.
    get(&mut c, k(5));
    store(&mut c, "append", k(5), 0, "X");
    cold_loss(fleet, change, k(5));
    never("get; append; cold loss; get", get(&mut c, k(5)), &["V1"]);
    get(&mut c, k(6));
    store(&mut c, "prepend", k(6), 0, "X");
    cold_loss(fleet, change, k(6));
    never("get; prepend; cold loss; get", get(&mut c, k(6)), &["V1"]);
    // get, incr / decr, cold loss, get.
    get(&mut c, k(7));
    c.ask(&format!("incr {} 1\r\n", k(7)));
    cold_loss(fleet, change, k(7));
    never("get; incr; cold loss; get", get(&mut c, k(7)), &["5"]);
    get(&mut c, k(8));
    c.ask(&format!("decr {} 1\r\n", k(8)));
    cold_loss(fleet, change, k(8));
    never("get; decr; cold loss; get", get(&mut c, k(8)), &["5"]);
    // touch 1 (after a copy) and gat 1: later a miss.
    get(&mut c, k(9));
    c.ask(&format!("touch {} 1\r\n", k(9)));
    c.ask(&format!("gat 1 {}\r\n", k(10)));
    // gets then cas V2: V2.
    let gets = c.ask(&format!("gets {}\r\n", k(11)));
    if let Some(unique) = gets.lines().next().and_then(|l| l.split(' ').nth(4)) {
        let reply = c.ask(&format!("cas {} 0 0 2 {unique}\r\nV2\r\n", k(11)));
        if reply == "STORED\r\n" {
            never("gets; cas V2; get", get(&mut c, k(11)), &["V1"]);
        }
    }
    // add while the old list holds the key: not stored; a read gives V1 or the add's V2.
    let added = store(&mut c, "add", k(12), 0, "V2");
    if added == "STORED\r\n" {
        never("add V2 (stored); get", get(&mut c, k(12)), &["V1"]);
    }
    // The waits: after 2.5 s the TTL'd, touched and gat'd keys are gone; after the second
    // delete, a deleted key stays deleted.
    std::thread::sleep(Duration::from_millis(2500));
    never("set V2 ttl 2; wait; get", get(&mut c, k(3)), &["V1", "V2"]);
    never("get; touch 1; wait; get", get(&mut c, k(9)), &["V1"]);
    never("gat 1; wait; get", get(&mut c, k(10)), &["V1"]);
    never("get; delete; wait; get", get(&mut c, k(1)), &["V1"]);
    never("delete; wait; get", get(&mut c, k(0)), &["V1"]);
    stale
}

/// Every command through mcrouter in each phase of a warm-up, on keys the change moves: no
/// read returns a value older than the last acknowledged write or delete. Then `flush_all`
/// empties the old list too, and `lease-get` and `metaget` answer an error (open-source
/// memcached has neither), as without a warm-up.
#[test]
fn no_command_returns_a_stale_value_in_any_phase() {
    with_real_mcrouter(|router| {
        let fleet = Fleet::start();
        let change = Change::ScaleUp;
        let (before, after) = change.pods();
        fleet.set(&before);
        // Phases long enough for a batch: brackets of about 5 s, a warm-up of 6 s.
        let r = Replica::start(
            &fleet,
            router,
            false,
            &[
                "--min-refresh",
                "4s",
                "--max-refresh",
                "4s",
                "--dns-timeout",
                "300ms",
                "--warm-up",
                "6s",
            ],
        );
        fleet.set(&after);
        r.w.signal(libc::SIGHUP);
        let mut stale = Vec::new();
        for phase in ["first_bracket", "warm_up", "last_bracket"] {
            r.wait_phase(phase, WAIT);
            let started = Instant::now();
            stale.extend(hazards(&fleet, &r.addr, change, phase));
            assert_eq!(
                r.phase(),
                phase,
                "the batch outlasted the phase ({:?})",
                started.elapsed()
            );
        }
        assert!(stale.is_empty(), "stale reads: {stale:#?}");
        wait_for("the plain config", WAIT, || {
            r.w.log().contains("warm-up over")
        });
        let mut c = MemcacheConn::open(&r.addr);
        for reply in [c.ask("lease-get key:0\r\n"), c.ask("metaget key:0\r\n")] {
            assert!(
                reply.starts_with("SERVER_ERROR") || reply.contains("ERROR"),
                "{reply}"
            );
        }
    });
}

/// The model of a key: the last acknowledged value, or none (deleted, never set).
struct Checker {
    rng: u64,
    last: Vec<Option<String>>,
    next: u64,
    ops: usize,
    stale: Vec<String>,
}

impl Checker {
    fn roll(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    /// One random set, delete or get of one of `keys`, through `c`.
    fn step(&mut self, c: &mut MemcacheConn, keys: &[String], via: &str) {
        let i = self.roll(keys.len() as u64) as usize;
        let key = &keys[i];
        self.ops += 1;
        match self.roll(10) {
            0..3 => {
                self.next += 1;
                let value = format!("v{}", self.next);
                let reply = store(c, "set", key, 0, &value);
                assert_eq!(reply, "STORED\r\n", "set {key} via {via}");
                self.last[i] = Some(value);
            }
            3 => {
                let reply = c.ask(&format!("delete {key}\r\n"));
                assert!(
                    reply == "DELETED\r\n" || reply == "NOT_FOUND\r\n",
                    "{reply}"
                );
                self.last[i] = None;
            }
            _ => {
                let got = get(c, key);
                if got.is_some() && got != self.last[i] {
                    self.stale.push(format!(
                        "op {} via {via}: {key} read {got:?}, last acknowledged {:?}",
                        self.ops, self.last[i]
                    ));
                }
            }
        }
    }
}

/// Two replicas on the same memcached whose DNS refreshes are out of step (one starts a
/// second after the other), each warming up on its own, and a second change that comes during
/// the warm-up: a mixed workload through both, one operation at a time, never reads a value
/// older than the last acknowledged write or delete.
#[test]
fn two_replicas_out_of_step_serve_no_stale_value() {
    with_real_mcrouter(|router| {
        let fleet = Fleet::start();
        let (before, after) = Change::ScaleUp.pods();
        fleet.set(&before);
        let extra = [
            "--min-refresh",
            "2s",
            "--max-refresh",
            "2s",
            "--dns-timeout",
            "300ms",
            "--warm-up",
            "3s",
        ];
        let a = Replica::start(&fleet, router, false, &extra);
        std::thread::sleep(Duration::from_millis(1100));
        let b = Replica::start(&fleet, router, false, &extra);
        let mut keys = moved_keys(Change::ScaleUp, "mixed", 40);
        keys.extend((0..20).map(|i| format!("still:{i}")));
        let mut check = Checker {
            rng: 0x9e37_79b9_7f4a_7c15,
            last: vec![None; keys.len()],
            next: 0,
            ops: 0,
            stale: Vec::new(),
        };
        let (mut ca, mut cb) = (MemcacheConn::open(&a.addr), MemcacheConn::open(&b.addr));
        let mut run = |until: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !until() {
                assert!(Instant::now() < deadline, "the replicas never got there");
                check.step(&mut ca, &keys, "A");
                check.step(&mut cb, &keys, "B");
            }
        };
        run(&|| check_settled(&a) && check_settled(&b));
        // The change, picked up by each replica's own refresh.
        fleet.set(&after);
        let second = {
            let mut pods = after.clone();
            pods.push((4, 5));
            pods
        };
        run(&|| a.phase() == "warm_up");
        // A second change while A warms up: it waits for the warm-up's end, then gets its
        // own.
        fleet.set(&second);
        run(&|| {
            let done = |r: &Replica| r.w.log().matches("warm-up over").count() >= 2;
            done(&a) && done(&b) && check_settled(&a) && check_settled(&b)
        });
        eprintln!("{} operations through two replicas", check.ops);
        assert!(check.stale.is_empty(), "stale reads: {:#?}", check.stale);
    });
}

/// No warm-up under way, and mcrouter runs what the output holds.
fn check_settled(r: &Replica) -> bool {
    let body = http::get(&r.web, "/status").body;
    let status: Value = serde_json::from_str(&body).unwrap();
    status["warm_up"].is_null() && status["mcrouter"]["in_sync"] == json!(true)
}

/// A pod that comes back at a new address while its old one does not answer (refused, or
/// unroutable): mcw does not warm from it, and no client sees an error.
#[test]
fn a_dead_old_server_costs_no_client_error() {
    with_real_mcrouter(|router| {
        let fleet = Fleet::start();
        for (dead, old) in [
            ("refused", "127.0.3.2:1"),
            ("unroutable", "192.0.2.77:11211"),
        ] {
            fleet.flush();
            // mc-1 at a dead address; then at 127.0.3.5.
            let pods = |addr: &str| {
                fleet.dns.set_addrs("mc-1.cache.test", &[addr], 1);
            };
            fleet.set(&[(0, 1), (1, 2), (2, 3)]);
            let (ip, port) = old.split_once(':').unwrap();
            let port: u16 = port.parse().unwrap();
            fleet.dns.set_srv(
                SRV,
                &[
                    (0, 1, fleet.port, "mc-0.cache.test"),
                    (0, 1, port, "mc-1.cache.test"),
                    (0, 1, fleet.port, "mc-2.cache.test"),
                ],
                1,
            );
            pods(ip);
            let r = Replica::start(
                &fleet,
                router,
                false,
                &[&FAST[..], &["--warm-up", "3s"]].concat(),
            );
            fleet.set(&[(0, 1), (1, 5), (2, 3)]);
            r.w.signal(libc::SIGHUP);
            r.w.wait_log("pool changed without a warm-up", WAIT);
            assert!(
                r.w.log()
                    .contains("none of its changed slots' old servers answered"),
                "{dead}: {}",
                r.w.log()
            );
            wait_for("the change confirmed", WAIT, || r.confirmations() >= 2);
            // Reads of every key (those of the pod that moved included): misses, no error.
            read_keys(&r.addr, 300);
            let mut c = MemcacheConn::open(&r.addr);
            for i in 0..300 {
                let reply = store(&mut c, "set", &format!("key:{i}"), 0, "x");
                assert_eq!(reply, "STORED\r\n", "{dead}: set key:{i}");
            }
            drop(r);
        }
    });
}

/// `mcw watch --warm-up` (no mcrouter: each phase runs from its write): `mcw diff` says which
/// slots a change would warm; `/status` and the metrics show the phase, the pool and its
/// slots and the time left; and at the end the output is byte for byte what `mcw render`
/// writes for the same answers.
#[test]
fn diff_status_and_metrics_show_the_warm_up_and_it_ends_on_the_plain_render() {
    let fleet = Fleet::start();
    let (before, after) = Change::ScaleUp.pods();
    fleet.set(&before);
    let work = Workdir::new();
    work.write("template.json", &template(false));
    let web = format!("127.0.0.1:{}", free_port());
    let w = Watcher::start(
        &work,
        &fleet.dns,
        &[&["--metrics-listen", &web][..], &FAST, &["--warm-up", "2s"]].concat(),
    );
    w.wait_log("wrote config", WAIT);
    fleet.set(&after);
    // What a render now would change, and warm.
    let diff = run(work
        .mcw("diff", &fleet.dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert_eq!(diff.status.code(), Some(1));
    assert!(
        stdout(&diff).contains("with --warm-up: new slots [3] would be warmed"),
        "{}",
        stdout(&diff)
    );
    w.signal(libc::SIGHUP);
    w.wait_log("warm-up phase runs phase=\"first_bracket\"", WAIT);
    let status: Value = serde_json::from_str(&http::get(&web, "/status").body).unwrap();
    assert_eq!(
        status["warm_up"]["phase"],
        json!("first_bracket"),
        "{status}"
    );
    assert_eq!(status["warm_up"]["pools"][0]["slots"], json!([3]));
    assert!(
        status["warm_up"]["seconds_left"]
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );
    let metrics = http::get(&web, "/metrics").body;
    assert_eq!(
        http::sample(&metrics, "mcw_warmup_phase{phase=\"first_bracket\"}"),
        Some(1.0)
    );
    assert_eq!(
        http::sample(&metrics, "mcw_warmup_slots{pool=\"p\"}"),
        Some(1.0)
    );
    // Mid-warm-up, diff knows the output's own pools for what they are.
    let mid = run(work
        .mcw("diff", &fleet.dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert!(stdout(&mid).contains("is in a warm-up"), "{}", stdout(&mid));
    w.wait_log("warm-up over; writing the plain config", WAIT);
    wait_for("the plain config", WAIT, || {
        std::fs::read_to_string(work.path("out.json")).is_ok_and(|t| !t.contains("mcw-"))
    });
    let plain = run(&mut work.mcw("render", &fleet.dns));
    assert_eq!(stdout(&plain), work.read("out.json"));
    let metrics = http::get(&web, "/metrics").body;
    assert_eq!(
        http::sample(&metrics, "mcw_warmups_total{outcome=\"warmed\"}"),
        Some(1.0)
    );
    assert_eq!(
        http::sample(&metrics, "mcw_warmup_phase{phase=\"none\"}"),
        Some(1.0)
    );
}
