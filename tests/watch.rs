//! `mcw watch` end to end: the built binary keeps the output current while a real DNS server's
//! records change under it, survives DNS failures, and follows template edits.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use hickory_server::proto::rr::RecordType;

const TEMPLATE: &str = r#"{
  "pools": {
    "a": {"servers": ["dns://memcache.test"]},
    "sts": {"servers": ["dnssrv://_memcache._tcp.mc.test"]}
  },
  "route": "PoolRoute|a"
}"#;

const FAST: &[&str] = &["--min-refresh", "200ms", "--max-refresh", "2s"];
const WAIT: Duration = Duration::from_secs(10);

fn zone(dns: &DnsServer, ttl: u32) {
    dns.set_addrs("memcache.test", &["10.0.0.1", "10.0.0.2"], ttl);
    dns.set_srv(
        "_memcache._tcp.mc.test",
        &[(0, 0, 11211, "mc-0.mc.test"), (0, 0, 11211, "mc-1.mc.test")],
        ttl,
    );
    dns.set_addrs("mc-0.mc.test", &["10.1.0.0"], ttl);
    dns.set_addrs("mc-1.mc.test", &["10.1.0.1"], ttl);
}

fn started(work: &Workdir, dns: &DnsServer, extra: &[&str]) -> Watcher {
    work.write("template.json", TEMPLATE);
    let w = Watcher::start(work, dns, extra);
    wait_file_contains(&work.path("out.json"), "10.1.0.1:11211", WAIT);
    w
}

/// The change lands at the next refresh after it (TTL 1 s here), not at `--max-refresh`
/// (60 s): order of events, counted at the DNS server, not wall-clock time.
#[test]
fn an_ip_change_is_written_at_the_next_refresh() {
    let dns = DnsServer::start();
    zone(&dns, 1);
    let work = Workdir::new();
    let w = started(&work, &dns, &["--min-refresh", "1s"]);
    let asked = || dns.queries("memcache.test", RecordType::A);
    dns.set_addrs("memcache.test", &["10.0.0.1", "10.0.0.9"], 1);
    let before = asked();
    wait_file_contains(&work.path("out.json"), "10.0.0.9:11211", WAIT);
    let lookups = asked() - before;
    // The first lookup after the change sees it (one may have been counted with `before`,
    // and one more may have started by the time this looks).
    assert!(lookups <= 2, "written only after {lookups} lookups");
    w.wait_log(
        "pool servers changed pool=a added=+10.0.0.9:11211 removed=-10.0.0.2:11211",
        WAIT,
    );
}

#[test]
fn srv_targets_added_and_removed_are_followed() {
    let dns = DnsServer::start();
    zone(&dns, 1);
    let work = Workdir::new();
    let w = started(&work, &dns, FAST);
    dns.set_addrs("mc-2.mc.test", &["10.1.0.2"], 1);
    dns.set_srv(
        "_memcache._tcp.mc.test",
        &[
            (0, 0, 11211, "mc-0.mc.test"),
            (0, 0, 11211, "mc-1.mc.test"),
            (0, 0, 11211, "mc-2.mc.test"),
        ],
        1,
    );
    wait_file_contains(&work.path("out.json"), "10.1.0.2:11211", WAIT);
    dns.set_srv(
        "_memcache._tcp.mc.test",
        &[(0, 0, 11211, "mc-1.mc.test"), (0, 0, 11211, "mc-2.mc.test")],
        1,
    );
    wait_for("mc-0 to leave", WAIT, || {
        !work.read("out.json").contains("10.1.0.0:11211")
    });
    let out: serde_json::Value = serde_json::from_str(&work.read("out.json")).unwrap();
    assert_eq!(
        out["pools"]["sts"]["servers"],
        serde_json::json!(["10.1.0.1:11211", "10.1.0.2:11211"])
    );
    w.wait_log("removed=-10.1.0.0:11211", WAIT);
}

#[test]
fn answers_in_a_new_order_every_time_cause_no_rewrite() {
    let dns = DnsServer::start();
    zone(&dns, 0);
    dns.set_addrs(
        "memcache.test",
        &["10.0.0.5", "10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.4"],
        0,
    );
    let work = Workdir::new();
    let w = started(&work, &dns, FAST);
    let before = std::fs::metadata(work.path("out.json")).unwrap();
    dns.shuffle(true);
    let seen = dns.queries("memcache.test", RecordType::A);
    wait_for("ten more lookups", WAIT, || {
        dns.queries("memcache.test", RecordType::A) >= seen + 10
    });
    let after = std::fs::metadata(work.path("out.json")).unwrap();
    assert_eq!(
        (after.ino(), after.mtime_nsec(), after.mtime()),
        (before.ino(), before.mtime_nsec(), before.mtime())
    );
    assert_eq!(w.log().matches("wrote config").count(), 1, "{}", w.log());
}

#[test]
fn dns_failures_keep_the_file_byte_identical_until_dns_recovers() {
    for fault in [
        Fault::NxDomain,
        Fault::Refused,
        Fault::ServFail,
        Fault::Silent,
    ] {
        let dns = DnsServer::start();
        zone(&dns, 0);
        let work = Workdir::new();
        let mut w = started(
            &work,
            &dns,
            &[
                "--min-refresh",
                "200ms",
                "--dns-timeout",
                "200ms",
                "--dns-retries",
                "0",
            ],
        );
        let good = work.read("out.json");
        let ino = std::fs::metadata(work.path("out.json")).unwrap().ino();
        dns.fault_all(Some(fault));
        let seen = dns.queries("memcache.test", RecordType::A);
        w.wait_log("keeping the last good answer", WAIT);
        wait_for("three failed lookups", WAIT, || {
            dns.queries("memcache.test", RecordType::A) >= seen + 3
        });
        assert_eq!(work.read("out.json"), good, "{fault:?} changed the file");
        assert_eq!(std::fs::metadata(work.path("out.json")).unwrap().ino(), ino);
        assert!(w.alive(), "{fault:?} stopped mcw");
        // Recovery: new data flows again.
        dns.fault_all(None);
        dns.set_addrs("memcache.test", &["10.0.0.7"], 0);
        wait_file_contains(&work.path("out.json"), "10.0.0.7:11211", WAIT);
        w.wait_log("DNS answers again", WAIT);
    }
}

#[test]
fn allow_empty_lets_a_vanished_name_empty_its_pool() {
    let dns = DnsServer::start();
    zone(&dns, 0);
    let work = Workdir::new();
    let _w = started(&work, &dns, &["--min-refresh", "200ms", "--allow-empty"]);
    dns.remove("memcache.test");
    wait_for("pool a to empty", WAIT, || {
        let out: serde_json::Value = serde_json::from_str(&work.read("out.json")).unwrap();
        out["pools"]["a"]["servers"] == serde_json::json!([])
    });
}

#[test]
fn sighup_re_resolves_at_once_and_sigterm_exits_0() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    let mut w = started(&work, &dns, &[]);
    dns.set_addrs("memcache.test", &["10.0.0.8"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&work.path("out.json"), "10.0.0.8:11211", WAIT);
    w.wait_log("re-resolving every token", WAIT);
    assert!(w.alive());
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
    w.wait_log("stopping signal=SIGTERM", WAIT);
}

#[test]
fn sigint_exits_0_even_while_dns_is_hanging() {
    let dns = DnsServer::start();
    dns.fault_all(Some(Fault::Silent));
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);
    let mut w = Watcher::start(&work, &dns, &["--dns-timeout", "30s"]);
    wait_for("the first query", WAIT, || {
        dns.queries("memcache.test", RecordType::A) > 0
    });
    w.signal(libc::SIGINT);
    assert_eq!(w.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!work.path("out.json").exists());
}

#[test]
fn startup_timeout_exits_1_naming_each_token() {
    let dns = DnsServer::start();
    zone(&dns, 0);
    dns.remove("memcache.test");
    // Without glue mcw must ask for each target, and one of them fails.
    dns.glue(false);
    dns.fault("mc-1.mc.test", Some(Fault::ServFail));
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);
    let mut w = Watcher::start(
        &work,
        &dns,
        &[
            "--startup-timeout",
            "1s",
            "--min-refresh",
            "200ms",
            "--dns-timeout",
            "200ms",
        ],
    );
    assert_eq!(w.wait_exit(WAIT), Some(1));
    let log = w.log();
    assert!(
        log.contains(
            "startup timed out after 1s without writing a config; 2 tokens never resolved"
        ),
        "{log}"
    );
    assert!(
        log.contains("/pools/a/servers/0 dns://memcache.test: NXDOMAIN"),
        "{log}"
    );
    assert!(log.contains("/pools/sts/servers/0 dnssrv://_memcache._tcp.mc.test: SRV target mc-1.mc.test.: A mc-1.mc.test.: server answered SERVFAIL"), "{log}");
    assert!(!work.path("out.json").exists());
}

#[test]
fn template_edits_in_place_by_rename_and_by_symlink_swap_are_applied() {
    edits_are_followed(&[]);
}

/// The same edits, seen by notify's polling watcher (`--template-poll`), as on filesystems
/// that never report changes.
#[test]
fn template_edits_are_applied_when_polling_instead_of_inotify() {
    edits_are_followed(&["--template-poll", "200ms"]);
}

fn edits_are_followed(extra: &[&str]) {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    dns.set_addrs("other.test", &["10.2.0.1"], 3600);
    let work = Workdir::new();
    // Kubernetes ConfigMap layout: template.json -> ..data/template.json, ..data -> ..v1
    let v1 = work.path("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("template.json"), TEMPLATE).unwrap();
    std::os::unix::fs::symlink("..v1", work.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/template.json", work.path("template.json")).unwrap();
    let w = Watcher::start(&work, &dns, extra);
    wait_file_contains(&work.path("out.json"), "10.1.0.1:11211", WAIT);

    // 1. kubelet's swap: new dir, new ..data symlink renamed over the old one.
    let v2 = work.path("..v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("template.json"),
        TEMPLATE.replace("dns://memcache.test", "dns+1://other.test"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", work.path("..data_tmp")).unwrap();
    std::fs::rename(work.path("..data_tmp"), work.path("..data")).unwrap();
    wait_file_contains(&work.path("out.json"), "10.2.0.1:1\"", WAIT);

    // 2. A broken edit in place: logged with file:line:col, output kept.
    let before = work.read("out.json");
    std::fs::write(v2.join("template.json"), "{\n  \"pools\": {,\n}").unwrap();
    w.wait_log("template edit rejected", WAIT);
    w.wait_log("template.json:2:", WAIT);
    assert_eq!(work.read("out.json"), before);

    // 3. The next good edit, written in place, is applied.
    std::fs::write(
        v2.join("template.json"),
        TEMPLATE.replace("dns://memcache.test", "dns+2://other.test"),
    )
    .unwrap();
    wait_file_contains(&work.path("out.json"), "10.2.0.1:2\"", WAIT);

    // 4. An editor's rename-over of a plain file.
    std::fs::remove_file(work.path("template.json")).unwrap();
    std::fs::write(work.path("template.json"), TEMPLATE).unwrap();
    wait_file_contains(&work.path("out.json"), "10.0.0.1:11211", WAIT);
    std::fs::write(
        work.path(".template.json.swp"),
        TEMPLATE.replace("dns://memcache.test", "dns+3://other.test"),
    )
    .unwrap();
    std::fs::rename(work.path(".template.json.swp"), work.path("template.json")).unwrap();
    wait_file_contains(&work.path("out.json"), "10.2.0.1:3\"", WAIT);
}

#[test]
fn a_new_token_that_cannot_resolve_keeps_the_old_output() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    let w = started(&work, &dns, &["--min-refresh", "200ms"]);
    let before = work.read("out.json");
    work.write(
        "template.json",
        &TEMPLATE.replace("dns://memcache.test", "dns://nowhere.test"),
    );
    w.wait_log("nothing to write until it answers", WAIT);
    assert_eq!(work.read("out.json"), before);
    dns.set_addrs("nowhere.test", &["10.3.0.1"], 3600);
    wait_file_contains(&work.path("out.json"), "10.3.0.1:11211", WAIT);
}

#[test]
fn a_template_without_tokens_is_written_at_once() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}}, "route": "PoolRoute|a"}"#,
    );
    let _w = Watcher::start(&work, &dns, &[]);
    wait_file_contains(&work.path("out.json"), "10.0.0.1:11211", WAIT);
}

/// Regression: a lookup finishing during the 100 ms debounce used to cancel the template
/// watch and lose the edit until the next periodic re-read (`--max-refresh`).
#[test]
fn a_template_edit_is_not_lost_while_lookups_finish_every_50ms() {
    let dns = DnsServer::start();
    zone(&dns, 0);
    dns.set_addrs("other.test", &["10.2.0.1"], 0);
    let work = Workdir::new();
    let _w = started(
        &work,
        &dns,
        &["--min-refresh", "50ms", "--max-refresh", "30s"],
    );
    work.write(
        "template.json",
        &TEMPLATE.replace("dns://memcache.test", "dns://other.test"),
    );
    wait_file_contains(
        &work.path("out.json"),
        "10.2.0.1:11211",
        Duration::from_secs(5),
    );
}

/// A template rewritten every 10 ms never goes quiet for the 100 ms debounce; its edits are
/// still applied while the rewriting goes on (at the latest a second after a burst starts).
#[test]
fn a_template_that_is_never_quiet_is_still_applied() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    let _w = started(&work, &dns, &["--max-refresh", "1h"]);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let writing = writing.clone();
        let path = work.path("template.json");
        std::thread::spawn(move || {
            let mut n = 0u32;
            while writing.load(std::sync::atomic::Ordering::Relaxed) && n < 3000 {
                n += 1;
                let edit = TEMPLATE.replace("dns://memcache.test", &format!("10.9.0.1:{n}"));
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, edit).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    wait_file_contains(&work.path("out.json"), "10.9.0.1:", WAIT);
    let still_writing = !writer.is_finished();
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap();
    assert!(
        still_writing,
        "the edit was applied only after the rewriting stopped"
    );
    // And once it stops, the last edit is what stays.
    wait_file_contains(&work.path("out.json"), &format!("10.9.0.1:{last}\""), WAIT);
}

#[test]
fn watch_as_pid_1_reaps_orphans_that_land_on_it() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);
    let inner = {
        let mut c = work.mcw("watch", &dns);
        c.arg("--output").arg(work.path("out.json"));
        c
    };
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(inner.get_program())
        .args(inner.get_args());
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&work.path("out.json"), "10.1.0.1:11211", WAIT);
    let unshare = w.pid();
    let children = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse::<i32>().unwrap())
            .collect::<Vec<_>>()
    };
    let mcw = children(unshare)[0];
    // Enter the namespace and leave an orphan: `sh` forks `sleep` and exits at once, so the
    // sleep is re-parented to PID 1 (mcw) and exits 0.2 s later.
    let status = std::process::Command::new("nsenter")
        .args([
            "--target",
            &mcw.to_string(),
            "--pid",
            "--mount",
            "--",
            "sh",
            "-c",
            "sleep 0.2 &",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the orphan to land on mcw", WAIT, || {
        !children(mcw).is_empty()
    });
    wait_for("mcw to reap it", WAIT, || children(mcw).is_empty());
}

/// Regression: SIGHUP only re-resolved; `systemctl reload mcw` and the README promise that it
/// re-reads the template too. The polling watcher here looks once a day, so only SIGHUP can
/// bring the edit in.
#[test]
fn sighup_re_reads_the_template() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    let w = started(&work, &dns, &["--template-poll", "24h"]);
    work.write(
        "template.json",
        &TEMPLATE.replace("PoolRoute|a", "PoolRoute|sts"),
    );
    w.signal(libc::SIGHUP);
    wait_file_contains(&work.path("out.json"), "PoolRoute|sts", WAIT);
    w.wait_log("template changed", WAIT);
}

/// Regression: once the template's directory was deleted, its watch was gone for good, and
/// the same directory created again was never watched.
#[test]
fn a_template_directory_deleted_and_created_again_is_watched_again() {
    let dns = DnsServer::start();
    zone(&dns, 3600);
    let work = Workdir::new();
    let dir = work.path("conf");
    std::fs::create_dir(&dir).unwrap();
    let template = dir.join("template.json");
    std::fs::write(&template, TEMPLATE).unwrap();
    let mut cmd = mcw();
    cmd.arg("watch")
        .arg("--template")
        .arg(&template)
        .arg("--output")
        .arg(work.path("out.json"))
        .arg("--resolv-conf")
        .arg(work.path("resolv.conf"))
        .arg("--dns-server")
        .arg(dns.arg())
        // Nothing but the watch can bring an edit in within the test's wait.
        .args(["--min-refresh", "1h", "--max-refresh", "1h"]);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&work.path("out.json"), "10.1.0.1:11211", WAIT);

    std::fs::remove_dir_all(&dir).unwrap();
    w.wait_log("cannot read the template", WAIT);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(&template, TEMPLATE.replace("PoolRoute|a", "PoolRoute|sts")).unwrap();
    wait_file_contains(&work.path("out.json"), "PoolRoute|sts", WAIT);
    // And the new directory stays watched.
    std::fs::write(&template, TEMPLATE.replace("PoolRoute|a", "PoolRoute|b")).unwrap();
    wait_file_contains(&work.path("out.json"), "PoolRoute|b", WAIT);
}
