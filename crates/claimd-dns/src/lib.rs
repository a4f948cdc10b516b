//! claimd's DNS verification engine: looks up the TXT records at a domain through
//! hickory-resolver, classifies what it saw, explains near misses, and corroborates the answer
//! from several vantage points when configured.
//!
//! Every lookup is fresh: no answer cache, no hosts file, no search domains (the name is always
//! queried fully qualified), UDP with TCP fallback for every upstream, and one overall deadline
//! per check regardless of how many attempts, protocols and perspectives run underneath.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use claimd_domain::{DomainName, TxtMatch, VerificationToken, match_txt_value};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub mod hints;
#[cfg(any(test, feature = "test-server"))]
pub mod testing;

pub use hints::Hint;

/// At most this many TXT values are echoed back per perspective, each cut to [`MAX_VALUE_CHARS`].
pub const MAX_VALUES_SHOWN: usize = 10;
pub const MAX_VALUE_CHARS: usize = 120;

/// A named group of resolvers queried independently of the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerspectiveConfig {
    pub name: String,
    pub servers: Vec<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Where to look. Empty: one perspective, the system's resolvers (`/etc/resolv.conf`).
    pub perspectives: Vec<PerspectiveConfig>,
    /// The deadline for one whole check.
    pub timeout: Duration,
    /// The TXT key, `cisco-ci-domain-verification` unless a deployment brands its own.
    pub txt_prefix: String,
    /// Checks in flight at once, across all requests.
    pub max_concurrent_lookups: usize,
}

impl VerifierConfig {
    /// One perspective made of `servers` (the `--dns-server` form).
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        let perspectives = if servers.is_empty() {
            Vec::new()
        } else {
            vec![PerspectiveConfig {
                name: "default".to_owned(),
                servers,
            }]
        };
        Self {
            perspectives,
            ..Self::default()
        }
    }
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            perspectives: Vec::new(),
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
    #[error("perspective '{0}' has no DNS server")]
    NoServers(String),
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
    /// The DNS answered with an error (SERVFAIL, REFUSED, …), or a truncated answer could not be
    /// completed over TCP, or the server could not be talked to.
    DnsFailure { reason: String },
    /// No answer within the deadline.
    Timeout,
}

impl Outcome {
    /// A short machine-readable kind for storage, logs and the API.
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

    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }

    fn describe(&self, seen_total: usize) -> String {
        match self {
            Self::Verified { legacy: false } => "found the expected TXT record".to_owned(),
            Self::Verified { legacy: true } => {
                "found the expected token under the legacy key ciscocidomainverification".to_owned()
            }
            Self::NotFound { nxdomain: true } => "the name does not exist (NXDOMAIN)".to_owned(),
            Self::NotFound { nxdomain: false } => "the name has no TXT record".to_owned(),
            Self::WrongValue => {
                format!("{seen_total} TXT record(s) found, none equal to the expected value")
            }
            Self::DnsFailure { reason } => format!("the DNS lookup failed: {reason}"),
            Self::Timeout => "the DNS lookup got no answer in time".to_owned(),
        }
    }
}

/// What one perspective saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerspectiveReport {
    pub name: String,
    pub servers: Vec<SocketAddr>,
    pub outcome: Outcome,
    /// The response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …) when the server answered.
    pub rcode: Option<String>,
    /// TXT values seen at the name (character-strings joined), cut for display.
    pub seen: Vec<String>,
    /// How many TXT records were seen in all.
    pub seen_total: usize,
}

/// Everything a check saw, for the API response and the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The fully qualified name queried, e.g. `example.com.`.
    pub name: String,
    /// The TXT value that proves control.
    pub expected: String,
    /// The conclusion over all perspectives (quorum applied).
    pub outcome: Outcome,
    pub perspectives: Vec<PerspectiveReport>,
    /// Likely mistakes, when control was not proven.
    pub hints: Vec<Hint>,
}

/// How many perspectives may fail to see the token while the check still succeeds: at most one
/// for two to five perspectives, two for six or more (the CA/Browser Forum's table).
pub fn allowed_misses(perspectives: usize) -> usize {
    match perspectives {
        0 | 1 => 0,
        2..=5 => 1,
        _ => 2,
    }
}

impl Report {
    /// A command that repeats the lookup claimd made (through the first resolver).
    pub fn dig_command(&self) -> String {
        let server = match self.perspectives.first().and_then(|p| p.servers.first()) {
            Some(a) if a.port() == 53 => format!(" @{}", a.ip()),
            Some(a) => format!(" @{} -p {}", a.ip(), a.port()),
            None => String::new(),
        };
        format!("dig{server} TXT {}", self.name)
    }

    /// One paragraph for a person: what was looked up, where, what was seen, what to do.
    pub fn explain(&self) -> String {
        let mut text = format!("Looked up TXT {}", self.name);
        if let [only] = self.perspectives.as_slice() {
            text += &format!(
                " via {}: {}.",
                join(&only.servers),
                only.outcome.describe(only.seen_total)
            );
            text += &seen_text(only);
        } else {
            let misses = self
                .perspectives
                .iter()
                .filter(|p| !p.outcome.is_verified())
                .count();
            text += &format!(
                " from {} perspectives ({} may miss; {misses} did):",
                self.perspectives.len(),
                allowed_misses(self.perspectives.len())
            );
            for p in &self.perspectives {
                text += &format!(
                    " [{} via {}: {}.{}]",
                    p.name,
                    join(&p.servers),
                    p.outcome.describe(p.seen_total),
                    seen_text(p)
                );
            }
            text += if self.outcome.is_verified() {
                " Result: verified."
            } else {
                " Result: not verified."
            };
        }
        for hint in &self.hints {
            text += &format!(" Hint: {hint}.");
        }
        match &self.outcome {
            Outcome::NotFound { .. } | Outcome::WrongValue => {
                text += &format!(
                    " Publish a TXT record at {} with the value \"{}\" and retry.",
                    self.name, self.expected
                );
            }
            Outcome::DnsFailure { .. } | Outcome::Timeout => text += " Retry later.",
            Outcome::Verified { .. } => {}
        }
        text + &format!(" Check with: {}", self.dig_command())
    }

    /// The evidence kept in the event log: outcome, perspectives, rcodes, records seen, hints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "expected": self.expected,
            "outcome": self.outcome.kind(),
            "detail": match &self.outcome { Outcome::DnsFailure { reason } => Some(reason.as_str()), _ => None },
            "perspectives": self.perspectives.iter().map(|p| serde_json::json!({
                "name": p.name,
                "servers": p.servers.iter().map(SocketAddr::to_string).collect::<Vec<_>>(),
                "outcome": p.outcome.kind(),
                "rcode": p.rcode,
                "seen": p.seen,
                "seenTotal": p.seen_total,
            })).collect::<Vec<_>>(),
            "hints": self.hints.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "dig": self.dig_command(),
        })
    }
}

fn join(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn seen_text(p: &PerspectiveReport) -> String {
    if p.seen.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = p.seen.iter().map(|v| format!("\"{v}\"")).collect();
    let more = p.seen_total.saturating_sub(p.seen.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(" Seen: {}{more}.", shown.join(", "))
}

struct Perspective {
    name: String,
    servers: Vec<SocketAddr>,
    resolver: TokioResolver,
}

/// What one lookup of one name through one perspective produced.
struct Lookup {
    outcome: Outcome,
    rcode: Option<String>,
    values: Vec<String>,
}

/// Looks verification tokens up in DNS. Cheap to share behind an `Arc`.
pub struct Verifier {
    perspectives: Vec<Arc<Perspective>>,
    config: VerifierConfig,
    permits: Arc<Semaphore>,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Self, ConfigError> {
        let groups = if config.perspectives.is_empty() {
            let (system, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ConfigError::SystemConfig(e.to_string()))?;
            vec![PerspectiveConfig {
                name: "system".to_owned(),
                servers: system
                    .name_servers()
                    .iter()
                    .map(|ns| SocketAddr::new(ns.ip, 53))
                    .collect(),
            }]
        } else {
            config.perspectives.clone()
        };
        let perspectives = groups
            .into_iter()
            .map(|group| {
                if group.servers.is_empty() {
                    return Err(ConfigError::NoServers(group.name));
                }
                let resolver = build_resolver(&group.servers, config.timeout)?;
                Ok(Arc::new(Perspective {
                    name: group.name,
                    servers: group.servers,
                    resolver,
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let permits = Arc::new(Semaphore::new(config.max_concurrent_lookups.max(1)));
        Ok(Self {
            perspectives,
            config,
            permits,
        })
    }

    /// The TXT value that proves control with `token`.
    pub fn expected_value(&self, token: &VerificationToken) -> String {
        format!("{}={}", self.config.txt_prefix, token.as_str())
    }

    /// Looks up TXT at `domain` from every perspective and concludes. Never fails: every problem
    /// is an [`Outcome`].
    pub async fn check(&self, domain: &DomainName, token: &VerificationToken) -> Report {
        let name = format!("{}.", domain.as_str());
        let deadline = Instant::now() + self.config.timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.acquire()).await;
        let lookups = match permit {
            Ok(_) => self.lookup_everywhere(&name, token, deadline).await,
            Err(_) => self.perspectives.iter().map(|_| timed_out()).collect(),
        };
        let perspectives: Vec<PerspectiveReport> = self
            .perspectives
            .iter()
            .zip(&lookups)
            .map(|(p, l)| PerspectiveReport {
                name: p.name.clone(),
                servers: p.servers.clone(),
                outcome: l.outcome.clone(),
                rcode: l.rcode.clone(),
                seen: l
                    .values
                    .iter()
                    .take(MAX_VALUES_SHOWN)
                    .map(|v| clip(v))
                    .collect(),
                seen_total: l.values.len(),
            })
            .collect();
        let outcome = conclude(&perspectives);
        let mut hints = Vec::new();
        if outcome == (Outcome::Verified { legacy: true }) {
            hints.push(Hint::LegacyKey);
        } else if !outcome.is_verified() {
            let mut values: Vec<String> = lookups.iter().flat_map(|l| l.values.clone()).collect();
            values.dedup();
            hints = hints::from_values(&values, &self.config.txt_prefix, token);
            hints.extend(self.misplaced(domain, token, deadline).await);
        }
        Report {
            name,
            expected: self.expected_value(token),
            outcome,
            perspectives,
            hints,
        }
    }

    async fn lookup_everywhere(
        &self,
        name: &str,
        token: &VerificationToken,
        deadline: Instant,
    ) -> Vec<Lookup> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in self.perspectives.iter().enumerate() {
            let (p, name, token, prefix) = (
                p.clone(),
                name.to_owned(),
                token.clone(),
                self.config.txt_prefix.clone(),
            );
            tasks.spawn(async move {
                (
                    i,
                    lookup(&p.resolver, &name, &prefix, &token, deadline).await,
                )
            });
        }
        let mut results: Vec<Option<Lookup>> = self.perspectives.iter().map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, lookup)) = done {
                results[i] = Some(lookup);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(timed_out))
            .collect()
    }

    /// Looks for the expected value at names where it is often published by mistake.
    async fn misplaced(
        &self,
        domain: &DomainName,
        token: &VerificationToken,
        deadline: Instant,
    ) -> Vec<Hint> {
        let Some(first) = self.perspectives.first() else {
            return Vec::new();
        };
        let d = domain.as_str();
        let mut found = Vec::new();
        for name in [
            format!("{d}.{d}."),
            format!("_{}.{d}.", self.config.txt_prefix),
            format!("www.{d}."),
        ] {
            let l = lookup(
                &first.resolver,
                &name,
                &self.config.txt_prefix,
                token,
                deadline,
            )
            .await;
            if l.outcome.is_verified() {
                found.push(Hint::PublishedElsewhere {
                    name: name.trim_end_matches('.').to_owned(),
                });
            }
        }
        found
    }
}

fn timed_out() -> Lookup {
    Lookup {
        outcome: Outcome::Timeout,
        rcode: None,
        values: Vec::new(),
    }
}

/// The quorum rule over the perspectives' outcomes. When control is not proven, the most
/// telling failure wins: an answer that lacks the value says more than a server error.
fn conclude(perspectives: &[PerspectiveReport]) -> Outcome {
    let misses: Vec<&Outcome> = perspectives
        .iter()
        .map(|p| &p.outcome)
        .filter(|o| !o.is_verified())
        .collect();
    if !perspectives.is_empty() && misses.len() <= allowed_misses(perspectives.len()) {
        let legacy_only = perspectives
            .iter()
            .all(|p| !matches!(p.outcome, Outcome::Verified { legacy: false }));
        return Outcome::Verified {
            legacy: legacy_only,
        };
    }
    let rank = |o: &Outcome| match o {
        Outcome::WrongValue => 0,
        Outcome::NotFound { .. } => 1,
        Outcome::DnsFailure { .. } => 2,
        _ => 3,
    };
    misses
        .into_iter()
        .min_by_key(|o| rank(o))
        .cloned()
        .unwrap_or(Outcome::Timeout)
}

/// A resolver configured exactly as the verifier's (no cache, no hosts file, UDP and TCP): for
/// measuring the raw query rate the verifier is bounded by.
pub fn build_resolver(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<TokioResolver, ConfigError> {
    let name_servers = servers
        .iter()
        .map(|addr| {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            ns
        })
        .collect();
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.preserve_intermediates = true;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| ConfigError::Build(e.to_string()))
}

async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    prefix: &str,
    token: &VerificationToken,
    deadline: Instant,
) -> Lookup {
    match tokio::time::timeout_at(deadline, resolver.lookup(name, RecordType::TXT)).await {
        Err(_) => timed_out(),
        Ok(Err(e)) => classify_error(&e),
        Ok(Ok(answer)) => {
            let values: Vec<String> = answer
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
                .map(|v| match_txt_value(v, prefix, token))
                .fold(TxtMatch::NoMatch, |best, m| match (best, m) {
                    (TxtMatch::Exact, _) | (_, TxtMatch::Exact) => TxtMatch::Exact,
                    (TxtMatch::Legacy, _) | (_, TxtMatch::Legacy) => TxtMatch::Legacy,
                    _ => TxtMatch::NoMatch,
                });
            let outcome = match best {
                TxtMatch::Exact => Outcome::Verified { legacy: false },
                TxtMatch::Legacy => Outcome::Verified { legacy: true },
                TxtMatch::NoMatch if values.is_empty() => Outcome::NotFound { nxdomain: false },
                TxtMatch::NoMatch => Outcome::WrongValue,
            };
            Lookup {
                outcome,
                rcode: Some("NOERROR".to_owned()),
                values,
            }
        }
    }
}

/// The RFC mnemonic (SERVFAIL, REFUSED, …): what people search for.
fn mnemonic(code: impl std::fmt::Debug) -> String {
    format!("{code:?}").to_uppercase()
}

fn classify_error(e: &NetError) -> Lookup {
    let (outcome, rcode) = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let nxdomain = nr.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain;
            (
                Outcome::NotFound { nxdomain },
                Some(mnemonic(nr.response_code)),
            )
        }
        NetError::Dns(DnsError::ResponseCode(code)) => (
            Outcome::DnsFailure {
                reason: format!("the server answered {}", mnemonic(code)),
            },
            Some(mnemonic(code)),
        ),
        NetError::Timeout => (Outcome::Timeout, None),
        other => (
            Outcome::DnsFailure {
                reason: other.to_string(),
            },
            None,
        ),
    };
    Lookup {
        outcome,
        rcode,
        values: Vec::new(),
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
            timeout: Duration::from_millis(timeout_ms),
            ..VerifierConfig::with_servers(vec![server])
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
        assert_eq!(r.perspectives[0].seen_total, 2);

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
    async fn cname_loops_fail_without_waiting_for_the_deadline() {
        let dns = TestDnsServer::start().await.unwrap();
        dns.set_cname("loop-a.test", "loop-b.test").await;
        dns.set_cname("loop-b.test", "loop-a.test").await;
        let r = verifier(dns.addr(), 3000)
            .check(&name("loop-a.test"), &token())
            .await;
        assert!(!r.outcome.is_verified());
        assert_ne!(
            r.outcome,
            Outcome::Timeout,
            "a loop is an answer, not silence"
        );
    }

    #[tokio::test]
    async fn near_misses_are_explained() {
        let dns = TestDnsServer::start().await.unwrap();
        let v = verifier(dns.addr(), 3000);
        // Another organization's (or an older) token.
        dns.set_txt(
            "other.test",
            &["cisco-ci-domain-verification=ffffffffffffffffffffffffffffffff"],
        )
        .await;
        let r = v.check(&name("other.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::WrongValue);
        assert!(
            matches!(r.hints.as_slice(), [Hint::OtherToken { .. }]),
            "{:?}",
            r.hints
        );
        // Quotes inside the record.
        dns.set_txt("quoted.test", &[&format!("\"{GOOD}\"")]).await;
        let r = v.check(&name("quoted.test"), &token()).await;
        assert_eq!(r.hints, [Hint::QuotedOrPadded]);
        assert!(r.explain().contains("extra quotes"), "{}", r.explain());
        // The DNS console appended the zone to a name that already had it.
        dns.set_txt("doubled.test.doubled.test", &[GOOD]).await;
        let r = v.check(&name("doubled.test"), &token()).await;
        assert!(
            matches!(r.outcome, Outcome::NotFound { .. }),
            "{:?}",
            r.outcome
        );
        assert_eq!(
            r.hints,
            [Hint::PublishedElsewhere {
                name: "doubled.test.doubled.test".into()
            }]
        );
        // Published at a subdomain.
        dns.set_txt("_cisco-ci-domain-verification.sub.test", &[GOOD])
            .await;
        let r = v.check(&name("sub.test"), &token()).await;
        assert_eq!(
            r.hints,
            [Hint::PublishedElsewhere {
                name: "_cisco-ci-domain-verification.sub.test".into()
            }]
        );
        // The legacy key proves control, and says so.
        dns.set_txt(
            "old.test",
            &["ciscocidomainverification=0123456789abcdef0123456789abcdef"],
        )
        .await;
        let r = v.check(&name("old.test"), &token()).await;
        assert_eq!(
            (r.outcome, r.hints),
            (Outcome::Verified { legacy: true }, vec![Hint::LegacyKey])
        );
    }

    #[tokio::test]
    async fn perspectives_corroborate_with_a_quorum() {
        let servers = [
            TestDnsServer::start().await.unwrap(),
            TestDnsServer::start().await.unwrap(),
            TestDnsServer::start().await.unwrap(),
        ];
        let names = ["east", "west", "north"];
        let v = Verifier::new(VerifierConfig {
            perspectives: servers
                .iter()
                .zip(names)
                .map(|(s, n)| PerspectiveConfig {
                    name: n.to_owned(),
                    servers: vec![s.addr()],
                })
                .collect(),
            timeout: Duration::from_secs(3),
            ..VerifierConfig::default()
        })
        .unwrap();
        let d = name("quorum.test");
        // One perspective sees a different answer (stale or poisoned): still verified.
        servers[0].set_txt("quorum.test", &[GOOD]).await;
        servers[1].set_txt("quorum.test", &[GOOD]).await;
        servers[2]
            .set_txt("quorum.test", &["cisco-ci-domain-verification=attacker"])
            .await;
        let r = v.check(&d, &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.perspectives.len(), 3);
        assert_eq!(r.perspectives[2].outcome, Outcome::WrongValue);
        // Two disagree: refused, and the report names them.
        servers[1].remove_txt("quorum.test").await;
        let r = v.check(&d, &token()).await;
        assert!(!r.outcome.is_verified());
        let text = r.explain();
        assert!(
            text.contains("[west via") && text.contains("[north via") && text.contains("2 did"),
            "{text}"
        );
        let evidence = r.to_json();
        assert_eq!(evidence["perspectives"][1]["outcome"], "nxdomain");
        assert_eq!(evidence["perspectives"][2]["rcode"], "NOERROR");
    }

    #[test]
    fn quorum_table() {
        assert_eq!(
            (1..=8).map(allowed_misses).collect::<Vec<_>>(),
            [0, 1, 1, 1, 1, 2, 2, 2]
        );
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
        assert_eq!(r.perspectives[0].seen_total, 61);
        assert_eq!(r.perspectives[0].seen.len(), MAX_VALUES_SHOWN);
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
        // A truncated answer that cannot be completed over TCP is never trusted, even when the
        // part that arrived carries the right value.
        let cut = FaultyDnsServer::start(Fault::TruncatedWithoutTcp(GOOD))
            .await
            .unwrap();
        let r = verifier(cut.addr(), 3000)
            .check(&name("example.test"), &token())
            .await;
        assert!(
            matches!(r.outcome, Outcome::DnsFailure { .. }),
            "{:?}",
            r.outcome
        );

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
