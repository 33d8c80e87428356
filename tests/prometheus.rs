//! A real Prometheus server scrapes `mcw run` every second; the test reads Prometheus' HTTP API
//! and sees mcw's and mcrouter's series move as DNS changes, DNS fails and mcrouter rejects a
//! config. promtool lints a scrape.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http;
use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// Prometheus on loopback, scraping `target` every second; killed when dropped.
struct Prometheus {
    _daemon: Daemon,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: mcw\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stderr(log)
            .spawn()
            .expect("prometheus is installed by scripts/test.sh (apt-get install prometheus)");
        let p = Prometheus {
            _daemon: Daemon(child),
            addr,
            _dir: dir,
        };
        wait_for("Prometheus to be ready", WAIT, || {
            http::try_request(&p.addr, "GET", "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        p
    }

    /// The value of an instant query with one result, if it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let r = http::get(
            &self.addr,
            &format!("/api/v1/query?query={}", encode(query)),
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Wait until `query` has a value for which `ok` holds.
    fn wait(&self, query: &str, ok: impl Fn(f64) -> bool) {
        let mut last = None;
        wait_for(&format!("Prometheus to see {query}"), WAIT, || {
            last = self.value(query);
            last.is_some_and(&ok)
        });
    }
}

/// Percent-encoding for a query string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_sees_mcw_and_mcrouter_series_move() {
    with_each_mcrouter(|mcrouter| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        let mc_port = free_port();
        let _memcached = memcached("127.0.0.1", mc_port);
        let work = Workdir::new();
        let template = |route: &str| {
            format!(
                r#"{{"pools": {{"a": {{"servers": ["dns+{mc_port}://memcache.test"]}}}}, "route": {route}}}"#
            )
        };
        work.write("template.json", &template(r#""PoolRoute|a""#));
        let web = format!("127.0.0.1:{}", free_port());
        let port = free_port();
        let router = format!("127.0.0.1:{port}");
        let extra = [
            "--metrics-listen",
            &web,
            "--min-refresh",
            "200ms",
            "--confirm-timeout",
            "1s",
        ];
        let w = run_router(&work, &dns, &extra, mcrouter, port);
        w.wait_log("mcrouter runs the new config", WAIT);
        let prom = Prometheus::start(&web);

        // The whole scrape parses (up) and both sets of series are there.
        prom.wait("up{job=\"mcw\"}", |v| v == 1.0);
        prom.wait("mcw_pool_servers{pool=\"a\"}", |v| v == 1.0);
        prom.wait("mcrouter_up", |v| v == 1.0);
        prom.wait("mcw_config_in_sync", |v| v == 1.0);
        prom.wait("mcw_build_info", |v| v == 1.0);
        prom.wait("process_resident_memory_bytes", |v| v > 0.0);

        // mcrouter's traffic.
        for _ in 0..5 {
            memcache(&router, "get some-key\r\n");
        }
        prom.wait("mcrouter_command_count{cmd=\"get\"}", |v| v == 5.0);
        prom.wait("sum(mcrouter_server_memcached_not_found_count)", |v| {
            v == 5.0
        });

        // A DNS change: a second server.
        let writes = prom.value("mcw_writes_total").unwrap();
        dns.set_addrs("memcache.test", &["127.0.0.1", "127.0.0.2"], 0);
        prom.wait("mcw_pool_servers{pool=\"a\"}", |v| v == 2.0);
        prom.wait("mcw_writes_total", |v| v > writes);
        prom.wait("mcw_reloads_total{outcome=\"confirmed\"}", |v| v >= 2.0);
        prom.wait("mcw_dns_lookups_total{outcome=\"ok\"}", |v| v >= 2.0);

        // A DNS failure: the last good answer stands in.
        dns.fault("memcache.test", Some(Fault::ServFail));
        prom.wait("mcw_tokens_last_good", |v| v == 1.0);
        prom.wait("mcw_dns_lookups_total{outcome=\"servfail\"}", |v| v >= 1.0);
        dns.fault("memcache.test", None);
        prom.wait("mcw_tokens_last_good", |v| v == 0.0);

        // A config mcrouter rejects: counted by mcw and by mcrouter; the file is restored.
        work.write("template.json", &template(r#"{"type": "NoSuchRoute"}"#));
        prom.wait("mcw_reloads_total{outcome=\"rejected\"}", |v| v == 1.0);
        prom.wait("mcrouter_config_failures", |v| v >= 1.0);
        w.wait_log("wrote the running config back to the output", WAIT);
        prom.wait("mcw_config_in_sync", |v| v == 1.0);
    });
}

#[test]
fn promtool_finds_no_problem_in_mcws_own_families() {
    with_each_mcrouter(|mcrouter| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        let work = Workdir::new();
        work.write("template.json", ONE_TOKEN);
        let web = format!("127.0.0.1:{}", free_port());
        let port = free_port();
        let w = run_router(&work, &dns, &["--metrics-listen", &web], mcrouter, port);
        w.wait_log("mcrouter runs the new config", WAIT);
        // Some of every labelled family, so promtool sees samples, not only descriptors.
        w.signal(libc::SIGWINCH); // ignored by mcrouter (and the stand-in)
        wait_for("a forwarded signal", WAIT, || {
            http::get(&web, "/metrics")
                .body
                .contains("mcw_signals_forwarded_total{signal=\"SIGWINCH\"}")
        });
        let scrape = http::get(&web, "/metrics").body;

        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool comes with Debian's prometheus package");
        lint.stdin
            .take()
            .unwrap()
            .write_all(scrape.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !report.contains("error while linting"),
            "the scrape does not parse:\n{report}"
        );
        let ours: Vec<&str> = report
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("mcrouter_"))
            .collect();
        assert!(
            ours.is_empty(),
            "promtool on mcw's families:\n{}",
            ours.join("\n")
        );
        // mcrouter's families keep the exporter's names, which the lint would name otherwise.
        assert!(
            report.contains("mcrouter_command_count"),
            "{report}\n{scrape}"
        );
    });
}
