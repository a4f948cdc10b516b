//! The audit log over HTTP: Cisco's Admin Audit Events shape, paging that neither skips nor
//! repeats while others write, filters, refusals; and one domain's history with its evidence.

use std::collections::HashSet;

use claimd_domain::{ROLE_FULL_ADMIN, SCOPE_ORGANIZATIONS_RW};
use serde_json::{Value, json};

use crate::support::{Backend, Org, Reply, TestApp};

fn events_url(app: &TestApp, query: &str) -> String {
    format!("{}/v1/adminAudit/events?{query}", app.base)
}

/// Every page from `first`, following `Link: rel="next"`; the items in order.
async fn all_pages(app: &TestApp, org: &Org, first: String) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let r = app.get(org, &url).await;
        assert_eq!(r.status, 200, "{}", r.body);
        items.extend(r.body["items"].as_array().unwrap().iter().cloned());
        next = r
            .headers
            .get("link")
            .map(|l| l.to_str().unwrap())
            .and_then(|l| l.strip_prefix('<')?.split_once(">; rel=\"next\""))
            .map(|(url, _)| url.to_owned());
    }
    items
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn the_audit_log_in_ciscos_shape_with_filters_and_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = app.a.id.as_str();
    for i in 0..5 {
        app.token_for(&app.a, &format!("d{i}.audit.test")).await;
    }
    app.verified(&app.a, "claimed.audit.test").await;
    let claim = app.claim(&app.a, &["claimed.audit.test"]).await;
    assert_eq!(claim.status, 200);
    app.token_for(&app.b, "theirs.audit.test").await;
    // Another admin of a's, to filter by.
    let (second, second_id) = app
        .credential(
            Some(&app.a.id),
            &[SCOPE_ORGANIZATIONS_RW],
            &[ROLE_FULL_ADMIN],
            None,
        )
        .await;
    let r = app
        .send(
            app.client
                .post(format!(
                    "{}/actions/getDomainVerificationToken",
                    app.org_url(&app.a)
                ))
                .bearer_auth(&second)
                .json(&json!({"domain": "second.audit.test"})),
        )
        .await;
    assert_eq!(r.status, 200);

    let everything = all_pages(&app, &app.a, events_url(&app, &format!("orgId={a}"))).await;
    // Organization and credential changes are in it too; b's domain is not.
    let changes: Vec<&str> = everything
        .iter()
        .map(|i| i["data"]["change"].as_str().unwrap())
        .collect();
    assert!(changes.contains(&"organization_created"), "{changes:?}");
    assert!(changes.contains(&"credential_created"), "{changes:?}");
    assert_eq!(changes.iter().filter(|c| **c == "token_issued").count(), 7);
    assert!(
        everything
            .iter()
            .all(|i| i["data"]["targetName"] != "theirs.audit.test")
    );
    // Pages of three give the same events in the same order.
    let paged = all_pages(&app, &app.a, events_url(&app, &format!("orgId={a}&max=3"))).await;
    assert_eq!(ids(&paged), ids(&everything));
    assert_eq!(
        ids(&everything).into_iter().collect::<HashSet<_>>().len(),
        everything.len()
    );

    // The claim, in Cisco's shape.
    let claimed = everything
        .iter()
        .find(|i| i["data"]["change"] == "claimed")
        .unwrap();
    assert!(claimed["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(claimed["actorOrgId"], a);
    assert!(claimed["actorId"].is_string());
    let data = &claimed["data"];
    assert_eq!(data["eventCategory"], "DOMAIN_CLAIMS");
    assert_eq!(data["targetType"], "DOMAIN");
    assert_eq!(data["targetName"], "claimed.audit.test");
    assert_eq!(data["status"], "claimed");
    assert_eq!(data["trackingId"], claim.tracking_id());
    assert!(
        data["actionText"]
            .as_str()
            .unwrap()
            .contains("claimed.audit.test"),
        "{data}"
    );
    assert!(data["eventDescription"].is_string());

    // Filters.
    let app = &app;
    let only = |query: String| async move { all_pages(app, &app.a, events_url(app, &query)).await };
    let claims = only(format!("orgId={a}&eventCategories=DOMAIN_CLAIMS")).await;
    assert_eq!(ids(&claims), [claimed["id"].as_str().unwrap()]);
    let two = only(format!(
        "orgId={a}&eventCategories=DOMAIN_CLAIMS,CREDENTIALS"
    ))
    .await;
    assert!(two.len() >= 3, "{two:?}");
    assert!(two.iter().all(|i| {
        ["DOMAIN_CLAIMS", "CREDENTIALS"].contains(&i["data"]["eventCategory"].as_str().unwrap())
    }));
    let by_second = only(format!("orgId={a}&actorId={second_id}")).await;
    assert_eq!(by_second.len(), 1, "{by_second:?}");
    assert_eq!(by_second[0]["data"]["targetName"], "second.audit.test");
    let future = only(format!("orgId={a}&from=2999-01-01T00:00:00Z")).await;
    assert!(future.is_empty());
    let past = only(format!("orgId={a}&to=2000-01-01T00:00:00Z")).await;
    assert!(past.is_empty());
    // Without orgId, an organization's credential reads its own organization.
    let own = all_pages(app, &app.a, events_url(app, "max=200")).await;
    assert_eq!(ids(&own), ids(&everything));

    let categories = app
        .get(
            &app.a,
            &format!("{}/v1/adminAudit/eventCategories", app.base),
        )
        .await;
    assert_eq!(categories.status, 200);
    assert!(
        categories.body["eventCategories"]
            .as_array()
            .unwrap()
            .contains(&json!("DOMAIN_CLAIMS"))
    );

    // Refusals name what is wrong.
    for (query, field) in [
        (format!("orgId={a}&max=201"), "max"),
        (format!("orgId={a}&max=0"), "max"),
        (format!("orgId={a}&max=ten"), "max"),
        (format!("orgId={a}&offset=-1"), "offset"),
        (format!("orgId={a}&from=yesterday"), "from"),
        (format!("orgId={a}&to=2026-13-01T00:00:00Z"), "to"),
        (format!("orgId={a}&eventCategories=NOPE"), "eventCategories"),
    ] {
        let r = app.get(&app.a, &events_url(app, &query)).await;
        r.assert_error(400);
        assert!(
            r.description().starts_with(&format!("{field}:")),
            "{query}: {}",
            r.body
        );
    }
    // Another organization's log is not b's to read.
    let r: Reply = app
        .get(&app.b, &events_url(app, &format!("orgId={a}")))
        .await;
    r.assert_error(403);
    // An operator credential must say which organization.
    let (operator, _) = app
        .credential(None, &[SCOPE_ORGANIZATIONS_RW], &[ROLE_FULL_ADMIN], None)
        .await;
    let r = app
        .send(app.client.get(events_url(app, "")).bearer_auth(&operator))
        .await;
    r.assert_error(400);
    assert!(r.description().starts_with("orgId:"), "{}", r.body);
}

/// Pages read while four writers append: what was read is exactly the start of the log as it
/// stands afterwards — nothing skipped, nothing twice.
pub async fn audit_pages_are_stable_under_concurrent_writes(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::start(backend).await);
    let a = app.a.id.to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    app.token_for(&app.a, &format!("w{w}-{i}.pages.test")).await;
                }
            })
        })
        .collect();
    let mut read = Vec::new();
    let mut offset = 0;
    // Page through while they write, until they are done and a page comes back short.
    loop {
        let done = writers.iter().all(tokio::task::JoinHandle::is_finished);
        let r = app
            .get(
                &app.a,
                &events_url(&app, &format!("orgId={a}&max=7&offset={offset}")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.body["items"].as_array().unwrap().clone();
        offset += page.len();
        let short = page.len() < 7;
        read.extend(page);
        if done && short {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let after = all_pages(
        &app,
        &app.a,
        events_url(&app, &format!("orgId={a}&max=200")),
    )
    .await;
    assert_eq!(ids(&read), ids(&after), "paged while written == read after");
    assert_eq!(
        after
            .iter()
            .filter(|i| i["data"]["change"] == "token_issued")
            .count(),
        160
    );
}

pub async fn a_domains_history_carries_its_evidence(backend: Backend) {
    let app = TestApp::start(backend).await;
    let domain = "history.audit.test";
    let token = app.token_for(&app.a, domain).await;
    app.publish(domain, &["someone-elses-token"]).await;
    let failed = app.verify(&app.a, domain).await;
    assert_ne!(failed.status, 200);
    app.publish(domain, &[&token]).await;
    assert_eq!(app.verify(&app.a, domain).await.status, 200);
    assert_eq!(app.claim(&app.a, &[domain]).await.status, 200);

    let id = claimd_domain::DomainName::parse(domain)
        .unwrap()
        .resource_id();
    let url = format!("{}/domains/{id}/events", app.org_url(&app.a));
    let r = app.get(&app.a, &url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let changes: Vec<&str> = items
        .iter()
        .map(|i| i["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["token_issued", "check_failed", "verified", "claimed"]
    );
    // Each lookup with what every resolver saw.
    let seen = |item: &Value| item["evidence"]["perspectives"][0]["seen"].clone();
    assert_eq!(
        seen(&items[1]),
        json!(["cisco-ci-domain-verification=someone-elses-token"])
    );
    assert_eq!(
        seen(&items[2]),
        json!([format!("cisco-ci-domain-verification={token}")])
    );
    assert_ne!(
        items[1]["evidence"]["outcome"],
        items[2]["evidence"]["outcome"]
    );
    assert!(
        items[1]["evidence"]["dig"]
            .as_str()
            .unwrap()
            .starts_with("dig")
    );
    assert_eq!(items[3]["status"], "claimed");
    assert_eq!(items[1]["trackingId"], failed.tracking_id());

    // Another organization's credential, or a domain never seen: 404.
    app.get(
        &app.b,
        &format!("{}/domains/{id}/events", app.org_url(&app.b)),
    )
    .await
    .assert_error(404);
    let unknown = claimd_domain::DomainName::parse("never.audit.test")
        .unwrap()
        .resource_id();
    app.get(
        &app.a,
        &format!("{}/domains/{unknown}/events", app.org_url(&app.a)),
    )
    .await
    .assert_error(404);
}
