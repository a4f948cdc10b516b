//! The lifecycle walked through the API as a client would.

use base64::Engine as _;
use claimd_domain::DomainName;
use claimd_store::EventKind;
use serde_json::json;

use crate::support::{Backend, TOKEN_TTL, TestApp};

pub async fn full_lifecycle_over_http_and_dns(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;

    let r = app.request_token(a, "Example.TEST.").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["domain"], "example.test");
    assert_eq!(r.body["verificationMethod"], "DNS_TXT");
    assert_eq!(
        r.body["url"],
        format!("{}/actions/getDomainVerificationToken", app.org_url(a))
    );
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "at least 128 bits: {token}");

    // Before the record is published: 400 saying what was looked up.
    let r = app.verify(a, "example.test").await;
    r.assert_error(400);
    assert!(
        r.description().contains("example.test."),
        "{}",
        r.description()
    );
    assert!(
        r.description()
            .contains(&format!("cisco-ci-domain-verification={token}"))
    );

    app.dns
        .set_txt(
            "example.test",
            &[
                "v=spf1 -all",
                &format!("cisco-ci-domain-verification={token}"),
            ],
        )
        .await;
    let r = app.verify(a, "example.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["verifiedDomains"], json!(["example.test"]));
    assert_eq!(r.body["claimedDomains"], json!([]));
    assert_eq!(
        r.body["url"],
        format!("{}/actions/verifyDomain", app.org_url(a))
    );

    let r = app.claim(a, &["example.test"]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["data"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(r.body["data"][0]["domain"], "example.test");
    assert_eq!(url, format!("{}/domains/ZXhhbXBsZS50ZXN0", app.org_url(a)));

    // The claim's url is a resource that can be read.
    let r = app.get(a, &url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["domain"], "example.test");
    assert_eq!(r.body["status"], "claimed");
    assert_eq!(r.body["forceDomainClaim"], true);
    assert_eq!(r.body["lastCheck"]["outcome"], "verified");
    assert!(r.body["claimed"].is_string());

    let r = app.unclaim(a, "example.test").await;
    assert_eq!(r.status, 204);
    assert!(!r.tracking_id().is_empty());
    assert_eq!(app.get(a, &url).await.body["status"], "verified");

    let r = app.unverify(a, "example.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["verifiedDomains"], json!([]));
    assert_eq!(
        r.body["url"],
        format!("{}/actions/unverifyDomain", app.org_url(a))
    );
    let r = app.get(a, &url).await;
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["token"], token.as_str(), "unverify keeps the token");

    // Every state change left an event with its tracking id.
    let events = app
        .store
        .list_events(&a.id, &DomainName::parse("example.test").unwrap())
        .await
        .unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::TokenIssued,
            EventKind::LookupFailed,
            EventKind::Verified,
            EventKind::Claimed,
            EventKind::Unclaimed,
            EventKind::Unverified
        ]
    );
    assert!(events.iter().all(|e| {
        e.tracking_id
            .as_deref()
            .is_some_and(|t| t.starts_with("claimd_"))
    }));
    assert!(events.iter().all(|e| e.credential_id.is_some()));
}

pub async fn verify_with_claim_domain_does_both(backend: Backend) {
    let app = TestApp::start(backend).await;
    let token = app.token_for(&app.a, "both.test").await;
    app.publish("both.test", &[&token]).await;
    let r = app
        .action(
            &app.a,
            "verifyDomain",
            json!({"domain": "both.test", "claimDomain": true, "reserveDomain": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["verifiedDomains"], json!(["both.test"]));
    assert_eq!(r.body["claimedDomains"], json!(["both.test"]));
    let resource = app.domain(&app.a, "both.test").await;
    assert_eq!(resource.body["reserveDomain"], true);

    // Verifying again is idempotent, with no new lookup: the record can even be gone.
    app.dns.remove_txt("both.test").await;
    let r = app.verify(&app.a, "both.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["claimedDomains"], json!(["both.test"]));
}

pub async fn already_verified_then_claim_through_verify(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.verified(&app.a, "later.test").await;
    let r = app
        .action(
            &app.a,
            "verifyDomain",
            json!({"domain": "later.test", "claimDomain": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["claimedDomains"], json!(["later.test"]));
}

pub async fn remove_pending_deletes_the_record(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.verified(&app.a, "gone.test").await;
    // The resource may be named by its id or by the domain name itself, in any case.
    let by_id = app.domain(&app.a, "gone.test").await;
    for name in ["gone.test", "Gone.TEST"] {
        let r = app
            .get(&app.a, &format!("{}/domains/{name}", app.org_url(&app.a)))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, by_id.body);
    }
    let r = app
        .action(
            &app.a,
            "unverifyDomain",
            json!({"domain": "gone.test", "removePending": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.domain(&app.a, "gone.test").await;
    r.assert_error(404);
    // The 404 says what an id may be.
    assert!(
        r.description().contains("resource id"),
        "{}",
        r.description()
    );
    // Nothing left to unverify.
    app.unverify(&app.a, "gone.test").await.assert_error(404);
    // A pending record can be removed too.
    app.token_for(&app.a, "pending.test").await;
    let r = app
        .action(
            &app.a,
            "unverifyDomain",
            json!({"domain": "pending.test", "removePending": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.verify(&app.a, "pending.test").await.assert_error(400);
}

pub async fn token_reissue_is_stable_until_expiry(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first = app.token_for(&app.a, "ttl.test").await;
    assert_eq!(
        app.token_for(&app.a, "ttl.test").await,
        first,
        "a retry returns the same token"
    );

    app.publish("ttl.test", &[&first]).await;
    app.clock.advance(TOKEN_TTL);
    let r = app.verify(&app.a, "ttl.test").await;
    r.assert_error(400);
    assert!(r.description().contains("expired"), "{}", r.description());

    let second = app.token_for(&app.a, "ttl.test").await;
    assert_ne!(second, first, "an expired token is replaced");
    // The old token no longer proves anything; the new one does.
    let r = app.verify(&app.a, "ttl.test").await;
    r.assert_error(400);
    app.publish("ttl.test", &[&second]).await;
    let r = app.verify(&app.a, "ttl.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

pub async fn unclaim_accepts_base64_domains(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (domain, encoded) in [
        (
            "b64.test",
            base64::engine::general_purpose::STANDARD.encode("b64.test"),
        ),
        (
            "url-safe.test",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("url-safe.test"),
        ),
    ] {
        app.verified(&app.a, domain).await;
        let r = app.claim(&app.a, &[domain]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = app
            .action(&app.a, "unclaimDomain", json!({"domain": encoded}))
            .await;
        assert_eq!(r.status, 204, "{encoded}: {}", r.body);
    }
    let r = app.unclaim(&app.a, "!!not-base64").await;
    r.assert_error(400);
    assert!(
        r.description().starts_with("domain:"),
        "{}",
        r.description()
    );
}

pub async fn legacy_txt_prefix_is_accepted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let token = app.token_for(&app.a, "legacy.test").await;
    app.dns
        .set_txt(
            "legacy.test",
            &[&format!("ciscocidomainverification={token}")],
        )
        .await;
    let r = app.verify(&app.a, "legacy.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

pub async fn another_organizations_token_proves_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let _mine = app.token_for(&app.a, "shared.test").await;
    let theirs = app.token_for(&app.b, "shared.test").await;
    app.publish("shared.test", &[&theirs]).await;
    let r = app.verify(&app.a, "shared.test").await;
    r.assert_error(400);
    assert!(
        r.description().contains(&theirs),
        "reports what it saw: {}",
        r.description()
    );
    let r = app.verify(&app.b, "shared.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

pub async fn listing_is_paginated_with_a_link_header(backend: Backend) {
    let app = TestApp::start(backend).await;
    for d in ["d.test", "a.test", "c.test", "b.test", "e.test"] {
        app.token_for(&app.a, d).await;
    }
    app.token_for(&app.b, "other-org.test").await;
    let mut url = format!("{}/domains?max=2", app.org_url(&app.a));
    let mut seen = Vec::new();
    loop {
        let r = app.get(&app.a, &url).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for item in r.body["items"].as_array().unwrap() {
            assert_eq!(item["status"], "pending");
            assert!(
                item["txtRecordValue"]
                    .as_str()
                    .unwrap()
                    .starts_with("cisco-ci-domain-verification=")
            );
            seen.push(item["domain"].as_str().unwrap().to_owned());
        }
        match r.headers.get("link") {
            Some(link) => {
                let link = link.to_str().unwrap();
                assert!(link.ends_with("rel=\"next\""), "{link}");
                url = link[1..link.find('>').unwrap()].to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a.test", "b.test", "c.test", "d.test", "e.test"]);
    let r = app
        .get(&app.a, &format!("{}/domains?max=0", app.org_url(&app.a)))
        .await;
    r.assert_error(400);
    assert!(r.description().starts_with("max:"));
    let r = app
        .get(
            &app.a,
            &format!("{}/domains?cursor=%%%", app.org_url(&app.a)),
        )
        .await;
    r.assert_error(400);
}
