//! Every refusal in the design's status table, the rules between organizations, and the
//! outcomes of failing DNS.

use std::collections::HashSet;
use std::time::Duration;

use claimd_dns::testing::{Fault, FaultyDnsServer, TestDnsServer};
use serde_json::json;

use crate::support::{Backend, TestApp};

pub async fn get_token_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    let bad_names = [
        "",
        "com",
        "co.uk",
        "192.0.2.1",
        "no_underscores.test",
        "a..test",
        "localhost",
    ];
    for bad in bad_names {
        let r = app.request_token(a, bad).await;
        r.assert_error(400);
        assert!(
            r.description().starts_with("domain:"),
            "{bad:?}: {}",
            r.description()
        );
    }
    app.assert_refused(&[(a, "getDomainVerificationToken", json!({}), 400, "domain")])
        .await;

    app.claimed(a, "mine.test").await;
    app.assert_refused(&[
        // Claimed by this organization: 409 too.
        (
            a,
            "getDomainVerificationToken",
            json!({"domain": "mine.test"}),
            409,
            "this organization",
        ),
        // Claimed by another organization.
        (
            &app.b,
            "getDomainVerificationToken",
            json!({"domain": "mine.test"}),
            409,
            "claimed",
        ),
    ])
    .await;
    let r = app.request_token(&app.b, "mine.test").await;
    assert!(
        !r.description().contains(a.id.as_str()),
        "never names the other org"
    );
}

pub async fn verify_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    app.assert_refused(&[
        (
            a,
            "verifyDomain",
            json!({"domain": "never.test"}),
            400,
            "getDomainVerificationToken",
        ),
        (
            a,
            "verifyDomain",
            json!({"domain": "not a domain"}),
            400,
            "domain:",
        ),
        // Names the field.
        (
            a,
            "verifyDomain",
            json!({"domain": "x.test", "claimDomain": "yes"}),
            400,
            "claimDomain",
        ),
    ])
    .await;

    // TXT present but wrong: the body lists what was seen.
    app.token_for(a, "wrong.test").await;
    app.dns
        .set_txt(
            "wrong.test",
            &[
                "v=spf1 include:_spf.example -all",
                "cisco-ci-domain-verification=not-it",
            ],
        )
        .await;
    let r = app.verify(a, "wrong.test").await;
    r.assert_error(400);
    let d = r.description();
    assert!(
        d.contains("wrong.test.") && d.contains("v=spf1") && d.contains("not-it"),
        "{d}"
    );
    assert!(d.contains("dig @127.0.0.1"), "{d}");
    // Nothing changed.
    let rec = app.domain(a, "wrong.test").await;
    assert_eq!(rec.body["status"], "pending");
    assert_eq!(rec.body["lastCheck"]["outcome"], "wrong_value");

    // Claimed by another organization: 409 even with the record published.
    let mine = app.token_for(a, "taken.test").await;
    app.claimed(&app.b, "taken.test").await;
    app.publish("taken.test", &[&mine]).await;
    app.assert_refused(&[
        (
            a,
            "verifyDomain",
            json!({"domain": "taken.test"}),
            409,
            "another organization",
        ),
        (
            a,
            "verifyDomain",
            json!({"domain": "taken.test", "claimDomain": true}),
            409,
            "another organization",
        ),
    ])
    .await;
    // Without a token of its own: the conflict, not "ask for a token first".
    app.claimed(&app.b, "held.test").await;
    app.assert_refused(&[(
        a,
        "verifyDomain",
        json!({"domain": "held.test"}),
        409,
        "another organization",
    )])
    .await;
}

pub async fn a_verified_org_is_refused_while_another_holds_the_claim(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    let d = "both-verified.test";
    app.verified(a, d).await;
    app.verified(b, d).await;
    let r = app.claim(a, &[d]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.assert_refused(&[
        (b, "claimDomain", json!({"data": [{"domain": d}]}), 409, d),
        (
            b,
            "getDomainVerificationToken",
            json!({"domain": d}),
            409,
            d,
        ),
        (b, "verifyDomain", json!({"domain": d}), 409, d),
    ])
    .await;
    // b stays verified, only not claimed.
    let r = app.unverify(b, d).await;
    assert_eq!(r.status, 200);
    // Once a releases, b can claim.
    app.unclaim(a, d).await;
    app.verified(b, d).await;
    let r = app.claim(b, &[d]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// reserveDomain: while a keeps the name verified, no other organization gets a token for it or
/// verifies it (even with its own token published), and a may not reserve a name b has
/// verified too; unverifying ends the reservation.
pub async fn a_reserved_name_stays_with_its_organization(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    let d = "reserved.test";
    // b asked first and published its token next to a's.
    let b_token = app.token_for(b, d).await;
    let a_token = app.token_for(a, d).await;
    app.publish(d, &[&a_token, &b_token]).await;
    let r = app
        .action(
            a,
            "verifyDomain",
            json!({"domain": d, "reserveDomain": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.domain(a, d).await.body["reserveDomain"], true);
    app.assert_refused(&[
        (
            b,
            "getDomainVerificationToken",
            json!({"domain": d}),
            409,
            "reserved by another organization",
        ),
        (
            b,
            "verifyDomain",
            json!({"domain": d}),
            409,
            "reserved by another organization",
        ),
    ])
    .await;
    assert_eq!(app.domain(b, d).await.body["status"], "pending");

    // Unverified, the reservation ends: b verifies; a can verify again, but not reserve.
    assert_eq!(app.unverify(a, d).await.status, 200);
    assert_eq!(app.domain(a, d).await.body["reserveDomain"], false);
    let r = app.verify(b, d).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.assert_refused(&[(
        a,
        "verifyDomain",
        json!({"domain": d, "reserveDomain": true}),
        409,
        "reserveDomain",
    )])
    .await;
    assert_eq!(app.domain(a, d).await.body["status"], "pending");
    let r = app.verify(a, d).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

pub async fn claim_refusals_and_batch_atomicity(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    app.assert_refused(&[
        (a, "claimDomain", json!({"data": []}), 400, "data"),
        (a, "claimDomain", json!({}), 400, "data"),
        (
            a,
            "claimDomain",
            json!({"data": [{"domain": "ok.test"}, {"domain": "bad_name.test"}]}),
            400,
            "data[1].domain:",
        ),
    ])
    .await;
    let r = app.claim(a, &["ok.test", "bad_name.test"]).await;
    assert!(
        r.description().starts_with("data[1].domain:"),
        "{}",
        r.description()
    );

    app.verified(a, "one.test").await;
    app.verified(a, "two.test").await;
    app.token_for(a, "three.test").await;
    let r = app.claim(a, &["one.test", "two.test", "three.test"]).await;
    r.assert_error(400);
    assert!(
        r.description().contains("three.test"),
        "{}",
        r.description()
    );
    let summary = app.verify(a, "one.test").await;
    assert_eq!(summary.body["claimedDomains"], json!([]), "all or nothing");

    // A domain claimed by another organization fails the whole batch with 409.
    app.verified(a, "theirs.test").await;
    app.claimed(&app.b, "theirs.test").await;
    app.claim(a, &["one.test", "theirs.test"])
        .await
        .assert_error(409);
    let summary = app.verify(a, "one.test").await;
    assert_eq!(summary.body["claimedDomains"], json!([]), "all or nothing");

    let r = app
        .action(a, "claimDomain", json!({"data": [{"domain": "one.test"}, {"domain": "two.test"}], "forceDomainClaim": false, "claimDomainOnly": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let rec = app.domain(a, "one.test").await;
    assert_eq!(rec.body["forceDomainClaim"], false);
    assert_eq!(rec.body["claimDomainOnly"], true);

    let too_many: Vec<String> = (0..101).map(|i| format!("d{i}.test")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let r = app.claim(a, &too_many).await;
    r.assert_error(400);
    assert!(
        r.description().contains("at most 100"),
        "{}",
        r.description()
    );
}

pub async fn unclaim_and_unverify_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    app.assert_refused(&[
        (
            a,
            "unclaimDomain",
            json!({"domain": "nobody.test"}),
            404,
            "not associated",
        ),
        (
            a,
            "unverifyDomain",
            json!({"domain": "nobody.test"}),
            404,
            "not associated",
        ),
        (a, "unclaimDomain", json!({"domain": "com"}), 400, "domain:"),
    ])
    .await;
    app.verified(a, "held.test").await;
    app.assert_refused(&[(
        a,
        "unclaimDomain",
        json!({"domain": "held.test"}),
        400,
        "not claimed",
    )])
    .await;
    app.claim(a, &["held.test"]).await;
    app.assert_refused(&[
        (
            a,
            "unverifyDomain",
            json!({"domain": "held.test"}),
            400,
            "unclaim",
        ),
        // b cannot unclaim a's claim: b has no record of it.
        (
            &app.b,
            "unclaimDomain",
            json!({"domain": "held.test"}),
            404,
            "not associated",
        ),
    ])
    .await;
}

pub async fn hierarchy_conflicts_name_the_claim_not_the_org(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    app.claimed(a, "parent.test").await;
    app.verified(b, "x.parent.test").await;
    let r = app.claim(b, &["x.parent.test"]).await;
    r.assert_error(409);
    assert!(
        r.description().contains("parent.test"),
        "{}",
        r.description()
    );
    assert!(!r.body.to_string().contains(a.id.as_str()));

    app.unclaim(a, "parent.test").await;
    let r = app.claim(b, &["x.parent.test"]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.claim(a, &["parent.test"]).await;
    r.assert_error(409);
    assert!(
        r.description().contains("x.parent.test"),
        "{}",
        r.description()
    );
}

pub async fn dns_server_failure_is_502_and_timeout_is_504(backend: Backend) {
    for (fault, status) in [
        (Fault::ServFail, 502),
        (Fault::Refused, 502),
        (Fault::BlackHole, 504),
    ] {
        let bad = FaultyDnsServer::start(fault).await.unwrap();
        let dns = TestDnsServer::start().await.unwrap();
        let app =
            TestApp::start_with(backend, dns, vec![bad.addr()], Duration::from_millis(500)).await;
        app.token_for(&app.a, "flaky.test").await;
        let r = app.verify(&app.a, "flaky.test").await;
        r.assert_error(status);
        assert!(r.headers.get("retry-after").is_some(), "{fault:?}");
        assert!(
            r.description().contains("flaky.test."),
            "{}",
            r.description()
        );
        let rec = app.domain(&app.a, "flaky.test").await;
        assert_eq!(rec.body["status"], "pending", "{fault:?} changed nothing");
    }
}

/// 50 concurrent claims of one domain by two verified organizations: exactly one claim, every
/// request of the other organization 409, no 5xx.
pub async fn concurrent_claims_over_http(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::start(backend).await);
    app.verified(&app.a, "contested.test").await;
    app.verified(&app.b, "contested.test").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let org = if i % 2 == 0 { &app.a } else { &app.b };
            let r = app.claim(org, &["contested.test"]).await;
            (i % 2, r.status.as_u16())
        }));
    }
    let mut winners = HashSet::new();
    let mut conflicts = 0;
    for t in tasks {
        let (who, status) = t.await.unwrap();
        match status {
            200 => {
                winners.insert(who);
            }
            409 => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "one organization holds the claim");
    assert_eq!(
        conflicts, 25,
        "every request of the other organization is refused"
    );
}
