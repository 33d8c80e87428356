//! `mcw render` end to end: the built binary against a real DNS server on loopback.

mod common;

use common::*;

/// Records the golden fixtures are rendered against.
fn standard_zone(dns: &DnsServer) {
    dns.set_addrs("memcache.domain", &["10.0.0.3", "10.0.0.1", "10.0.0.2"], 30);
    dns.set_addrs("memcache.test", &["10.0.0.3", "10.0.0.10", "10.0.0.2"], 30);
    dns.set_addrs("v6.test", &["2001:db8::2", "10.1.0.1", "2001:db8::1"], 30);
    let pods: Vec<String> = (0..12).map(|i| format!("mc-{i}.mc.test")).collect();
    let srv: Vec<(u16, u16, u16, &str)> = pods.iter().map(|p| (10, 5, 11211, p.as_str())).collect();
    dns.set_srv("_memcache._tcp.mc.test", &srv, 30);
    for (i, pod) in pods.iter().enumerate() {
        dns.set_addrs(pod, &[&format!("10.2.0.{i}")], 30);
    }
    dns.set_srv(
        "_multi._tcp.test",
        &[
            (20, 1, 11212, "b.test"),
            (10, 1, 11211, "c.test"),
            (10, 1, 11211, "a.test"),
        ],
        30,
    );
    dns.set_addrs("a.test", &["10.3.0.1"], 30);
    dns.set_addrs("b.test", &["10.3.0.2"], 30);
    dns.set_addrs("c.test", &["10.3.0.3"], 30);
}

fn render_fixture(name: &str, dns: &DnsServer) -> String {
    let work = Workdir::new();
    std::fs::copy(fixture(name), work.path("template.json")).unwrap();
    let out = run(work
        .mcw("render", dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert_eq!(out.status.code(), Some(0));
    work.read("out.json")
}

fn golden(template: &str, expected: &str) {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let got = render_fixture(template, &dns);
    let want = std::fs::read_to_string(fixture(expected)).unwrap();
    assert_eq!(got, want, "render of {template} differs from {expected}");
}

#[test]
fn the_seed_example_renders_as_documented() {
    golden("seed.template.json", "seed.expected.json");
}

/// Templates written for the original MCW in JSON5 (bare keys, single quotes) are read as
/// they are, and the output is the same strict JSON.
#[test]
fn the_seed_example_written_in_json5_renders_the_same() {
    golden("seed.template.json5", "seed.expected.json");
}

/// A JSON5 mistake is reported at its line and column in the file as written.
#[test]
fn a_json5_error_names_the_line_and_column_in_the_template() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write(
        "template.json",
        "{\n  pools: {a: {servers: ['10.0.0.1:11211']}},\n  route: 'PoolRoute|a',\n  x: Infinity,\n}\n",
    );
    let out = run(&mut work.mcw("render", &dns));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("template.json:4:6: Infinity and NaN have no JSON spelling"),
        "{err}"
    );
}

#[test]
fn every_token_form_mixed_with_static_entries() {
    golden("mixed.template.jsonc", "mixed.expected.json");
}

#[test]
fn rendezvous_pools_get_identity_tags() {
    golden("rendezvous.template.jsonc", "rendezvous.expected.json");
}

#[test]
fn shuffled_answers_render_byte_identical_output() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let reference = render_fixture("mixed.template.jsonc", &dns);
    dns.shuffle(true);
    for _ in 0..4 {
        assert_eq!(render_fixture("mixed.template.jsonc", &dns), reference);
    }
    // Without additional records, SRV targets are looked up one by one: same output.
    dns.glue(false);
    assert_eq!(render_fixture("mixed.template.jsonc", &dns), reference);
    assert!(dns.queries("mc-11.mc.test", hickory_server::proto::rr::RecordType::A) > 0);
}

/// Regenerate golden files: `MCW_GOLDEN_WRITE=1 cargo test --test render write_golden -- --ignored`.
/// Both are needed: `--ignored` alone (as `cargo test -- --include-ignored` would run it) fails
/// instead of overwriting the fixtures the other tests compare with.
#[test]
#[ignore = "writes fixtures; run by hand after reviewing a change"]
fn write_golden() {
    assert!(
        std::env::var_os("MCW_GOLDEN_WRITE").is_some_and(|v| v == "1"),
        "this overwrites tests/fixtures/*.expected.json: set MCW_GOLDEN_WRITE=1 to mean it"
    );
    let dns = DnsServer::start();
    standard_zone(&dns);
    for (t, e) in [
        ("mixed.template.jsonc", "mixed.expected.json"),
        ("rendezvous.template.jsonc", "rendezvous.expected.json"),
    ] {
        std::fs::write(fixture(e), render_fixture(t, &dns)).unwrap();
    }
}

const ONE_POOL: &str = r#"{"pools": {"a": {"servers": ["dns://memcache.test", "dns://missing.test"]}}, "route": "PoolRoute|a"}"#;

#[test]
fn nxdomain_fails_naming_the_token_and_leaves_the_output_alone() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let work = Workdir::new();
    work.write("template.json", ONE_POOL);
    work.write("out.json", "previous\n");
    let out = run(work
        .mcw("render", &dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("1 token could not be resolved; nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("/pools/a/servers/1 dns://missing.test: NXDOMAIN (tried missing.test.)"),
        "{err}"
    );
    assert_eq!(work.read("out.json"), "previous\n");
}

#[test]
fn allow_empty_lets_an_nxdomain_token_expand_to_nothing() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let work = Workdir::new();
    work.write("template.json", ONE_POOL);
    let out = run(work.mcw("render", &dns).arg("--allow-empty"));
    assert_eq!(out.status.code(), Some(0));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["pools"]["a"]["servers"],
        serde_json::json!(["10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.10:11211"])
    );
}

#[test]
fn server_failures_are_reported_per_token() {
    for (fault, want) in [(Fault::ServFail, "SERVFAIL"), (Fault::Refused, "REFUSED")] {
        let dns = DnsServer::start();
        standard_zone(&dns);
        dns.fault("missing.test", Some(fault));
        let work = Workdir::new();
        work.write("template.json", ONE_POOL);
        let out = run(work.mcw("render", &dns).args(["--dns-timeout", "300ms"]));
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("/pools/a/servers/1 dns://missing.test:"),
            "{err}"
        );
        assert!(err.contains(want), "{want} missing from {err}");
        assert!(out.stdout.is_empty(), "nothing may reach stdout on failure");
    }
}

#[test]
fn a_dead_dns_server_times_out_with_a_clear_message() {
    // A socket that receives queries and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let work = Workdir::new();
    work.write("template.json", ONE_POOL);
    let server = silent.local_addr().unwrap().to_string();
    let out =
        run(work
            .mcw_at("render", &server)
            .args(["--dns-timeout", "200ms", "--dns-retries", "0"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("2 tokens could not be resolved"), "{err}");
    assert!(
        err.contains("dns://missing.test: A missing.test.: timed out"),
        "{err}"
    );
}

#[test]
fn bad_templates_are_refused_with_file_place_and_reason() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let cases = [
        (
            "{\n  \"pools\": {\n    \"a\": {\"servers\": [\"dns://memcache.test\",, ]}\n  }\n}",
            "template.json:3:",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dnsx://memcache.test\"]}}}",
            "/pools/a/servers/0: \"dnsx://memcache.test\": unknown token scheme \"dnsx\"",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dns://memcache.test?weight=2\"]}}}",
            "unknown query key \"weight\"",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dns+99999://memcache.test\"]}}}",
            "bad port \"99999\"",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"ok:1\", \"dns://cluster%id%.test\"]}}}",
            "/pools/a/servers/1: \"dns://cluster%id%.test\": \"cluster%id%.test\" is not a valid DNS name",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dns://m.test?security=ssl\"]}}}",
            "security needs protocol",
        ),
        (
            "[\"dns://memcache.test\"]",
            "top level must be a JSON object",
        ),
        ("{\"a\": 1 /* unterminated", "unterminated /* comment"),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dns://memcache.test\"], \"hostnames\": [\"h\", \"i\"]}}}",
            "/pools/a/hostnames lists one entry per server",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dns://memcache.test\"]}}, \"route\": {\"type\": \"PoolRoute\", \"pool\": \"a\", \"hash\": {\"hash_func\": \"Rendezvous\", \"tags\": [\"x\"]}}}",
            "/route/hash/tags gives Rendezvous tags, one per server, but /pools/a/servers holds a DNS token",
        ),
        (
            "{\"pools\": {\"a\": {\"servers\": [\"dnssrv://_m._tcp.test\"]}}, \"route\": {\"type\": \"PoolRoute\", \"pool\": \"a\", \"hash\": {\"hash_func\": \"WeightedCh3\", \"weights\": [1]}}}",
            "/route/hash/weights gives WeightedCh3 weights",
        ),
    ];
    for (text, want) in cases {
        let work = Workdir::new();
        work.write("template.json", text);
        let out = run(work
            .mcw("render", &dns)
            .arg("--output")
            .arg(work.path("out.json")));
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = stderr(&out);
        assert!(err.contains("template.json"), "no file name in {err}");
        assert!(err.contains(want), "{want:?} missing from {err}");
        assert!(!work.path("out.json").exists(), "output written for {text}");
    }
}

#[test]
fn a_missing_template_names_the_path() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let out = run(&mut work.mcw("render", &dns));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("template.json: cannot read it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn short_names_use_the_resolv_conf_search_list() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.ns.svc.cluster.local", &["10.5.0.1"], 30);
    dns.set_srv(
        "_mc._tcp.memcache.ns.svc.cluster.local",
        &[(0, 0, 11211, "mc-0.memcache.ns.svc.cluster.local")],
        30,
    );
    dns.set_addrs("mc-0.memcache.ns.svc.cluster.local", &["10.5.0.2"], 30);
    let work = Workdir::new();
    work.write(
        "resolv.conf",
        "search ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    );
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://memcache", "dnssrv://_mc._tcp.memcache"]}}}"#,
    );
    let out = run(&mut work.mcw("render", &dns));
    assert_eq!(out.status.code(), Some(0));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["pools"]["a"]["servers"],
        serde_json::json!(["10.5.0.1:11211", "10.5.0.2:11211"])
    );
}

#[test]
fn compatible_source_and_output_urls_set_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dns = DnsServer::start();
    standard_zone(&dns);
    let work = Workdir::new();
    let template = work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}}"#,
    );
    let out_path = work.path("out.json");
    let out = run(common::mcw()
        .arg("render")
        .arg(format!("--source=file://{}", template.display()))
        .arg(format!(
            "--output=file://{}?mode=0640&uid=65534&gid=65534",
            out_path.display()
        ))
        .arg("--resolv-conf")
        .arg(work.path("resolv.conf"))
        .arg("--dns-server")
        .arg(dns.arg()));
    assert_eq!(out.status.code(), Some(0));
    let meta = std::fs::metadata(&out_path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    // Owner set too (tests run as root, as CI does, so chown to "nobody" works).
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert!(work.read("out.json").contains("10.0.0.10:11211"));
}

#[test]
fn environment_twins_configure_a_render_end_to_end() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let work = Workdir::new();
    let template = work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://missing.test"]}}}"#,
    );
    let out = run(common::mcw()
        .arg("render")
        .env("MCW_TEMPLATE", &template)
        .env("MCW_OUTPUT", work.path("out.json"))
        .env("MCW_RESOLV_CONF", work.path("resolv.conf"))
        .env("MCW_DNS_SERVER", dns.arg())
        .env("MCW_ALLOW_EMPTY", "true"));
    assert_eq!(out.status.code(), Some(0));
    assert!(work.read("out.json").contains("\"servers\": []"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["render", "--dns-timeout", "soon"],
        vec!["render", "--dns-server", "dns.example"],
        vec!["render", "--output", "file://relative/x"],
        vec!["render", "--source", "/no/scheme.json"],
        vec!["render", "--template", "/a", "--source", "file:///b"],
        vec!["frobnicate"],
    ] {
        let out = run(common::mcw().args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dns = DnsServer::start();
    standard_zone(&dns);
    let work = Workdir::new();
    work.write("template.json", ONE_POOL);
    let out = run(work
        .mcw("render", &dns)
        .args(["--log-format", "json", "--allow-empty", "--output"])
        .arg(work.path("out.json")));
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let rendered = lines
        .iter()
        .find(|l| l["message"] == "rendered config")
        .expect("a rendered config line");
    assert_eq!(rendered["level"], "INFO");
    assert_eq!(rendered["servers"], 3, "fields sit at the top level");
}

/// 1,000 tokens and 20,000 servers in one template, every answer in a new order: every server
/// is written, each pool in mcw's order (scale, not speed: benches/scale.rs measures).
#[test]
fn a_thousand_tokens_render_every_server_in_order() {
    let dns = DnsServer::start();
    dns.shuffle(true);
    let expected = common::scale::zone(&dns);
    let work = Workdir::new();
    work.write("template.json", &common::scale::template(0));
    let out = run(work
        .mcw("render", &dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert!(out.status.success(), "{}", stderr(&out));
    let (edit, flapping) = common::scale::check(&work.read("out.json"), &expected);
    assert_eq!((edit, flapping), (0, expected[0].1.clone()));
}

/// A WeightedCh3 pool over an SRV token gets one host name and one weight per server (the
/// record's weight over the heaviest, as mcrouter takes weights in [0, 1]), and mcrouter
/// takes the rendered config as it is: valid, and without the "CONFIG IS BROKEN" line the
/// real one logs for weights that do not match the servers.
#[test]
fn a_weighted_pool_over_srv_renders_weights_and_hostnames_mcrouter_takes() {
    let dns = DnsServer::start();
    dns.set_srv(
        "_memcache._tcp.w.test",
        &[
            (10, 100, 11211, "mc-1.w.test"),
            (10, 25, 11211, "mc-0.w.test"),
        ],
        30,
    );
    dns.set_addrs("mc-0.w.test", &["10.4.0.1"], 30);
    dns.set_addrs("mc-1.w.test", &["10.4.0.2", "10.4.0.3"], 30);
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"w": {"servers": ["10.4.9.9:11211", "dnssrv://_memcache._tcp.w.test"],
              "hostnames": ["fixed.w.test", "-"], "weights": [0.5, 0]}},
            "route": {"type": "PoolRoute", "pool": "w", "hash": {"hash_func": "WeightedCh3"}}}"#,
    );
    let out = run(work
        .mcw("render", &dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: serde_json::Value = serde_json::from_str(&work.read("out.json")).unwrap();
    assert_eq!(
        rendered["pools"]["w"],
        serde_json::json!({
            "servers": ["10.4.9.9:11211", "10.4.0.1:11211", "10.4.0.2:11211", "10.4.0.3:11211"],
            "hostnames": ["fixed.w.test", "mc-0.w.test", "mc-1.w.test", "mc-1.w.test"],
            "weights": [0.5, 0.25, 1.0, 1.0]
        })
    );
    with_each_mcrouter(|router| {
        let answer = router.validate(work.dir.path(), &work.path("out.json"));
        let log = String::from_utf8_lossy(&answer.stderr);
        assert_eq!(answer.status.code(), Some(0), "{router}: {log}");
        assert!(!log.contains("CONFIG IS BROKEN"), "{router}: {log}");
    });
}
