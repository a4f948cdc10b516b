//! An authoritative DNS server (hickory-server) on loopback that a test can change while it
//! runs: the real wire protocol over UDP and TCP, with records served from memory.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::rdata::{CNAME, SOA, TXT};
use hickory_resolver::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

pub mod signed_tree;
pub use signed_tree::{SignedTree, TamperingProxy};

/// Serves one zone (by default `test.`, so any `*.test` name can be published) on
/// `127.0.0.1:<port>`, UDP and TCP on the same port.
pub struct TestDnsServer {
    addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    queries: QueryLog,
    _server: Server<Logging>,
}

/// Every TXT question asked, with when it arrived.
type QueryLog = Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>>;

/// The catalog, noting each TXT question on its way in.
struct Logging {
    catalog: Catalog,
    queries: QueryLog,
}

#[async_trait::async_trait]
impl RequestHandler for Logging {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info()
            && info.query.query_type() == RecordType::TXT
            && let Ok(mut log) = self.queries.lock()
        {
            let name = info.query.name().to_string();
            log.push((
                name.trim_end_matches('.').to_owned(),
                std::time::Instant::now(),
            ));
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

impl TestDnsServer {
    pub async fn start() -> io::Result<Self> {
        Self::start_zone("test.").await
    }

    pub async fn start_zone(origin: &str) -> io::Result<Self> {
        let origin = Name::from_str(origin).map_err(io::Error::other)?;
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str("ns.invalid.").map_err(io::Error::other)?,
            Name::from_str("hostmaster.invalid.").map_err(io::Error::other)?,
            1,
            3600,
            600,
            86400,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::from(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );

        let (udp, tcp) = bind_udp_and_tcp().await?;
        let addr = udp.local_addr()?;
        let queries = QueryLog::default();
        let mut server = Server::new(Logging {
            catalog,
            queries: queries.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Ok(Self {
            addr,
            zone,
            queries,
            _server: server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every TXT question asked so far (name without the final dot, and when), in order.
    pub fn txt_queries(&self) -> Vec<(String, std::time::Instant)> {
        self.txt_queries_from(0)
    }

    /// The TXT questions asked after the first `from`, in order: a caller that follows a long
    /// run copies only what is new each time it looks.
    pub fn txt_queries_from(&self, from: usize) -> Vec<(String, std::time::Instant)> {
        self.queries
            .lock()
            .map(|q| q.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Replaces the TXT records at `name`; each record is a single character-string.
    pub async fn set_txt(&self, name: &str, values: &[&str]) {
        let records: Vec<Vec<&str>> = values.iter().map(|v| vec![*v]).collect();
        self.set_txt_records(name, &records).await;
    }

    /// Replaces the TXT records at `name`; each record is a list of character-strings.
    pub async fn set_txt_records(&self, name: &str, records: &[Vec<&str>]) {
        let owner = fqdn(name);
        self.remove(&owner, RecordType::TXT).await;
        let serial = self.zone.serial().await;
        for strings in records {
            let txt = TXT::new(strings.iter().map(|s| (*s).to_owned()).collect());
            self.zone
                .upsert(
                    Record::from_rdata(owner.clone(), 0, RData::TXT(txt)),
                    serial,
                )
                .await;
        }
    }

    /// Makes `name` an alias of `target`.
    pub async fn set_cname(&self, name: &str, target: &str) {
        let serial = self.zone.serial().await;
        let rdata = RData::CNAME(CNAME(fqdn(target)));
        self.zone
            .upsert(Record::from_rdata(fqdn(name), 0, rdata), serial)
            .await;
    }

    /// Removes every TXT record at `name`.
    pub async fn remove_txt(&self, name: &str) {
        self.remove(&fqdn(name), RecordType::TXT).await;
    }

    async fn remove(&self, owner: &Name, rtype: RecordType) {
        let mut records = self.zone.records_mut().await;
        let records: &mut BTreeMap<RrKey, _> = &mut records;
        records.remove(&RrKey::new(LowerName::from(owner), rtype));
    }
}

/// UDP and TCP on the same loopback port: a free UDP port, then its TCP twin.
async fn bind_udp_and_tcp() -> io::Result<(UdpSocket, TcpListener)> {
    let mut tries = 0;
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if tries >= 20 => return Err(e),
            Err(_) => tries += 1,
        }
    }
}

fn fqdn(name: &str) -> Name {
    let name = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    Name::from_str(&name).expect("a valid test name")
}

/// How a [`FaultyDnsServer`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers every query with SERVFAIL.
    ServFail,
    /// Answers every query with REFUSED.
    Refused,
    /// Reads queries and never answers (UDP and TCP).
    BlackHole,
    /// Answers over UDP with the truncation bit set and a partial answer carrying this TXT
    /// value, and has no TCP to complete it on: the partial answer must never be trusted.
    TruncatedWithoutTcp(&'static str),
}

/// A raw DNS responder on loopback that fails in one chosen way, over UDP and TCP.
pub struct FaultyDnsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyDnsServer {
    pub async fn start(fault: Fault) -> io::Result<Self> {
        let (udp, tcp) = bind_udp_and_tcp().await?;
        let addr = udp.local_addr()?;
        let tcp = match fault {
            Fault::TruncatedWithoutTcp(_) => None,
            _ => Some(tcp),
        };
        let task = tokio::spawn(async move {
            let udp_loop = async {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                    if let Some(answer) = fault_answer(fault, &buf[..n]) {
                        let _ = udp.send_to(&answer, peer).await;
                    }
                }
            };
            let tcp_loop = async {
                let Some(tcp) = tcp else { return };
                let mut held = Vec::new();
                while let Ok((mut stream, _)) = tcp.accept().await {
                    if fault == Fault::BlackHole {
                        held.push(stream);
                        continue;
                    }
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        while let Ok(len) = stream.read_u16().await {
                            let mut msg = vec![0u8; usize::from(len)];
                            if stream.read_exact(&mut msg).await.is_err() {
                                return;
                            }
                            let Some(answer) = fault_answer(fault, &msg) else {
                                return;
                            };
                            let Ok(len) = u16::try_from(answer.len()) else {
                                return;
                            };
                            if stream.write_u16(len).await.is_err()
                                || stream.write_all(&answer).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            };
            tokio::join!(udp_loop, tcp_loop);
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for FaultyDnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fault_answer(fault: Fault, query: &[u8]) -> Option<Vec<u8>> {
    use hickory_resolver::proto::op::{Message, ResponseCode};
    let query = Message::from_vec(query).ok()?;
    let code = match fault {
        Fault::ServFail => ResponseCode::ServFail,
        Fault::Refused => ResponseCode::Refused,
        Fault::BlackHole => return None,
        Fault::TruncatedWithoutTcp(value) => {
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.truncation = true;
            let owner = query.queries.first()?.name().clone();
            answer.add_queries(query.queries);
            let txt = RData::TXT(TXT::new(vec![value.to_owned()]));
            answer.add_answer(Record::from_rdata(owner, 0, txt));
            return answer.to_vec().ok();
        }
    };
    let mut answer = Message::error_msg(query.metadata.id, query.metadata.op_code, code);
    answer.add_queries(query.queries);
    answer.to_vec().ok()
}
