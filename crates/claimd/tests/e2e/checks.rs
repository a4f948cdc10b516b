//! The dry-run check and the evidence kept for every verification attempt.

use claimd_domain::DomainName;
use claimd_store::EventKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp};

pub async fn dry_run_reports_without_changing_anything(backend: Backend) {
    let app = TestApp::start(backend).await;
    let token = app.token_for(&app.a, "dry.test").await;
    let check_url = format!("{}/domains/ZHJ5LnRlc3Q/check", app.org_url(&app.a));
    let check = || app.send(app.client.post(&check_url).bearer_auth(&app.a.token));
    let events_before = app
        .store
        .list_events(&app.a.id, &DomainName::parse("dry.test").unwrap())
        .await
        .unwrap()
        .len();

    let r = check().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["verified"], false);
    assert_eq!(r.body["outcome"], "nxdomain");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["name"], "dry.test.");
    assert_eq!(
        r.body["expected"],
        format!("cisco-ci-domain-verification={token}")
    );
    assert!(
        r.body["description"]
            .as_str()
            .unwrap()
            .contains("dig @127.0.0.1")
    );

    app.publish("dry.test", &[&token]).await;
    let r = check().await;
    assert_eq!(
        (r.body["verified"].clone(), r.body["status"].clone()),
        (json!(true), json!("pending")),
        "{}",
        r.body
    );
    assert_eq!(r.body["perspectives"][0]["rcode"], "NOERROR");

    // Removed again: the very next check sees it gone (no cache anywhere on the path).
    app.dns.remove_txt("dry.test").await;
    let r = check().await;
    assert_eq!(r.body["verified"], false, "{}", r.body);

    let events_after = app
        .store
        .list_events(&app.a.id, &DomainName::parse("dry.test").unwrap())
        .await
        .unwrap()
        .len();
    assert_eq!(events_before, events_after, "a dry run records nothing");
    let rec = app.domain(&app.a, "dry.test").await;
    assert_eq!(rec.body["status"], "pending");
    assert!(rec.body["lastCheck"].is_null(), "{}", rec.body);

    // Unknown domain: 404; another organization's credential: 403; read-only: 403.
    let r = app
        .send(
            app.client
                .post(format!(
                    "{}/domains/bm9uZS50ZXN0/check",
                    app.org_url(&app.a)
                ))
                .bearer_auth(&app.a.token),
        )
        .await;
    r.assert_error(404);
    let r = app
        .send(app.client.post(&check_url).bearer_auth(&app.b.token))
        .await;
    r.assert_error(403);
}

pub async fn every_attempt_leaves_evidence(backend: Backend) {
    let app = TestApp::start(backend).await;
    let token = app.token_for(&app.a, "evidence.test").await;
    app.dns
        .set_txt(
            "evidence.test",
            &["v=spf1 -all", "\"cisco-ci-domain-verification=oops\""],
        )
        .await;
    let r = app.verify(&app.a, "evidence.test").await;
    r.assert_error(400);
    assert!(r.description().contains("Hint:"), "{}", r.description());
    app.publish("evidence.test", &[&token]).await;
    let r = app.verify(&app.a, "evidence.test").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let events = app
        .store
        .list_events(&app.a.id, &DomainName::parse("evidence.test").unwrap())
        .await
        .unwrap();
    let evidence: Vec<(EventKind, Value)> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LookupFailed | EventKind::Verified))
        .map(|e| {
            (
                e.kind,
                serde_json::from_str(e.detail.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(evidence.len(), 2);
    let (kind, failed) = &evidence[0];
    assert_eq!(*kind, EventKind::LookupFailed);
    assert_eq!(failed["outcome"], "wrong_value");
    assert_eq!(failed["perspectives"][0]["rcode"], "NOERROR");
    assert_eq!(
        failed["perspectives"][0]["seen"].as_array().unwrap().len(),
        2
    );
    assert!(
        failed["perspectives"][0]["servers"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(!failed["hints"].as_array().unwrap().is_empty());
    let (kind, verified) = &evidence[1];
    assert_eq!(*kind, EventKind::Verified);
    assert_eq!(verified["outcome"], "verified");
    assert_eq!(
        verified["expected"],
        format!("cisco-ci-domain-verification={token}")
    );
}
