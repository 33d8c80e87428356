//! Support shared by the end-to-end tests: a real DNS server, the built `mcw` binary, and
//! waiting on conditions instead of sleeping.
#![allow(dead_code, unused_imports)]

pub mod dns;
pub mod http;
pub mod placement;
mod ports;
pub mod probe;
pub mod scale;
pub mod warm;
pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The smallest template with a token: pool `a` of `dns://memcache.test`, routed to.
pub const ONE_TOKEN: &str =
    r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": "PoolRoute|a"}"#;

pub use dns::{DnsServer, Fault};

/// A scratch directory with a template in it and an empty resolv.conf, so tests never depend
/// on the machine's DNS settings.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "").unwrap();
        Workdir { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `mcw SUBCOMMAND` with the template, this dir's resolv.conf and `dns` as server.
    pub fn mcw(&self, sub: &str, dns: &DnsServer) -> Command {
        self.mcw_at(sub, &dns.arg())
    }

    /// Like [`Workdir::mcw`], for a DNS server given as `IP:PORT`.
    pub fn mcw_at(&self, sub: &str, server: &str) -> Command {
        let mut cmd = mcw();
        cmd.arg(sub)
            .arg("--template")
            .arg(self.path("template.json"))
            .arg("--resolv-conf")
            .arg(self.path("resolv.conf"))
            .arg("--dns-server")
            .arg(server);
        cmd
    }
}

/// The built binary with a clean environment for its MCW_* settings.
pub fn mcw() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcw"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MCW_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("MCW_LOG", "info");
    cmd
}

/// Run and capture; print what happened so a failing assertion shows it.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run mcw");
    eprintln!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Poll `cond` until it holds or `limit` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A child process killed when the test ends, however it ends.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    /// SIGTERM first, so a supervisor (mcw run) can stop its own child; SIGKILL after 3 s.
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        let _ = mcw::supervise::signals::send(self.0.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start dnsmasq in the foreground on 127.0.0.1:`port` serving only `args` records.
pub fn dnsmasq(port: u16, args: &[String]) -> Daemon {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
        ])
        .args([
            "--conf-file=/dev/null",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
        ])
        .args(["--user=root", "--pid-file=", "--log-facility=-"])
        .arg(format!("--port={port}"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq is installed by .ci/run (apt-get install dnsmasq-base)");
    wait_for("dnsmasq to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Daemon(child)
}

/// A running `mcw watch`, its stderr captured to `log`.
pub struct Watcher {
    pub daemon: Daemon,
    pub log: PathBuf,
}

impl Watcher {
    /// `mcw watch` on the work dir's template, writing `out.json`.
    pub fn start(work: &Workdir, dns: &DnsServer, extra: &[&str]) -> Watcher {
        let log = work.path("mcw.log");
        let mut cmd = work.mcw("watch", dns);
        cmd.arg("--output").arg(work.path("out.json")).args(extra);
        Watcher::spawn(cmd, log)
    }

    pub fn spawn(mut cmd: Command, log: PathBuf) -> Watcher {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stderr(file).spawn().expect("spawn mcw");
        Watcher {
            daemon: Daemon(child),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.daemon.0.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        mcw::supervise::signals::send(self.pid(), sig).expect("kill");
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.daemon.0.try_wait().unwrap().is_none()
    }

    /// Wait for the process to exit and return its code; on timeout, fail showing its log.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.daemon.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for mcw to exit; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the log holds `needle`, printing the log on timeout.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Wait until `path` exists and holds `needle`.
pub fn wait_file_contains(path: &Path, needle: &str, limit: Duration) {
    wait_for(
        &format!("{} to contain {needle:?}", path.display()),
        limit,
        || std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)),
    );
}

/// Knot DNS serving one zone from `dir/zone.zone` on 127.0.0.1:`port`, controlled through
/// `dir/knot.sock`.
pub struct Knot {
    pub daemon: Daemon,
    pub dir: PathBuf,
    pub port: u16,
}

impl Knot {
    pub fn start(dir: &Path, port: u16, zone: &str) -> Knot {
        Knot::start_zones(dir, port, &[(zone, "zone.zone")])
    }

    /// Knot serving each `(domain, file)` zone from `dir/file`.
    pub fn start_zones(dir: &Path, port: u16, zones: &[(&str, &str)]) -> Knot {
        let mut conf = format!(
            "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  pidfile: \"{d}/knot.pid\"\n\
             database:\n  storage: \"{d}/db\"\ncontrol:\n  listen: \"{d}/knot.sock\"\n\
             log:\n  - target: stderr\n    any: critical\n\
             zone:\n",
            d = dir.display()
        );
        for (domain, file) in zones {
            conf += &format!(
                "  - domain: {domain}\n    storage: \"{d}\"\n    file: \"{file}\"\n",
                d = dir.display()
            );
        }
        std::fs::write(dir.join("knot.conf"), conf).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("knotd is installed by scripts/test.sh (apt-get install knot)");
        wait_for("knotd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Knot {
            daemon: Daemon(child),
            dir: dir.to_path_buf(),
            port,
        }
    }

    /// Ask knotd to reload its zone file.
    pub fn reload(&self) {
        let status = Command::new("knotc")
            .arg("-c")
            .arg(self.dir.join("knot.conf"))
            .arg("zone-reload")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "knotc zone-reload failed");
    }
}

/// The mcrouter stand-in binary (tests/mcrouter-standin), built on first use in its own target
/// directory so it never contends with the cargo running these tests.
pub fn standin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standin");
            let status = Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "mcrouter-standin", "--manifest-path"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("run cargo to build the mcrouter stand-in");
            assert!(status.success(), "building the mcrouter stand-in failed");
            target.join("debug/mcrouter")
        })
        .clone()
}

/// An mcrouter the tests run: the project's stand-in, or a real build of Meta's mcrouter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mcrouter {
    Standin,
    Real(PathBuf),
}

impl std::fmt::Display for Mcrouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mcrouter::Standin => f.write_str("the mcrouter stand-in"),
            Mcrouter::Real(path) => write!(f, "the real mcrouter ({})", path.display()),
        }
    }
}

impl Mcrouter {
    pub fn path(&self) -> PathBuf {
        match self {
            Mcrouter::Standin => standin(),
            Mcrouter::Real(path) => path.clone(),
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Mcrouter::Real(_))
    }

    /// Options that keep a run to itself: the real mcrouter otherwise writes config dumps and
    /// stats under /var/mcrouter (and falls back to a dump at startup) and looks for a spool
    /// in /var/spool/mcrouter. The stand-in accepts and ignores the ones it has no use for.
    pub fn isolation(&self, dir: &Path) -> Vec<String> {
        let at = |name: &str| {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).unwrap();
            sub.display().to_string()
        };
        vec![
            format!("--config-dump-root={}", at("mcrouter-dump")),
            format!("--stats-root={}", at("mcrouter-stats")),
            format!("--async-dir={}", at("mcrouter-spool")),
            "--debug-fifo-root=".into(),
        ]
    }

    /// `--validate-config=exit` on `file` (its own dumps and stats under `dir`): what mcrouter
    /// answers, and its log.
    pub fn validate(&self, dir: &Path, file: &Path) -> std::process::Output {
        Command::new(self.path())
            .args([
                "-p",
                "1",
                "--validate-config=exit",
                "--stats-logging-interval=0",
            ])
            .args(self.isolation(dir))
            .arg("--config-dump-root=")
            .arg("-f")
            .arg(file)
            .output()
            .unwrap()
    }
}

/// Where the real mcrouter is: `MCW_TEST_MCROUTER`, else `mcrouter` on PATH; `None` when there
/// is none (docs/real-mcrouter.md says how to get one). A real mcrouter that is found but does
/// not run (its runtime libraries missing) fails the test that wants it, saying what to
/// install.
pub fn real_mcrouter() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = std::env::var_os("MCW_TEST_MCROUTER")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("PATH").and_then(|path| {
                        std::env::split_paths(&path)
                            .map(|dir| dir.join("mcrouter"))
                            .find(|p| p.is_file())
                    })
                });
            match &found {
                Some(path) => {
                    let out = Command::new(path).arg("--version").output();
                    let ok = out.as_ref().is_ok_and(|o| o.status.success());
                    assert!(
                        ok,
                        "found a real mcrouter at {} but it does not run ({:?}); install its runtime libraries (the Debian packages of scripts/mcrouter-runtime-packages.txt) or set MCW_TEST_MCROUTER",
                        path.display(),
                        out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    );
                }
                // CI has one, and says so: there, none is a failure, not a skip.
                None if std::env::var_os("MCW_REQUIRE_REAL_MCROUTER").is_some_and(|v| !v.is_empty()) => {
                    panic!("MCW_REQUIRE_REAL_MCROUTER is set but no real mcrouter was found (MCW_TEST_MCROUTER, mcrouter on PATH)")
                }
                None => eprintln!(
                    "NOTE: no real mcrouter found (MCW_TEST_MCROUTER, mcrouter on PATH; docs/real-mcrouter.md): the tests that start mcrouter run against the stand-in only, and those that need the real one (warm-up) do not run"
                ),
            }
            found
        })
        .clone()
}

/// Every mcrouter a test that starts one runs against: the stand-in, and the real one when
/// there is one. `MCW_TEST_ONLY=standin` or `=real` narrows that (to work on one of them).
pub fn mcrouters() -> Vec<Mcrouter> {
    let mut all = vec![Mcrouter::Standin];
    all.extend(real_mcrouter().map(Mcrouter::Real));
    match std::env::var("MCW_TEST_ONLY").as_deref() {
        Ok("standin") => all.retain(|m| !m.is_real()),
        Ok("real") => all.retain(Mcrouter::is_real),
        _ => {}
    }
    all
}

/// Run `body` once against each mcrouter, saying which (the output of a failing test shows
/// the last one named).
pub fn with_each_mcrouter(mut body: impl FnMut(&Mcrouter)) {
    for router in mcrouters() {
        eprintln!("=== against {router}");
        body(&router);
    }
}

/// `mcw run` over `router` on `port`, writing `out.json`, logging to `mcw.log`.
pub fn run_router(
    work: &Workdir,
    dns: &DnsServer,
    extra: &[&str],
    router: &Mcrouter,
    port: u16,
) -> Watcher {
    run_command(
        work,
        dns,
        extra,
        &router.path(),
        &router.isolation(work.dir.path()),
        port,
    )
}

/// `mcw run` over `mcrouter` (a wrapper named mcrouter, say) on `port`, with `isolation` (see
/// [`Mcrouter::isolation`]) among its arguments.
pub fn run_command(
    work: &Workdir,
    dns: &DnsServer,
    extra: &[&str],
    mcrouter: &std::path::Path,
    isolation: &[String],
    port: u16,
) -> Watcher {
    let output = work.path("out.json");
    run_command_to(work, dns, extra, mcrouter, isolation, port, &output)
}

/// `mcw run` over `router` on `port` writing `output`, which may lie outside the template's
/// directory (deleting it then sets off no template read).
pub fn run_router_to(
    work: &Workdir,
    dns: &DnsServer,
    extra: &[&str],
    router: &Mcrouter,
    port: u16,
    output: &Path,
) -> Watcher {
    let isolation = router.isolation(work.dir.path());
    run_command_to(work, dns, extra, &router.path(), &isolation, port, output)
}

/// [`run_command`], writing `output`.
pub fn run_command_to(
    work: &Workdir,
    dns: &DnsServer,
    extra: &[&str],
    mcrouter: &std::path::Path,
    isolation: &[String],
    port: u16,
    output: &Path,
) -> Watcher {
    let mut cmd = work.mcw("run", dns);
    cmd.arg("--output").arg(output).args(extra).arg("--");
    cmd.arg(mcrouter)
        .args([
            "-p",
            &port.to_string(),
            "--listen-addresses=127.0.0.1",
            "--reconfiguration-delay-ms=50",
        ])
        .args(isolation);
    Watcher::spawn(cmd, work.path("mcw.log"))
}

/// memcached on `ip:port`, killed when dropped.
pub fn memcached(ip: &str, port: u16) -> Daemon {
    let child = Command::new("memcached")
        .args([
            "-U",
            "0",
            "-u",
            "root",
            "-m",
            "16",
            "-l",
            ip,
            "-p",
            &port.to_string(),
        ])
        .spawn()
        .expect("memcached is installed by scripts/test.sh (apt-get install memcached)");
    wait_for("memcached to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect((ip, port)).is_ok()
    });
    Daemon(child)
}

/// One memcache ASCII command on a new connection; the reply up to END (get/stats) or its
/// first line.
pub fn memcache(addr: &str, command: &str) -> String {
    MemcacheConn::open(addr).ask(command)
}

/// One connection to a memcached (or mcrouter), one command at a time.
pub struct MemcacheConn(std::io::BufReader<std::net::TcpStream>);

impl MemcacheConn {
    pub fn open(addr: &str) -> MemcacheConn {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        MemcacheConn(std::io::BufReader::new(stream))
    }

    /// The reply up to END (get/stats) or its first line; an error line (`SERVER_ERROR …`) ends
    /// either; what came before the peer closed.
    pub fn ask(&mut self, command: &str) -> String {
        use std::io::{BufRead, Write};
        self.0.get_mut().write_all(command.as_bytes()).unwrap();
        let multi = matches!(
            command.split_whitespace().next(),
            Some("get" | "gets" | "gat" | "gats" | "stats" | "lease-get" | "metaget")
        );
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 || {
                reply += &line;
                let error = line == "ERROR\r\n"
                    || line.starts_with("SERVER_ERROR")
                    || line.starts_with("CLIENT_ERROR");
                !multi || line == "END\r\n" || error
            } {
                return reply;
            }
        }
    }
}
