//! DNSSEC end to end: the real binary on both stores, validating against a signed tree served by
//! Knot (its own root, whose key is the trust anchor), with two perspectives behind relays that
//! alter answers on the way.

use std::time::{Duration, Instant};

use claimd_dns::testing::{SignedTree, TamperingProxy};
use claimd_domain::DomainName;
use serde_json::{Value, json};

use crate::process::{Server, call, start};
use crate::support::{Backend, Database};

struct Bed {
    server: Server,
    client: reqwest::Client,
    org: String,
    token: String,
}

impl Bed {
    async fn act(&self, action: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = call(
            &self.client,
            &self.server.base,
            &self.org,
            &self.token,
            action,
            &body,
        )
        .await
        .unwrap();
        (status, body)
    }

    async fn domain(&self, domain: &str, suffix: &str) -> Value {
        let id = DomainName::parse(domain).unwrap().resource_id();
        let url = format!(
            "{}/v1/identity/organizations/{}/domains/{id}{suffix}",
            self.server.base, self.org
        );
        let request = if suffix.is_empty() {
            self.client.get(url)
        } else {
            self.client.post(url)
        };
        let r = request.bearer_auth(&self.token).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// Requests a token for `domain`; the TXT value that proves it.
    async fn value(&self, domain: &str) -> String {
        let (status, body) = self
            .act("getDomainVerificationToken", json!({"domain": domain}))
            .await;
        assert_eq!(status, 200, "{body}");
        format!(
            "cisco-ci-domain-verification={}",
            body["token"].as_str().unwrap()
        )
    }
}

pub async fn signed_answers_prove_and_bogus_ones_never_do(backend: Backend) {
    let tree = SignedTree::start().await;
    // Perspective `a` alters answers holding "marker-a", `b` those holding "marker-b".
    let a = TamperingProxy::start(tree.addr(), "marker-a", "marker-x").await;
    let b = TamperingProxy::start(tree.addr(), "marker-b", "marker-x").await;
    let db = Database::create(backend).await;
    let anchor = tree.trust_anchor().display().to_string();
    let perspectives = [
        format!("direct={}", tree.addr()),
        format!("a={}", a.addr()),
        format!("b={}", b.addr()),
    ];
    let mut flags = vec!["--dnssec-trust-anchor", &anchor];
    for p in &perspectives {
        flags.extend(["--dns-perspective", p]);
    }
    flags.extend([
        "--recheck-interval",
        "1s",
        "--recheck-min-interval",
        "1s",
        "--recheck-grace",
        "2s",
    ]);
    let server = start(&db.url(), tree.addr(), &flags).await;
    let (org, token) = server.first_admin();
    let bed = Bed {
        server,
        client: reqwest::Client::new(),
        org,
        token,
    };

    // Readiness names the trust anchor.
    let ready: Value = bed
        .client
        .get(format!("{}/readyz", bed.server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ready["dnssec"]
            .as_str()
            .unwrap()
            .contains(&format!("validating against the trust anchor in {anchor}")),
        "{ready}"
    );

    // At start, each perspective was checked: validation works through all three.
    wait_for_log(
        &bed.server,
        "DNSSEC validation works through this perspective",
        3,
    )
    .await;

    // Signed and valid, seen by two of three: the altered answer on `a` is bogus and does not
    // count, the other two suffice.
    let signed = "www.secure.test";
    let signed_value = bed.value(signed).await;
    tree.set_txt(signed, &[&signed_value, "marker-a"]).await;
    let (status, body) = bed.act("verifyDomain", json!({"domain": signed})).await;
    assert_eq!(status, 200, "{body}");
    let check = bed.domain(signed, "/check").await;
    let dnssec: Vec<&str> = check["perspectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dnssec"].as_str().unwrap())
        .collect();
    assert_eq!(dnssec, ["secure", "bogus", "secure"], "{check}");
    assert_eq!(check["verified"], true, "{check}");

    // Provably unsigned: proceeds, and the report says the zone is not signed.
    let value = bed.value("plain.test").await;
    tree.set_txt("plain.test", &[&value]).await;
    let (status, body) = bed
        .act("verifyDomain", json!({"domain": "plain.test"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let check = bed.domain("plain.test", "/check").await;
    assert!(
        check["description"]
            .as_str()
            .unwrap()
            .contains("DNSSEC: the zone is not signed"),
        "{check}"
    );

    // Expired signatures: refused with 400, naming the key and the expiry; the attempt's
    // evidence says bogus.
    bed.value("expired.test").await;
    let (status, body) = bed
        .act("verifyDomain", json!({"domain": "expired.test"}))
        .await;
    let text = body.to_string();
    assert_eq!(status, 400, "{body}");
    assert!(
        text.contains("failed DNSSEC validation (bogus)")
            && text.contains("expired at 2020-02-01T00:00:00")
            && text.contains("key tag"),
        "{body}"
    );
    let check = bed.domain("expired.test", "/check").await;
    assert_eq!(check["outcome"], "dnssec_bogus", "{check}");
    assert_eq!(check["status"], "pending", "{check}");

    // The parent's DS is for another key.
    let value = bed.value("rekeyed.test").await;
    tree.set_txt("rekeyed.test", &[&value]).await;
    let (status, body) = bed
        .act("verifyDomain", json!({"domain": "rekeyed.test"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("re-keyed without updating the DS at the parent"),
        "{body}"
    );

    // A verified domain whose answers turn bogus on two perspectives (an attack on the lookup,
    // not a loss of control): re-checks count it indeterminate, it never goes at risk.
    tree.set_txt(signed, &[&signed_value, "marker-a marker-b"])
        .await;
    let started = Instant::now();
    loop {
        let view = bed.domain(signed, "").await;
        if view["lastCheck"]["outcome"] == "dnssec_bogus" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never re-checked as bogus: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Longer than the grace: still verified, never at risk.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = bed.domain(signed, "").await;
    assert_eq!(view["status"], "verified", "{view}");
    assert_ne!(view["recheck"]["status"], "at_risk", "{view}");
    assert_ne!(view["recheck"]["status"], "lapsed", "{view}");
    assert!(
        view["lastCheck"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match the data"),
        "{view}"
    );
}

/// Waits (a few seconds at most) until `needle` is in the server's log `times` times.
async fn wait_for_log(server: &Server, needle: &str, times: usize) {
    let started = Instant::now();
    loop {
        let seen = server.log.lock().unwrap().matches(needle).count();
        if seen >= times {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{needle:?} logged {seen} times, not {times}: {}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Validation on, through a resolver that passes no signatures (the in-process test server,
/// unsigned and without a parent): claimd says so at start, and a lookup does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_without_dnssec_is_reported_at_start() {
    let dns = claimd_dns::testing::TestDnsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let server = start(&db, dns.addr(), &["--dnssec", "validate"]).await;
    wait_for_log(
        &server,
        "DNSSEC validation fails through this perspective",
        1,
    )
    .await;
    let (org, token) = server.first_admin();
    let client = reqwest::Client::new();
    let (status, _, body) = call(
        &client,
        &server.base,
        &org,
        &token,
        "getDomainVerificationToken",
        &json!({"domain": "unsigned.test"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    dns.set_txt(
        "unsigned.test",
        &[&format!(
            "cisco-ci-domain-verification={}",
            body["token"].as_str().unwrap()
        )],
    )
    .await;
    let (status, _, body) = call(
        &client,
        &server.base,
        &org,
        &token,
        "verifyDomain",
        &json!({"domain": "unsigned.test"}),
    )
    .await
    .unwrap();
    assert_ne!(
        status, 200,
        "an answer that cannot be validated proved control: {body}"
    );
}
