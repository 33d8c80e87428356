//! An in-process DNS server (hickory-server) whose records, failure modes and answer order a
//! test can change while mcw is running against it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
pub use hickory_server::proto::rr::RecordType;
use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

/// What the server does for a name instead of answering from its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    NxDomain,
    ServFail,
    Refused,
    /// Never answer (the client times out).
    Silent,
}

#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
    faults: HashMap<String, Fault>,
    every_name: Option<Fault>,
    /// Rotate answer order on every response.
    shuffle: bool,
    /// Leave SRV targets' addresses out of the additional section.
    no_glue: bool,
    queries: HashMap<(String, RecordType), usize>,
    served: usize,
    /// A second record set per name and type, swapped with the first after every answer.
    flaps: HashMap<(String, RecordType), Vec<Record>>,
}

/// A running server on 127.0.0.1 (UDP and TCP on one port). Stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

impl DnsServer {
    pub fn start() -> DnsServer {
        DnsServer::start_with(true)
    }

    /// A server that answers over TCP only: its UDP port is bound (so nothing else answers
    /// there) but never read.
    pub fn start_tcp_only() -> DnsServer {
        DnsServer::start_with(false)
    }

    fn start_with(udp_too: bool) -> DnsServer {
        let zone = Arc::new(Mutex::new(Zone::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let handler = Handler { zone: zone.clone() };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (udp, tcp) = bind_pair().await;
                addr_tx.send(udp.local_addr().unwrap()).unwrap();
                let mut server = hickory_server::Server::new(handler);
                let _unread = if udp_too {
                    server.register_socket(udp);
                    None
                } else {
                    Some(udp)
                };
                server.register_listener(tcp, std::time::Duration::from_secs(5), 64);
                let _ = shutdown_rx.await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        let addr = addr_rx.recv().expect("DNS server address");
        DnsServer {
            addr,
            zone,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `--dns-server` value for this server.
    pub fn arg(&self) -> String {
        self.addr.to_string()
    }

    fn zone(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone.lock().unwrap()
    }

    /// Replace the A and AAAA records of `name` with `addrs` (IPv4 and IPv6 mixed).
    pub fn set_addrs(&self, name: &str, addrs: &[&str], ttl: u32) {
        let mut zone = self.zone();
        for (rtype, records) in addr_records(name, addrs, ttl) {
            if records.is_empty() {
                zone.records.remove(&(fqdn(name), rtype));
            } else {
                zone.records.insert((fqdn(name), rtype), records);
            }
        }
    }

    /// Make the IPv4 answer for `name` flap: from the next query on, answers alternate between
    /// the records set now and `other` (IPv4 addresses), one answer each.
    pub fn flap_addrs(&self, name: &str, other: &[&str], ttl: u32) {
        let [(_, v4), _] = addr_records(name, other, ttl);
        self.zone().flaps.insert((fqdn(name), RecordType::A), v4);
    }

    /// Replace the SRV records of `name`: (priority, weight, port, target).
    pub fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)], ttl: u32) {
        let owner = Name::from_str(&fqdn(name)).unwrap();
        let records = records
            .iter()
            .map(|(p, w, port, target)| {
                // Raw labels: any byte DNS allows, as a hostile server would send it.
                let labels = target.trim_end_matches('.').split('.').map(str::as_bytes);
                let mut target = Name::from_labels(labels).unwrap();
                target.set_fqdn(true);
                Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(*p, *w, *port, target)),
                )
            })
            .collect();
        self.zone()
            .records
            .insert((fqdn(name), RecordType::SRV), records);
    }

    /// Remove every record of `name`.
    pub fn remove(&self, name: &str) {
        let key = fqdn(name);
        self.zone().records.retain(|(n, _), _| *n != key);
    }

    /// Make `name` fail (or, with `None`, answer again).
    pub fn fault(&self, name: &str, fault: Option<Fault>) {
        let mut zone = self.zone();
        match fault {
            Some(f) => zone.faults.insert(fqdn(name), f),
            None => zone.faults.remove(&fqdn(name)),
        };
    }

    /// Make every name fail (or, with `None`, answer again).
    pub fn fault_all(&self, fault: Option<Fault>) {
        self.zone().every_name = fault;
    }

    pub fn shuffle(&self, on: bool) {
        self.zone().shuffle = on;
    }

    pub fn glue(&self, on: bool) {
        self.zone().no_glue = !on;
    }

    /// How many queries of `rtype` for `name` arrived.
    pub fn queries(&self, name: &str, rtype: RecordType) -> usize {
        self.zone()
            .queries
            .get(&(fqdn(name), rtype))
            .copied()
            .unwrap_or(0)
    }
}

/// A and AAAA records of `name` for `addrs`, by type.
fn addr_records(name: &str, addrs: &[&str], ttl: u32) -> [(RecordType, Vec<Record>); 2] {
    let owner = Name::from_str(&fqdn(name)).unwrap();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in addrs {
        match a.parse::<IpAddr>().unwrap() {
            IpAddr::V4(ip) => v4.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(ip)))),
            IpAddr::V6(ip) => v6.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::AAAA(AAAA(ip)),
            )),
        }
    }
    [(RecordType::A, v4), (RecordType::AAAA, v6)]
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn bind_pair() -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
}

struct Handler {
    zone: Arc<Mutex<Zone>>,
}

/// What to send for one query, decided under the lock.
enum Reply {
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    Code(ResponseCode),
    Nothing,
}

impl Zone {
    fn reply(&mut self, name: &str, rtype: RecordType) -> Reply {
        *self.queries.entry((name.to_string(), rtype)).or_default() += 1;
        self.served += 1;
        if let Some(fault) = self.faults.get(name).copied().or(self.every_name) {
            return match fault {
                Fault::NxDomain => Reply::Code(ResponseCode::NXDomain),
                Fault::ServFail => Reply::Code(ResponseCode::ServFail),
                Fault::Refused => Reply::Code(ResponseCode::Refused),
                Fault::Silent => Reply::Nothing,
            };
        }
        let Some(records) = self.records.get(&(name.to_string(), rtype)) else {
            let exists = self.records.keys().any(|(n, _)| n == name);
            return match exists {
                true => Reply::Records {
                    answers: vec![],
                    additionals: vec![],
                },
                false => Reply::Code(ResponseCode::NXDomain),
            };
        };
        let mut answers = records.clone();
        let key = (name.to_string(), rtype);
        if let Some(next) = self.flaps.remove(&key) {
            let answered = self.records.insert(key.clone(), next).unwrap_or_default();
            self.flaps.insert(key, answered);
        }
        let mut additionals = Vec::new();
        if rtype == RecordType::SRV && !self.no_glue {
            for r in &answers {
                if let RData::SRV(srv) = &r.data {
                    let target = srv.target.to_ascii().to_ascii_lowercase();
                    for t in [RecordType::A, RecordType::AAAA] {
                        if let Some(glue) = self.records.get(&(target.clone(), t)) {
                            additionals.extend(glue.iter().cloned());
                        }
                    }
                }
            }
        }
        if self.shuffle && !answers.is_empty() {
            // A different rotation and direction every time: order must not matter.
            let n = answers.len();
            answers.rotate_left(self.served % n);
            if self.served.is_multiple_of(2) {
                answers.reverse();
            }
            additionals.reverse();
        }
        Reply::Records {
            answers,
            additionals,
        }
    }
}

/// The encoded size of a response holding these records, name compression included, as the
/// wire would carry it.
fn wire_size(
    name: &str,
    rtype: RecordType,
    answers: &[Record],
    additionals: &[Record],
    edns: &Edns,
) -> usize {
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    message.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    message.add_answers(answers.iter().cloned());
    message.add_additionals(additionals.iter().cloned());
    message.set_edns(edns.clone());
    message.to_vec().map_or(usize::MAX, |bytes| bytes.len())
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let info = request.request_info().expect("one query");
        let name = info.query.name().to_string().to_ascii_lowercase();
        let name = if name.ends_with('.') {
            name
        } else {
            format!("{name}.")
        };
        let rtype = info.query.query_type();
        let reply = self.zone.lock().unwrap().reply(&name, rtype);
        let mut edns = Edns::new();
        let limit = match &request.edns {
            Some(client) => {
                edns.set_max_payload(client.max_payload().max(512));
                client.max_payload().max(512) as usize
            }
            None => 512,
        };
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if request.edns.is_some() {
            builder.edns(&edns);
        }
        let result = match reply {
            Reply::Nothing => {
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Reply::Code(code) => {
                metadata.response_code = code;
                response_handle
                    .send_response(builder.build_no_records(metadata))
                    .await
            }
            Reply::Records {
                answers,
                additionals,
            } => {
                let size = wire_size(&name, rtype, &answers, &additionals, &edns);
                if request.protocol() == Protocol::Udp && size > limit {
                    // Too big for UDP: say so, and the client retries over TCP.
                    metadata.truncation = true;
                    response_handle
                        .send_response(builder.build_no_records(metadata))
                        .await
                } else {
                    let none: Vec<Record> = Vec::new();
                    response_handle
                        .send_response(builder.build(
                            metadata,
                            answers.iter(),
                            none.iter(),
                            none.iter(),
                            additionals.iter(),
                        ))
                        .await
                }
            }
        };
        result.unwrap_or_else(|_| {
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        })
    }
}
