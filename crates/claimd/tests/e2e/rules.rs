//! Every refusal in the design's status table, the rules between organizations, and the
//! outcomes of failing DNS.

use std::collections::HashSet;
use std::time::Duration;

use claimd_dns::testing::{Fault, FaultyDnsServer, TestDnsServer};
use serde_json::json;

use crate::support::{Backend, TestApp};

pub async fn get_token_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    for bad in [
        "",
        "com",
        "co.uk",
        "192.0.2.1",
        "no_underscores.test",
        "a..test",
        "localhost",
    ] {
        let r = app
            .action(&app.a, "getDomainVerificationToken", json!({"domain": bad}))
            .await;
        r.assert_error(400);
        assert!(
            r.description().starts_with("domain:"),
            "{bad:?}: {}",
            r.description()
        );
    }
    let r = app
        .action(&app.a, "getDomainVerificationToken", json!({}))
        .await;
    r.assert_error(400);
    assert!(r.description().contains("domain"), "{}", r.description());

    app.verified(&app.a, "mine.test").await;
    app.action(
        &app.a,
        "claimDomain",
        json!({"data": [{"domain": "mine.test"}]}),
    )
    .await;
    // Claimed by this organization: 409 too.
    let r = app
        .action(
            &app.a,
            "getDomainVerificationToken",
            json!({"domain": "mine.test"}),
        )
        .await;
    r.assert_error(409);
    assert!(
        r.description().contains("this organization"),
        "{}",
        r.description()
    );
    // Claimed by another organization.
    let r = app
        .action(
            &app.b,
            "getDomainVerificationToken",
            json!({"domain": "mine.test"}),
        )
        .await;
    r.assert_error(409);
    assert!(
        !r.description().contains(app.a.id.as_str()),
        "never names the other org"
    );
}

pub async fn verify_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = app
        .action(&app.a, "verifyDomain", json!({"domain": "never.test"}))
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("getDomainVerificationToken"),
        "{}",
        r.description()
    );

    let r = app
        .action(&app.a, "verifyDomain", json!({"domain": "not a domain"}))
        .await;
    r.assert_error(400);

    let r = app
        .action(
            &app.a,
            "verifyDomain",
            json!({"domain": "x.test", "claimDomain": "yes"}),
        )
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("claimDomain"),
        "names the field: {}",
        r.description()
    );

    // TXT present but wrong: the body lists what was seen.
    app.token_for(&app.a, "wrong.test").await;
    app.dns
        .set_txt(
            "wrong.test",
            &[
                "v=spf1 include:_spf.example -all",
                "cisco-ci-domain-verification=not-it",
            ],
        )
        .await;
    let r = app
        .action(&app.a, "verifyDomain", json!({"domain": "wrong.test"}))
        .await;
    r.assert_error(400);
    let d = r.description();
    assert!(
        d.contains("wrong.test.") && d.contains("v=spf1") && d.contains("not-it"),
        "{d}"
    );
    assert!(d.contains("dig @127.0.0.1"), "{d}");
    // Nothing changed.
    let rec = app
        .get(
            &app.a,
            &format!("{}/domains/d3JvbmcudGVzdA", app.org_url(&app.a)),
        )
        .await;
    assert_eq!(rec.body["status"], "pending");
    assert_eq!(rec.body["lastCheck"]["outcome"], "wrong_value");

    // Claimed by another organization: 409 even with the record published.
    let mine = app.token_for(&app.a, "taken.test").await;
    app.verified(&app.b, "taken.test").await;
    app.action(
        &app.b,
        "claimDomain",
        json!({"data": [{"domain": "taken.test"}]}),
    )
    .await;
    app.publish("taken.test", &[&mine]).await;
    let r = app
        .action(&app.a, "verifyDomain", json!({"domain": "taken.test"}))
        .await;
    r.assert_error(409);
    let r = app
        .action(
            &app.a,
            "verifyDomain",
            json!({"domain": "taken.test", "claimDomain": true}),
        )
        .await;
    r.assert_error(409);
}

pub async fn a_verified_org_is_refused_while_another_holds_the_claim(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.verified(&app.a, "both-verified.test").await;
    app.verified(&app.b, "both-verified.test").await;
    let r = app
        .action(
            &app.a,
            "claimDomain",
            json!({"data": [{"domain": "both-verified.test"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .action(
            &app.b,
            "claimDomain",
            json!({"data": [{"domain": "both-verified.test"}]}),
        )
        .await;
    r.assert_error(409);
    let r = app
        .action(
            &app.b,
            "getDomainVerificationToken",
            json!({"domain": "both-verified.test"}),
        )
        .await;
    r.assert_error(409);
    let r = app
        .action(
            &app.b,
            "verifyDomain",
            json!({"domain": "both-verified.test"}),
        )
        .await;
    r.assert_error(409);
    // b stays verified, only not claimed.
    let r = app
        .action(
            &app.b,
            "unverifyDomain",
            json!({"domain": "both-verified.test"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Once a releases, b can claim.
    app.action(
        &app.a,
        "unclaimDomain",
        json!({"domain": "both-verified.test"}),
    )
    .await;
    app.verified(&app.b, "both-verified.test").await;
    let r = app
        .action(
            &app.b,
            "claimDomain",
            json!({"data": [{"domain": "both-verified.test"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

pub async fn claim_refusals_and_batch_atomicity(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = app.action(&app.a, "claimDomain", json!({"data": []})).await;
    r.assert_error(400);
    let r = app.action(&app.a, "claimDomain", json!({})).await;
    r.assert_error(400);
    let r = app
        .action(
            &app.a,
            "claimDomain",
            json!({"data": [{"domain": "ok.test"}, {"domain": "bad_name.test"}]}),
        )
        .await;
    r.assert_error(400);
    assert!(
        r.description().starts_with("data[1].domain:"),
        "{}",
        r.description()
    );

    app.verified(&app.a, "one.test").await;
    app.verified(&app.a, "two.test").await;
    app.token_for(&app.a, "three.test").await;
    let r = app
        .action(&app.a, "claimDomain", json!({"data": [{"domain": "one.test"}, {"domain": "two.test"}, {"domain": "three.test"}]}))
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("three.test"),
        "{}",
        r.description()
    );
    let summary = app
        .action(&app.a, "verifyDomain", json!({"domain": "one.test"}))
        .await;
    assert_eq!(summary.body["claimedDomains"], json!([]), "all or nothing");

    // A domain claimed by another organization fails the whole batch with 409.
    app.verified(&app.a, "theirs.test").await;
    app.verified(&app.b, "theirs.test").await;
    app.action(
        &app.b,
        "claimDomain",
        json!({"data": [{"domain": "theirs.test"}]}),
    )
    .await;
    let r = app
        .action(
            &app.a,
            "claimDomain",
            json!({"data": [{"domain": "one.test"}, {"domain": "theirs.test"}]}),
        )
        .await;
    r.assert_error(409);
    let summary = app
        .action(&app.a, "verifyDomain", json!({"domain": "one.test"}))
        .await;
    assert_eq!(summary.body["claimedDomains"], json!([]), "all or nothing");

    let r = app
        .action(&app.a, "claimDomain", json!({"data": [{"domain": "one.test"}, {"domain": "two.test"}], "forceDomainClaim": false, "claimDomainOnly": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let rec = app
        .get(
            &app.a,
            &format!("{}/domains/b25lLnRlc3Q", app.org_url(&app.a)),
        )
        .await;
    assert_eq!(rec.body["forceDomainClaim"], false);
    assert_eq!(rec.body["claimDomainOnly"], true);

    let too_many: Vec<_> = (0..101)
        .map(|i| json!({"domain": format!("d{i}.test")}))
        .collect();
    let r = app
        .action(&app.a, "claimDomain", json!({"data": too_many}))
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("at most 100"),
        "{}",
        r.description()
    );
}

pub async fn unclaim_and_unverify_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.action(&app.a, "unclaimDomain", json!({"domain": "nobody.test"}))
        .await
        .assert_error(404);
    app.action(&app.a, "unverifyDomain", json!({"domain": "nobody.test"}))
        .await
        .assert_error(404);
    app.action(&app.a, "unclaimDomain", json!({"domain": "com"}))
        .await
        .assert_error(400);
    app.verified(&app.a, "held.test").await;
    let r = app
        .action(&app.a, "unclaimDomain", json!({"domain": "held.test"}))
        .await;
    r.assert_error(400);
    assert!(
        r.description().contains("not claimed"),
        "{}",
        r.description()
    );
    app.action(
        &app.a,
        "claimDomain",
        json!({"data": [{"domain": "held.test"}]}),
    )
    .await;
    let r = app
        .action(&app.a, "unverifyDomain", json!({"domain": "held.test"}))
        .await;
    r.assert_error(400);
    assert!(r.description().contains("unclaim"), "{}", r.description());
    // b cannot unclaim a's claim: b has no record of it.
    app.action(&app.b, "unclaimDomain", json!({"domain": "held.test"}))
        .await
        .assert_error(404);
}

pub async fn hierarchy_conflicts_name_the_claim_not_the_org(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.verified(&app.a, "parent.test").await;
    app.verified(&app.b, "x.parent.test").await;
    app.action(
        &app.a,
        "claimDomain",
        json!({"data": [{"domain": "parent.test"}]}),
    )
    .await;
    let r = app
        .action(
            &app.b,
            "claimDomain",
            json!({"data": [{"domain": "x.parent.test"}]}),
        )
        .await;
    r.assert_error(409);
    assert!(
        r.description().contains("parent.test"),
        "{}",
        r.description()
    );
    assert!(!r.body.to_string().contains(app.a.id.as_str()));

    app.action(&app.a, "unclaimDomain", json!({"domain": "parent.test"}))
        .await;
    let r = app
        .action(
            &app.b,
            "claimDomain",
            json!({"data": [{"domain": "x.parent.test"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .action(
            &app.a,
            "claimDomain",
            json!({"data": [{"domain": "parent.test"}]}),
        )
        .await;
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
        let r = app
            .action(&app.a, "verifyDomain", json!({"domain": "flaky.test"}))
            .await;
        r.assert_error(status);
        assert!(r.headers.get("retry-after").is_some(), "{fault:?}");
        assert!(
            r.description().contains("flaky.test."),
            "{}",
            r.description()
        );
        let rec = app
            .get(
                &app.a,
                &format!("{}/domains/Zmxha3kudGVzdA", app.org_url(&app.a)),
            )
            .await;
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
            let r = app
                .action(
                    org,
                    "claimDomain",
                    json!({"data": [{"domain": "contested.test"}]}),
                )
                .await;
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
