//! The [`Verifier`]: looks a verification token up from every perspective at once, under one
//! overall deadline, applies the quorum, and adds hints when control is not proven.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use claimd_domain::{DomainName, LookupOutcome, VerificationToken};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use crate::config::{ConfigError, VerifierConfig};
use crate::dnssec::{DnssecMode, diagnose};
use crate::lookups::Lookups;
use crate::query::{Answer, query_txt};
use crate::report::{MAX_VALUES_SHOWN, clip};
use crate::{Dnssec, Hint, Outcome, PerspectiveReport, Report, hints, quorum};

struct Perspective {
    name: String,
    servers: Vec<SocketAddr>,
    /// Built at once, or at first use when the trust anchor's keys must be fetched first.
    resolver: OnceCell<Lookups>,
    /// Lookups answered, by outcome (in the order of [`LookupOutcome::ALL`]).
    answered: [AtomicU64; LookupOutcome::ALL.len()],
}

impl Perspective {
    /// The perspective's resolver; the first time, for a DS trust anchor, after fetching the
    /// root's keys through it (a failure is the lookup's answer, and the next lookup tries
    /// again).
    async fn resolver(
        &self,
        config: &VerifierConfig,
        deadline: Instant,
    ) -> Result<&Lookups, Answer> {
        if let Some(resolver) = self.resolver.get() {
            return Ok(resolver);
        }
        let DnssecMode::Validate(anchor) = &config.dnssec else {
            // Without validation the resolver is built with the perspective.
            return Err(Answer::failed("no resolver".to_owned()));
        };
        let init = async {
            let server = *self.servers.first().ok_or("no DNS server")?;
            let keys = anchor.resolve(server).await?;
            Lookups::validating(&self.servers, config.timeout, keys).map_err(|e| e.to_string())
        };
        match tokio::time::timeout_at(deadline, self.resolver.get_or_try_init(|| init)).await {
            Ok(Ok(resolver)) => Ok(resolver),
            Ok(Err(reason)) => Err(Answer::failed(format!(
                "the trust anchor's keys could not be fetched: {reason}"
            ))),
            Err(_) => Err(Answer::timed_out(true)),
        }
    }
}

/// Looks verification tokens up in DNS. Cheap to share behind an `Arc`.
pub struct Verifier {
    perspectives: Vec<Arc<Perspective>>,
    config: Arc<VerifierConfig>,
    permits: Arc<Semaphore>,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Self, ConfigError> {
        let perspectives = config
            .resolved_perspectives()?
            .into_iter()
            .map(|group| {
                if group.servers.is_empty() {
                    return Err(ConfigError::NoServers(group.name));
                }
                let resolver = match &config.dnssec {
                    DnssecMode::Off => {
                        OnceCell::new_with(Some(Lookups::plain(&group.servers, config.timeout)?))
                    }
                    DnssecMode::Validate(anchor) if !anchor.needs_keys() => {
                        OnceCell::new_with(Some(Lookups::validating(
                            &group.servers,
                            config.timeout,
                            anchor.known_keys(),
                        )?))
                    }
                    DnssecMode::Validate(_) => OnceCell::new(),
                };
                Ok(Arc::new(Perspective {
                    name: group.name,
                    servers: group.servers,
                    resolver,
                    answered: Default::default(),
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let permits = Arc::new(Semaphore::new(config.max_concurrent_lookups.max(1)));
        Ok(Self {
            perspectives,
            config: Arc::new(config),
            permits,
        })
    }

    /// Every lookup made so far, per perspective and outcome (for metrics): the perspective's
    /// name, the outcome, how many.
    pub fn lookup_counts(&self) -> Vec<(&str, LookupOutcome, u64)> {
        self.perspectives
            .iter()
            .flat_map(|p| {
                LookupOutcome::ALL
                    .iter()
                    .zip(&p.answered)
                    .map(|(outcome, n)| (p.name.as_str(), *outcome, n.load(Ordering::Relaxed)))
            })
            .collect()
    }

    /// Whether answers are DNSSEC-validated, and against what (for reports and readiness).
    pub fn dnssec(&self) -> &DnssecMode {
        &self.config.dnssec
    }

    fn validating(&self) -> bool {
        matches!(self.config.dnssec, DnssecMode::Validate(_))
    }

    /// Whether each perspective's resolvers pass what validation needs, by asking for the
    /// root's SOA record validated: `secure` when they do. Nothing when validation is off.
    pub async fn probe_dnssec(&self) -> Vec<(String, Result<Dnssec, String>)> {
        if !self.validating() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for p in &self.perspectives {
            let deadline = Instant::now() + self.config.timeout;
            let status = match p.resolver(&self.config, deadline).await {
                Err(answer) => Err(answer.outcome.describe(0)),
                Ok(lookups) => {
                    let asked = lookups.lookup(".", hickory_resolver::proto::rr::RecordType::SOA);
                    match tokio::time::timeout_at(deadline, asked).await {
                        Ok(Ok(answer)) => Ok(Dnssec::of_records(answer.answers().iter())),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("no answer in time".to_owned()),
                    }
                }
            };
            found.push((p.name.clone(), status));
        }
        found
    }

    /// The TXT value that proves control with `token`.
    pub fn expected_value(&self, token: &VerificationToken) -> String {
        format!("{}={}", self.config.txt_prefix, token.as_str())
    }

    /// Looks up TXT at `domain` from every perspective and concludes. Never fails: every problem
    /// is an [`Outcome`].
    pub async fn lookup(&self, domain: &DomainName, token: &VerificationToken) -> Report {
        let name = format!("{}.", domain.as_str());
        let deadline = Instant::now() + self.config.timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.acquire()).await;
        let mut answers = match permit {
            Ok(_) => self.query_everywhere(&name, token, deadline).await,
            Err(_) => self
                .perspectives
                .iter()
                .map(|_| Answer::timed_out(self.validating()))
                .collect(),
        };
        self.diagnose_bogus(&name, &mut answers, deadline).await;
        let perspectives: Vec<PerspectiveReport> = self
            .perspectives
            .iter()
            .zip(&answers)
            .map(|(p, a)| {
                let kind = a.outcome.kind();
                if let Some(i) = LookupOutcome::ALL.iter().position(|o| *o == kind) {
                    p.answered[i].fetch_add(1, Ordering::Relaxed);
                }
                PerspectiveReport {
                    name: p.name.clone(),
                    servers: p.servers.clone(),
                    outcome: a.outcome.clone(),
                    rcode: a.rcode.clone(),
                    seen: a
                        .values
                        .iter()
                        .take(MAX_VALUES_SHOWN)
                        .map(|v| clip(v))
                        .collect(),
                    seen_total: a.values.len(),
                    dnssec: a.dnssec,
                }
            })
            .collect();
        let outcome = quorum::conclude(&perspectives);
        let hints = match &outcome {
            Outcome::Verified { legacy: true } => vec![Hint::LegacyKey],
            Outcome::Verified { legacy: false } => Vec::new(),
            _ => self.near_misses(domain, token, &answers, deadline).await,
        };
        Report {
            name,
            expected: self.expected_value(token),
            outcome,
            perspectives,
            hints,
            dnssec: self.config.dnssec.describe(),
        }
    }

    /// Says, for each bogus answer, what fails in the chain of trust, walking it again through
    /// the perspective that got it.
    async fn diagnose_bogus(&self, name: &str, answers: &mut [Answer], deadline: Instant) {
        let DnssecMode::Validate(anchor) = &self.config.dnssec else {
            return;
        };
        for (p, answer) in self.perspectives.iter().zip(answers.iter_mut()) {
            if let Outcome::Bogus { diagnosis } = &mut answer.outcome
                && let Some(server) = p.servers.first()
            {
                *diagnosis = diagnose(*server, name, anchor, deadline).await;
            }
        }
    }

    /// Asks every perspective at once (one alone, the usual set-up, without a task of its own).
    async fn query_everywhere(
        &self,
        name: &str,
        token: &VerificationToken,
        deadline: Instant,
    ) -> Vec<Answer> {
        let validating = self.validating();
        let ask = |p: Arc<Perspective>, name: String, token: VerificationToken| {
            let config = self.config.clone();
            async move {
                match p.resolver(&config, deadline).await {
                    Ok(resolver) => {
                        let prefix = &config.txt_prefix;
                        query_txt(resolver, validating, &name, prefix, &token, deadline).await
                    }
                    Err(answer) => answer,
                }
            }
        };
        if let [only] = self.perspectives.as_slice() {
            return vec![ask(only.clone(), name.to_owned(), token.clone()).await];
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in self.perspectives.iter().enumerate() {
            let asked = ask(p.clone(), name.to_owned(), token.clone());
            tasks.spawn(async move { (i, asked.await) });
        }
        let mut answers: Vec<Option<Answer>> = self.perspectives.iter().map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, answer)) = done {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Answer::timed_out(validating)))
            .collect()
    }

    /// What was probably meant: hints from the values seen, then from probing misplaced names
    /// through the first perspective.
    async fn near_misses(
        &self,
        domain: &DomainName,
        token: &VerificationToken,
        answers: &[Answer],
        deadline: Instant,
    ) -> Vec<Hint> {
        let prefix = &self.config.txt_prefix;
        let mut values: Vec<String> = answers.iter().flat_map(|a| a.values.clone()).collect();
        values.dedup();
        let mut found = hints::from_values(&values, prefix, token);
        if let Some(first) = self.perspectives.first()
            && let Some(resolver) = first.resolver.get()
        {
            found.extend(
                hints::misplaced(resolver, self.validating(), domain, prefix, token, deadline)
                    .await,
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::DnssecMode;
    use crate::testing::{Fault, FaultyDnsServer, TestDnsServer};
    use crate::{PerspectiveConfig, VerifierConfig};

    fn verifier(server: SocketAddr, timeout_ms: u64) -> Verifier {
        // The in-process test server serves an unsigned zone with no parent: nothing to
        // validate (the DNSSEC cases run against a signed Knot tree, in claimd's e2e tests).
        Verifier::new(VerifierConfig {
            timeout: Duration::from_millis(timeout_ms),
            dnssec: DnssecMode::Off,
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
        let lookup = |d: &'static str| {
            let v = &v;
            async move { v.lookup(&name(d), &token()).await }
        };

        dns.set_txt("ok.test", &["v=spf1 -all", GOOD]).await;
        let r = lookup("ok.test").await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.name, "ok.test.");
        assert_eq!(r.perspectives[0].seen_total, 2);

        dns.set_txt(
            "legacy.test",
            &["ciscocidomainverification=0123456789abcdef0123456789abcdef"],
        )
        .await;
        assert_eq!(
            lookup("legacy.test").await.outcome,
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
            lookup("multi.test").await.outcome,
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
        assert_eq!(lookup("split.test").await.outcome, Outcome::WrongValue);

        // The token inside a longer value is not a proof.
        dns.set_txt("substr.test", &[&format!("{GOOD}x")]).await;
        let r = lookup("substr.test").await;
        assert_eq!(r.outcome, Outcome::WrongValue);
        assert!(
            r.explain().contains(&format!("\"{GOOD}x\"")),
            "{}",
            r.explain()
        );

        // NODATA: the name exists (it has a child) but holds no TXT.
        dns.set_txt("child.parent-only.test", &["x"]).await;
        assert_eq!(
            lookup("parent-only.test").await.outcome,
            Outcome::NotFound { nxdomain: false }
        );
        assert_eq!(
            lookup("nothing-here.test").await.outcome,
            Outcome::NotFound { nxdomain: true }
        );

        // A CNAME is followed to the record.
        dns.set_txt("target.test", &[GOOD]).await;
        dns.set_cname("alias.test", "target.test").await;
        assert_eq!(
            lookup("alias.test").await.outcome,
            Outcome::Verified { legacy: false }
        );

        // Internationalized names are looked up in their ASCII form.
        dns.set_txt("xn--bcher-kva.test", &[GOOD]).await;
        let r = v.lookup(&name("bücher.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.name, "xn--bcher-kva.test.");
    }

    #[tokio::test]
    async fn cname_loops_fail_without_waiting_for_the_deadline() {
        let dns = TestDnsServer::start().await.unwrap();
        dns.set_cname("loop-a.test", "loop-b.test").await;
        dns.set_cname("loop-b.test", "loop-a.test").await;
        let r = verifier(dns.addr(), 3000)
            .lookup(&name("loop-a.test"), &token())
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
        let r = v.lookup(&name("other.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::WrongValue);
        assert!(
            matches!(r.hints.as_slice(), [Hint::OtherToken { .. }]),
            "{:?}",
            r.hints
        );
        // Quotes inside the record.
        dns.set_txt("quoted.test", &[&format!("\"{GOOD}\"")]).await;
        let r = v.lookup(&name("quoted.test"), &token()).await;
        assert_eq!(r.hints, [Hint::QuotedOrPadded]);
        assert!(r.explain().contains("extra quotes"), "{}", r.explain());
        // The DNS console appended the zone to a name that already had it.
        dns.set_txt("doubled.test.doubled.test", &[GOOD]).await;
        let r = v.lookup(&name("doubled.test"), &token()).await;
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
        let r = v.lookup(&name("sub.test"), &token()).await;
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
        let r = v.lookup(&name("old.test"), &token()).await;
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
            dnssec: DnssecMode::Off,
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
        let r = v.lookup(&d, &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.perspectives.len(), 3);
        assert_eq!(r.perspectives[2].outcome, Outcome::WrongValue);
        // Two disagree: refused, and the report names them.
        servers[1].remove_txt("quorum.test").await;
        let r = v.lookup(&d, &token()).await;
        assert!(!r.outcome.is_verified());
        let text = r.explain();
        assert!(
            text.contains("[west via") && text.contains("[north via") && text.contains("2 did"),
            "{text}"
        );
        let evidence = serde_json::to_value(r.evidence()).unwrap();
        assert_eq!(evidence["perspectives"][1]["outcome"], "nxdomain");
        assert_eq!(evidence["perspectives"][2]["rcode"], "NOERROR");
    }

    #[tokio::test]
    async fn changes_are_seen_at_once() {
        let dns = TestDnsServer::start().await.unwrap();
        let v = verifier(dns.addr(), 3000);
        let d = name("fresh.test");
        assert_eq!(
            v.lookup(&d, &token()).await.outcome,
            Outcome::NotFound { nxdomain: true }
        );
        dns.set_txt("fresh.test", &[GOOD]).await;
        assert_eq!(
            v.lookup(&d, &token()).await.outcome,
            Outcome::Verified { legacy: false }
        );
        dns.remove_txt("fresh.test").await;
        assert!(matches!(
            v.lookup(&d, &token()).await.outcome,
            Outcome::NotFound { .. }
        ));
        dns.set_txt("fresh.test", &[GOOD]).await;
        assert_eq!(
            v.lookup(&d, &token()).await.outcome,
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
        let r = v.lookup(&name("big.test"), &token()).await;
        assert_eq!(r.outcome, Outcome::Verified { legacy: false });
        assert_eq!(r.perspectives[0].seen_total, 61);
        assert_eq!(r.perspectives[0].seen.len(), MAX_VALUES_SHOWN);
    }

    #[tokio::test]
    async fn server_errors_and_silence_are_not_answers() {
        for (fault, expect) in [(Fault::ServFail, "SERVFAIL"), (Fault::Refused, "REFUSED")] {
            let bad = FaultyDnsServer::start(fault).await.unwrap();
            let r = verifier(bad.addr(), 3000)
                .lookup(&name("example.test"), &token())
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
            .lookup(&name("example.test"), &token())
            .await;
        assert!(
            matches!(r.outcome, Outcome::DnsFailure { .. }),
            "{:?}",
            r.outcome
        );

        let hole = FaultyDnsServer::start(Fault::BlackHole).await.unwrap();
        let r = verifier(hole.addr(), 300)
            .lookup(&name("example.test"), &token())
            .await;
        assert_eq!(r.outcome, Outcome::Timeout);
        assert!(r.explain().contains(&format!(
            "dig @127.0.0.1 -p {} TXT example.test.",
            hole.addr().port()
        )));
        assert!(r.explain().contains(&format!(
            "drill -p {} example.test. @127.0.0.1 TXT",
            hole.addr().port()
        )));
    }

    /// Validation against a signed tree served by Knot, chained to the tree's own root key.
    #[tokio::test]
    async fn dnssec_against_a_signed_tree() {
        use crate::testing::{SignedTree, TamperingProxy, signed_tree::EXPIRED_TXT};
        use crate::{Dnssec, TrustAnchor};
        let tree = SignedTree::start().await;
        let validating = |servers: Vec<Vec<SocketAddr>>| {
            let anchor = TrustAnchor::from_file(&tree.trust_anchor()).unwrap();
            Verifier::new(VerifierConfig {
                perspectives: servers
                    .into_iter()
                    .enumerate()
                    .map(|(i, servers)| PerspectiveConfig {
                        name: format!("p{i}"),
                        servers,
                    })
                    .collect(),
                timeout: Duration::from_secs(3),
                dnssec: DnssecMode::Validate(anchor),
                ..VerifierConfig::default()
            })
            .unwrap()
        };
        let v = validating(vec![vec![tree.addr()]]);
        let dnssec = |r: &Report| r.perspectives[0].dnssec;

        // Signed and valid: verifies, and says so.
        tree.set_txt("a.secure.test", &[GOOD]).await;
        let r = v.lookup(&name("a.secure.test"), &token()).await;
        assert_eq!(
            (&r.outcome, dnssec(&r)),
            (&Outcome::Verified { legacy: false }, Dnssec::Secure),
            "{}",
            r.explain()
        );
        assert!(
            r.explain().contains("DNSSEC: signed and valid"),
            "{}",
            r.explain()
        );
        // Validated answers are as fresh as any: a removed record is gone at once (the zones'
        // keys may be kept for their TTL, the TXT answer never is).
        tree.remove_txt("a.secure.test").await;
        let r = v.lookup(&name("a.secure.test"), &token()).await;
        assert!(
            matches!(r.outcome, Outcome::NotFound { .. }),
            "{}",
            r.explain()
        );
        tree.set_txt("a.secure.test", &[GOOD]).await;
        let r = v.lookup(&name("a.secure.test"), &token()).await;
        assert!(r.outcome.is_verified(), "{}", r.explain());
        tree.set_txt("b.nsec3.test", &[GOOD]).await;
        let r = v.lookup(&name("b.nsec3.test"), &token()).await;
        assert_eq!(
            (&r.outcome, dnssec(&r)),
            (&Outcome::Verified { legacy: false }, Dnssec::Secure),
            "{}",
            r.explain()
        );

        // Provably unsigned (the opt-out NSEC3 of test. covers the delegation): verifies.
        tree.set_txt("plain.test", &[GOOD]).await;
        let r = v.lookup(&name("plain.test"), &token()).await;
        assert_eq!(
            (&r.outcome, dnssec(&r)),
            (&Outcome::Verified { legacy: false }, Dnssec::Insecure),
            "{}",
            r.explain()
        );
        assert!(
            r.explain().contains("the zone is not signed"),
            "{}",
            r.explain()
        );

        // A missing record is proven missing by NSEC3, by NSEC, and by NSEC3 with opt-out (in
        // test.): not found, not bogus.
        for missing in ["missing.nsec3.test", "missing.secure.test", "missing.test"] {
            let r = v.lookup(&name(missing), &token()).await;
            assert_eq!(
                r.outcome,
                Outcome::NotFound { nxdomain: true },
                "{missing}: {}",
                r.explain()
            );
        }

        // Expired signatures: bogus, with the key, the algorithm and the expiry.
        let expired = VerificationToken::from_stored(EXPIRED_TXT.split('=').nth(1).unwrap().into());
        let r = v.lookup(&name("expired.test"), &expired).await;
        let Outcome::Bogus { diagnosis } = &r.outcome else {
            panic!("expired: {}", r.explain())
        };
        assert!(
            diagnosis.contains("expired at 2020-02-01T00:00:00") && diagnosis.contains("key tag"),
            "{diagnosis}"
        );
        assert_eq!(dnssec(&r), Dnssec::Bogus);
        assert!(
            r.explain().contains("never proves control"),
            "{}",
            r.explain()
        );

        // The parent's DS is for another key.
        tree.set_txt("rekeyed.test", &[GOOD]).await;
        let r = v.lookup(&name("rekeyed.test"), &token()).await;
        let Outcome::Bogus { diagnosis } = &r.outcome else {
            panic!("rekeyed: {}", r.explain())
        };
        assert!(
            diagnosis.contains("match none of the zone's DNSKEYs"),
            "{diagnosis}"
        );

        // An answer altered on the way: bogus from the tampered perspectives; one of three does
        // not count toward the quorum, two of three do.
        let a = TamperingProxy::start(tree.addr(), "marker-a", "marker-x").await;
        let b = TamperingProxy::start(tree.addr(), "marker-b", "marker-x").await;
        let v3 = validating(vec![vec![tree.addr()], vec![a.addr()], vec![b.addr()]]);
        tree.set_txt("q.secure.test", &[GOOD, "marker-a"]).await;
        let r = v3.lookup(&name("q.secure.test"), &token()).await;
        assert_eq!(
            r.outcome,
            Outcome::Verified { legacy: false },
            "{}",
            r.explain()
        );
        let seen: Vec<Dnssec> = r.perspectives.iter().map(|p| p.dnssec).collect();
        assert_eq!(seen, [Dnssec::Secure, Dnssec::Bogus, Dnssec::Secure]);
        tree.set_txt("q.secure.test", &[GOOD, "marker-a marker-b"])
            .await;
        let r = v3.lookup(&name("q.secure.test"), &token()).await;
        let Outcome::Bogus { diagnosis } = &r.outcome else {
            panic!("tampered: {}", r.explain())
        };
        assert!(diagnosis.contains("does not match the data"), "{diagnosis}");
        let evidence = serde_json::to_value(r.evidence()).unwrap();
        assert_eq!(evidence["outcome"], "dnssec_bogus");
        assert_eq!(evidence["perspectives"][0]["dnssec"], "secure");
        assert_eq!(evidence["perspectives"][1]["dnssec"], "bogus");

        // The trust anchor as the root's DS: the root's keys are fetched at first use.
        let by_digest = Verifier::new(VerifierConfig {
            timeout: Duration::from_secs(3),
            dnssec: DnssecMode::Validate(TrustAnchor::from_file(&tree.trust_anchor_ds()).unwrap()),
            ..VerifierConfig::with_servers(vec![tree.addr()])
        })
        .unwrap();
        let r = by_digest.lookup(&name("a.secure.test"), &token()).await;
        assert_eq!(
            (&r.outcome, dnssec(&r)),
            (&Outcome::Verified { legacy: false }, Dnssec::Secure),
            "{}",
            r.explain()
        );
        // A DS that matches none of the root's keys: nothing validates, and the report says why.
        let dir = tempfile::tempdir().unwrap();
        let wrong = dir.path().join("wrong-ds");
        std::fs::write(&wrong, format!(". IN DS 4711 13 2 {}\n", "ab".repeat(32))).unwrap();
        let stranger = Verifier::new(VerifierConfig {
            timeout: Duration::from_secs(3),
            dnssec: DnssecMode::Validate(TrustAnchor::from_file(&wrong).unwrap()),
            ..VerifierConfig::with_servers(vec![tree.addr()])
        })
        .unwrap();
        let r = stranger.lookup(&name("a.secure.test"), &token()).await;
        let Outcome::DnsFailure { reason } = &r.outcome else {
            panic!("a wrong DS anchor: {}", r.explain())
        };
        assert!(
            reason.contains("matches the DS records") && reason.contains("4711"),
            "{reason}"
        );

        // Validation off: the expired zone's answer counts, and every report says it was not
        // checked.
        let off = Verifier::new(VerifierConfig {
            timeout: Duration::from_secs(3),
            dnssec: DnssecMode::Off,
            ..VerifierConfig::with_servers(vec![tree.addr()])
        })
        .unwrap();
        let r = off.lookup(&name("expired.test"), &expired).await;
        assert_eq!(
            (&r.outcome, dnssec(&r)),
            (&Outcome::Verified { legacy: false }, Dnssec::Off)
        );
        assert!(
            r.explain().contains("DNSSEC validation is off"),
            "{}",
            r.explain()
        );

        // The IANA root as anchor: the test root is not it, so nothing here is secure.
        let iana = Verifier::new(VerifierConfig {
            timeout: Duration::from_secs(3),
            ..VerifierConfig::with_servers(vec![tree.addr()])
        })
        .unwrap();
        let r = iana.lookup(&name("a.secure.test"), &token()).await;
        assert!(!r.outcome.is_verified(), "{}", r.explain());
    }
}
