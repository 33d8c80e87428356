//! A real Prometheus server scrapes `mcw run` every second; the test reads Prometheus' HTTP API
//! and sees mcw's and mcrouter's series move as DNS changes, DNS fails and mcrouter rejects a
//! config. promtool lints a scrape.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
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
        Prometheus::start_with(&[target], None)
    }

    /// Scraping each of `targets` (job `mcw`) every second, evaluating `rules` (a rule file)
    /// every second too.
    fn start_with(targets: &[&str], rules: Option<&Path>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rule_files = rules.map_or_else(String::new, |r| {
            format!("rule_files:\n  - '{}'\n", r.display())
        });
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: mcw\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
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

    /// Prometheus' answer to an instant query: `Ok(result)` (the vector, possibly empty), or
    /// `Err` with its error.
    fn query(&self, query: &str) -> Result<Vec<serde_json::Value>, String> {
        let r = http::get(
            &self.addr,
            &format!("/api/v1/query?query={}", encode(query)),
        );
        let v: serde_json::Value =
            serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        match v["status"].as_str() {
            Some("success") => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
            _ => Err(format!("{}: {}", v["errorType"], v["error"])),
        }
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
        prom.wait("mcw_config_last_reload_successful", |v| v == 1.0);
        prom.wait("mcw_propagation_seconds_count{until=\"confirmed\"}", |v| {
            v == 1.0
        });
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
        prom.wait("mcw_config_last_reload_successful", |v| v == 0.0);
        prom.wait("mcrouter_config_failures", |v| v >= 1.0);
        w.wait_log("wrote the running config back to the output", WAIT);
        prom.wait("mcw_config_in_sync", |v| v == 1.0);
        // The template put right: the edit is in force again.
        work.write("template.json", &template(r#""PoolRoute|a""#));
        prom.wait("mcw_config_last_reload_successful", |v| v == 1.0);
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

/// The shipped alert rules and dashboard (packaging/), read from the source tree.
fn packaged(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(path)
}

/// The alert rules pass promtool's check and their unit tests over synthetic series.
#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    for args in [
        vec!["check", "rules", "mcw-alerts.yml"],
        vec!["test", "rules", "mcw-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(packaged("prometheus"))
            .output()
            .expect("promtool comes with Debian's prometheus package");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every query of the dashboard, with its variables set to "all".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(packaged("grafana/mcw-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

/// An alert's expression without its final comparison with a number: the series the alert
/// watches. The rules keep to that form (one expression, compared with a number) so that
/// this test can ask whether what they watch exists.
fn watched(expr: &str) -> &str {
    let expr = expr.trim();
    let number = expr.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    assert_ne!(number, expr, "{expr}: an alert compares with a number last");
    let op = number.trim_end();
    ["==", "!=", ">=", "<=", ">", "<"]
        .iter()
        .find_map(|o| op.strip_suffix(o))
        .unwrap_or_else(|| panic!("{expr}: an alert compares with a number last"))
        .trim_end()
}

/// The real Prometheus scrapes two live `mcw run` replicas over mcrouter and evaluates the
/// shipped rules: every rule loads and evaluates without error, every expression of the
/// dashboard parses and returns data, and every alert's watched series exist. The replicas'
/// running-config md5s agree until one template is edited, and then they do not.
#[test]
fn the_dashboard_and_the_alert_rules_work_on_live_replicas() {
    with_each_mcrouter(|mcrouter| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 0);
        let mc_port = free_port();
        let _memcached = memcached("127.0.0.1", mc_port);
        let template = |extra: &str| {
            format!(
                r#"{{"pools": {{"a": {{"servers": ["dns+{mc_port}://memcache.test"{extra}]}}}}, "route": "PoolRoute|a"}}"#
            )
        };
        let replicas: Vec<(Workdir, Watcher, String, String)> = (0..2)
            .map(|_| {
                let work = Workdir::new();
                work.write("template.json", &template(""));
                let web = format!("127.0.0.1:{}", free_port());
                let port = free_port();
                let extra = ["--metrics-listen", &web, "--min-refresh", "200ms"];
                let w = run_router(&work, &dns, &extra, mcrouter, port);
                w.wait_log("mcrouter runs the new config", WAIT);
                (work, w, web, format!("127.0.0.1:{port}"))
            })
            .collect();
        let targets: Vec<&str> = replicas.iter().map(|r| r.2.as_str()).collect();
        let rules = packaged("prometheus/mcw-alerts.yml");
        let prom = Prometheus::start_with(&targets, Some(&rules));
        prom.wait("count(up{job=\"mcw\"} == 1)", |v| v == 2.0);
        // Some traffic, and a DNS change both replicas run.
        for (.., router) in &replicas {
            memcache(router, "get some-key\r\n");
        }
        dns.set_addrs("memcache.test", &["127.0.0.1", "127.0.0.2"], 0);
        prom.wait(
            "count(mcw_propagation_seconds_count{until=\"confirmed\"} >= 1)",
            |v| v == 2.0,
        );
        prom.wait(
            "count(count by (md5) (mcw_config_info{config=\"running\"}))",
            |v| v == 1.0,
        );
        // Three samples of each target at least, so every rate window has two.
        prom.wait("min(count_over_time(up{job=\"mcw\"}[1m]))", |v| v >= 3.0);

        let mut failures = Vec::new();
        let queries = dashboard_queries();
        assert!(queries.len() >= 20, "{queries:?}");
        for (panel, expr) in &queries {
            match prom.query(expr) {
                Ok(result) if result.is_empty() => {
                    failures.push(format!("{panel}: {expr}: no data"))
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{panel}: {expr}: {e}")),
            }
        }
        // The rules as Prometheus loaded them, once each was evaluated.
        let mut rules = Vec::new();
        wait_for("every rule evaluated", WAIT, || {
            let body = http::get(&prom.addr, "/api/v1/rules").body;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            rules = v["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            !rules.is_empty()
                && rules.iter().all(|r| {
                    r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"))
                })
        });
        assert_eq!(rules.len(), 10, "{rules:?}");
        for rule in &rules {
            let (name, expr) = (
                rule["name"].as_str().unwrap(),
                rule["query"].as_str().unwrap(),
            );
            if rule["health"] != "ok" {
                failures.push(format!("{name}: {}: {}", rule["health"], rule["lastError"]));
            }
            match prom.query(watched(expr)) {
                Ok(result) if result.is_empty() => {
                    failures.push(format!("{name}: {}: no data", watched(expr)))
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{name}: {expr}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // One replica's template changes: the two run different configs.
        replicas[1]
            .0
            .write("template.json", &template(", \"127.0.0.9:1\""));
        prom.wait(
            "count by (job) (count by (job, md5) (mcw_config_info{config=\"running\"}))",
            |v| v == 2.0,
        );
    });
}
