//! Fault injection, end to end: `mcw watch` (the built binary) while its output directory, its
//! template and its DNS server misbehave. In every case mcw keeps running, the output is never
//! partial or missing once written, and the log says what happened. (DNS failures, mcrouter's
//! faults and signals are in watch.rs, run.rs, confirm.rs and observe.rs; README, Faults.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_server::proto::rr::RecordType;

const WAIT: Duration = Duration::from_secs(10);
const FAST: &[&str] = &["--min-refresh", "100ms", "--max-refresh", "1s"];

/// The file holds one complete config with `server` (never a partial one).
fn holds(path: &Path, server: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| {
        serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| {
            v["pools"]["a"]["servers"] == serde_json::json!([format!("{server}:11211")])
        })
    })
}

fn sh(cmd: &str) {
    let ok = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(ok.success(), "{cmd}");
}

/// A tmpfs the test mounts for the output directory: remounted read-only, then filled up.
/// Each time the old config stays whole and the failure is logged; once the directory is
/// usable again the pending change is written.
#[test]
fn a_read_only_or_full_output_directory_keeps_the_old_config() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 1);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let dir = work.path("out");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.display();
    sh(&format!("mount -t tmpfs -o size=64k mcw-faults {d}"));
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(d.to_string());
    let out = dir.join("config.json");
    let mut cmd = work.mcw("watch", &dns);
    cmd.arg("--output").arg(&out).args(FAST);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_for("the first config", WAIT, || holds(&out, "10.0.0.1"));

    sh(&format!("mount -o remount,ro {d}"));
    dns.set_addrs("memcache.test", &["10.0.0.2"], 1);
    w.wait_log("Read-only file system", WAIT);
    assert!(holds(&out, "10.0.0.1"));
    sh(&format!("mount -o remount,rw {d}"));
    wait_for("the change after remount", WAIT, || holds(&out, "10.0.0.2"));

    // Full: a filler takes what is left (dd itself stops on ENOSPC, which is the point).
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=64"])
        .arg(format!("of={d}/filler"))
        .status();
    dns.set_addrs("memcache.test", &["10.0.0.3"], 1);
    w.wait_log("No space left on device", WAIT);
    assert!(holds(&out, "10.0.0.2"));
    // Retries come every 100 ms; between them only the config and the filler are there (a
    // temp file that outlived its failed write would keep the count above 2).
    wait_for("no temp file left beside the config", WAIT, || {
        std::fs::read_dir(&dir).unwrap().count() == 2
    });
    std::fs::remove_file(dir.join("filler")).unwrap();
    wait_for("the change after space frees", WAIT, || {
        holds(&out, "10.0.0.3")
    });
}

/// The output's directory removed, the output path turned into a directory, a symlink planted
/// at it: mcw makes the directory again, says it cannot replace a directory (and does once
/// it is gone), and replaces the symlink without writing through it.
#[test]
fn the_output_path_removed_taken_by_a_directory_or_a_planted_symlink() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 1);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let dir = work.path("run");
    let out = dir.join("config.json");
    let mut cmd = work.mcw("watch", &dns);
    cmd.arg("--output").arg(&out).args(FAST);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_for("the first config", WAIT, || holds(&out, "10.0.0.1"));

    std::fs::remove_dir_all(&dir).unwrap();
    dns.set_addrs("memcache.test", &["10.0.0.2"], 1);
    wait_for("the directory made again", WAIT, || holds(&out, "10.0.0.2"));

    let _ = std::fs::remove_file(&out);
    std::fs::create_dir(&out).unwrap();
    dns.set_addrs("memcache.test", &["10.0.0.3"], 1);
    w.wait_log("cannot rename into place", WAIT);
    std::fs::remove_dir(&out).unwrap();
    wait_for("the config back in place", WAIT, || holds(&out, "10.0.0.3"));

    let victim = work.write("victim", "do not touch\n");
    std::fs::remove_file(&out).unwrap();
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    dns.set_addrs("memcache.test", &["10.0.0.4"], 1);
    wait_for("the symlink replaced", WAIT, || {
        std::fs::symlink_metadata(&out).is_ok_and(|m| m.is_file()) && holds(&out, "10.0.0.4")
    });
    assert_eq!(work.read("victim"), "do not touch\n");
}

/// Regression: the engine compared a render with what it remembered writing, not with the
/// disk, so an output deleted (with its directory, or alone) while DNS and the template stay
/// the same never came back, and an mcrouter that restarted then had no config. SIGHUP writes
/// it again at once, and so does the periodic re-read of the template.
#[test]
fn a_deleted_output_comes_back_at_sighup_and_at_the_periodic_template_read() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let dir = work.path("run");
    let out = dir.join("config.json");
    // Refreshes an hour apart, and no inotify that could wake mcw: only SIGHUP and the
    // periodic re-read of the template (every --max-refresh) look at anything.
    let mut cmd = work.mcw("watch", &dns);
    cmd.arg("--output")
        .arg(&out)
        .args(["--min-refresh", "1h", "--max-refresh", "1h"])
        .args(["--template-poll", "24h"]);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_for("the first config", WAIT, || holds(&out, "10.0.0.1"));
    let first = std::fs::read(&out).unwrap();

    std::fs::remove_dir_all(&dir).unwrap();
    w.signal(libc::SIGHUP);
    wait_for("the config back after SIGHUP", WAIT, || {
        std::fs::read(&out).is_ok_and(|b| b == first)
    });
    w.wait_log("the output on disk was not the config in force", WAIT);
    drop(w);

    let mut cmd = work.mcw("watch", &dns);
    cmd.arg("--output")
        .arg(&out)
        .args(["--min-refresh", "1s", "--max-refresh", "1s"])
        .args(["--template-poll", "24h"]);
    let w = Watcher::spawn(cmd, work.path("mcw2.log"));
    w.wait_log("output already holds this config", WAIT);
    std::fs::remove_file(&out).unwrap();
    wait_for("the config back at the template re-read", WAIT, || {
        std::fs::read(&out).is_ok_and(|b| b == first)
    });
    w.wait_log("the output on disk was not the config in force", WAIT);
}

/// The template deleted, emptied, cut off mid-write, replaced by a directory, grown to 100 MB:
/// each time the last good config stays, byte for byte, and the log names the problem; a good
/// template afterwards is applied.
#[test]
fn a_template_deleted_emptied_truncated_or_huge_keeps_the_last_good_config() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 30);
    dns.set_addrs("other.test", &["10.0.0.9"], 30);
    let work = Workdir::new();
    let template = work.write("template.json", ONE_TOKEN);
    let w = Watcher::start(&work, &dns, FAST);
    let out = work.path("out.json");
    wait_for("the first config", WAIT, || holds(&out, "10.0.0.1"));
    let good = work.read("out.json");
    let count = |needle: &str| w.log().matches(needle).count();

    std::fs::remove_file(&template).unwrap();
    w.wait_log("cannot read the template", WAIT);
    std::fs::write(&template, "").unwrap();
    w.wait_log("template edit rejected", WAIT);
    let rejected = count("template edit rejected");
    std::fs::write(&template, &ONE_TOKEN[..ONE_TOKEN.len() / 2]).unwrap();
    wait_for("the truncated edit rejected", WAIT, || {
        count("template edit rejected") > rejected
    });
    std::fs::remove_file(&template).unwrap();
    std::fs::create_dir(&template).unwrap();
    w.wait_log("it is not a regular file", WAIT);
    std::fs::remove_dir(&template).unwrap();
    std::fs::File::create(&template)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    w.wait_log("larger than 16 MiB", WAIT);
    assert_eq!(work.read("out.json"), good);

    std::fs::write(&template, ONE_TOKEN.replace("memcache.test", "other.test")).unwrap();
    wait_for("the good edit", WAIT, || holds(&out, "10.0.0.9"));
}

/// The DNS server (dnsmasq) dies: the last good answer stays and the failure is logged; it
/// comes back with a change: the change is written.
#[test]
fn a_dns_server_that_dies_and_comes_back() {
    let port = free_port();
    let record = |ip: &str| vec![format!("--host-record=memcache.test,{ip}")];
    let server = dnsmasq(port, &record("10.0.0.1"));
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let mut cmd = work.mcw_at("watch", &format!("127.0.0.1:{port}"));
    cmd.arg("--output")
        .arg(work.path("out.json"))
        .args(FAST)
        .args(["--dns-timeout", "200ms"]);
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    let out = work.path("out.json");
    wait_for("the first config", WAIT, || holds(&out, "10.0.0.1"));

    drop(server);
    w.wait_log("DNS lookup failed; keeping the last good answer", WAIT);
    assert!(holds(&out, "10.0.0.1"));
    let _server = dnsmasq(port, &record("10.0.0.2"));
    wait_for("the change once DNS is back", WAIT, || {
        holds(&out, "10.0.0.2")
    });
    w.wait_log("DNS answers again", WAIT);
}

/// SRV sets larger than a UDP answer holds: the resolver retries over TCP. 500 records fit
/// in one TCP message and are written in order; 5,000 do not fit in any DNS message (64 KiB),
/// so the answer cannot be complete: mcw names the token and writes nothing rather than a
/// partial pool.
#[test]
fn big_srv_sets_come_over_tcp_and_one_too_big_for_dns_is_refused_whole() {
    for (n, complete) in [(500usize, true), (5000, false)] {
        let dns = DnsServer::start();
        let targets: Vec<String> = (0..n).map(|i| format!("mc-{i}.mc.test")).collect();
        let records: Vec<(u16, u16, u16, &str)> =
            targets.iter().map(|t| (0, 0, 11211, t.as_str())).collect();
        dns.set_srv("_memcache._tcp.mc.test", &records, 30);
        let ip = |i: usize| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        for (i, t) in targets.iter().enumerate() {
            dns.set_addrs(t, &[&ip(i)], 30);
        }
        let work = Workdir::new();
        work.write(
            "template.json",
            r#"{"pools": {"a": {"servers": ["dnssrv://_memcache._tcp.mc.test"]}}, "route": "PoolRoute|a"}"#,
        );
        let out = run(work
            .mcw("render", &dns)
            .arg("--output")
            .arg(work.path("out.json")));
        if complete {
            assert_eq!(out.status.code(), Some(0), "{n}");
            let v: serde_json::Value = serde_json::from_str(&work.read("out.json")).unwrap();
            let servers = v["pools"]["a"]["servers"].as_array().unwrap();
            let want: Vec<String> = (0..n).map(|i| format!("{}:11211", ip(i))).collect();
            assert_eq!(
                servers,
                &want
                    .iter()
                    .map(|s| serde_json::json!(s))
                    .collect::<Vec<_>>()
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{n}");
            assert!(!work.path("out.json").exists());
            let e = stderr(&out);
            assert!(
                e.contains("dnssrv://_memcache._tcp.mc.test")
                    && e.contains("truncated")
                    && e.contains("TCP"),
                "{e}"
            );
        }
        assert!(
            dns.queries("_memcache._tcp.mc.test", RecordType::SRV) >= 2,
            "UDP, then TCP"
        );
    }
}
