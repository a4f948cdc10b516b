//! claimd's DNS verification engine: looks up the TXT records at a domain through
//! hickory-resolver and classifies what it saw.
//!
//! Every lookup is fresh: no answer cache, no hosts file, no search domains (the name is always
//! queried fully qualified), UDP with TCP fallback for every upstream, and one overall deadline
//! per check regardless of how many attempts and protocols the resolver tries underneath.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use claimd_domain::{DomainName, TxtMatch, VerificationToken, match_txt_value};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::Semaphore;

#[cfg(any(test, feature = "test-server"))]
pub mod testing;

/// At most this many TXT values are echoed back in a report, each cut to [`MAX_VALUE_CHARS`].
pub const MAX_VALUES_SHOWN: usize = 10;
pub const MAX_VALUE_CHARS: usize = 120;

#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Upstream resolvers; empty means the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// The deadline for one whole check.
    pub timeout: Duration,
    /// The TXT key, `cisco-ci-domain-verification` unless a deployment brands its own.
    pub txt_prefix: String,
    /// Lookups in flight at once, across all requests.
    pub max_concurrent_lookups: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(5),
            txt_prefix: claimd_domain::TXT_PREFIX.to_owned(),
            max_concurrent_lookups: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
    #[error("no DNS server configured")]
    NoServers,
    #[error("cannot build the resolver: {0}")]
    Build(String),
}

/// What a check concluded. Only [`Outcome::Verified`] may change state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A TXT record equal to the expected value is published (`legacy`: under the old key).
    Verified { legacy: bool },
    /// No TXT record at the name. `nxdomain`: the name itself does not exist.
    NotFound { nxdomain: bool },
    /// TXT records exist at the name but none carries the expected value.
    WrongValue,
    /// The DNS answered with an error (SERVFAIL, REFUSED, …) or could not be talked to.
    DnsFailure { reason: String },
    /// No answer within the deadline.
    Timeout,
}

impl Outcome {
    /// A short machine-readable kind for storage and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Verified { .. } => "verified",
            Self::NotFound { nxdomain: true } => "nxdomain",
            Self::NotFound { nxdomain: false } => "not_found",
            Self::WrongValue => "wrong_value",
            Self::DnsFailure { .. } => "dns_failure",
            Self::Timeout => "timeout",
        }
    }
}

/// Everything a check saw, for the API response and the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The fully qualified name queried, e.g. `example.com.`.
    pub name: String,
    /// The TXT value that proves control.
    pub expected: String,
    /// The resolvers asked.
    pub resolvers: Vec<SocketAddr>,
    pub outcome: Outcome,
    /// TXT values seen at the name (character-strings joined), cut for display.
    pub seen: Vec<String>,
    /// How many TXT records were seen in all.
    pub seen_total: usize,
}

impl Report {
    /// A command that repeats the lookup claimd made.
    pub fn dig_command(&self) -> String {
        let server = match self.resolvers.first() {
            Some(a) if a.port() == 53 => format!(" @{}", a.ip()),
            Some(a) => format!(" @{} -p {}", a.ip(), a.port()),
            None => String::new(),
        };
        format!("dig{server} TXT {}", self.name)
    }

    /// One paragraph for a person: what was looked up, where, what was seen, what to do.
    pub fn explain(&self) -> String {
        let via: Vec<String> = self.resolvers.iter().map(SocketAddr::to_string).collect();
        let via = via.join(", ");
        let seen = if self.seen.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> = self.seen.iter().map(|v| format!("\"{v}\"")).collect();
            let more = self.seen_total.saturating_sub(self.seen.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(" Seen: {}{more}.", shown.join(", "))
        };
        let what = match &self.outcome {
            Outcome::Verified { legacy: false } => "found the expected TXT record".to_owned(),
            Outcome::Verified { legacy: true } => {
                "found the expected token under the legacy key ciscocidomainverification".to_owned()
            }
            Outcome::NotFound { nxdomain: true } => "the name does not exist (NXDOMAIN)".to_owned(),
            Outcome::NotFound { nxdomain: false } => "the name has no TXT record".to_owned(),
            Outcome::WrongValue => format!(
                "{} TXT record(s) found, none equal to the expected value",
                self.seen_total
            ),
            Outcome::DnsFailure { reason } => format!("the DNS lookup failed: {reason}"),
            Outcome::Timeout => "the DNS lookup got no answer in time".to_owned(),
        };
        let advice = match &self.outcome {
            Outcome::NotFound { .. } | Outcome::WrongValue => format!(
                " Publish a TXT record at {} with the value \"{}\" and retry.",
                self.name, self.expected
            ),
            Outcome::DnsFailure { .. } | Outcome::Timeout => " Retry later.".to_owned(),
            Outcome::Verified { .. } => String::new(),
        };
        format!(
            "Looked up TXT {} via {via}: {what}.{seen}{advice} Check with: {}",
            self.name,
            self.dig_command()
        )
    }
}

/// Looks verification tokens up in DNS. Cheap to share; clone the `Arc`.
pub struct Verifier {
    resolver: TokioResolver,
    resolvers: Vec<SocketAddr>,
    config: VerifierConfig,
    permits: Arc<Semaphore>,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Self, ConfigError> {
        let (resolver_config, resolvers) = if config.servers.is_empty() {
            let (system, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ConfigError::SystemConfig(e.to_string()))?;
            let names = system
                .name_servers()
                .iter()
                .map(|ns| SocketAddr::new(ns.ip, 53))
                .collect();
            // Keep only the servers: the system's search domains must not apply.
            let mut servers = Vec::new();
            for ns in system.name_servers() {
                servers.push(NameServerConfig::udp_and_tcp(ns.ip));
            }
            (ResolverConfig::from_name_servers(servers), names)
        } else {
            let servers = config
                .servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            let names = config.servers.clone();
            (ResolverConfig::from_name_servers(servers), names)
        };
        if resolver_config.name_servers().is_empty() {
            return Err(ConfigError::NoServers);
        }
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.timeout = config.timeout;
        opts.attempts = 2;
        opts.preserve_intermediates = true;
        let resolver =
            Resolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| ConfigError::Build(e.to_string()))?;
        let permits = Arc::new(Semaphore::new(config.max_concurrent_lookups.max(1)));
        Ok(Self {
            resolver,
            resolvers,
            config,
            permits,
        })
    }

    /// The TXT value that proves control with `token`.
    pub fn expected_value(&self, token: &VerificationToken) -> String {
        format!("{}={}", self.config.txt_prefix, token.as_str())
    }

    /// Looks up TXT at `domain` and classifies the answer. Never fails: every problem is an
    /// [`Outcome`].
    pub async fn check(&self, domain: &DomainName, token: &VerificationToken) -> Report {
        let name = format!("{}.", domain.as_str());
        let mut report = Report {
            name: name.clone(),
            expected: self.expected_value(token),
            resolvers: self.resolvers.clone(),
            outcome: Outcome::Timeout,
            seen: Vec::new(),
            seen_total: 0,
        };
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let Ok(_permit) = tokio::time::timeout_at(deadline, self.permits.acquire()).await else {
            return report;
        };
        let lookup = tokio::time::timeout_at(
            deadline,
            self.resolver.lookup(name.as_str(), RecordType::TXT),
        )
        .await;
        report.outcome = match lookup {
            Err(_) => Outcome::Timeout,
            Ok(Err(e)) => classify_error(&e),
            Ok(Ok(lookup)) => {
                let values: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => {
                            let joined: Vec<u8> = txt
                                .txt_data
                                .iter()
                                .flat_map(|s| s.iter().copied())
                                .collect();
                            Some(String::from_utf8_lossy(&joined).into_owned())
                        }
                        _ => None,
                    })
                    .collect();
                let best = values
                    .iter()
                    .map(|v| match_txt_value(v, &self.config.txt_prefix, token))
                    .fold(TxtMatch::NoMatch, |best, m| match (best, m) {
                        (TxtMatch::Exact, _) | (_, TxtMatch::Exact) => TxtMatch::Exact,
                        (TxtMatch::Legacy, _) | (_, TxtMatch::Legacy) => TxtMatch::Legacy,
                        _ => TxtMatch::NoMatch,
                    });
                report.seen_total = values.len();
                report.seen = values
                    .iter()
                    .take(MAX_VALUES_SHOWN)
                    .map(|v| clip(v))
                    .collect();
                match best {
                    TxtMatch::Exact => Outcome::Verified { legacy: false },
                    TxtMatch::Legacy => Outcome::Verified { legacy: true },
                    TxtMatch::NoMatch if values.is_empty() => Outcome::NotFound { nxdomain: false },
                    TxtMatch::NoMatch => Outcome::WrongValue,
                }
            }
        };
        report
    }
}

fn classify_error(e: &NetError) -> Outcome {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => Outcome::NotFound {
            nxdomain: nr.response_code == ResponseCode::NXDomain,
        },
        NetError::Dns(DnsError::ResponseCode(code)) => Outcome::DnsFailure {
            // The RFC mnemonic (SERVFAIL, REFUSED, …) is what people search for.
            reason: format!("the server answered {}", format!("{code:?}").to_uppercase()),
        },
        NetError::Timeout => Outcome::Timeout,
        other => Outcome::DnsFailure {
            reason: other.to_string(),
        },
    }
}

fn clip(value: &str) -> String {
    let printable: String = value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    match printable.char_indices().nth(MAX_VALUE_CHARS) {
        Some((i, _)) => format!("{}…", &printable[..i]),
        None => printable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fault, FaultyDnsServer, TestDnsServer};

    fn verifier(server: SocketAddr, timeout_ms: u64) -> Verifier {
        Verifier::new(VerifierConfig {
            servers: vec![server],
            timeout: Duration::from_millis(timeout_ms),
            ..VerifierConfig::default()
        })
        .unwrap()
    }

    fn name(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn token() -> VerificationToken {
        VerificationToken::from_stored("0123456789abcdef0123456789abcdef".into())
    }

    const GOOD: &str = "cisco-ci-domain-verification=0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn classifies_answers_from_a_real_server() {
        let dns = TestDnsServer::start().await.unwrap();
        let v = verifier(dns.addr(), 3000);
        let check = |d: &'static str| {
            let v = &v;
            async move { v.check(&name(d), &token()).await }
        };

        dns.set_txt("ok.test", &["v=spf1 -all", GOOD]).await;
        let r = check("ok.test").await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.name, "ok.test.");
        assert_eq!(r.seen_total, 2);

        dns.set_txt(
            "legacy.test",
            &["ciscocidomainverification=0123456789abcdef0123456789abcdef"],
        )
        .await;
        assert_eq!(
            check("legacy.test").await.outcome,
            Outcome::Verified { legacy: true }
        );

        // One record of several character-strings is joined before comparing.
        dns.set_txt_records(
            "multi.test",
            &[vec![
                "cisco-ci-domain-verification=0123456789",
                "abcdef0123456789abcdef",
            ]],
        )
        .await;
        assert_eq!(
            check("multi.test").await.outcome,
            Outcome::Verified { legacy: false }
        );

        // Two separate records are never joined.
        dns.set_txt(
            "split.test",
            &[
                "cisco-ci-domain-verification=0123456789",
                "abcdef0123456789abcdef",
            ],
        )
        .await;
        assert_eq!(check("split.test").await.outcome, Outcome::WrongValue);

        // The token inside a longer value is not a proof.
        dns.set_txt("substr.test", &[&format!("{GOOD}x")]).await;
        let r = check("substr.test").await;
        assert_eq!(r.outcome, Outcome::WrongValue);
        assert!(
            r.explain().contains(&format!("\"{GOOD}x\"")),
            "{}",
            r.explain()
        );

        // NODATA: the name exists (it has a child) but holds no TXT.
        dns.set_txt("child.parent-only.test", &["x"]).await;
        assert_eq!(
            check("parent-only.test").await.outcome,
            Outcome::NotFound { nxdomain: false }
        );
        assert_eq!(
            check("nothing-here.test").await.outcome,
            Outcome::NotFound { nxdomain: true }
        );

        // A CNAME is followed to the record.
        dns.set_txt("target.test", &[GOOD]).await;
        dns.set_cname("alias.test", "target.test").await;
        assert_eq!(
            check("alias.test").await.outcome,
            Outcome::Verified { legacy: false }
        );

        // Internationalized names are looked up in their ASCII form.
        dns.set_txt("xn--bcher-kva.test", &[GOOD]).await;
        let r = v.check(&name("bücher.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.name, "xn--bcher-kva.test.");
    }

    #[tokio::test]
    async fn changes_are_seen_at_once() {
        let dns = TestDnsServer::start().await.unwrap();
        let v = verifier(dns.addr(), 3000);
        let d = name("fresh.test");
        assert_eq!(
            v.check(&d, &token()).await.outcome,
            Outcome::NotFound { nxdomain: true }
        );
        dns.set_txt("fresh.test", &[GOOD]).await;
        assert_eq!(
            v.check(&d, &token()).await.outcome,
            Outcome::Verified { legacy: false }
        );
        dns.remove_txt("fresh.test").await;
        assert!(matches!(
            v.check(&d, &token()).await.outcome,
            Outcome::NotFound { .. }
        ));
        dns.set_txt("fresh.test", &[GOOD]).await;
        assert_eq!(
            v.check(&d, &token()).await.outcome,
            Outcome::Verified { legacy: false }
        );
    }

    #[tokio::test]
    async fn large_answers_fall_back_to_tcp() {
        let dns = TestDnsServer::start().await.unwrap();
        let v = verifier(dns.addr(), 5000);
        let filler: Vec<String> = (0..60)
            .map(|i| format!("vendor-{i:02}-site-verification={}", "z".repeat(40)))
            .collect();
        let mut values: Vec<&str> = filler.iter().map(String::as_str).collect();
        values.push(GOOD);
        dns.set_txt("big.test", &values).await;
        let r = v.check(&name("big.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.seen_total, 61);
        assert_eq!(r.seen.len(), MAX_VALUES_SHOWN);
    }

    #[tokio::test]
    async fn server_errors_and_silence_are_not_answers() {
        for (fault, expect) in [(Fault::ServFail, "SERVFAIL"), (Fault::Refused, "REFUSED")] {
            let bad = FaultyDnsServer::start(fault).await.unwrap();
            let r = verifier(bad.addr(), 3000)
                .check(&name("example.test"), &token())
                .await;
            match &r.outcome {
                Outcome::DnsFailure { reason } => {
                    assert!(
                        reason.to_uppercase().contains(expect),
                        "{fault:?}: {reason}"
                    )
                }
                other => panic!("{fault:?} gave {other:?}"),
            }
        }
        let hole = FaultyDnsServer::start(Fault::BlackHole).await.unwrap();
        let r = verifier(hole.addr(), 300)
            .check(&name("example.test"), &token())
            .await;
        assert_eq!(r.outcome, Outcome::Timeout);
        assert!(r.explain().contains(&format!(
            "dig @127.0.0.1 -p {} TXT example.test.",
            hole.addr().port()
        )));
    }
}
