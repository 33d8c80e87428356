//! `mcw check` end to end: the report, the routing-prefix rules, and that it writes nothing.

mod common;

use common::*;

/// The config of mcrouter's "Routing Prefix" documentation page, with DNS tokens for its pools.
const SEED_ROUTES: &str = r#"{
  "pools": {
    "local_pool_in_first_cluster": {"servers": ["dns://c0.test"]},
    "local_pool_in_second_cluster": {"servers": ["dns://c1.test"]},
    "shared_pool": {"servers": ["dnssrv://_memcache._tcp.shared.test"]}
  },
  "routes": [
    {"aliases": ["/datacenter/cluster0/"],
     "route": {"type": "PrefixSelectorRoute", "policies": {"shr": "PoolRoute|shared_pool"},
               "wildcard": "PoolRoute|local_pool_in_first_cluster"}},
    {"aliases": ["/datacenter/cluster1/"],
     "route": {"type": "PrefixSelectorRoute", "policies": {"shr": "PoolRoute|shared_pool"},
               "wildcard": "PoolRoute|local_pool_in_second_cluster"}}
  ]
}"#;

fn zone() -> DnsServer {
    let dns = DnsServer::start();
    dns.set_addrs("c0.test", &["10.0.0.2", "10.0.0.1"], 30);
    dns.set_addrs("c1.test", &["10.0.1.1"], 45);
    dns.set_srv(
        "_memcache._tcp.shared.test",
        &[
            (0, 0, 11311, "s-1.shared.test"),
            (0, 0, 11311, "s-0.shared.test"),
        ],
        20,
    );
    dns.set_addrs("s-0.shared.test", &["10.0.2.1"], 60);
    dns.set_addrs("s-1.shared.test", &["10.0.2.2"], 60);
    dns
}

fn files(work: &Workdir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(work.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn check_prints_each_token_with_servers_and_ttl_and_writes_nothing() {
    let dns = zone();
    let work = Workdir::new();
    work.write("template.json", SEED_ROUTES);
    let before = files(&work);
    let out = run(&mut work.mcw("check", &dns));
    assert_eq!(out.status.code(), Some(0));
    let report = stdout(&out);
    assert!(report.contains("/pools/local_pool_in_first_cluster/servers/0  dns://c0.test  ttl 30s  2 server(s)\n    10.0.0.1:11211\n    10.0.0.2:11211\n"), "{report}");
    assert!(report.contains("dnssrv://_memcache._tcp.shared.test  ttl 20s  2 server(s)\n    10.0.2.1:11311  (s-0.shared.test:11311)\n    10.0.2.2:11311  (s-1.shared.test:11311)\n"), "{report}");
    assert!(
        report.contains("3 token(s), 3 lookup(s), 0 problem(s)"),
        "{report}"
    );
    assert_eq!(files(&work), before, "check must write nothing");
}

#[test]
fn check_fails_on_an_unresolvable_token() {
    let dns = zone();
    dns.remove("c1.test");
    let work = Workdir::new();
    work.write("template.json", SEED_ROUTES);
    let out = run(&mut work.mcw("check", &dns));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("dns://c1.test  FAILED: NXDOMAIN"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("check found 1 problem(s)"));
}

#[test]
fn routing_prefix_cases_from_the_seed_page() {
    let dns = zone();
    let work = Workdir::new();
    work.write("template.json", SEED_ROUTES);
    let cases = [
        ("/datacenter/cluster0/", 0, ""),
        ("datacenter/cluster0", 0, ""),
        ("/datacenter/cluster1/", 0, ""),
        (
            "/datacenter/cluster2/",
            1,
            "matches no alias in the config's routes (aliases: /datacenter/cluster0/, /datacenter/cluster1/)",
        ),
        ("/a/", 1, "is not /region/cluster/"),
    ];
    for (prefix, code, want) in cases {
        let out = run(work.mcw("check", &dns).args(["--route-prefix", prefix]));
        assert_eq!(out.status.code(), Some(code), "{prefix}");
        assert!(
            stdout(&out).contains(want),
            "{prefix}: {want:?} not in {}",
            stdout(&out)
        );
    }
}

#[test]
fn check_reports_a_config_without_a_route() {
    let dns = zone();
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://c0.test"]}}}"#,
    );
    let out = run(&mut work.mcw("check", &dns));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("neither \"route\" nor \"routes\""),
        "{}",
        stdout(&out)
    );
}

/// `--dns-tcp` asks over TCP only: against a server that answers only there, it renders; without
/// it, every query times out over UDP and the token fails with a clear reason.
#[test]
fn dns_tcp_reaches_a_server_that_answers_only_over_tcp() {
    let dns = DnsServer::start_tcp_only();
    dns.set_addrs("tcp.test", &["10.3.0.1"], 30);
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://tcp.test"]}}, "route": "PoolRoute|a"}"#,
    );
    let out = run(work.mcw("render", &dns).arg("--dns-tcp"));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("10.3.0.1:11211"), "{}", stdout(&out));

    let out = run(work
        .mcw("render", &dns)
        .args(["--dns-timeout", "300ms", "--dns-retries", "0"]));
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("dns://tcp.test") && message.contains("timed out"),
        "{message}"
    );
    assert!(stdout(&out).is_empty());
}

/// Regression: tokens came in string order of their JSON pointers (`/servers/10` before
/// `/servers/2`, pool `alpha` before `zeta`); the report follows the template, and so does the
/// list of failed tokens.
#[test]
fn check_lists_tokens_in_template_order() {
    let dns = DnsServer::start();
    let names: Vec<String> = (0..11).map(|i| format!("m{i}.test")).collect();
    for (i, n) in names.iter().enumerate().filter(|(i, _)| *i != 10) {
        dns.set_addrs(n, &[&format!("10.0.0.{}", i + 1)], 30);
    }
    dns.set_addrs("a.test", &["10.0.1.1"], 30);
    let servers: Vec<String> = names.iter().map(|n| format!("\"dns://{n}\"")).collect();
    let work = Workdir::new();
    work.write(
        "template.json",
        &format!(
            r#"{{"pools": {{"zeta": {{"servers": [{}]}}, "alpha": {{"servers": ["dns://a.test", "dns://gone.test"]}}}},
                "route": "PoolRoute|zeta"}}"#,
            servers.join(", ")
        ),
    );
    let out = run(&mut work.mcw("check", &dns));
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    let listed: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    let mut want: Vec<String> = (0..11)
        .map(|i| format!("/pools/zeta/servers/{i}"))
        .collect();
    want.extend([
        "/pools/alpha/servers/0".into(),
        "/pools/alpha/servers/1".into(),
    ]);
    assert_eq!(listed, want, "{report}");
    let problems: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("problem: "))
        .collect();
    assert!(
        problems[0].starts_with("/pools/zeta/servers/10")
            && problems[1].starts_with("/pools/alpha/servers/1"),
        "{problems:?}"
    );
}
