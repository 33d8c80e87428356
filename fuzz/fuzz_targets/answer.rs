//! The canonical order of DNS answers (SRV by priority, natural target order, port; addresses
//! numerically), on records decoded from the input.
//!
//! Checks: the order does not depend on the order records arrived in (the input reversed, and
//! rotated, give the same answer); building an answer from its own records changes nothing.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use mcw::dns::{Answer, Records, SrvTarget};

/// Records from bytes: the first byte picks SRV or addresses; then fixed-size records.
fn decode(data: &[u8]) -> Option<Records> {
    let (&kind, rest) = data.split_first()?;
    if kind & 1 == 0 {
        let addrs = rest.chunks_exact(3).map(addr).collect();
        return Some(Records::Addrs(addrs));
    }
    // priority, port, name length, name bytes, address count, addresses.
    let mut targets = Vec::new();
    let mut r = rest;
    while r.len() >= 4 {
        let (priority, port, len) = (u16::from(r[0] % 4), u16::from(r[1]), usize::from(r[2] % 12));
        let n = usize::from(r[3] % 3);
        r = &r[4..];
        if r.len() < len + 3 * n {
            break;
        }
        let target = String::from_utf8_lossy(&r[..len]).into_owned();
        let addrs = r[len..len + 3 * n].chunks_exact(3).map(addr).collect();
        r = &r[len + 3 * n..];
        targets.push(SrvTarget {
            weight: 1,
            priority,
            port: 11200 + port,
            target,
            addrs,
        });
    }
    Some(Records::Srv(targets))
}

fn addr(b: &[u8]) -> IpAddr {
    match b[0] & 1 {
        0 => IpAddr::V4(Ipv4Addr::new(10, b[0] >> 6, b[1], b[2])),
        _ => IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            u16::from(b[1]),
            u16::from(b[2]),
        )),
    }
}

fn permuted(
    records: &Records,
    f: impl Fn(&mut Vec<SrvTarget>),
    g: impl Fn(&mut Vec<IpAddr>),
) -> Records {
    match records.clone() {
        Records::Addrs(mut a) => {
            g(&mut a);
            Records::Addrs(a)
        }
        Records::Srv(mut t) => {
            f(&mut t);
            for target in &mut t {
                g(&mut target.addrs);
            }
            Records::Srv(t)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(records) = decode(data) else { return };
    let answer = Answer::new(records.clone(), 30);
    let reversed = permuted(&records, |t| t.reverse(), |a| a.reverse());
    assert_eq!(Answer::new(reversed, 30), answer);
    let half = |n: usize| n / 2;
    let rotated = permuted(
        &records,
        |t| {
            let n = half(t.len());
            t.rotate_left(n)
        },
        |a| {
            let n = half(a.len());
            a.rotate_left(n)
        },
    );
    assert_eq!(Answer::new(rotated, 30), answer);
    assert_eq!(Answer::new(answer.records().clone(), 30), answer);
});
