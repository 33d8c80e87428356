//! `mcw watch` keeping several template/output pairs, end to end against the built binary and
//! an in-process DNS server that counts the questions it gets.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http::{self, sample};
use common::*;
use hickory_server::proto::rr::RecordType;

const WAIT: Duration = Duration::from_secs(10);

/// Both templates use `shared.test`; each has a token of its own.
const A: &str = r#"{"pools": {"shared": {"servers": ["dns://shared.test"]},
  "own": {"servers": ["dns://a.test"]}}, "route": "PoolRoute|own"}"#;
const B: &str = r#"{"pools": {"shared": {"servers": ["dns://shared.test"]},
  "own": {"servers": ["dns://b.test"]}}, "route": "PoolRoute|own"}"#;

fn zone(dns: &DnsServer) {
    // Long TTLs and refreshes: every lookup in these tests is one the test asked for.
    dns.set_addrs("shared.test", &["10.0.0.1"], 3600);
    dns.set_addrs("a.test", &["10.0.1.1"], 3600);
    dns.set_addrs("b.test", &["10.0.2.1"], 3600);
}

/// Templates A and B written in a work dir, and where their outputs go.
struct Two {
    ta: PathBuf,
    tb: PathBuf,
    oa: PathBuf,
    ob: PathBuf,
}

impl Two {
    fn new(work: &Workdir) -> Two {
        Two {
            ta: work.write("a.tmpl", A),
            tb: work.write("b.tmpl", B),
            oa: work.path("a.json"),
            ob: work.path("b.json"),
        }
    }

    /// `--template A --output a.json --template B --output b.json`, or the same in the
    /// original mcw's `--source file://… --output file://…` spelling.
    fn args(&self, source: bool) -> Vec<String> {
        let (flag, url) = match source {
            true => ("--source", "file://"),
            false => ("--template", ""),
        };
        let mut args = Vec::new();
        for (t, o) in [(&self.ta, &self.oa), (&self.tb, &self.ob)] {
            args.extend([flag.to_string(), format!("{url}{}", t.display())]);
            args.extend(["--output".to_string(), format!("{url}{}", o.display())]);
        }
        args
    }
}

/// `mcw watch` with the given pair arguments, DNS and HTTP settings.
fn watch(work: &Workdir, dns: &DnsServer, pairs: &[String], extra: &[&str]) -> Command {
    let refresh = match extra.contains(&"--min-refresh") {
        true => &[][..],
        false => &["--min-refresh", "1h", "--max-refresh", "1h"][..],
    };
    let mut cmd = mcw();
    cmd.arg("watch")
        .args(pairs)
        .arg("--resolv-conf")
        .arg(work.path("resolv.conf"))
        .arg("--dns-server")
        .arg(dns.arg())
        .args(refresh)
        .args(extra);
    cmd
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// Lookups of `token` the running mcw has finished, as its metrics count them.
fn lookups(web: &str, token: &str) -> f64 {
    let text = http::get(web, "/metrics").body;
    let series = format!("mcw_dns_lookups_total{{token=\"{token}\",outcome=\"ok\"}}");
    sample(&text, &series).unwrap_or(0.0)
}

fn writes(web: &str, output: &Path) -> f64 {
    let text = http::get(web, "/metrics").body;
    let series = format!("mcw_writes_total{{output=\"{}\"}}", output.display());
    sample(&text, &series).unwrap_or(f64::NAN)
}

/// Wait until every token's lookups of this round (`n` in all, per token) have reached mcw.
fn wait_lookups(web: &str, n: f64) {
    for token in ["dns://shared.test", "dns://a.test", "dns://b.test"] {
        wait_for(&format!("{n} lookups of {token}"), WAIT, || {
            lookups(web, token) == n
        });
    }
}

/// A DNS change to the shared token rewrites both outputs; one to a token only A uses rewrites
/// only A's; each question is asked once per refresh, not once per template.
#[test]
fn a_shared_token_is_asked_once_and_each_output_follows_its_own_tokens() {
    let dns = DnsServer::start();
    zone(&dns);
    let work = Workdir::new();
    let two = Two::new(&work);
    let (oa, ob) = (two.oa.clone(), two.ob.clone());
    let web = format!("127.0.0.1:{}", free_port());
    let cmd = watch(&work, &dns, &two.args(false), &["--metrics-listen", &web]);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&oa, "10.0.1.1:11211", WAIT);
    wait_file_contains(&ob, "10.0.2.1:11211", WAIT);
    wait_lookups(&web, 1.0);

    // The shared token changes: both outputs are rewritten.
    let (ia, ib) = (inode(&oa), inode(&ob));
    dns.set_addrs("shared.test", &["10.0.0.1", "10.0.0.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&oa, "10.0.0.2:11211", WAIT);
    wait_file_contains(&ob, "10.0.0.2:11211", WAIT);
    assert!(inode(&oa) != ia && inode(&ob) != ib);
    wait_lookups(&web, 2.0);

    // A's own token changes: A is rewritten, B is not touched.
    let ib = inode(&ob);
    dns.set_addrs("a.test", &["10.0.1.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&oa, "10.0.1.2:11211", WAIT);
    wait_lookups(&web, 3.0);
    assert_eq!(inode(&ob), ib, "B was rewritten:\n{}", w.log());
    assert!(!work.read("b.json").contains("10.0.1.2"));
    assert_eq!(writes(&web, &oa), 3.0);
    assert_eq!(writes(&web, &ob), 2.0);

    // At the DNS server: three rounds (start, two SIGHUPs), each name asked once per round.
    for name in ["shared.test", "a.test", "b.test"] {
        assert_eq!(dns.queries(name, RecordType::A), 3, "{name}\n{}", w.log());
    }

    // Each line about one config names its output; /status lists both configs.
    let log = w.log();
    let changed = |output: &Path| {
        let needle = format!("output={}", output.display());
        log.lines()
            .filter(|l| l.contains("pool servers changed") && l.contains(&needle))
            .count()
    };
    assert_eq!((changed(&oa), changed(&ob)), (2, 1), "{log}");
    let status: serde_json::Value = serde_json::from_str(&http::get(&web, "/status").body).unwrap();
    let configs = status["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[1]["output"], ob.display().to_string());
    assert_eq!(
        configs[1]["pools"]["own"],
        serde_json::json!(["10.0.2.1:11211"])
    );
}

/// A broken edit to A keeps A's output as it was while B goes on following DNS; the next good
/// edit to A is applied. The pairs are given in the original mcw's `--source` spelling.
#[test]
fn a_broken_template_holds_back_only_its_own_output() {
    let dns = DnsServer::start();
    zone(&dns);
    let work = Workdir::new();
    let two = Two::new(&work);
    let (ta, oa, ob) = (two.ta.clone(), two.oa.clone(), two.ob.clone());
    let web = format!("127.0.0.1:{}", free_port());
    let cmd = watch(&work, &dns, &two.args(true), &["--metrics-listen", &web]);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&oa, "10.0.1.1:11211", WAIT);
    wait_file_contains(&ob, "10.0.2.1:11211", WAIT);
    wait_lookups(&web, 1.0);
    let a_before = work.read("a.json");

    std::fs::write(&ta, r#"{"pools": {"own": {"servers": ["dns://a.test"]}"#).unwrap();
    w.wait_log("template edit rejected", WAIT);
    dns.set_addrs("b.test", &["10.0.2.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&ob, "10.0.2.2:11211", WAIT);
    wait_lookups(&web, 2.0);
    assert_eq!(work.read("a.json"), a_before);

    // A's last good template stays in force, so A still follows its tokens.
    dns.set_addrs("a.test", &["10.0.1.3"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&oa, "10.0.1.3:11211", WAIT);
    assert_eq!(
        work.read("a.json"),
        a_before.replace("10.0.1.1", "10.0.1.3")
    );
    let rejected = w
        .log()
        .lines()
        .find(|l| l.contains("template edit rejected"))
        .map(str::to_string)
        .unwrap();
    assert!(
        rejected.contains(&format!("output={}", oa.display())) && rejected.contains("a.tmpl:1:"),
        "{rejected}"
    );

    // A good edit to A is picked up; B is not disturbed.
    let ib = inode(&ob);
    std::fs::write(&ta, A.replace("PoolRoute|own", "PoolRoute|shared")).unwrap();
    wait_file_contains(&oa, "PoolRoute|shared", WAIT);
    assert_eq!(inode(&ob), ib);
}

/// A pair whose token does not resolve yet does not hold back the other's first write; mcw
/// is ready once both are written.
#[test]
fn a_pair_waiting_for_dns_does_not_delay_the_others_first_write() {
    let dns = DnsServer::start();
    zone(&dns);
    dns.remove("a.test");
    let work = Workdir::new();
    let two = Two::new(&work);
    let (oa, ob) = (two.oa.clone(), two.ob.clone());
    let web = format!("127.0.0.1:{}", free_port());
    let extra = ["--metrics-listen", &web, "--min-refresh", "100ms"];
    let cmd = watch(&work, &dns, &two.args(false), &extra);
    let _w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&ob, "10.0.2.1:11211", WAIT);
    assert!(!oa.exists());
    let r = http::get(&web, "/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        format!("no config written yet to {}\n", oa.display())
    );

    dns.set_addrs("a.test", &["10.0.1.1"], 3600);
    wait_file_contains(&oa, "10.0.1.1:11211", WAIT);
    wait_for("readiness", WAIT, || {
        http::get(&web, "/readyz").status == 200
    });
}

#[test]
fn pairs_that_do_not_add_up_are_usage_errors() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let two = Two::new(&work);
    let pairs = two.args(false);
    // --template A --output a.json --template B --output b.json, taken apart.
    let [t, ta, o, oa, _, tb, _, _] = &pairs[..] else {
        unreachable!()
    };
    let args = |words: &[&String]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();

    let out = run(&mut watch(&work, &dns, &args(&[t, ta, t, tb, o, oa]), &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("2 templates (--template/--source) but 1 output (--output)"),
        "{}",
        stderr(&out)
    );

    let out = run(&mut watch(
        &work,
        &dns,
        &args(&[t, ta, o, oa, t, tb, o, oa]),
        &[],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is given twice"), "{}", stderr(&out));

    let mut cmd = mcw();
    cmd.arg("run")
        .args(&pairs)
        .args(["--", "mcrouter", "-p", "5000"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("mcw run takes one --template and one --output, not 2: mcrouter reads a single config file"),
        "{}",
        stderr(&out)
    );
    assert!(!two.oa.exists() && !two.ob.exists(), "nothing is written");
}
