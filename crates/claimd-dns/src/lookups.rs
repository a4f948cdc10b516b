//! How one perspective asks: hickory's resolver as it is when answers are not validated, and
//! when they are, the same layers assembled by hand with one more — a cache of the zones' keys
//! (DNSKEY and DS answers, each for its TTL) under the validator — so that validating an answer
//! does not fetch the whole chain of keys again each time. TXT answers are never cached: there
//! is no answer cache above the validator, as without validation.
//!
//! ```text
//! CachingClient (size 0: CNAME chains, errors)  →  DnssecDnsHandle (hickory's validator)
//!   →  KeyCache (DNSKEY, DS)  →  RetryDnsHandle  →  NameServerPool (UDP, TCP)
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream, StreamExt as _};
use hickory_resolver::caching_client::CachingClient;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverOpts};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, RetryDnsHandle};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode,
};
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig, TokioResolver};

use crate::config::{ConfigError, build_resolver};

type Pool = NameServerPool<TokioRuntimeProvider>;
type Validating = CachingClient<DnssecDnsHandle<KeyCache<RetryDnsHandle<Pool>>>>;

/// One perspective's way of asking.
#[derive(Clone)]
pub(crate) enum Lookups {
    /// No validation: hickory's resolver.
    Plain(TokioResolver),
    /// Validated from the trust anchors, with the zones' keys cached.
    Validating(Validating),
}

impl Lookups {
    pub(crate) fn plain(servers: &[SocketAddr], timeout: Duration) -> Result<Self, ConfigError> {
        Ok(Self::Plain(build_resolver(servers, timeout)?))
    }

    pub(crate) fn validating(
        servers: &[SocketAddr],
        timeout: Duration,
        anchors: Arc<TrustAnchors>,
    ) -> Result<Self, ConfigError> {
        let opts = options(timeout);
        let attempts = opts.attempts;
        let tls = TlsConfig::new().map_err(|e| ConfigError::Build(e.to_string()))?;
        let context = Arc::new(PoolContext::new(opts, tls));
        let pool = NameServerPool::from_config(
            name_servers(servers),
            context,
            TokioRuntimeProvider::default(),
        );
        let keys = KeyCache::new(RetryDnsHandle::new(pool, attempts));
        let validator = DnssecDnsHandle::with_trust_anchor(keys, anchors);
        Ok(Self::Validating(CachingClient::new(0, validator, true)))
    }

    /// Looks `name` (fully qualified) up.
    pub(crate) async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Lookup, NetError> {
        match self {
            Self::Plain(resolver) => resolver.lookup(name, rtype).await,
            Self::Validating(client) => {
                let name = Name::from_ascii(name).map_err(|e| NetError::from(e.to_string()))?;
                let mut request = DnsRequestOptions::default();
                request.recursion_desired = true;
                request.edns_set_dnssec_ok = true;
                client.lookup(Query::query(name, rtype), request).await
            }
        }
    }
}

/// Each server over UDP, and TCP when an answer is truncated, at its own port.
pub(crate) fn name_servers(servers: &[SocketAddr]) -> Vec<NameServerConfig> {
    servers
        .iter()
        .map(|addr| {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            ns
        })
        .collect()
}

/// The verifier's resolver options: no cache, no hosts file, FQDN only, two attempts per query.
pub(crate) fn options(timeout: Duration) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.preserve_intermediates = true;
    opts
}

/// The longest a zone's keys are kept, whatever their TTL.
const MAX_KEY_TTL: Duration = Duration::from_secs(600);
/// The most key answers kept (zones whose keys were fetched recently).
const MAX_KEY_ENTRIES: usize = 10_000;

/// Keeps DNSKEY and DS answers for their TTL (at most [`MAX_KEY_TTL`]); passes everything else
/// through. A cached answer is handed to the validator exactly as it arrived, signatures and
/// all, so it is validated again each time (hickory keeps the proof of an unchanged set).
#[derive(Clone)]
pub(crate) struct KeyCache<H> {
    inner: H,
    entries: Arc<Mutex<KeyAnswers>>,
}

impl<H> KeyCache<H> {
    fn new(inner: H) -> Self {
        Self {
            inner,
            entries: Arc::default(),
        }
    }
}

/// Each zone's key answer (DNSKEY or DS), until when it may be used.
type KeyAnswers = HashMap<(Name, RecordType), (Instant, DnsResponse)>;

type Answers = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send + Unpin>>;

impl<H: DnsHandle> DnsHandle for KeyCache<H> {
    type Response = Answers;
    type Runtime = H::Runtime;

    fn is_verifying_dnssec(&self) -> bool {
        self.inner.is_verifying_dnssec()
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let key = match request.queries.as_slice() {
            [q] if matches!(q.query_type(), RecordType::DNSKEY | RecordType::DS) => {
                (q.name().to_lowercase(), q.query_type())
            }
            _ => return Box::pin(self.inner.send(request)),
        };
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock()
            && let Some((until, answer)) = entries.get(&key)
            && *until > now
        {
            return Box::pin(stream::once(std::future::ready(Ok(answer.clone()))));
        }
        let entries = self.entries.clone();
        Box::pin(self.inner.send(request).map(move |answer| {
            if let Ok(response) = &answer
                && response.response_code == ResponseCode::NoError
                && !response.answers.is_empty()
            {
                let ttl = response.answers.iter().map(|r| r.ttl).min().unwrap_or(0);
                let keep = Duration::from_secs(u64::from(ttl)).min(MAX_KEY_TTL);
                if !keep.is_zero()
                    && let Ok(mut entries) = entries.lock()
                {
                    if entries.len() >= MAX_KEY_ENTRIES {
                        let now = Instant::now();
                        entries.retain(|_, (until, _)| *until > now);
                        if entries.len() >= MAX_KEY_ENTRIES {
                            entries.clear();
                        }
                    }
                    entries.insert(key.clone(), (Instant::now() + keep, response.clone()));
                }
            }
            answer
        }))
    }
}
