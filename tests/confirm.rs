//! `mcw run` over mcrouter (the stand-in, and the real mcrouter when there is one) with real
//! memcached: reloads are confirmed, keys stay on their memcached when another pod moves, a
//! rejected config is detected and the file restored, a slow start or reload is waited for.

mod common;

use std::time::Duration;

use common::http;
use common::*;

const WAIT: Duration = Duration::from_secs(15);

/// mcw run over `router` with a one-token template (memcache.test at `ttl`), once the first
/// config is confirmed; returns it, the work dir, and mcrouter's address.
fn confirmed(
    router: &Mcrouter,
    dns: &DnsServer,
    ttl: u32,
    extra: &[&str],
) -> (Watcher, Workdir, String) {
    dns.set_addrs("memcache.test", &["127.0.0.1"], ttl);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let port = free_port();
    let w = run_router(&work, dns, extra, router, port);
    wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
    (w, work, format!("127.0.0.1:{port}"))
}

/// mcrouter at `addr` says it runs `config` (the md5 of its bytes).
fn assert_runs(addr: &str, config: &str) {
    let reply = memcache(addr, "get __mcrouter__.config_md5_digest\r\n");
    let md5 = mcw::engine::md5_hex(config.as_bytes());
    assert!(
        reply.contains(&md5),
        "mcrouter at {addr} runs another config: {reply}"
    );
}

fn confirmations(w: &Watcher) -> usize {
    w.log().matches("mcrouter runs the new config").count()
}

#[test]
fn keys_stay_on_their_memcached_when_another_pod_moves() {
    with_each_mcrouter(|router| {
        let mc_port = free_port();
        let pods: Vec<String> = (0..4).map(|i| format!("127.0.0.{}", 11 + i)).collect();
        let mut mems: Vec<Daemon> = pods.iter().map(|ip| memcached(ip, mc_port)).collect();
        let dns = DnsServer::start();
        let names: Vec<String> = (0..4).map(|i| format!("mc-{i}.mc.test")).collect();
        let srv: Vec<(u16, u16, u16, &str)> =
            names.iter().map(|n| (0, 0, mc_port, n.as_str())).collect();
        dns.set_srv("_mc._tcp.mc.test", &srv, 1);
        for (n, ip) in names.iter().zip(&pods) {
            dns.set_addrs(n, &[ip], 1);
        }
        let work = Workdir::new();
        work.write(
            "template.json",
            r#"{"pools": {"a": {"servers": ["dnssrv://_mc._tcp.mc.test"]}}, "route": "PoolRoute|a"}"#,
        );
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let w = run_router(&work, &dns, &["--min-refresh", "200ms"], router, port);
        wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);

        let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
        let mut owner = Vec::new();
        for k in &keys {
            assert_eq!(
                memcache(&addr, &format!("set {k} 0 0 3\r\nabc\r\n")),
                "STORED\r\n"
            );
            let on: Vec<usize> = (0..4)
                .filter(|i| {
                    memcache(&format!("{}:{mc_port}", pods[*i]), &format!("get {k}\r\n"))
                        .contains("VALUE")
                })
                .collect();
            assert_eq!(on.len(), 1, "{k} stored on {on:?}");
            owner.push(on[0]);
        }

        // Pod mc-2 comes back with a new IP (a new, empty memcached).
        let moved = 2;
        mems.push(memcached("127.0.0.21", mc_port));
        dns.set_addrs(&names[moved], &["127.0.0.21"], 1);
        wait_for("the confirmed reload", WAIT, || confirmations(&w) == 2);
        w.wait_log("removed=-127.0.0.13", WAIT);

        let mut kept = 0;
        for (k, o) in keys.iter().zip(&owner) {
            let hit = memcache(&addr, &format!("get {k}\r\n")).contains("VALUE");
            assert_eq!(hit, *o != moved, "{k} (was on mc-{o})");
            kept += usize::from(hit);
        }
        let on_moved = owner.iter().filter(|o| **o == moved).count();
        assert!(on_moved > 30, "mc-2 held {on_moved} keys");
        assert_eq!(kept, keys.len() - on_moved);
    });
}

#[test]
fn a_config_mcrouter_rejects_is_detected_and_the_file_restored() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let (w, work, router) = confirmed(
            router,
            &dns,
            0,
            &["--min-refresh", "200ms", "--confirm-timeout", "1s"],
        );
        let good = work.read("out.json");

        // Valid for mcw, refused by mcrouter (no such route type).
        work.write("template.json", r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": {"type": "NoSuchRoute"}}"#);
        w.wait_log(
            "mcrouter rejected the config and still runs the previous one",
            WAIT,
        );
        w.wait_log(
            &format!("running_md5={}", mcw::engine::md5_hex(good.as_bytes())),
            WAIT,
        );
        w.wait_log("wrote the running config back to the output", WAIT);
        assert_eq!(work.read("out.json"), good, "the file must match what runs");
        // mcrouter's own reason, from its log, is in mcw's account of the rejection.
        wait_for("mcrouter's reason in the rejection", WAIT, || {
            w.log().lines().any(|l| {
                let with_reason =
                    l.contains("rejected the config") && !l.contains("see mcrouter's log");
                with_reason || l.contains("mcrouter's reason for rejecting the config")
            })
        });
        let failures = |r: &str| {
            memcache(r, "stats detailed\r\n")
                .lines()
                .find_map(|l| {
                    l.strip_prefix("STAT config_failures ")
                        .map(|v| v.trim().to_string())
                })
                .unwrap()
        };
        assert_eq!(failures(&router), "1");
        // Refreshes go on (every 200 ms), but the rejected bytes are not written again.
        let asked = dns.queries("memcache.test", hickory_server::proto::rr::RecordType::A);
        wait_for("three more refreshes", WAIT, || {
            dns.queries("memcache.test", hickory_server::proto::rr::RecordType::A) >= asked + 3
        });
        assert_eq!(failures(&router), "1");
        assert_eq!(w.log().matches("wrote config").count(), 2, "{}", w.log());
        assert_eq!(work.read("out.json"), good);
        assert_runs(&router, &good);
    });
}

/// Regression, found with the real mcrouter: an output deleted under a running mcrouter came
/// back, but mcrouter had dropped its watch on it (it re-adds the watch after each event, and
/// the file was missing then) and never loaded another config: DNS changes stopped reaching
/// traffic for good. mcw reads mcrouter's line about it, puts the file back and restarts
/// mcrouter on it, and the next DNS change is confirmed.
#[test]
fn an_mcrouter_that_stopped_watching_its_deleted_config_is_restarted_and_follows_dns() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 1);
        let work = Workdir::new();
        work.write("template.json", ONE_TOKEN);
        // Nothing but mcw's restart and SIGHUP puts the file back: refreshes an hour apart,
        // the template not polled, and the output apart from it (deleting it sets off no
        // template read).
        let slow = [
            "--min-refresh",
            "1h",
            "--max-refresh",
            "1h",
            "--template-poll",
            "24h",
        ];
        let port = free_port();
        let output = work.path("run/out.json");
        let w = run_router_to(&work, &dns, &slow, router, port, &output);
        let addr = format!("127.0.0.1:{port}");
        wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
        std::fs::remove_file(&output).unwrap();
        w.wait_log("Can not add inotify watch", WAIT);
        w.wait_log(
            "mcrouter stopped watching its config file (it was deleted) and would never load another config; restarting it",
            WAIT,
        );
        wait_for("the restarted mcrouter's confirmation", WAIT, || {
            w.log().matches("started mcrouter").count() == 2 && confirmations(&w) == 2
        });

        dns.set_addrs("memcache.test", &["127.0.0.2"], 1);
        w.signal(libc::SIGHUP);
        wait_for("the DNS change confirmed", WAIT, || confirmations(&w) == 3);
        let out = std::fs::read_to_string(&output).unwrap();
        assert!(out.contains("127.0.0.2"), "{out}");
        assert_runs(&addr, &out);
    });
}

#[test]
fn validate_keeps_a_bad_candidate_from_ever_being_installed() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let (w, work, router) = confirmed(router, &dns, 3600, &["--validate"]);
        let good = work.read("out.json");

        work.write("template.json", r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": {"type": "NoSuchRoute"}}"#);
        w.wait_log(
            "mcrouter --validate-config rejected the new config; it was not installed",
            WAIT,
        );
        // mcrouter's reason, from the validator's log, not only its exit status.
        w.wait_log("reason=\"Unknown RouteHandle: NoSuchRoute", WAIT);
        assert_eq!(work.read("out.json"), good);
        let stats = memcache(&router, "stats detailed\r\n");
        assert!(
            stats.contains("STAT config_failures 0"),
            "mcrouter never saw the bad config: {stats}"
        );
        let left = leftovers(&work);
        assert!(left.is_empty(), "candidate left behind: {left:?}");

        // The next good edit passes validation and is confirmed.
        work.write(
            "template.json",
            &ONE_TOKEN.replace("PoolRoute|a", "PoolRoute|a\", \"x\": \"1"),
        );
        wait_for("the second confirmation", WAIT, || confirmations(&w) == 2);
        assert!(work.read("out.json").contains("\"x\": \"1\""));
    });
}

/// Temp files and candidates in the work dir.
fn leftovers(work: &Workdir) -> Vec<String> {
    std::fs::read_dir(work.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".mcw-"))
        .collect()
}

/// A work dir with the one-token template, memcache.test at 127.0.0.1.
fn one_token(dns: &DnsServer) -> Workdir {
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    work
}

/// An executable shell script named `mcrouter` in `work/bin` (mcw vets what follows a word of
/// that name, and `--validate` needs one).
fn wrapper(work: &Workdir, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = work.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("mcrouter");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `mcw run --validate` (with `extra`) over `router` behind a wrapper whose validator hangs
/// (after writing its pid to `validator.pid`) while the file `hang` exists in `work`; once
/// the first config is confirmed.
fn validating(router: &Mcrouter, dns: &DnsServer, work: &Workdir, extra: &[&str]) -> Watcher {
    let mcrouter = wrapper(
        work,
        &format!(
            "case \"$*\" in *--validate-config*) [ -e {hang} ] && echo $$ > {pid} && exec sleep 600;; esac\nexec {router} \"$@\"",
            hang = work.path("hang").display(),
            pid = work.path("validator.pid").display(),
            router = router.path().display()
        ),
    );
    let isolation = router.isolation(work.dir.path());
    let w = run_command(work, dns, extra, &mcrouter, &isolation, free_port());
    wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
    w
}

/// Regression: a validator that never exited stalled every later update.
#[test]
fn a_hung_validator_is_killed_and_the_next_change_is_still_installed_and_confirmed() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = one_token(&dns);
        let hang = work.path("hang");
        let extra = [
            "--validate",
            "--validate-timeout",
            "500ms",
            "--min-refresh",
            "100ms",
        ];
        let w = validating(router, &dns, &work, &extra);

        std::fs::write(&hang, "").unwrap();
        dns.set_addrs("memcache.test", &["127.0.0.2"], 3600);
        w.signal(libc::SIGHUP);
        w.wait_log("timed out after 500ms; killed", WAIT);
        assert!(work.read("out.json").contains("127.0.0.1:11211"));

        std::fs::remove_file(&hang).unwrap();
        dns.set_addrs("memcache.test", &["127.0.0.3"], 3600);
        w.signal(libc::SIGHUP);
        wait_for("the second confirmation", WAIT, || confirmations(&w) == 2);
        assert!(work.read("out.json").contains("127.0.0.3:11211"));
        let left = leftovers(&work);
        assert!(left.is_empty(), "candidate left behind: {left:?}");
    });
}

/// An admin port that answers `ERROR` (or anything but a digest) tells mcw nothing: no
/// verdict, no rollback, the new config stays.
#[test]
fn an_admin_port_that_answers_error_never_causes_a_rollback() {
    let dns = DnsServer::start();
    let work = one_token(&dns);
    let mcrouter = wrapper(
        &work,
        &format!(
            "exec python3 {} error-admin \"$@\"",
            fixture("child.py").display()
        ),
    );
    let port = free_port();
    let w = run_command(
        &work,
        &dns,
        &["--confirm-timeout", "500ms"],
        &mcrouter,
        &[],
        port,
    );
    w.wait_log("cannot tell whether mcrouter runs the new config", WAIT);
    dns.set_addrs("memcache.test", &["127.0.0.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_for("a second 'cannot tell'", WAIT, || {
        w.log().matches("cannot tell whether").count() == 2
    });
    let log = w.log();
    assert!(log.contains("mcrouter answered \\\"ERROR\\\""), "{log}");
    assert!(!log.contains("rejected"), "{log}");
    assert!(work.read("out.json").contains("127.0.0.2:11211"));
}

/// `mcw run` over `mcrouter` (a wrapper of `router`) with `--metrics-listen`; returns the
/// watcher and the endpoint.
fn run_observed(
    work: &Workdir,
    dns: &DnsServer,
    (mcrouter, router): (&std::path::Path, &Mcrouter),
    port: u16,
    extra: &[&str],
) -> (Watcher, String) {
    let web = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--metrics-listen", web.as_str()];
    args.extend(extra);
    let isolation = router.isolation(work.dir.path());
    let w = run_command(work, dns, &args, mcrouter, &isolation, port);
    wait_for("the metrics endpoint", WAIT, || {
        http::try_request(&web, "GET", "/healthz", &[]).is_ok()
    });
    (w, web)
}

/// Regression: an mcrouter that opened its admin port after `--confirm-timeout` (a slow
/// start, a large config) left mcw at "cannot tell" for ever: nothing asked again, `/readyz`
/// stayed 503 and `mcw_config_in_sync` 0, and the pod never became ready.
#[test]
fn an_mcrouter_that_starts_after_the_confirm_timeout_is_confirmed_and_ready() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = one_token(&dns);
        let slow = wrapper(
            &work,
            &format!("sleep 2\nexec {} \"$@\"", router.path().display()),
        );
        let port = free_port();
        let (w, web) = run_observed(
            &work,
            &dns,
            (&slow, router),
            port,
            &["--confirm-timeout", "500ms"],
        );
        w.wait_log("cannot tell whether mcrouter runs the new config", WAIT);
        assert_eq!(http::get(&web, "/readyz").status, 503);
        wait_for("readiness", WAIT, || {
            http::get(&web, "/readyz").status == 200
        });
        let metrics = http::get(&web, "/metrics").body;
        assert_eq!(http::sample(&metrics, "mcw_config_in_sync"), Some(1.0));
        w.wait_log("mcrouter runs the new config", WAIT);
    });
}

/// Regression: a reload slower than `--confirm-timeout` was called a rejection; mcw wrote the
/// old bytes back and refused the new render, so the good config never ran. mcrouter's
/// reconfiguration delay is hidden from mcw here (a wrapper adds it), as when it comes from a
/// flavor file.
#[test]
fn a_reload_slower_than_the_confirm_timeout_is_not_reloaded_yet_never_a_rollback() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = one_token(&dns);
        let slow = wrapper(
            &work,
            &format!(
                "exec {} \"$@\" --reconfiguration-delay-ms=1500",
                standin().display()
            ),
        );
        let port = free_port();
        let isolation = router.isolation(work.dir.path());
        let w = run_command(
            &work,
            &dns,
            &["--confirm-timeout", "500ms"],
            &slow,
            &isolation,
            port,
        );
        wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
        dns.set_addrs("memcache.test", &["127.0.0.2"], 3600);
        w.signal(libc::SIGHUP);
        w.wait_log("mcrouter has not reloaded the new config yet", WAIT);
        wait_for("the late confirmation", WAIT, || confirmations(&w) == 2);
        let log = w.log();
        assert!(!log.contains("rejected"), "{log}");
        assert!(!log.contains("wrote the running config back"), "{log}");
        assert!(work.read("out.json").contains("127.0.0.2:11211"));
        assert_runs(&format!("127.0.0.1:{port}"), &work.read("out.json"));
    });
}

/// mcw reads mcrouter's reload delay and jitter from its arguments and refuses, before
/// anything starts, a `--confirm-timeout` shorter than mcrouter may take to reload.
#[test]
fn a_confirm_timeout_too_short_for_mcrouters_reload_delay_is_a_usage_error() {
    let dns = DnsServer::start();
    let work = one_token(&dns);
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output")
        .arg(work.path("out.json"))
        .args(["--confirm-timeout", "2s", "--", "mcrouter", "-p", "5000"])
        .args([
            "--reconfiguration-delay-ms=1000",
            "--reconfiguration-jitter-ms=500",
        ]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--confirm-timeout 2s is too short")
            && err.contains("--reconfiguration-delay-ms=1000")
            && err.contains("--reconfiguration-jitter-ms=500")
            && err.contains("3.5s"),
        "{err}"
    );
    assert!(!work.path("out.json").exists(), "nothing may start");
}

/// Regression: a validator still running when mcw exited was left behind, with its candidate
/// file beside the output.
#[test]
fn a_validator_still_running_when_mcw_exits_is_ended_and_its_candidate_removed() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = one_token(&dns);
        let hang = work.path("hang");
        let pidfile = work.path("validator.pid");
        let extra = ["--validate", "--validate-timeout", "1h"];
        let mut w = validating(router, &dns, &work, &extra);
        std::fs::write(&hang, "").unwrap();
        dns.set_addrs("memcache.test", &["127.0.0.2"], 3600);
        w.signal(libc::SIGHUP);
        wait_for("the validator", WAIT, || pidfile.exists());
        wait_for("the candidate", WAIT, || !leftovers(&work).is_empty());
        let validator: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        w.signal(libc::SIGTERM);
        assert_eq!(w.wait_exit(WAIT), Some(0));
        let left = leftovers(&work);
        assert!(left.is_empty(), "candidate left behind: {left:?}");
        // Killed (a zombie until init reaps it) or gone.
        wait_for("the validator to end", WAIT, || {
            std::fs::read_to_string(format!("/proc/{validator}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        });
    });
}

/// mcrouter's startup fallback: a config it cannot load at startup is replaced, silently, by
/// a copy it dumped in an earlier run. mcw appends `--max-dumped-config-age=0`, so by default
/// mcrouter exits and mcw exits with it; when the command allows the fallback itself, mcw
/// never takes the dumped config for its own (even with the same md5): it says so, `/readyz`
/// stays 503 and `mcw_config_in_sync` 0.
#[test]
fn a_config_mcrouter_cannot_load_at_startup_is_never_confirmed_from_its_dump() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = one_token(&dns);
        let port = free_port();
        let web = format!("127.0.0.1:{}", free_port());
        let mut allowed = router.isolation(work.dir.path());
        allowed.push("--max-dumped-config-age=43200".into());
        let observed = ["--metrics-listen", web.as_str()];
        // A good run leaves a dump of its config.
        let mut w = run_command(&work, &dns, &observed, &router.path(), &allowed, port);
        wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
        w.signal(libc::SIGTERM);
        assert_eq!(w.wait_exit(WAIT), Some(0));

        // mcw writes a config mcrouter cannot load; mcrouter starts from the dump.
        work.write("template.json", r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": {"type": "NoSuchRoute"}}"#);
        let w = run_command(&work, &dns, &observed, &router.path(), &allowed, port);
        w.wait_log("could not load the config file at startup", WAIT);
        wait_for("the metrics endpoint", WAIT, || {
            http::try_request(&web, "GET", "/readyz", &[]).is_ok()
        });
        let ready = http::get(&web, "/readyz");
        assert_eq!(ready.status, 503);
        assert!(ready.body.contains("dumped"), "{}", ready.body);
        let metrics = http::get(&web, "/metrics").body;
        assert_eq!(http::sample(&metrics, "mcw_config_in_sync"), Some(0.0));
        assert_eq!(confirmations(&w), 0, "{}", w.log());
        drop(w);

        // By default (mcw's --max-dumped-config-age=0) mcrouter exits 1, and mcw with it.
        let isolation = router.isolation(work.dir.path());
        let mut w = run_command(&work, &dns, &[], &router.path(), &isolation, port);
        assert_eq!(w.wait_exit(WAIT), Some(1), "{}", w.log());
        assert!(w.log().contains("mcrouter exited"), "{}", w.log());
    });
}
