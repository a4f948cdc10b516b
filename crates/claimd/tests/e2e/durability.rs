//! Clients that disconnect mid-request must not leave a unit of work half done, a transaction
//! open or a lock held.

use std::sync::Arc;
use std::time::Duration;

use claimd_domain::DomainName;
use claimd_store::EventKind;
use serde_json::json;
use sqlx::Connection as _;

use crate::support::{Backend, TestApp};

pub async fn disconnecting_clients_leave_nothing_behind(backend: Backend) {
    let app = Arc::new(TestApp::start(backend).await);
    app.verified(&app.a, "cancel.test").await;
    let permits = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for i in 0..1000u64 {
        let (app, permits) = (app.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let (action, body) = match i % 3 {
                0 => (
                    "getDomainVerificationToken",
                    json!({"domain": format!("c{i}.cancel.test")}),
                ),
                1 => ("claimDomain", json!({"data": [{"domain": "cancel.test"}]})),
                _ => ("unclaimDomain", json!({"domain": "cancel.test"})),
            };
            // The client gives up after a few milliseconds, usually while claimd is working.
            let _ = app
                .client
                .post(format!("{}/actions/{action}", app.org_url(&app.a)))
                .bearer_auth(&app.a.token)
                .json(&body)
                .timeout(Duration::from_millis(1 + i % 15))
                .send()
                .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every kind of write still works afterwards (the guard only catches a hang).
    let guard = Duration::from_secs(30);
    let r = tokio::time::timeout(guard, app.request_token(&app.a, "after.test"))
        .await
        .expect("writes hang after the disconnects");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tokio::time::timeout(guard, app.claim(&app.a, &["cancel.test"]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tokio::time::timeout(guard, app.unclaim(&app.a, "cancel.test"))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    // No unit of work was cut in half: claims and unclaims alternate in the event log, each
    // change with its event.
    let events = app
        .store
        .list_events(&app.a.id, &DomainName::parse("cancel.test").unwrap())
        .await
        .unwrap();
    let flips: Vec<EventKind> = events
        .iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, EventKind::Claimed | EventKind::Unclaimed))
        .collect();
    assert!(flips.windows(2).all(|w| w[0] != w[1]), "{flips:?}");
    assert_eq!(flips.last(), Some(&EventKind::Unclaimed));

    if backend == Backend::Postgres {
        let mut conn = sqlx::PgConnection::connect(&app.database_url())
            .await
            .unwrap();
        // Spawned units of work may still be finishing; give them a bounded moment.
        let mut left = (i64::MAX, i64::MAX);
        for _ in 0..50 {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let locks: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            left = (open, locks);
            if left == (0, 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, (0, 0), "(transactions, advisory locks) left behind");
    }
}
