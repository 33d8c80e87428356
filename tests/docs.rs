//! Statements in the documents that the code decides, checked against the code, so that they
//! cannot drift: the signal tables, the metric families, the alert table, the benchmark list,
//! the versions, and nothing that points outside the repository.

use std::path::{Path, PathBuf};

use mcw::supervise::signal_table;
use mcw::supervise::signals::Mode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `doc` holds `block` exactly; on failure, says what to paste where.
fn holds(doc: &str, block: &str, what: &str) {
    assert!(
        read(doc).contains(block),
        "{doc} does not hold {what} as the code has it; replace its table with:\n\n{block}"
    );
}

#[test]
fn the_signal_tables_are_the_codes() {
    holds(
        "README.md",
        &signal_table::markdown(Mode::Run),
        "the run signal table",
    );
    holds(
        "docs/behaviour.md",
        &signal_table::markdown(Mode::Watch),
        "the watch signal table",
    );
    // --help prints the same table (generated from it): one look at the built binary.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mcw"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains(&signal_table::help(Mode::Run)),
        "mcw run --help:\n{help}"
    );
}

/// Every documents file of the repository, as (path, text).
fn documents() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "fuzz" {
                    dirs.push(path);
                }
            } else if name.ends_with(".md") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    out
}

/// mcw's metric families as a live scrape shows them, by the names the documents use.
#[test]
fn every_metric_family_is_documented() {
    let doc = read("docs/observability.md");
    let m = mcw::metrics::Metrics::new(mcw::metrics::Mode {
        supervise: true,
        confirm: true,
    });
    // A pair with something in every per-config family.
    let output = Path::new("/run/mcw/mcrouter.json");
    m.add_output(output);
    m.remapped(output, "a", false, &Err("unknown".into()));
    let status = mcw::engine::Status {
        tokens: vec![mcw::engine::TokenStatus {
            token: "dns://a.test".into(),
            query: "a.test. A".into(),
            servers: vec!["10.0.0.1:11211".into()],
            ttl: Some(30),
            age: None,
            error: None,
            last_good_in_use: false,
            held: Vec::new(),
        }],
        pools: [("a".to_string(), vec!["10.0.0.1:11211".to_string()])].into(),
        written_md5: Some("0123".into()),
        running: None,
        confirmed: true,
        last_failure: None,
        reload: None,
        in_sync: true,
        since_render: None,
        since_write: None,
        child: Some("running"),
        retrying: None,
        warm_up: Some(mcw::engine::WarmStatus {
            phase: "warm_up",
            pools: vec![mcw::engine::WarmedPool {
                pool: "a".into(),
                side: "new",
                slots: vec![3],
            }],
            left: None,
        }),
        last_reload_ok: Some(true),
        since_reload_success: None,
    };
    let pairs = [mcw::engine::PairStatus {
        template: output,
        output,
        status,
    }];
    let text = mcw::metrics::classic(&m.encode(&pairs, Some("running")))
        + &mcw::metrics::classic(&mcw::metrics::ready(true));
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("mcw_"))
        .collect();
    assert!(families.len() > 20, "{families:?}");
    let missing: Vec<&&str> = families
        .iter()
        .filter(|f| !doc.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/observability.md does not name {missing:?}"
    );
}

/// The alert table of docs/observability.md names exactly the shipped rules.
#[test]
fn the_alert_table_names_every_shipped_rule() {
    let rules = read("packaging/prometheus/mcw-alerts.yml");
    let shipped: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    let doc = read("docs/observability.md");
    let documented: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(n, _)| n))
        .filter(|n| n.starts_with("Mcw") || n.starts_with("Mcrouter"))
        .collect();
    assert_eq!(documented, shipped);
}

/// The benchmarks scripts/bench.sh runs are the benches Cargo.toml declares, and the README
/// and BENCHMARKS.md list them all.
#[test]
fn the_benchmark_lists_agree() {
    let cargo = read("Cargo.toml");
    let declared: Vec<&str> = cargo
        .split("[[bench]]")
        .skip(1)
        .filter_map(|b| b.split("name = \"").nth(1)?.split('"').next())
        .collect();
    let script = read("scripts/bench.sh");
    let listed = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("BENCHES=("))
        .expect("scripts/bench.sh sets BENCHES=(…)")
        .trim_end_matches(')')
        .split_whitespace()
        .collect::<Vec<_>>();
    let mut sorted = listed.clone();
    sorted.sort();
    let mut want = declared.clone();
    want.sort();
    assert_eq!(sorted, want, "scripts/bench.sh against Cargo.toml");
    for doc in ["README.md", "BENCHMARKS.md"] {
        let text = read(doc);
        for bench in &declared {
            assert!(
                text.contains(&format!("--bench {bench}`")),
                "{doc} does not name `cargo bench --bench {bench}`"
            );
        }
    }
}

/// Nothing points outside the repository: no path of the machine it was made on, no folder
/// beside the checkout, no document it does not contain.
#[test]
fn nothing_points_outside_the_repository() {
    // Spelled in pieces, so that this file does not hold them.
    let work = ["/wo", "rk/"].concat();
    let build = ["mcrouter", "-build/"].concat();
    let needles = [
        "../shared",
        work.as_str(),
        build.as_str(),
        "SPEC.md",
        "seed page",
        "the spec",
    ];
    let mut found = Vec::new();
    let mut files = documents();
    for extra in [
        "Cargo.toml",
        "scripts",
        "src",
        "tests",
        "packaging",
        "benches",
    ] {
        let path = root().join(extra);
        let mut stack = vec![path];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    let e = e.unwrap().path();
                    if !e.ends_with("target") {
                        stack.push(e);
                    }
                }
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                files.push((p, text));
            }
        }
    }
    for (path, text) in &files {
        // This file names the needles.
        if path.ends_with("tests/docs.rs") {
            continue;
        }
        for needle in needles {
            for (n, line) in text.lines().enumerate() {
                if line.to_lowercase().contains(&needle.to_lowercase()) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    // CI may find the real mcrouter beside the checkout, in one place.
    let ci = read(".ci/run");
    assert!(!ci.contains(&work), ".ci/run names a machine's path");
    assert!(
        ci.matches("../shared").count() <= 1,
        ".ci/run names ../shared more than once"
    );
}

/// The README's "Try it" section runs as written (with the binary under test in place of the
/// release build) and says what the README says it says.
#[test]
fn the_try_it_section_runs_as_written() {
    let readme = read("README.md");
    let section = &readme[readme
        .find("## Try it on your own template")
        .expect("README has a Try it section")..];
    let start = section.find("```sh\n").unwrap() + "```sh\n".len();
    let block = &section[start..start + section[start..].find("```\n").unwrap()];
    let release = "$PWD/target/release/mcw";
    assert!(block.contains(release), "{block}");
    let script = format!(
        "set -euo pipefail\n{}",
        block.replace(release, env!("CARGO_BIN_EXE_mcw"))
    );
    // A run that failed half-way may have left its DNS server behind.
    let dir = Path::new("/tmp/mcw-try");
    if let Ok(pid) = std::fs::read_to_string(dir.join("dnsmasq.pid")) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let _ = std::fs::remove_dir_all(dir);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    for said in [
        "dns://memcache.test",
        "    10.0.0.1:11211\n    10.0.0.2:11211\n",
        "\"10.0.0.1:11211\",\n        \"10.0.0.2:11211\"",
        "+ 10.0.0.3:11211",
        "exit 1: changes",
    ] {
        assert!(stdout.contains(said), "{said:?} not in\n{stdout}\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The crate's version is a released section of the changelog, below an Unreleased one; the
/// packages and the image take their version from the crate (checked on the built artefacts
/// by `scripts/release.sh --check`, which the packaging tests run).
#[test]
fn the_version_is_a_released_section_of_the_changelog() {
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let changelog = read("CHANGELOG.md");
    let sections: Vec<&str> = changelog
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    assert_eq!(sections.first(), Some(&"Unreleased"), "{sections:?}");
    assert!(
        sections
            .iter()
            .any(|s| s.starts_with(&format!("{version} ("))),
        "CHANGELOG.md has no \"## {version} (date)\" section: {sections:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcw"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mcw {version}")
    );
}
