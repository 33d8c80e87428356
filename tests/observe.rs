//! `--metrics-listen`: health, readiness and status as an operator's probes and scripts see
//! them, mcrouter's stats in the scrape, a taken port, JSON logs. Against the built binary,
//! mcrouter (the stand-in, and the real one when there is one) and real memcached.

mod common;

use std::time::Duration;

use common::http::{self, sample};
use common::*;

const WAIT: Duration = Duration::from_secs(15);

const GOOD: &str =
    r#"{"pools": {"a": {"servers": ["dns+PORT://memcache.test"]}}, "route": "PoolRoute|a"}"#;

struct Setup {
    w: Watcher,
    work: Workdir,
    /// mcw's HTTP endpoint.
    web: String,
    /// mcrouter's port.
    router: String,
    /// memcached's port (the token's).
    mc_port: String,
    _memcached: Daemon,
}

/// `mcw run --metrics-listen` over `router` and one memcached, with `memcache.test` failing
/// (NXDOMAIN) until the test sets it.
fn start(router: &Mcrouter, dns: &DnsServer, extra: &[&str]) -> Setup {
    let mc_port = free_port();
    let memcached = memcached("127.0.0.1", mc_port);
    let work = Workdir::new();
    work.write("template.json", &GOOD.replace("PORT", &mc_port.to_string()));
    let web = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let mut args = vec!["--metrics-listen", &web, "--min-refresh", "100ms"];
    args.extend(extra);
    let w = run_router(&work, dns, &args, router, port);
    wait_for("the metrics endpoint", WAIT, || {
        http::try_request(&web, "GET", "/healthz", &[]).is_ok()
    });
    Setup {
        w,
        work,
        web,
        router: format!("127.0.0.1:{port}"),
        mc_port: mc_port.to_string(),
        _memcached: memcached,
    }
}

fn metrics(web: &str) -> String {
    let r = http::get(web, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn in_sync(web: &str) -> Option<f64> {
    sample(&metrics(web), "mcw_config_in_sync")
}

#[test]
fn readiness_follows_mcrouter_not_config_rejections() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.fault("memcache.test", Some(Fault::NxDomain));
        let s = start(router, &dns, &["--confirm-timeout", "1s"]);

        // Before any config: alive, not ready, and says why.
        assert_eq!(http::get(&s.web, "/healthz").status, 200);
        let r = http::get(&s.web, "/readyz");
        assert_eq!(r.status, 503);
        assert!(r.body.contains("not started yet"), "{}", r.body);

        dns.fault("memcache.test", None);
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        wait_for("readiness", WAIT, || {
            http::get(&s.web, "/readyz").status == 200
        });
        assert_eq!(in_sync(&s.web), Some(1.0));

        // /status names the token's servers and the md5s.
        let status: serde_json::Value =
            serde_json::from_str(&http::get(&s.web, "/status").body).expect("/status is JSON");
        let token = &status["tokens"][0];
        assert_eq!(token["token"], format!("dns+{}://memcache.test", s.mc_port));
        assert_eq!(token["query"], "address lookup of memcache.test");
        let server = format!("127.0.0.1:{}", s.mc_port);
        assert_eq!(token["servers"], serde_json::json!([server]));
        assert_eq!(token["last_good_in_use"], false);
        assert_eq!(status["pools"]["a"], serde_json::json!([server]));
        assert_eq!(status["mcrouter"]["state"], "running");
        assert_eq!(status["mcrouter"]["running_md5"], status["written_md5"]);
        assert_eq!(status["mcrouter"]["reload"], "settled");
        assert_eq!(status["last_reload_successful"], true);
        assert!(
            status["seconds_since_reload_success"].is_number(),
            "{status}"
        );
        assert_eq!(sample(&metrics(&s.web), "mcw_ready"), Some(1.0));

        // A config mcrouter rejects: in_sync drops to 0 and comes back with the restoration, while
        // the pod stays ready throughout (mcrouter serves the previous config).
        let mut seen = Vec::new();
        s.work.write(
            "template.json",
            &r#"{"pools": {"a": {"servers": ["dns+PORT://memcache.test"]}}, "route": {"type": "NoSuchRoute"}}"#
                .replace("PORT", &s.mc_port),
        );
        wait_for("the restoration", WAIT, || {
            assert_eq!(http::get(&s.web, "/readyz").status, 200, "ready throughout");
            let v = in_sync(&s.web);
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            s.w.log()
                .contains("wrote the running config back to the output")
                && v == Some(1.0)
        });
        assert!(seen.contains(&Some(0.0)), "in_sync never dropped: {seen:?}");
        let status: serde_json::Value =
            serde_json::from_str(&http::get(&s.web, "/status").body).unwrap();
        assert!(
            status["mcrouter"]["last_failure"].is_string(),
            "mcrouter's reason is in /status: {status}"
        );
        // The change is not in force, however well the restoration went.
        assert_eq!(status["last_reload_successful"], false, "{status}");
        let text = metrics(&s.web);
        assert_eq!(
            sample(&text, "mcw_reloads_total{outcome=\"rejected\"}"),
            Some(1.0)
        );

        // mcrouter frozen: not ready, with the reason; thawed: ready again.
        let pid = child_pid(&s);
        mcw::supervise::signals::send(pid, libc::SIGSTOP).unwrap();
        wait_for("unreadiness", WAIT, || {
            http::get(&s.web, "/readyz").status == 503
        });
        let r = http::get(&s.web, "/readyz");
        assert!(
            r.body.contains("does not answer on its admin port"),
            "{}",
            r.body
        );
        // Its stats are gone too, and the rest of the scrape is still there.
        let text = metrics(&s.web);
        assert_eq!(sample(&text, "mcrouter_up"), Some(0.0));
        assert_eq!(sample(&text, "mcw_ready"), Some(0.0), "as /readyz says");
        assert!(
            sample(&text, "mcw_writes_total").is_some_and(|v| v >= 2.0),
            "{text}"
        );
        assert_eq!(http::get(&s.web, "/healthz").status, 200);
        mcw::supervise::signals::send(pid, libc::SIGCONT).unwrap();
        wait_for("readiness again", WAIT, || {
            http::get(&s.web, "/readyz").status == 200
        });
        assert_eq!(sample(&metrics(&s.web), "mcrouter_up"), Some(1.0));
    });
}

fn child_pid(s: &Setup) -> i32 {
    let status: serde_json::Value =
        serde_json::from_str(&http::get(&s.web, "/status").body).unwrap();
    status["mcrouter"]["pid"].as_i64().unwrap() as i32
}

#[test]
fn mcrouters_stats_count_live_traffic_per_destination() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        let s = start(router, &dns, &[]);
        wait_for("readiness", WAIT, || {
            http::get(&s.web, "/readyz").status == 200
        });
        let dest = format!("127.0.0.1:{}:ascii:plain:notcompressed-1000", s.mc_port);
        let found = format!("mcrouter_server_memcached_found_count{{server=\"{dest}\"}}");
        let missed = format!("mcrouter_server_memcached_not_found_count{{server=\"{dest}\"}}");

        assert!(memcache(&s.router, "set k 0 0 1\r\nv\r\n").starts_with("STORED"));
        memcache(&s.router, "get k\r\n");
        memcache(&s.router, "get k\r\n");
        memcache(&s.router, "get nope\r\n");
        let text = metrics(&s.web);
        assert_eq!(sample(&text, "mcrouter_up"), Some(1.0));
        assert_eq!(
            sample(&text, "mcrouter_command_count{cmd=\"get\"}"),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "mcrouter_command_count{cmd=\"set\"}"),
            Some(1.0)
        );
        assert_eq!(sample(&text, &found), Some(2.0), "{text}");
        assert_eq!(sample(&text, &missed), Some(1.0), "{text}");
        let stored = format!("mcrouter_server_memcached_stored_count{{server=\"{dest}\"}}");
        assert_eq!(sample(&text, &stored), Some(1.0));
        // The version mcrouter reports for itself, as the exporter labels it.
        let version = memcache(&s.router, "version\r\n");
        let version = version.trim_end().strip_prefix("VERSION ").unwrap();
        let series = format!("mcrouter_version{{version=\"{version}\"}} 1");
        assert!(text.contains(&series), "{series} missing from\n{text}");
    });
}

#[test]
fn unknown_paths_and_other_methods_are_refused() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        let s = start(router, &dns, &[]);
        assert_eq!(http::get(&s.web, "/nope").status, 404);
        let r = http::request(&s.web, "POST", "/metrics", &[]);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        // Prometheus asks for OpenMetrics and gets it; curl gets the classic format.
        let om = http::request(
            &s.web,
            "GET",
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )],
        );
        assert!(
            om.header("content-type")
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(om.body.ends_with("# EOF\n"));
        assert!(om.body.contains("# TYPE mcw_writes counter"));
        let classic = http::get(&s.web, "/metrics");
        assert!(
            classic
                .header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        assert!(classic.body.contains("# TYPE mcw_writes_total counter"));
        assert!(!classic.body.contains("# EOF"));
    });
}

#[test]
fn a_taken_port_stops_mcw_before_mcrouter_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["127.0.0.1:1"]}}, "route": "PoolRoute|a"}"#,
    );
    let marker = work.path("started");
    let out = run(work
        .mcw_at("run", "127.0.0.1:1")
        .arg("--output")
        .arg(work.path("out.json"))
        .args(["--metrics-listen", &addr, "--"])
        .arg("touch")
        .arg(&marker));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on {addr} (--metrics-listen)")),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran");
    assert!(!work.path("out.json").exists(), "a config was written");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_field_vocabulary() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["127.0.0.1"], 30);
    let work = Workdir::new();
    work.write("template.json", &GOOD.replace("PORT", "11211"));
    let mut w = Watcher::start(&work, &dns, &["--log-format", "json"]);
    w.wait_log("wrote config", WAIT);
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
    let log = w.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    let wrote = lines
        .iter()
        .find(|l| l["message"] == "wrote config")
        .expect("a wrote-config line");
    assert_eq!(wrote["level"], "INFO");
    assert_eq!(wrote["output"], work.path("out.json").display().to_string());
    assert_eq!(wrote["md5"].as_str().map(str::len), Some(32));
    assert!(wrote["timestamp"].is_string());
}

#[test]
fn in_watch_mode_ready_means_a_config_is_written() {
    let dns = DnsServer::start();
    dns.fault("memcache.test", Some(Fault::NxDomain));
    let work = Workdir::new();
    work.write("template.json", &GOOD.replace("PORT", "11211"));
    let web = format!("127.0.0.1:{}", free_port());
    let _w = Watcher::start(
        &work,
        &dns,
        &["--metrics-listen", &web, "--min-refresh", "100ms"],
    );
    wait_for("the metrics endpoint", WAIT, || {
        http::try_request(&web, "GET", "/healthz", &[]).is_ok()
    });
    let r = http::get(&web, "/readyz");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "no config written yet\n")
    );
    let text = metrics(&web);
    let nx = "mcw_dns_lookups_total{token=\"dns+11211://memcache.test\",outcome=\"nxdomain\"}";
    assert!(sample(&text, nx).is_some_and(|v| v >= 1.0), "{text}");

    dns.fault("memcache.test", None);
    dns.set_addrs("memcache.test", &["127.0.0.1", "127.0.0.2"], 30);
    wait_for("readiness", WAIT, || {
        http::get(&web, "/readyz").status == 200
    });
    let text = metrics(&web);
    assert_eq!(sample(&text, "mcw_pool_servers{pool=\"a\"}"), Some(2.0));
    assert_eq!(sample(&text, "mcw_writes_total"), Some(1.0));
    // Nothing about a child or mcrouter: watch mode has neither.
    assert!(
        !text.contains("mcrouter_") && !text.contains("mcw_child_state"),
        "{text}"
    );
    let status: serde_json::Value = serde_json::from_str(&http::get(&web, "/status").body).unwrap();
    assert!(status.get("mcrouter").is_none());
    assert_eq!(
        status["pools"]["a"],
        serde_json::json!(["127.0.0.1:11211", "127.0.0.2:11211"])
    );
}

/// Regression: mcw wrote its log lines, and mcrouter's, on the event loop's thread, so a
/// stderr that did not keep up (a paused terminal, a stalled journal) stopped everything:
/// `/healthz` went unanswered, no config was written. Now lines are written by a thread of
/// their own; when stderr stalls, lines are dropped and counted, and the loop goes on.
#[test]
fn a_stalled_stderr_never_blocks_mcw() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let web = format!("127.0.0.1:{}", free_port());
    // A child that writes far more to its stderr (which passes through mcw's) than a pipe
    // holds, then waits.
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output").arg(work.path("out.json")).args([
        "--metrics-listen",
        &web,
        "--",
        "sh",
        "-c",
        "yes 'a line the child writes to its stderr, over and over' | head -n 100000 >&2; exec sleep 600",
    ]);
    // mcw's stderr: a pipe nobody reads (kept open, so writes block rather than fail).
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut mcw = Daemon(child);
    let _stalled = mcw.0.stderr.take();
    wait_for("lines dropped", WAIT, || {
        http::try_request(&web, "GET", "/metrics", &[]).is_ok_and(|r| {
            http::sample(&r.body, "mcw_log_lines_dropped_total").is_some_and(|n| n > 0.0)
        })
    });
    let health = http::get(&web, "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    // The loop still does its job: a DNS change is written.
    dns.set_addrs("memcache.test", &["10.0.0.2"], 3600);
    mcw::supervise::signals::send(mcw.0.id() as i32, libc::SIGHUP).unwrap();
    wait_file_contains(&work.path("out.json"), "10.0.0.2:11211", WAIT);
}
