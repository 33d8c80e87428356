//! What mcw tells a service manager over `NOTIFY_SOCKET` (systemd's `Type=notify`): a plain
//! datagram socket the test binds stands in for systemd (the packaging tests use the real
//! one).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(15);

/// The notification socket, and every message received so far.
struct Manager {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    got: Vec<String>,
}

impl Manager {
    fn bind(work: &Workdir) -> Manager {
        let path = work.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Manager {
            socket,
            path,
            got: Vec::new(),
        }
    }

    /// Wait for a message with a line equal to `line` (or starting with it, when it ends in
    /// `=`) after the `from`th message; returns its index.
    fn wait(&mut self, line: &str, from: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.got.iter().skip(from).position(|m| {
                m.lines().any(|l| match line.ends_with('=') {
                    true => l.starts_with(line),
                    false => l == line,
                })
            });
            if let Some(i) = found {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "never got {line:?}: {:?}",
                self.got
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.got
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

/// `mcw run` under a service manager: READY=1 once mcrouter runs the config mcw wrote (not
/// before), the state in STATUS=, WATCHDOG=1 while WATCHDOG_USEC is set, RELOADING=1 then
/// READY=1 around a SIGHUP, STOPPING=1 at SIGTERM; mcrouter does not inherit the socket.
#[test]
fn run_tells_the_service_manager_when_mcrouter_serves_reloads_and_stops() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
        let work = Workdir::new();
        work.write("template.json", ONE_TOKEN);
        let mut manager = Manager::bind(&work);
        let port = free_port();
        let mut cmd = work.mcw("run", &dns);
        cmd.env("NOTIFY_SOCKET", &manager.path)
            .env("WATCHDOG_USEC", "400000")
            .arg("--output")
            .arg(work.path("out.json"))
            .arg("--")
            .arg(router.path())
            .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
            .args(router.isolation(work.dir.path()));
        let mut w = Watcher::spawn(cmd, work.path("mcw.log"));

        let ready = manager.wait("READY=1", 0);
        // Ready means mcrouter runs the file mcw wrote, already.
        let md5 = mcw::engine::md5_hex(&std::fs::read(work.path("out.json")).unwrap());
        let runs = memcache(
            &format!("127.0.0.1:{port}"),
            "get __mcrouter__.config_md5_digest\r\n",
        );
        assert!(
            runs.contains(&md5),
            "READY=1 before mcrouter ran the config: {runs}"
        );
        assert!(
            manager.got[..=ready]
                .iter()
                .any(|m| m.contains(&format!("STATUS=mcrouter runs config {}", &md5[..8]))),
            "{:?}",
            manager.got
        );
        let first = manager.wait("WATCHDOG=1", 0);
        manager.wait("WATCHDOG=1", first + 1);

        let reloading = {
            w.signal(libc::SIGHUP);
            manager.wait("RELOADING=1", ready + 1)
        };
        assert!(manager.got[reloading].contains("MONOTONIC_USEC="));
        manager.wait("READY=1", reloading + 1);

        let pid = w
            .log()
            .lines()
            .find(|l| l.contains("started mcrouter"))
            .and_then(|l| l.split("pid=").nth(1))
            .and_then(|p| p.split(' ').next())
            .unwrap()
            .to_string();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(
            !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
            "mcrouter inherited NOTIFY_SOCKET"
        );

        w.signal(libc::SIGTERM);
        manager.wait("STOPPING=1", reloading + 1);
        assert_eq!(w.wait_exit(WAIT), Some(0));
    });
}

/// `mcw watch` is ready once its config is written.
#[test]
fn watch_is_ready_once_its_config_is_written() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let mut manager = Manager::bind(&work);
    let mut cmd = work.mcw("watch", &dns);
    cmd.env("NOTIFY_SOCKET", &manager.path)
        .arg("--output")
        .arg(work.path("out.json"));
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    manager.wait("READY=1", 0);
    assert!(work.read("out.json").contains("10.0.0.1:11211"));
    assert!(
        manager
            .got
            .iter()
            .any(|m| m.contains("STATUS=wrote config ")),
        "{:?}",
        manager.got
    );
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
}
