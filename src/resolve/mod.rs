//! DNS resolution of template queries, on top of hickory-resolver.
//!
//! Owns talking to DNS servers: applying the search list ourselves (so each candidate name's
//! outcome is seen, not just the last one), asking for A/AAAA/SRV with hickory's cache off,
//! resolving SRV targets (from the additional section when the server sent it), and sorting
//! failures into the classes the refresh policy needs. What it returns is [`crate::dns`]'s
//! vocabulary (the canonical order of an answer lives there); what to do about a failure is
//! the caller's business.

pub mod search;
mod srv;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::task::JoinSet;

use crate::dns::{Answer, Failure, Family, Query, Records, SrvTarget, Trouble, validate_name};
pub use search::SearchConfig;

/// Queries one mcw has in flight at once. A template of a thousand tokens would otherwise
/// send a thousand datagrams in one burst, more than a server's socket buffer holds (Linux's
/// default 208 KiB takes a few hundred): the dropped ones wait out the whole timeout.
const MAX_IN_FLIGHT: usize = 64;

/// The longest CNAME chain mcw follows (glibc's resolver gives up at about the same length).
const MAX_CNAME_LINKS: usize = 8;

/// How to reach DNS.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    /// Servers to ask instead of resolv.conf's `nameserver` lines.
    pub servers: Vec<SocketAddr>,
    /// Where `search`, `ndots` (and, without `servers`, the name servers) come from.
    pub resolv_conf: PathBuf,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub retries: usize,
    /// `--dns-tcp`: every query over TCP (no UDP at all).
    pub tcp: bool,
}

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    ResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no DNS server: {path} lists no nameserver; pass --dns-server IP[:PORT]", path = .path.display())]
    NoServers { path: PathBuf },
    #[error("cannot start the DNS resolver: {0}")]
    Build(#[source] NetError),
}

/// A DNS client for template queries. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    search: SearchConfig,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Dns {
    pub fn new(settings: &DnsSettings) -> Result<Dns, SetupError> {
        let path = &settings.resolv_conf;
        let search =
            SearchConfig::from_resolv_conf(path).map_err(|source| SetupError::ResolvConf {
                path: path.clone(),
                source,
            })?;
        let servers: Vec<SocketAddr> = if settings.servers.is_empty() {
            search
                .nameservers
                .iter()
                .map(|ip| SocketAddr::new(*ip, 53))
                .collect()
        } else {
            settings.servers.clone()
        };
        if servers.is_empty() {
            return Err(SetupError::NoServers { path: path.clone() });
        }
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                // UDP first, TCP when an answer comes back truncated; or TCP only.
                let connections = if settings.tcp {
                    vec![tcp]
                } else {
                    vec![udp, tcp]
                };
                NameServerConfig::new(addr.ip(), true, connections)
            })
            .collect();
        // The search list is applied by `SearchConfig`, so hickory only sees absolute names.
        let config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
        // Set every behaviour we rely on explicitly: hickory's defaults have moved between
        // releases.
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = settings.retries;
        opts.ndots = 0;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4Only;
        opts.edns0 = true;
        opts.preserve_intermediates = false;
        opts.recursion_desired = true;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(SetupError::Build)?;
        Ok(Dns {
            resolver,
            search,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Resolve every query concurrently. Every query gets a result: one whose task panicked
    /// fails (and is asked again at the retry interval) rather than going missing.
    pub async fn resolve_all(
        &self,
        queries: impl IntoIterator<Item = Query>,
    ) -> HashMap<Query, Result<Answer, Failure>> {
        let dns = self.clone();
        resolve_each(queries, move |query| {
            let dns = dns.clone();
            async move { dns.resolve(&query).await }
        })
        .await
    }

    /// Resolve one query, trying the search-list candidates in order. A transient failure
    /// on any candidate stops the search: trying further names could find a different,
    /// wrong service.
    pub async fn resolve(&self, query: &Query) -> Result<Answer, Failure> {
        let candidates = self.search.candidates(&query.name);
        let mut nodata = false;
        for name in &candidates {
            let result = if query.srv {
                self.srv_at(name, query.family).await
            } else {
                self.addrs_at(name, query.family)
                    .await
                    .map(|(addrs, ttl)| Answer::new(Records::Addrs(addrs), ttl))
            };
            match result {
                Ok(answer) => return Ok(answer),
                Err(Failure::NxDomain { .. }) => {}
                Err(Failure::NoRecords { .. }) => nodata = true,
                Err(transient) => return Err(transient),
            }
        }
        let tried = candidates;
        Err(if nodata {
            Failure::NoRecords { tried }
        } else {
            Failure::NxDomain { tried }
        })
    }

    /// Addresses of one absolute name, with the smallest TTL.
    async fn addrs_at(&self, name: &str, family: Family) -> Result<(Vec<IpAddr>, u32), Failure> {
        let (v4, v6) = tokio::join!(
            async {
                match family.wants_v4() {
                    true => Some(self.typed(name, RecordType::A).await),
                    false => None,
                }
            },
            async {
                match family.wants_v6() {
                    true => Some(self.typed(name, RecordType::AAAA).await),
                    false => None,
                }
            }
        );
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        let mut nxdomain = false;
        for result in [v4, v6].into_iter().flatten() {
            match result {
                Ok((records, _)) => {
                    for r in records {
                        if let Some(ip) = ip_of(&r) {
                            addrs.push(ip);
                            ttl = ttl.min(r.ttl);
                        }
                    }
                }
                Err(Failure::NxDomain { .. }) => nxdomain = true,
                Err(Failure::NoRecords { .. }) => {}
                Err(transient) => return Err(transient),
            }
        }
        if addrs.is_empty() {
            let tried = vec![name.to_string()];
            return Err(if nxdomain {
                Failure::NxDomain { tried }
            } else {
                Failure::NoRecords { tried }
            });
        }
        Ok((addrs, ttl))
    }

    /// One query of one type for one absolute name, following CNAMEs as the system resolver
    /// does: the matching answer records (their TTLs capped by the chain's) and the additional
    /// section. hickory follows most chains itself; where it cannot (an SRV name that is an
    /// alias: it takes the SRV targets for the next link), the name's "no records" leads mcw to
    /// ask for its CNAME and follow it.
    pub(crate) async fn typed(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<(Vec<Record>, Vec<Record>), Failure> {
        let mut current = name.to_string();
        let mut chain_ttl = u32::MAX;
        for _ in 0..=MAX_CNAME_LINKS {
            let nodata = match self.typed_once(&current, rtype).await {
                Ok((mut records, additionals)) => {
                    for r in &mut records {
                        r.ttl = r.ttl.min(chain_ttl);
                    }
                    return Ok((records, additionals));
                }
                Err(Failure::NoRecords { .. }) => Failure::NoRecords {
                    tried: vec![name.to_string()],
                },
                Err(other) => return Err(other),
            };
            match self.typed_once(&current, RecordType::CNAME).await {
                Ok((records, _)) => {
                    let Some((target, ttl)) = records.iter().find_map(|r| match &r.data {
                        RData::CNAME(cname) => Some((cname.0.to_ascii(), r.ttl)),
                        _ => None,
                    }) else {
                        return Err(nodata);
                    };
                    chain_ttl = chain_ttl.min(ttl);
                    current = target;
                }
                Err(Failure::NoRecords { .. } | Failure::NxDomain { .. }) => return Err(nodata),
                Err(transient) => return Err(transient),
            }
        }
        Err(Failure::other(format!(
            "{rtype} {name}: more than {MAX_CNAME_LINKS} CNAMEs in a row"
        )))
    }

    /// One query of one type for one absolute name, as hickory answers it.
    async fn typed_once(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<(Vec<Record>, Vec<Record>), Failure> {
        let tried = || vec![name.to_string()];
        let dns_name =
            Name::from_ascii(name).map_err(|e| Failure::other(format!("bad name {name}: {e}")))?;
        // Never closed, so acquiring cannot fail; the timeout starts once the query is sent.
        let _permit = self.in_flight.acquire().await;
        // cache_size is 0, and clearing makes sure no answer is ever served from memory.
        self.resolver.clear_cache();
        match self.resolver.lookup(dns_name, rtype).await {
            Ok(lookup) => {
                let records: Vec<Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect();
                if records.is_empty() {
                    return Err(Failure::NoRecords { tried: tried() });
                }
                Ok((records, lookup.additionals().to_vec()))
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(no)))
                if no.response_code == ResponseCode::NXDomain =>
            {
                Err(Failure::NxDomain { tried: tried() })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => {
                Err(Failure::NoRecords { tried: tried() })
            }
            Err(NetError::Dns(DnsError::ResponseCode(code))) => {
                let kind = match code {
                    ResponseCode::ServFail => Trouble::ServFail,
                    ResponseCode::Refused => Trouble::Refused,
                    _ => Trouble::Other,
                };
                let why = format!("{rtype} {name}: server answered {}", rcode_name(code));
                Err(Failure::Transient(kind, why))
            }
            Err(NetError::Timeout) => Err(Failure::Transient(
                Trouble::Timeout,
                format!("{rtype} {name}: timed out"),
            )),
            Err(e) => Err(Failure::other(format!("{rtype} {name}: {e}"))),
        }
    }
}

/// Run `resolve` for every query in a task of its own, and collect one result per query.
/// A task that panics is mapped back to its query, which fails with the panic's message.
async fn resolve_each<F, Fut>(
    queries: impl IntoIterator<Item = Query>,
    resolve: F,
) -> HashMap<Query, Result<Answer, Failure>>
where
    F: Fn(Query) -> Fut,
    Fut: std::future::Future<Output = Result<Answer, Failure>> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut asked = HashMap::new();
    for query in queries {
        let task = set.spawn(resolve(query.clone()));
        asked.insert(task.id(), query);
    }
    let mut out = HashMap::with_capacity(asked.len());
    while let Some(joined) = set.join_next_with_id().await {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => {
                tracing::error!(reason = %e, "DNS lookup task failed");
                let failure = Failure::other(format!("lookup task failed: {e}"));
                (e.id(), Err(failure))
            }
        };
        if let Some(query) = asked.remove(&id) {
            out.insert(query, result);
        }
    }
    out
}

/// The mnemonic operators know from dig (`SERVFAIL`, not "Server Failure").
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        other => format!("response code {}", u16::from(other)),
    }
}

pub(crate) fn ip_of(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Family;
    use super::*;

    fn query(name: &str) -> Query {
        Query {
            name: name.into(),
            srv: false,
            family: Family::Ipv4,
        }
    }

    /// Regression: a lookup task that panicked was logged and left out of the results, so the
    /// engine kept its query "in flight" for ever and never asked again.
    #[tokio::test]
    async fn a_lookup_that_panics_fails_its_own_query_and_no_other() {
        let results = resolve_each([query("ok.test"), query("boom.test")], |q| async move {
            assert!(q.name != "boom.test", "a bug in one lookup");
            Ok(Answer::new(
                Records::Addrs(vec!["10.0.0.1".parse().unwrap()]),
                5,
            ))
        })
        .await;
        assert_eq!(results.len(), 2);
        assert!(results[&query("ok.test")].is_ok());
        let failed = results[&query("boom.test")].as_ref().unwrap_err();
        assert_eq!(failed.outcome(), "other");
        assert!(failed.to_string().contains("panicked"), "{failed}");
    }
}
