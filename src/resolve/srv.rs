//! SRV answers: the records of one name, each target with its addresses.
//!
//! Owns asking for SRV records and finding every target's addresses (from the additional
//! section when the server sent them, by a lookup of its own otherwise), refusing an answer
//! whose target is not a host name (it would reach the config as a Rendezvous tag) or has no
//! address (dropping it would shift every later server's slot). Ordering is [`Answer`]'s.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::task::JoinSet;

use super::{Answer, Dns, Failure, Family, Records, SrvTarget, ip_of, validate_name};

impl Dns {
    /// SRV records of one absolute name, each target with its addresses.
    pub(super) async fn srv_at(&self, name: &str, family: Family) -> Result<Answer, Failure> {
        let (records, additionals) = self.typed(name, RecordType::SRV).await?;
        let mut ttl = u32::MAX;
        let mut srvs = Vec::new();
        for r in &records {
            if let RData::SRV(srv) = &r.data {
                ttl = ttl.min(r.ttl);
                // RFC 2782: a target of "." means the service is decidedly not available here.
                if !srv.target.is_root() {
                    srvs.push(srv.clone());
                }
            }
        }
        if srvs.is_empty() {
            return Err(Failure::NoRecords {
                tried: vec![name.to_string()],
            });
        }
        // A target's name becomes a Rendezvous tag in the config: one that is not a host name
        // (a label holding `"`, `@`, `%`, a backslash or control bytes, which DNS allows) could carry
        // mcrouter macro syntax into it. Refuse the answer; the last good one stands.
        for srv in &srvs {
            let target = srv.target.to_ascii();
            if validate_name(&target).is_err() {
                return Err(Failure::other(format!(
                    "SRV target {target:?} is not a host name (letters, digits, '-', '_' and dots); refusing the answer"
                )));
            }
        }

        // Addresses per target: the additional section first, a lookup for what it lacks.
        let mut glue: HashMap<&Name, Vec<&Record>> = HashMap::new();
        for a in &additionals {
            glue.entry(&a.name).or_default().push(a);
        }
        let mut addrs: HashMap<Name, (Vec<IpAddr>, u32)> = HashMap::new();
        let mut lookups = JoinSet::new();
        for srv in &srvs {
            if addrs.contains_key(&srv.target) {
                continue;
            }
            let offered = glue.get(&srv.target).map(Vec::as_slice).unwrap_or_default();
            let mut found = Vec::new();
            let mut found_ttl = u32::MAX;
            for (wanted, rtype) in [
                (family.wants_v4(), RecordType::A),
                (family.wants_v6(), RecordType::AAAA),
            ] {
                if !wanted {
                    continue;
                }
                let mut any = false;
                for a in offered.iter().filter(|a| a.record_type() == rtype) {
                    if let Some(ip) = ip_of(a) {
                        any = true;
                        found.push(ip);
                        found_ttl = found_ttl.min(a.ttl);
                    }
                }
                if !any {
                    let dns = self.clone();
                    let target = srv.target.clone();
                    lookups.spawn(async move {
                        let result = dns.typed(&target.to_ascii(), rtype).await;
                        (target, result)
                    });
                }
            }
            addrs.insert(srv.target.clone(), (found, found_ttl));
        }
        while let Some(joined) = lookups.join_next().await {
            let (target, result) =
                joined.map_err(|e| Failure::other(format!("lookup task failed: {e}")))?;
            match result {
                Ok((records, _)) => {
                    let entry = addrs.entry(target).or_default();
                    for r in records {
                        if let Some(ip) = ip_of(&r) {
                            entry.0.push(ip);
                            entry.1 = entry.1.min(r.ttl);
                        }
                    }
                }
                Err(Failure::NxDomain { .. } | Failure::NoRecords { .. }) => {}
                Err(Failure::Transient(kind, why)) => {
                    let why = format!("SRV target {}: {why}", target.to_ascii());
                    return Err(Failure::Transient(kind, why));
                }
            }
        }

        let mut targets = Vec::with_capacity(srvs.len());
        for srv in srvs {
            let (ips, addr_ttl) = addrs.get(&srv.target).cloned().unwrap_or_default();
            let target = srv.target.to_ascii();
            if ips.is_empty() {
                // Dropping the target would shift every later server's index; keep the last
                // good answer instead until DNS is consistent again.
                return Err(Failure::other(format!(
                    "SRV target {target} has no address"
                )));
            }
            ttl = ttl.min(addr_ttl);
            targets.push(SrvTarget {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: target.trim_end_matches('.').to_string(),
                addrs: ips,
            });
        }
        Ok(Answer::new(Records::Srv(targets), ttl))
    }
}
