//! Continuous re-verification end to end: the real binary on both stores, re-checking against
//! Knot DNS changed at run time; and two processes sharing one PostgreSQL schedule.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use claimd_domain::{DomainName, DomainRecord, DomainState, OrgId, RecheckState, Timestamp};
use claimd_store::{Actor, EventKind};
use serde_json::{Value, json};

use crate::knot::{Knot, ZONE};
use crate::process::{Server, call, cli, start};
use crate::support::{Backend, Database, TOKEN_TTL, TestApp};

/// Re-check flags for a test: every second, a short grace.
const FAST: &[&str] = &[
    "--recheck-interval",
    "1s",
    "--recheck-min-interval",
    "1s",
    "--recheck-grace",
    "4s",
    "--recheck-rate",
    "200",
    "--dns-timeout",
    "1s",
];

/// A claimd on `db` re-checking against `knot`, and a way to drive it.
struct Bed {
    server: Server,
    client: reqwest::Client,
}

struct Tenant {
    org: String,
    token: String,
}

impl Bed {
    /// `extra` flags (pairs) replace those of [`FAST`] they name.
    async fn start(db: &Database, knot: &Knot, extra: &[&str]) -> Self {
        let mut flags: Vec<&str> = FAST
            .chunks(2)
            .filter(|pair| !extra.contains(&pair[0]))
            .flatten()
            .copied()
            .collect();
        flags.extend_from_slice(extra);
        Self {
            server: start(&db.url(), knot.addr, &flags).await,
            client: reqwest::Client::new(),
        }
    }

    fn first(&self) -> Tenant {
        let (org, token) = self.server.first_admin();
        Tenant { org, token }
    }

    /// A new organization and its admin, through the operator commands.
    async fn tenant(db: &Database, name: &str) -> Tenant {
        let (ok, org, err) = cli(&db.url(), &["org", "create", "--name", name]).await;
        assert!(ok, "{err}");
        let org = org.trim().to_owned();
        let (ok, token, err) = cli(&db.url(), &["token", "create", "--org", &org]).await;
        assert!(ok, "{err}");
        Tenant {
            org,
            token: token.trim().to_owned(),
        }
    }

    async fn act(&self, t: &Tenant, action: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = call(
            &self.client,
            &self.server.base,
            &t.org,
            &t.token,
            action,
            &body,
        )
        .await
        .unwrap();
        (status, body)
    }

    async fn patch_org(&self, t: &Tenant, body: Value) -> (u16, Value) {
        let r = self
            .client
            .patch(format!(
                "{}/v1/identity/organizations/{}",
                self.server.base, t.org
            ))
            .bearer_auth(&t.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn domain(&self, t: &Tenant, domain: &str) -> Value {
        let id = DomainName::parse(domain).unwrap().resource_id();
        let r = self
            .client
            .get(format!(
                "{}/v1/identity/organizations/{}/domains/{id}",
                self.server.base, t.org
            ))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Token, published in Knot, verified and claimed.
    async fn claimed(&self, knot: &Knot, t: &Tenant, domain: &str) {
        let (status, body) = self
            .act(t, "getDomainVerificationToken", json!({"domain": domain}))
            .await;
        assert_eq!(status, 200, "{body}");
        let value = format!(
            "cisco-ci-domain-verification={}",
            body["token"].as_str().unwrap()
        );
        knot.set_txt(domain, &value).await;
        let (status, body) = self
            .act(
                t,
                "verifyDomain",
                json!({"domain": domain, "claimDomain": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Polls the domain until `done` holds for it; every view seen on the way.
    async fn until(
        &self,
        t: &Tenant,
        domain: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let view = self.domain(t, domain).await;
            let finished = done(&view);
            seen.push(view);
            if finished {
                return seen;
            }
            assert!(
                started.elapsed() < within,
                "{domain} never got there; last seen: {}",
                seen.last().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn recheck_status(view: &Value) -> &str {
    view["recheck"]["status"].as_str().unwrap_or("-")
}

async fn event_kinds(db: &Database, org: &str, domain: &str) -> Vec<EventKind> {
    let store = db.open().await;
    let events = store
        .list_events(&OrgId::new(org), &DomainName::parse(domain).unwrap())
        .await
        .unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// A record deleted from DNS puts its domain at risk, still claimed; when the grace runs out the
/// organization's policy applies: unverify, unclaim, or keep (flagged).
pub async fn a_removed_record_lapses_its_domain_by_policy(backend: Backend) {
    let knot = Knot::start().await;
    let db = Database::create(backend).await;
    let bed = Bed::start(&db, &knot, &[]).await;
    let mut tenants = Vec::new();
    for action in ["unverify", "unclaim", "keep"] {
        let t = Bed::tenant(&db, action).await;
        let (status, body) = bed.patch_org(&t, json!({"lapseAction": action})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["lapseAction"], action);
        let domain = format!("{action}.{ZONE}");
        bed.claimed(&knot, &t, &domain).await;
        let view = bed.domain(&t, &domain).await;
        assert_eq!(recheck_status(&view), "ok", "{view}");
        assert!(view["recheck"]["nextCheck"].is_string(), "{view}");
        tenants.push((action, t, domain));
    }
    for (_, _, domain) in &tenants {
        knot.remove_txt(domain).await;
    }
    // Every view of each domain until it lapsed by its policy (all three at once: they lapse
    // within the same seconds).
    let lapsed = |action: &str, v: &Value| match action {
        "unverify" => v["status"] == "pending",
        _ => recheck_status(v) == "lapsed",
    };
    let mut seen: Vec<Vec<Value>> = vec![Vec::new(); tenants.len()];
    let started = Instant::now();
    while !tenants
        .iter()
        .zip(&seen)
        .all(|((action, _, _), views)| views.last().is_some_and(|v| lapsed(action, v)))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no lapse: {seen:?}"
        );
        for ((_, t, domain), views) in tenants.iter().zip(&mut seen) {
            views.push(bed.domain(t, domain).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ((action, t, domain), seen) in tenants.iter().zip(&seen) {
        // On the way: at risk, and still claimed while at risk.
        let at_risk: Vec<&Value> = seen
            .iter()
            .filter(|v| recheck_status(v) == "at_risk")
            .collect();
        assert!(
            !at_risk.is_empty(),
            "{action}: never seen at risk: {seen:?}"
        );
        assert!(
            at_risk.iter().all(|v| v["status"] == "claimed"),
            "{at_risk:?}"
        );
        assert!(
            at_risk[0]["recheck"]["lapsesAt"].is_string(),
            "{:?}",
            at_risk[0]
        );
        let last = seen.last().unwrap();
        let expected = match *action {
            "unverify" => "pending",
            "unclaim" => "verified",
            _ => "claimed",
        };
        assert_eq!(last["status"], expected, "{action}: {last}");
        let kinds = event_kinds(&db, &t.org, domain).await;
        let from = kinds
            .iter()
            .position(|k| *k == EventKind::AtRisk)
            .expect("at_risk event");
        let mut after: Vec<EventKind> = kinds[from..].to_vec();
        after.dedup();
        let tail: &[EventKind] = match *action {
            "unverify" => &[
                EventKind::AtRisk,
                EventKind::Lapsed,
                EventKind::Unclaimed,
                EventKind::Unverified,
            ],
            "unclaim" => &[EventKind::AtRisk, EventKind::Lapsed, EventKind::Unclaimed],
            _ => &[EventKind::AtRisk, EventKind::Lapsed],
        };
        assert_eq!(after, tail, "{action}");
    }
    // The evidence of the lapse is in the log.
    let store = db.open().await;
    let (_, t, domain) = &tenants[0];
    let events = store
        .list_events(&OrgId::new(&t.org), &DomainName::parse(domain).unwrap())
        .await
        .unwrap();
    let lapse = events.iter().find(|e| e.kind == EventKind::Lapsed).unwrap();
    let evidence: Value = serde_json::from_str(lapse.detail.as_deref().unwrap()).unwrap();
    assert_eq!(evidence["outcome"], "nxdomain", "{evidence}");
    assert!(
        lapse
            .tracking_id
            .as_deref()
            .unwrap()
            .starts_with("recheck-")
    );
}

/// A record put back during the grace brings the domain back, claim intact.
pub async fn a_record_restored_in_time_recovers(backend: Backend) {
    let knot = Knot::start().await;
    let db = Database::create(backend).await;
    let bed = Bed::start(&db, &knot, &[]).await;
    let t = bed.first();
    let (status, body) = bed.patch_org(&t, json!({"recheckGrace": 60})).await;
    assert_eq!(status, 200, "{body}");
    let domain = format!("back.{ZONE}");
    bed.claimed(&knot, &t, &domain).await;
    let view = bed.domain(&t, &domain).await;
    let published = view["txtRecordValue"].as_str().unwrap().to_owned();
    knot.remove_txt(&domain).await;
    bed.until(&t, &domain, Duration::from_secs(20), |v| {
        recheck_status(v) == "at_risk"
    })
    .await;
    // Still in every list meanwhile.
    let (status, body) = bed.act(&t, "verifyDomain", json!({"domain": domain})).await;
    assert_eq!(
        (status, &body["claimedDomains"]),
        (200, &json!([domain])),
        "{body}"
    );
    knot.set_txt(&domain, &published).await;
    let seen = bed
        .until(&t, &domain, Duration::from_secs(20), |v| {
            recheck_status(v) == "ok"
        })
        .await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "claimed");
    assert!(last["recheck"]["failingSince"].is_null(), "{last}");
    let kinds = event_kinds(&db, &t.org, &domain).await;
    assert!(
        kinds.ends_with(&[EventKind::AtRisk, EventKind::Recovered]),
        "{kinds:?}"
    );
}

/// With the DNS server gone for longer than the grace, nothing lapses: the domain is reported
/// as not checkable, still claimed.
pub async fn an_unreachable_server_never_lapses_a_domain(backend: Backend) {
    let mut knot = Knot::start().await;
    let db = Database::create(backend).await;
    let bed = Bed::start(&db, &knot, &["--recheck-grace", "2s"]).await;
    let t = bed.first();
    let domain = format!("dark.{ZONE}");
    bed.claimed(&knot, &t, &domain).await;
    knot.stop().await;
    let seen = bed
        .until(&t, &domain, Duration::from_secs(30), |v| {
            recheck_status(v) == "not_checkable"
        })
        .await;
    assert!(seen.iter().all(|v| v["status"] == "claimed"), "{seen:?}");
    // Several graces later, still claimed and never at risk.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let view = bed.domain(&t, &domain).await;
    assert_eq!(view["status"], "claimed", "{view}");
    assert!(view["recheck"]["notCheckableSince"].is_string(), "{view}");
    let kinds = event_kinds(&db, &t.org, &domain).await;
    assert!(
        !kinds.contains(&EventKind::AtRisk) && !kinds.contains(&EventKind::Lapsed),
        "{kinds:?}"
    );
    let outcome = view["lastCheck"]["outcome"].as_str().unwrap_or_default();
    assert!(["timeout", "dns_failure"].contains(&outcome), "{view}");
}

/// Two processes on one PostgreSQL database share the schedule of 1,000 verified domains: each
/// domain is looked up about once per interval — never twice within one, never skipped — and
/// still so when one process is killed mid-sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_schedule_and_survive_a_kill() {
    let interval = Duration::from_secs(4);
    let dns = claimd_dns::testing::TestDnsServer::start().await.unwrap();
    let db = Database::create(Backend::Postgres).await;
    let store = db.open().await;
    let org = store
        .create_organization(&claimd_store::Actor::default(), "fleet", Timestamp::now())
        .await
        .unwrap()
        .id;
    let now = Timestamp::now();
    let mut records = Vec::new();
    for i in 0..1000u32 {
        let domain = DomainName::parse(&format!("d{i}.fleet.test")).unwrap();
        let mut r = DomainRecord::pending(
            org.clone(),
            domain.clone(),
            claimd_domain::VerificationToken::generate(),
            now,
            now,
        );
        r.state = DomainState::Verified;
        r.verified_at = Some(now);
        // Spread over the first interval, as they would be had they been verified over time.
        r.recheck = RecheckState {
            due_at: Some(now.plus(interval * i / 1000)),
            ..RecheckState::default()
        };
        let value = format!("cisco-ci-domain-verification={}", r.token.as_str());
        dns.set_txt(domain.as_str(), &[&value]).await;
        records.push(r);
    }
    store
        .import_domains(&Actor::default(), records)
        .await
        .unwrap();
    let flags = [
        "--recheck-interval",
        "4s",
        "--recheck-min-interval",
        "1s",
        "--recheck-rate",
        "1000",
        "--recheck-workers",
        "32",
        "--dns-timeout",
        "1s",
    ];
    let started = Instant::now();
    let mut first = start(&db.url(), dns.addr(), &flags).await;
    let _second = start(&db.url(), dns.addr(), &flags).await;
    tokio::time::sleep(interval * 3 / 2).await;
    first.kill9().await;
    tokio::time::sleep(interval * 3).await;
    let ended = Instant::now();

    let mut by_name: HashMap<String, Vec<Instant>> = HashMap::new();
    for (name, at) in dns.txt_queries() {
        if name.ends_with(".fleet.test") {
            by_name.entry(name).or_default().push(at);
        }
    }
    assert_eq!(by_name.len(), 1000, "every domain was looked up");
    // A lease lasts 5 s (four DNS timeouts, at least 5 s): a domain leased by the killed process
    // waits that long before the survivor takes it.
    let lease = Duration::from_secs(5);
    let longest_wait = interval * 11 / 10 + lease + Duration::from_secs(2);
    for (name, times) in &by_name {
        let mut marks = vec![started];
        marks.extend(times);
        marks.push(ended);
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= interval - Duration::from_millis(500),
                "{name} looked up twice within one interval: {:?}",
                pair[1] - pair[0]
            );
        }
        for pair in marks.windows(2) {
            assert!(
                pair[1] - pair[0] <= longest_wait,
                "{name} skipped: {:?} without a look",
                pair[1] - pair[0]
            );
        }
    }
}

/// GET and PATCH of the organization resource: Cisco's shape, and the re-check policy beside it.
pub async fn the_organization_resource_holds_the_recheck_policy(backend: Backend) {
    let app = TestApp::start(backend).await;
    let url = app.org_url(&app.a);
    let r = app.get(&app.a, &url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:cisco:codev:identity:organization:core:1.0"])
    );
    assert_eq!(r.body["id"], app.a.id.as_str());
    assert_eq!(r.body["displayName"], "org a");
    assert!(r.body["meta"]["created"].is_string() && r.body["meta"]["lastModified"].is_string());
    assert_eq!(
        (
            &r.body["recheckInterval"],
            &r.body["recheckGrace"],
            &r.body["lapseAction"]
        ),
        (&json!(86400), &json!(7 * 86400), &json!("unverify"))
    );

    let patch =
        |body: Value| app.send(app.client.patch(&url).bearer_auth(&app.a.token).json(&body));
    let r = patch(json!({
        "schemas": ["urn:cisco:codev:identity:organization:core:1.0"],
        "displayName": "Acme, Inc.",
        "preferredLanguage": "en_US",
        "recheckInterval": 7200,
        "lapseAction": "keep"
    }))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Acme, Inc.");
    assert_eq!(r.body["preferredLanguage"], "en_US");
    assert_eq!(
        (&r.body["recheckInterval"], &r.body["lapseAction"]),
        (&json!(7200), &json!("keep"))
    );
    assert_eq!(app.get(&app.a, &url).await.body, r.body, "kept");
    // null: back to the operator's default; absent: unchanged.
    let r = patch(json!({"recheckInterval": null})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["recheckInterval"], &r.body["lapseAction"]),
        (&json!(86400), &json!("keep"))
    );
    assert_eq!(r.body["displayName"], "Acme, Inc.");

    for (body, field) in [
        (json!({"recheckInterval": 60}), "recheckInterval:"),
        (json!({"recheckInterval": "1h"}), "recheckInterval"),
        (json!({"recheckGrace": 0}), "recheckGrace:"),
        (json!({"lapseAction": "delete"}), "lapseAction:"),
        (
            json!({"preferredLanguage": "english"}),
            "preferredLanguage:",
        ),
        (json!({"displayName": "  "}), "displayName:"),
        (json!({"schemas": ["urn:other"]}), "schemas:"),
    ] {
        let r = patch(body.clone()).await;
        r.assert_error(400);
        assert!(
            r.description().contains(field),
            "{body}: {}",
            r.description()
        );
    }
    let r = app.get(&app.a, &url).await;
    assert_eq!(
        r.body["displayName"], "Acme, Inc.",
        "refusals changed nothing"
    );
    // Another organization's resource is not this credential's.
    app.get(&app.a, &app.org_url(&app.b))
        .await
        .assert_error(403);
}

/// `POST …/recheck` runs one re-check now and records it like the scheduled ones; a pending
/// domain has nothing to re-check; a pending token past its expiry shows as expired.
pub async fn a_recheck_on_demand_applies_the_same_rules(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    app.claimed(a, "now.test").await;
    let id = DomainName::parse("now.test").unwrap().resource_id();
    let recheck = || {
        app.send(
            app.client
                .post(format!("{}/domains/{id}/recheck", app.org_url(a)))
                .bearer_auth(&a.token),
        )
    };
    let r = recheck().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["recheck"]["status"], "ok");
    assert_eq!(r.body["lastCheck"]["outcome"], "verified");

    app.dns.remove_txt("now.test").await;
    let r = recheck().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["recheck"]["status"], "at_risk", "{}", r.body);
    assert_eq!(r.body["status"], "claimed");
    assert!(r.body["recheck"]["lapsesAt"].is_string());
    let token = r.body["token"].as_str().unwrap().to_owned();
    app.publish("now.test", &[&token]).await;
    let r = recheck().await;
    assert_eq!(r.body["recheck"]["status"], "ok", "{}", r.body);
    let kinds: Vec<EventKind> = app
        .store
        .list_events(&a.id, &DomainName::parse("now.test").unwrap())
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.ends_with(&[EventKind::Claimed, EventKind::AtRisk, EventKind::Recovered]),
        "{kinds:?}"
    );

    app.token_for(a, "later.test").await;
    let pending = DomainName::parse("later.test").unwrap().resource_id();
    let r = app
        .send(
            app.client
                .post(format!("{}/domains/{pending}/recheck", app.org_url(a)))
                .bearer_auth(&a.token),
        )
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("verifyDomain"),
        "{}",
        r.description()
    );
    assert_eq!(app.domain(a, "later.test").await.body["status"], "pending");
    app.clock.advance(TOKEN_TTL);
    let r = app.domain(a, "later.test").await;
    assert_eq!(r.body["status"], "expired", "{}", r.body);
    assert!(r.body["recheck"].is_null());
}
