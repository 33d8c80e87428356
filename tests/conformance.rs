//! The facts about mcrouter that mcw relies on, one test each, asserted the same way against
//! the real mcrouter (when there is one) and against the project's stand-in: where the two
//! differ, the real one is right and the stand-in is changed. docs/mcrouter.md lists the facts
//! and what mcw does about each. mcrouter is started directly here, without mcw.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(15);

/// A config serving pool `a` from `servers`, hashed by `route`.
fn config(servers: &[&str], route: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"{{"pools": {{"a": {{"servers": [{}]}}}}, "route": {route}}}"#,
        servers.join(", ")
    )
}

const PLAIN: &str = r#""PoolRoute|a""#;

/// Replace `path` by rename, as mcw writes.
fn swap(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One mcrouter started by a test, stopped (SIGKILL) when dropped.
struct Router {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Router {
    /// Start `router` with `args` (and its isolation options in `dir`) on a free port on
    /// loopback; returns once its port answers, or once it has exited.
    fn start(router: &Mcrouter, dir: &Path, args: &[String]) -> Router {
        Router::start_isolated(router, args, &router.isolation(dir), dir)
    }

    fn start_isolated(
        router: &Mcrouter,
        args: &[String],
        isolation: &[String],
        dir: &Path,
    ) -> Router {
        Router::start_on(free_port(), router, args, isolation, dir)
    }

    /// On `port`: mcrouter keeps its config dumps by port (its router name).
    fn start_on(
        port: u16,
        router: &Mcrouter,
        args: &[String],
        isolation: &[String],
        dir: &Path,
    ) -> Router {
        let log = dir.join(format!("mcrouter-{port}.log"));
        let child = Command::new(router.path())
            .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
            .args(isolation)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut r = Router { child, port, log };
        wait_for("mcrouter to listen or exit", WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || r.exited().is_some()
        });
        r
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn ask(&self, command: &str) -> String {
        memcache(&self.addr(), command)
    }

    /// The md5 of the config it runs, as mcw reads it.
    fn md5(&self) -> String {
        let reply = self.ask("get __mcrouter__.config_md5_digest\r\n");
        let lines: Vec<String> = reply.lines().map(str::to_string).collect();
        mcw::mcrouter::admin::digest(&lines).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
    }

    /// A counter of `stats detailed`, as mcw reads it.
    fn detailed(&self, name: &str) -> u64 {
        let reply = self.ask("stats detailed\r\n");
        let lines: Vec<String> = reply.lines().map(str::to_string).collect();
        let value = mcw::mcrouter::admin::stat(&lines, name);
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {reply}"))
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_for("mcrouter to exit", WAIT, || {
            status = self.exited();
            status.is_some()
        });
        status.unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        mcw::supervise::signals::send(self.child.id() as i32, sig).unwrap();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `router` started with `-f` on `work/c.json` holding a one-server config, and with `delay`
/// as its reconfiguration delay when given; and the file's path.
fn on_file(router: &Mcrouter, work: &Workdir, delay: Option<u64>) -> (Router, PathBuf) {
    let path = work.write("c.json", &config(&["127.0.0.1:1"], PLAIN));
    let mut given = args(&["-f", path.to_str().unwrap()]);
    given.extend(delay.map(|ms| format!("--reconfiguration-delay-ms={ms}")));
    (Router::start(router, work.dir.path(), &given), path)
}

fn md5_of(path: &Path) -> String {
    mcw::engine::md5_hex(&std::fs::read(path).unwrap())
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// `-f` and `--config=file:` both name the config file; `--config` wins when both are given
/// (so mcw refuses `--config`); long options may be abbreviated (so mcw refuses
/// `--config-f=…` too); an unknown option is only logged.
#[test]
fn config_sources_abbreviations_and_unknown_options() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let a = work.write("a.json", &config(&["127.0.0.1:1"], PLAIN));
        let b = work.write("b.json", &config(&["127.0.0.1:2"], PLAIN));
        let dir = work.dir.path();
        let (fa, fb) = (a.display().to_string(), b.display().to_string());
        for (given, runs) in [
            (vec!["-f".to_string(), fa.clone()], &a),
            (vec![format!("--config=file:{fb}")], &b),
            (
                vec!["-f".into(), fa.clone(), format!("--config=file:{fb}")],
                &b,
            ),
            (vec![format!("--config-f={fa}")], &a),
            (vec![format!("-f{fa}"), "--no-such-option=1".into()], &a),
        ] {
            let r = Router::start(router, dir, &given);
            assert_eq!(r.md5(), md5_of(runs), "{given:?}");
            if given.iter().any(|g| g.contains("no-such-option")) {
                assert!(r.log().contains("no-such-option"), "{}", r.log());
            }
        }
    });
}

/// A config renamed over the watched path is loaded 1–3 reconfiguration delays after the
/// rename (mcrouter notices within one delay, waits another, then builds): what
/// `--confirm-timeout`'s lower bound and the reload benchmark rest on.
#[test]
fn a_renamed_config_is_loaded_within_one_to_three_delays() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let (r, path) = on_file(router, &work, Some(300));
        let delay = Duration::from_millis(300);
        let mut took = Vec::new();
        for n in 2..6 {
            swap(&path, &config(&[&format!("127.0.0.1:{n}")], PLAIN));
            let want = md5_of(&path);
            let written = Instant::now();
            wait_for("the reload", WAIT, || r.md5() == want);
            took.push(written.elapsed());
        }
        eprintln!("reloads took {took:?} with a 300 ms delay");
        for t in &took {
            assert!(*t >= delay.mul_f64(0.9), "{took:?}");
            // Slack for a loaded machine: the fact is "one to three delays", not a deadline.
            assert!(*t <= delay * 3 + Duration::from_millis(1500), "{took:?}");
        }
    });
}

/// `get __mcrouter__.config_md5_digest` answers the md5 of the running config's bytes as 32
/// lowercase hex digits; an admin command mcrouter does not know answers a value reading
/// `ERROR: …`, which mcw must not take for a digest.
#[test]
fn the_md5_answer_and_an_unknown_admin_command() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let (r, path) = on_file(router, &work, None);
        let md5 = md5_of(&path);
        assert_eq!(
            r.ask("get __mcrouter__.config_md5_digest\r\n"),
            format!("VALUE __mcrouter__.config_md5_digest 0 32\r\n{md5}\r\nEND\r\n")
        );
        let unknown = r.ask("get __mcrouter__.no_such_command\r\n");
        assert!(
            unknown.starts_with("VALUE __mcrouter__.no_such_command 0 ")
                && unknown.contains("\r\nERROR: unknown command: no_such_command\r\nEND\r\n"),
            "{unknown:?}"
        );
        let lines: Vec<String> = unknown.lines().map(str::to_string).collect();
        assert!(mcw::mcrouter::admin::digest(&lines).is_err());
    });
}

/// A config that fails to build is rejected: the old one keeps serving, `config_failures`
/// (in `stats detailed`) grows by one, and nothing is retried until the file changes again
/// (renaming the same bytes over it counts). What mcw's rejection verdict rests on.
#[test]
fn a_rejected_config_keeps_the_old_one_and_counts_a_failure_until_the_file_changes() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let (r, path) = on_file(router, &work, Some(100));
        let good = md5_of(&path);
        assert_eq!(r.detailed("config_failures"), 0);
        let bad = config(&["127.0.0.1:1"], r#"{"type": "NoSuchRoute"}"#);
        swap(&path, &bad);
        wait_for("the failed reload", WAIT, || {
            r.detailed("config_failures") == 1
        });
        assert_eq!(r.md5(), good);
        assert!(r.log().contains("Failed to reconfigure"), "{}", r.log());
        // No retry while the file stays as it is (ten delays).
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(r.detailed("config_failures"), 1);
        swap(&path, &bad);
        wait_for("the retry after a rename", WAIT, || {
            r.detailed("config_failures") == 2
        });
        swap(&path, &config(&["127.0.0.1:2"], PLAIN));
        let fixed = md5_of(&path);
        wait_for("the good config", WAIT, || r.md5() == fixed);
        assert_eq!(r.detailed("config_failures"), 2);
        assert_eq!(r.detailed("configs_from_disk"), 0);
    });
}

/// The stats lines as mcw parses them: `stats detailed` has the config counters, `stats all`
/// the figures the exporter maps (mcrouter says `time`, `uptime` and `num_client_connections`,
/// not `start_time` or `num_clients`), and `stats servers` one line per destination with its
/// state and reply counts (`hard_tko;` before the state of one that is down).
#[test]
fn stats_lines_parse_as_mcw_reads_them() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let mc_port = free_port();
        let _mc = memcached("127.0.0.1", mc_port);
        let up = format!("127.0.0.1:{mc_port}");
        let path = work.write("c.json", &config(&[&up], PLAIN));
        let down = work.write("down.json", &config(&["127.0.0.1:1"], PLAIN));
        let r = Router::start(
            router,
            work.dir.path(),
            &args(&["-f", path.to_str().unwrap()]),
        );
        for name in [
            "config_failures",
            "config_last_success",
            "configs_from_disk",
        ] {
            r.detailed(name);
        }
        assert!(r.ask("set k 0 0 1\r\nv\r\n").starts_with("STORED"));
        assert!(r.ask("get k\r\n").contains("VALUE k"));
        r.ask("get nope\r\n");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = r.addr().parse().unwrap();
        let stats = rt.block_on(mcw::mcrouter::stats::fetch(addr)).unwrap();
        for name in [
            "version",
            "commandargs",
            "time",
            "uptime",
            "num_client_connections",
            "num_servers",
            "cmd_get_count",
            "config_failures",
            "config_last_success",
        ] {
            assert!(stats.all.contains_key(name), "stats all has no {name}");
        }
        for absent in ["start_time", "num_clients"] {
            assert!(!stats.all.contains_key(absent), "stats all has {absent}");
        }
        assert_eq!(stats.all["cmd_get_count"], "2");
        let dest = format!("{up}:ascii:plain:notcompressed-1000");
        let (_, figures) = stats
            .servers
            .iter()
            .find(|(name, _)| *name == dest)
            .unwrap_or_else(|| panic!("no {dest} in {:?}", stats.servers));
        assert_eq!(figures.get("found").map(String::as_str), Some("1"));
        assert_eq!(figures.get("notfound").map(String::as_str), Some("1"));
        assert_eq!(figures.get("stored").map(String::as_str), Some("1"));
        assert_eq!(figures.get("up").map(String::as_str), Some("1"));

        // A destination that refuses connections.
        let r = Router::start(
            router,
            work.dir.path(),
            &args(&["-f", down.to_str().unwrap()]),
        );
        assert!(r.ask("get k\r\n").starts_with("SERVER_ERROR"));
        let line = r.ask("stats servers\r\n");
        assert!(
            line.contains(" hard_tko; ") && line.contains(" down:1; "),
            "{line}"
        );
        let addr = r.addr().parse().unwrap();
        let stats = rt.block_on(mcw::mcrouter::stats::fetch(addr)).unwrap();
        assert_eq!(
            stats.servers[0].1.get("down").map(String::as_str),
            Some("1")
        );
    });
}

/// SIGHUP (like SIGUSR1 and SIGUSR2) kills mcrouter, which is why mcw never forwards it;
/// SIGTERM and SIGINT make it shut down and exit 0.
#[test]
fn sighup_kills_and_sigterm_and_sigint_exit_0() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let path = work.write("c.json", &config(&["127.0.0.1:1"], PLAIN));
        let f = args(&["-f", path.to_str().unwrap()]);
        for (sig, killed) in [
            (libc::SIGHUP, true),
            (libc::SIGUSR1, true),
            (libc::SIGUSR2, true),
            (libc::SIGTERM, false),
            (libc::SIGINT, false),
        ] {
            let mut r = Router::start(router, work.dir.path(), &f);
            r.signal(sig);
            let status = r.wait_exit();
            match killed {
                true => assert_eq!(status.signal(), Some(sig), "{status:?}"),
                false => assert_eq!(status.code(), Some(0), "signal {sig}: {status:?}"),
            }
        }
    });
}

/// A config that fails at startup, with no dump to fall back on: exit 1, and the log says
/// `Failed to configure`. `--validate-config=exit` exits 0 for a good config and 3 for a bad
/// one, whose log gives the reason as `Failed to reconfigure: <reason>` (what `mcw run
/// --validate` reads).
#[test]
fn a_bad_config_at_startup_exits_1_and_validate_config_says_0_or_3() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let good = work.write("good.json", &config(&["127.0.0.1:1"], PLAIN));
        let bad = work.write(
            "bad.json",
            &config(&["127.0.0.1:1"], r#"{"type": "NoSuchRoute"}"#),
        );
        let mut r = Router::start_isolated(
            router,
            &args(&["-f", bad.to_str().unwrap()]),
            &["--config-dump-root=".into()],
            work.dir.path(),
        );
        assert_eq!(r.wait_exit().code(), Some(1));
        assert!(r.log().contains("Failed to configure"), "{}", r.log());
        for (file, code) in [(&good, 0), (&bad, 3)] {
            let out = router.validate(work.dir.path(), file);
            assert_eq!(out.status.code(), Some(code), "{}", file.display());
            // The first reason in its log is what a `--validate` rejection says.
            let log = String::from_utf8_lossy(&out.stderr);
            let reason = log.lines().find_map(mcw::mcrouter::failure_reason);
            match code {
                0 => assert_eq!(reason, None, "{log}"),
                _ => assert!(
                    reason.is_some_and(|r| r.starts_with("Unknown RouteHandle: NoSuchRoute")),
                    "{log}"
                ),
            }
        }
    });
}

/// With a dump of an earlier good config (`--config-dump-root`), a config that fails at
/// startup is replaced silently by the dump: mcrouter serves the old pool and says so only in
/// `configs_from_disk=1` (and `config_failures=1`). `--max-dumped-config-age=0` turns the
/// fallback off. What mcw's refusal to confirm a dumped config rests on.
#[test]
fn a_bad_config_at_startup_falls_back_to_a_dumped_one() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let path = work.write("c.json", &config(&["127.0.0.1:1"], PLAIN));
        let good = md5_of(&path);
        let f = args(&["-f", path.to_str().unwrap()]);
        let dir = work.dir.path();
        let (port, isolation) = (free_port(), router.isolation(dir));
        let mut r = Router::start_on(port, router, &f, &isolation, dir);
        assert_eq!(r.md5(), good);
        r.signal(libc::SIGTERM);
        r.wait_exit();
        std::fs::write(&path, "not json").unwrap();
        let r = Router::start_on(port, router, &f, &isolation, dir);
        assert_eq!(r.md5(), good, "served from the dump");
        assert_eq!(r.detailed("configs_from_disk"), 1);
        assert_eq!(r.detailed("config_failures"), 1);
        drop(r);
        let mut off = f.clone();
        off.push("--max-dumped-config-age=0".into());
        let mut r = Router::start_on(port, router, &off, &isolation, dir);
        assert_eq!(r.wait_exit().code(), Some(1));
    });
}

/// `-R` is normalised (slashes added) and one that is not `/region/cluster/` is only logged:
/// mcrouter keeps `/././`. With `routes`, an alias must equal the prefix, else the config is
/// invalid. What mcw's own check of `-R` against the template rests on.
#[test]
fn the_routing_prefix_is_normalised_or_falls_back_and_needs_an_alias() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let routes = |alias: &str| {
            format!(
                r#"{{"pools": {{"a": {{"servers": ["127.0.0.1:1"]}}}}, "routes": [{{"aliases": ["{alias}"], "route": "PoolRoute|a"}}]}}"#
            )
        };
        let dc = work.write("dc.json", &routes("/dc/c0/"));
        let dots = work.write("dots.json", &routes("/././"));
        for (file, r_arg, serves) in [
            (&dc, Some("dc/c0"), true),
            (&dots, Some("/a/"), true),
            (&dots, None, true),
            (&dc, None, false),
        ] {
            let mut given = args(&["-f", file.to_str().unwrap()]);
            if let Some(p) = r_arg {
                given.extend(args(&["-R", p]));
            }
            let mut r = Router::start_isolated(
                router,
                &given,
                &["--config-dump-root=".into()],
                work.dir.path(),
            );
            match serves {
                true => assert_eq!(r.md5(), md5_of(file), "{given:?}"),
                false => assert_eq!(r.wait_exit().code(), Some(1), "{given:?}"),
            }
        }
    });
}

/// `hostnames` and `failure_domains` must list as many entries as `servers`, else the config
/// is invalid, and so must a Rendezvous hash's `tags`; a `weights` of another length is dropped
/// silently. What mcw's refusal of those keys beside a DNS token rests on.
#[test]
fn per_server_lists_of_another_length() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let plain = r#""PoolRoute|a""#.to_string();
        let tagged = |tags| {
            format!(
                r#"{{"type": "PoolRoute", "pool": "a", "hash": {{"hash_func": "Rendezvous", "tags": {tags}}}}}"#
            )
        };
        // What the pool of two servers adds, the route, and whether the config is valid.
        for (extra, route, valid) in [
            (r#", "hostnames": ["a"]"#, plain.clone(), false),
            (r#", "hostnames": ["a", "b"]"#, plain.clone(), true),
            (r#", "failure_domains": [1]"#, plain.clone(), false),
            (r#", "weights": [1]"#, plain.clone(), true),
            ("", tagged(r#"["x"]"#), false),
            ("", tagged(r#"["x", "y"]"#), true),
        ] {
            let file = work.write(
                "c.json",
                &format!(
                    r#"{{"pools": {{"a": {{"servers": ["127.0.0.1:1", "127.0.0.1:2"]{extra}}}}}, "route": {route}}}"#
                ),
            );
            let status = router.validate(work.dir.path(), &file).status;
            let want = if valid { 0 } else { 3 };
            assert_eq!(status.code(), Some(want), "{extra} {route}");
        }
    });
}

/// Keys go where mcw's placement module says, for Ch3 (by index) and Rendezvous (by tag):
/// asked with `__mcrouter__.route(get,KEY)` and checked on real memcached.
#[test]
fn keys_land_where_mcw_predicts_for_ch3_and_rendezvous() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let port = free_port();
        let ips = ["127.0.3.1", "127.0.3.2", "127.0.3.3", "127.0.3.4"];
        let _mems: Vec<Daemon> = ips.iter().map(|ip| memcached(ip, port)).collect();
        let servers: Vec<String> = ips.iter().map(|ip| format!("{ip}:{port}")).collect();
        let refs: Vec<&str> = servers.iter().map(String::as_str).collect();
        let tags: Vec<String> = (0..4).map(|i| format!("mc-{i}.mc.test:11211")).collect();
        let rendezvous = format!(
            r#"{{"type": "PoolRoute", "pool": "a", "hash": {{"hash_func": "Rendezvous", "tags": {}}}}}"#,
            serde_json::to_string(&tags).unwrap()
        );
        for (route, hashing) in [
            (PLAIN.to_string(), mcw::placement::Hashing::Ch3),
            (
                rendezvous,
                mcw::placement::Hashing::Rendezvous { tags: tags.clone() },
            ),
        ] {
            let path = work.write("c.json", &config(&refs, &route));
            let r = Router::start(
                router,
                work.dir.path(),
                &args(&["-f", path.to_str().unwrap()]),
            );
            for i in 0..200 {
                let key = format!("user:{i}");
                let want = &servers[predicted(&hashing, &key, servers.len())];
                let reply = r.ask(&format!("get __mcrouter__.route(get,{key})\r\n"));
                assert!(
                    reply.contains(&format!("\r\n{want}\r\n")),
                    "{key}: {reply:?} not {want}"
                );
                if i < 20 {
                    assert!(
                        r.ask(&format!("set {key} 0 0 1\r\nx\r\n"))
                            .starts_with("STORED")
                    );
                    let there = memcache(want, &format!("get {key}\r\n"));
                    assert!(there.contains("VALUE"), "{key} is not on {want}");
                    assert_eq!(memcache(want, &format!("delete {key}\r\n")), "DELETED\r\n");
                }
            }
        }
    });
}

/// The server mcw's placement module predicts for `key` in a pool of `n`.
fn predicted(hashing: &mcw::placement::Hashing, key: &str, n: usize) -> usize {
    match hashing {
        mcw::placement::Hashing::Ch3 => mcw::placement::furc(key.as_bytes(), n as u32) as usize,
        mcw::placement::Hashing::Rendezvous { tags } => {
            mcw::placement::rendezvous(key.as_bytes(), tags).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

/// A config file deleted (not renamed over) ends reloading for good, and the log says so: a
/// file created again at the path is never loaded. Why mcw only ever replaces the output by
/// rename, and restarts an mcrouter that logs it.
#[test]
fn a_deleted_config_file_ends_reloading() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let (r, path) = on_file(router, &work, Some(100));
        let first = md5_of(&path);
        std::fs::remove_file(&path).unwrap();
        // It says so, in the line mcw restarts it on.
        let lost = format!("Can not add inotify watch for '{}'", path.display());
        wait_for("mcrouter's lost watch", WAIT, || r.log().contains(&lost));
        std::fs::write(&path, config(&["127.0.0.1:2"], PLAIN)).unwrap();
        swap(&path, &config(&["127.0.0.1:3"], PLAIN));
        // Nothing to wait for: a reload that never comes needs a window (fifteen delays).
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(r.md5(), first, "reloaded after the file was deleted");
    });
}

/// `router` started on a listening socket the test holds, with `--listen-sock-fd` and no
/// port; its stderr goes to `log`.
fn start_on_socket(
    router: &Mcrouter,
    dir: &Path,
    socket: &std::net::TcpListener,
    args: &[String],
    log: &Path,
) -> Child {
    use std::os::fd::{AsFd, AsRawFd};
    let fd = socket.as_raw_fd();
    let mut cmd = Command::new(router.path());
    cmd.arg(format!("--listen-sock-fd={fd}"))
        .args(router.isolation(dir))
        .args(args)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    // Inheritable for this spawn only, as mcw lends it.
    let cloexec = |on: bool| {
        let flags = match on {
            true => nix::fcntl::FdFlag::FD_CLOEXEC,
            false => nix::fcntl::FdFlag::empty(),
        };
        nix::fcntl::fcntl(socket.as_fd(), nix::fcntl::FcntlArg::F_SETFD(flags)).unwrap();
    };
    cloexec(false);
    let child = cmd.spawn();
    cloexec(true);
    child.unwrap()
}

/// mcrouter takes over a listening socket it is given with `--listen-sock-fd` (and binds no
/// port of its own): it serves requests, the admin commands and stats mcw reads, and shuts
/// down gracefully on SIGTERM. A client that connects while no mcrouter runs is queued by the
/// kernel, not refused, and is served by the next mcrouter started on the same socket; the
/// same after SIGKILL. (What `mcw run` relies on to restart mcrouter without refusing a
/// connection.)
#[test]
fn a_taken_over_socket_serves_and_queues_clients_between_two_mcrouters() {
    with_each_mcrouter(|router| {
        let work = Workdir::new();
        let path = work.write("c.json", &config(&["127.0.0.1:1"], PLAIN));
        let f = args(&["-f", path.to_str().unwrap()]);
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let log = work.path("mcrouter.log");
        let mut first = start_on_socket(router, work.dir.path(), &socket, &f, &log);
        // The first question waits in the queue until mcrouter accepts it.
        let digest = memcache(&addr, "get __mcrouter__.config_md5_digest\r\n");
        assert!(digest.contains(&md5_of(&path)), "{digest}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stats = rt
            .block_on(mcw::mcrouter::stats::fetch(addr.parse().unwrap()))
            .unwrap();
        let args = stats.all.get("commandargs").cloned().unwrap_or_default();
        assert!(args.contains("--listen-sock-fd"), "{:?}", stats.all);
        let reply = memcache(&addr, "stats detailed\r\n");
        assert!(reply.contains("STAT config_failures 0"), "{reply}");

        // Graceful shutdown on the taken-over socket; it stays open in the holder.
        mcw::supervise::signals::send(first.id() as i32, libc::SIGTERM).unwrap();
        assert_eq!(first.wait().unwrap().code(), Some(0));
        let mut waiting = MemcacheConn::open(&addr);
        let mut second = start_on_socket(router, work.dir.path(), &socket, &f, &log);
        let answer = waiting.ask("get __mcrouter__.config_md5_digest\r\n");
        assert!(answer.contains(&md5_of(&path)), "{answer}");

        // SIGKILL: the same.
        let _ = second.kill();
        second.wait().unwrap();
        let mut waiting = MemcacheConn::open(&addr);
        let mut third = start_on_socket(router, work.dir.path(), &socket, &f, &log);
        let answer = waiting.ask("get __mcrouter__.config_md5_digest\r\n");
        assert!(answer.contains(&md5_of(&path)), "{answer}");
        let _ = third.kill();
        third.wait().unwrap();
    });
}
