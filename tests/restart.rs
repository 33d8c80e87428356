//! `mcw run` restarting mcrouter on the port mcw holds: a client connecting every 10 ms sees
//! no refused connection through a SIGKILL of mcrouter (`--restart on-failure`), a lost-watch
//! restart or SIGUSR2; the config is on disk before every start, whatever DNS is doing; the
//! backoff and its limit; and what `/status` and the metrics say. Against the stand-in and the
//! real mcrouter.

mod common;

use std::time::Duration;

use common::http;
use common::probe::Prober;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

fn confirmations(w: &Watcher) -> usize {
    w.log().matches("mcrouter runs the new config").count()
}

fn starts(w: &Watcher) -> usize {
    w.log().matches("started mcrouter").count()
}

/// `mcw run` over `router` with the one-token template, writing `run/out.json` (apart from
/// the template, so that deleting it sets off no template read), once its first config is
/// confirmed; returns it, the work dir and mcrouter's address.
fn running(router: &Mcrouter, dns: &DnsServer, extra: &[&str]) -> (Watcher, Workdir, String) {
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let port = free_port();
    let output = work.path("run/out.json");
    let w = run_router_to(&work, dns, extra, router, port, &output);
    wait_for("the first confirmation", WAIT, || confirmations(&w) == 1);
    w.wait_log("holding mcrouter's port", WAIT);
    (w, work, format!("127.0.0.1:{port}"))
}

/// The pid of the mcrouter mcw started last, from its log.
fn mcrouter_pid(w: &Watcher) -> i32 {
    let log = w.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("started mcrouter"))
        .expect("mcrouter was started");
    let pid = line
        .split("pid=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    pid.parse().unwrap()
}

/// A SIGKILL of mcrouter, under `--restart on-failure`: it is started again on the same port
/// and config, and a client connecting every 10 ms throughout is never refused.
#[test]
fn a_client_is_never_refused_through_a_sigkill_of_mcrouter() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let web = format!("127.0.0.1:{}", free_port());
        let extra = ["--restart", "on-failure", "--metrics-listen", web.as_str()];
        let (w, _work, addr) = running(router, &dns, &extra);
        let prober = Prober::start(&addr);
        prober.wait_served(10);
        let old = mcrouter_pid(&w);
        mcw::supervise::signals::send(old, libc::SIGKILL).unwrap();
        w.wait_log(
            "mcrouter failed; restarting it on the same port and config",
            WAIT,
        );
        wait_for("the restarted mcrouter's confirmation", WAIT, || {
            confirmations(&w) == 2
        });
        assert_ne!(mcrouter_pid(&w), old);
        prober.wait_served(10);
        let seen = prober.finish();
        eprintln!("SIGKILL restart ({router}): {seen:?}");
        assert_eq!(seen.refused, 0, "{seen:?}");
        assert!(w.log().contains("reason=\"crashed\""), "{}", w.log());
        let metrics = http::get(&web, "/metrics").body;
        assert_eq!(
            http::sample(&metrics, "mcw_child_restarts_total{reason=\"crashed\"}"),
            Some(1.0)
        );
        let status = http::get(&web, "/status").body;
        assert!(status.contains("\"restarts\": 1"), "{status}");
        assert!(
            status.contains("\"last_restart_reason\": \"crashed\""),
            "{status}"
        );
        assert!(
            status.contains(&format!("\"held_port\": \"{addr}\"")),
            "{status}"
        );
    });
}

/// The restart after mcrouter lost its watch on a deleted config, and the one SIGUSR2 asks
/// for: the same, and each is counted under its reason.
#[test]
fn a_client_is_never_refused_through_a_lost_watch_restart_or_sigusr2() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let web = format!("127.0.0.1:{}", free_port());
        let extra = ["--metrics-listen", web.as_str(), "--template-poll", "24h"];
        let (w, work, addr) = running(router, &dns, &extra);
        let prober = Prober::start(&addr);
        prober.wait_served(10);

        std::fs::remove_file(work.path("run/out.json")).unwrap();
        wait_for("the restart after the lost watch", WAIT, || {
            confirmations(&w) == 2
        });
        prober.wait_served(10);

        w.signal(libc::SIGUSR2);
        wait_for("the restart SIGUSR2 asked for", WAIT, || {
            confirmations(&w) == 3
        });
        prober.wait_served(10);
        let seen = prober.finish();
        eprintln!("lost-watch and SIGUSR2 restarts ({router}): {seen:?}");
        assert_eq!(seen.refused, 0, "{seen:?}");
        assert_eq!(starts(&w), 3);
        let metrics = http::get(&web, "/metrics").body;
        for reason in ["stopped_watching", "sigusr2"] {
            let series = format!("mcw_child_restarts_total{{reason=\"{reason}\"}}");
            assert_eq!(http::sample(&metrics, &series), Some(1.0), "{series}");
        }
        // mcrouter's own graceful shutdown, each time.
        w.signal(libc::SIGTERM);
        let mut w = w;
        assert_eq!(w.wait_exit(WAIT), Some(0));
    });
}

/// Regression: a restart after a lost watch wrote the file back only if no DNS lookup was in
/// flight at that moment; otherwise mcrouter started on a missing file, exited 1, and mcw
/// with it. Now the config in force goes on disk before every start.
#[test]
fn a_restart_while_dns_is_slow_starts_mcrouter_on_its_file() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let slow = [
            "--min-refresh",
            "1h",
            "--max-refresh",
            "1h",
            "--template-poll",
            "24h",
            "--dns-timeout",
            "4s",
        ];
        let (mut w, work, addr) = running(router, &dns, &slow);
        // A lookup that will not come back for a while: SIGHUP asks while DNS is silent.
        dns.fault("memcache.test", Some(Fault::Silent));
        w.signal(libc::SIGHUP);
        w.wait_log("re-reading the template", WAIT);
        // The file goes: mcrouter loses its watch, and is restarted meanwhile.
        std::fs::remove_file(work.path("run/out.json")).unwrap();
        wait_for("the restarted mcrouter's confirmation", WAIT, || {
            confirmations(&w) == 2
        });
        assert!(w.alive(), "{}", w.log());
        assert!(work.path("run/out.json").exists());
        let reply = memcache(&addr, "get __mcrouter__.config_md5_digest\r\n");
        let md5 = mcw::engine::md5_hex(&std::fs::read(work.path("run/out.json")).unwrap());
        assert!(reply.contains(&md5), "{reply}");
        dns.fault("memcache.test", None);
        w.signal(libc::SIGTERM);
        assert_eq!(w.wait_exit(WAIT), Some(0));
    });
}

/// `--restart on-failure` waits 1 s, then 2 s, and after `--restart-limit` restarts in a row
/// exits with mcrouter's status; meanwhile `/readyz` says why it is not ready.
#[test]
fn restarts_back_off_and_give_up_after_the_limit_with_the_childs_status() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}}, "route": "PoolRoute|a"}"#,
    );
    let web = format!("127.0.0.1:{}", free_port());
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output").arg(work.path("run/out.json")).args([
        "--restart",
        "on-failure",
        "--restart-limit",
        "2",
        "--metrics-listen",
        &web,
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    w.wait_log("after=1s restart=1 limit=2", WAIT);
    wait_for("the backoff on /readyz", WAIT, || {
        http::try_request(&web, "GET", "/readyz", &[])
            .is_ok_and(|r| r.status == 503 && r.body.contains("restarting it in"))
    });
    w.wait_log("after=2s restart=2 limit=2", WAIT);
    assert_eq!(w.wait_exit(WAIT), Some(3), "{}", w.log());
    assert_eq!(starts(&w), 3, "{}", w.log());
    assert!(w.log().contains("giving up"), "{}", w.log());
}

/// By default (`--restart never`), mcw leaves with mcrouter's status as before; SIGUSR1 is
/// not forwarded (it would kill mcrouter) and mcrouter lives on.
#[test]
fn without_restart_mcw_exits_with_mcrouters_status_and_sigusr1_is_not_forwarded() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let (mut w, _work, _addr) = running(router, &dns, &[]);
        let pid = mcrouter_pid(&w);
        w.signal(libc::SIGUSR1);
        w.wait_log("signal=SIGUSR1", WAIT);
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_ok(),
            "mcrouter died of SIGUSR1"
        );
        mcw::supervise::signals::send(pid, libc::SIGKILL).unwrap();
        assert_eq!(w.wait_exit(WAIT), Some(137), "{}", w.log());
        assert_eq!(starts(&w), 1);
    });
}

/// A port already in use stops mcw before anything starts, saying what to do.
#[test]
fn a_port_in_use_is_an_error_before_mcrouter_starts() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(work
        .mcw("run", &dns)
        .arg("--output")
        .arg(work.path("run/out.json"))
        .args(["--", "mcrouter", "-p", &port.to_string()])
        .args(["--listen-addresses=127.0.0.1"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port} for mcrouter"))
            && err.contains("--hold-port false"),
        "{err}"
    );
    assert!(!work.path("run/out.json").exists(), "nothing may start");
}
