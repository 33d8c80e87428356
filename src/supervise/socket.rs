//! mcrouter's port, held by mcw (`mcw run`): bound at start, listening from mcrouter's first
//! start, and passed to every mcrouter mcw starts as `--listen-sock-fd=N`, so that a client
//! that connects while mcrouter restarts is queued by the kernel and served by the next one,
//! never refused.
//!
//! Owns the socket (bind with `SO_REUSEADDR`, listen with mcrouter's backlog, handing it to a
//! child) and which commands it applies to ([`Plan::of`]). Starting the child is the caller's;
//! mcw never accepts on the socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
    sockopt,
};

use super::args::Launch;

/// mcrouter's own default `--tcp-listen-backlog`.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// What mcw will listen on for mcrouter, read from mcrouter's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub port: u16,
    /// The one `--listen-addresses` address; `None`: every address, as mcrouter would
    /// (IPv6 and IPv4 on one dual-stack socket, or IPv4 alone where IPv6 is off).
    pub ip: Option<IpAddr>,
    pub backlog: u32,
}

/// Why mcw leaves the port to mcrouter, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotHeld {
    /// `--hold-port false`.
    Off,
    /// Nothing was vetted (no word is named mcrouter).
    Unvetted,
    NoPort,
    SeveralPorts,
    SeveralAddresses,
    /// The listen address is not an IP address (mcw does not resolve it).
    AddressNotIp(String),
    /// `--listen-sock-fd`, `--ssl-port` or `--unix-domain-sock`.
    Other(&'static str),
}

impl std::fmt::Display for NotHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHeld::Off => f.write_str("--hold-port is false"),
            NotHeld::Unvetted => f.write_str("no word of the command is named mcrouter"),
            NotHeld::NoPort => f.write_str("the command names no port (-p)"),
            NotHeld::SeveralPorts => f.write_str("the command names several ports"),
            NotHeld::SeveralAddresses => f.write_str("the command names several listen addresses"),
            NotHeld::AddressNotIp(a) => write!(f, "listen address {a:?} is not an IP address"),
            NotHeld::Other(opt) => write!(f, "the command sets --{opt}"),
        }
    }
}

impl Plan {
    /// The port mcw holds for `launch`: one TCP port, on one address or all, and no other
    /// kind of listener; otherwise why not.
    pub fn of(launch: &Launch) -> Result<Plan, NotHeld> {
        if launch.mcrouter_at.is_none() {
            return Err(NotHeld::Unvetted);
        }
        if let Some(opt) = launch.other_listener {
            return Err(NotHeld::Other(opt));
        }
        let port = match launch.ports.as_slice() {
            [] => return Err(NotHeld::NoPort),
            [one] => one,
            _ => return Err(NotHeld::SeveralPorts),
        };
        let Ok(port) = port.parse::<u16>() else {
            return Err(NotHeld::NoPort);
        };
        let ip = match launch.listen_addresses.as_slice() {
            [] => None,
            [one] => {
                let bare = one.trim_matches(['[', ']']);
                match bare.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => return Err(NotHeld::AddressNotIp(one.clone())),
                }
            }
            _ => return Err(NotHeld::SeveralAddresses),
        };
        Ok(Plan {
            port,
            ip,
            backlog: launch.tcp_listen_backlog.unwrap_or(DEFAULT_BACKLOG),
        })
    }
}

/// The listening socket mcw keeps for mcrouter.
#[derive(Debug)]
pub struct Held {
    fd: OwnedFd,
    /// The address it is bound to.
    pub addr: SocketAddr,
    backlog: u32,
    listening: bool,
}

impl Held {
    /// Bind the plan's address now (a port in use fails here, before anything starts), but
    /// do not listen yet: until mcrouter first starts, a client is refused as it would be
    /// without mcw, rather than queued for as long as DNS takes.
    pub fn bind(plan: &Plan) -> io::Result<Held> {
        match plan.ip {
            Some(ip) => Held::bind_to(SocketAddr::new(ip, plan.port), plan.backlog),
            // Every address: IPv6 and IPv4 on one socket, as mcrouter's two would.
            None => {
                let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), plan.port);
                match Held::bind_to(any6, plan.backlog) {
                    Err(e) if ipv6_unavailable(&e) => {
                        let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), plan.port);
                        Held::bind_to(any4, plan.backlog)
                    }
                    other => other,
                }
            }
        }
    }

    fn bind_to(addr: SocketAddr, backlog: u32) -> io::Result<Held> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
        }
        bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
        Ok(Held {
            fd,
            addr,
            backlog,
            listening: false,
        })
    }

    /// Start listening (once; mcrouter's first start). The socket stays open and listening
    /// for as long as mcw runs.
    pub fn listen(&mut self) -> io::Result<()> {
        if self.listening {
            return Ok(());
        }
        let backlog = i32::try_from(self.backlog)
            .ok()
            .and_then(|n| Backlog::new(n).ok())
            // Above SOMAXCONN: the most the kernel allows, which is what it gives mcrouter.
            .unwrap_or(Backlog::MAXALLOWABLE);
        listen(&self.fd, backlog)?;
        self.listening = true;
        Ok(())
    }

    /// The descriptor number the child finds it at.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Run `spawn` with the socket inheritable, so the child started in it gets the socket at
    /// the same number; close-on-exec again afterwards, so no other child of mcw's (a
    /// validator) ever holds it. mcw starts processes from its one event-loop thread only.
    pub fn lend<T>(&self, spawn: impl FnOnce() -> T) -> io::Result<T> {
        set_cloexec(self.fd.as_fd(), false)?;
        let spawned = spawn();
        set_cloexec(self.fd.as_fd(), true)?;
        Ok(spawned)
    }

    /// Where mcw asks mcrouter which config it runs: the bound address, loopback when it is
    /// every address.
    pub fn admin_addr(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            // The dual-stack socket takes IPv4 too.
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }
}

fn set_cloexec(fd: std::os::fd::BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = match on {
        true => FdFlag::FD_CLOEXEC,
        false => FdFlag::empty(),
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// IPv6 is off on this host (a kernel booted with `ipv6.disable=1`, a container without it).
fn ipv6_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EAFNOSUPPORT | nix::libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::args::vet;

    fn plan(command: &str) -> Result<Plan, NotHeld> {
        let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        Plan::of(&vet(&words, "mcrouter").unwrap())
    }

    #[test]
    fn one_tcp_port_on_one_address_or_all_is_held_and_every_other_shape_is_not() {
        let all = plan("mcrouter -p 5000 -R /a/b/").unwrap();
        assert_eq!((all.port, all.ip, all.backlog), (5000, None, 4096));
        let one = plan("mcrouter --port=5001 --listen-addresses=127.0.0.2 --tcp-listen-backlog 64");
        let one = one.unwrap();
        assert_eq!(one.ip, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(one.backlog, 64);
        let v6 = plan("mcrouter -p5002 --listen-addresses [::1]").unwrap();
        assert_eq!(v6.ip, Some("::1".parse().unwrap()));
        for (command, why) in [
            ("mcrouter -p 5000,5001", NotHeld::SeveralPorts),
            ("mcrouter -p 5000 -p 5001", NotHeld::SeveralPorts),
            (
                "mcrouter -p 5000 --listen-addresses=127.0.0.1,::1",
                NotHeld::SeveralAddresses,
            ),
            (
                "mcrouter -p 5000 --listen-addresses=localhost",
                NotHeld::AddressNotIp("localhost".into()),
            ),
            (
                "mcrouter -p 5000 --ssl-port 5443",
                NotHeld::Other("ssl-port"),
            ),
            (
                "mcrouter --unix-domain-sock=/run/mcr.sock",
                NotHeld::Other("unix-domain-sock"),
            ),
            (
                "mcrouter -p 5000 --listen-sock-fd=3",
                NotHeld::Other("listen-sock-fd"),
            ),
            ("mcrouter --num-proxies 2", NotHeld::NoPort),
            ("taskset -c 1 my-router -p 5000", NotHeld::Unvetted),
        ] {
            assert_eq!(plan(command), Err(why), "{command}");
        }
        // mcrouter's own defaults name no other listener.
        assert!(plan("mcrouter -p 5000 --listen-sock-fd=-1 --unix-domain-sock=").is_ok());
    }

    #[test]
    fn a_port_in_use_fails_at_bind_and_a_held_port_is_refused_until_it_listens() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let ip = Some("127.0.0.1".parse().unwrap());
        let err = Held::bind(&Plan {
            port,
            ip,
            backlog: 16,
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(taken);

        let mut held = Held::bind(&Plan {
            port,
            ip,
            backlog: 16,
        })
        .unwrap();
        let refused = std::net::TcpStream::connect(held.admin_addr()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        held.listen().unwrap();
        // Queued by the kernel: nobody accepts, yet the connection is made.
        std::net::TcpStream::connect(held.admin_addr()).unwrap();
    }
}
