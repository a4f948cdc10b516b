//! Webhooks and their outbox.

use std::sync::Arc;
use std::time::Duration;

use claimd_domain::{
    OrgId, Timestamp, Webhook, WebhookEvent, WebhookFilter, WebhookId, WebhookResource,
    WebhookSecret, WebhookStatus,
};

use super::{TTL, actor, at, claim, name, org, req, verified};
use crate::events::{EventKind, EventTarget};
use crate::rechecks::Lease;
use crate::store::Store;
use crate::webhooks::{DeliveryOutcome, DeliveryResult, DueDelivery};

fn webhook(org: &OrgId, event: WebhookEvent, filter: &str) -> Webhook {
    Webhook {
        id: WebhookId::generate(),
        org_id: org.clone(),
        name: "hook".into(),
        target_url: "https://receiver.example/hook".into(),
        resource: WebhookResource::Domains,
        event,
        filter: WebhookFilter::parse(filter).unwrap(),
        secret: WebhookSecret::generate(),
        status: WebhookStatus::Active,
        created_by: None,
        created_at: at(0),
        updated_at: at(0),
        failing_since: None,
    }
}

fn lease(owner: &str, now: Timestamp) -> Lease {
    Lease {
        owner: owner.into(),
        until: now.plus(Duration::from_secs(30)),
    }
}

fn outcome(due: &DueDelivery, at: Timestamp, result: DeliveryResult) -> DeliveryOutcome {
    DeliveryOutcome {
        delivery_id: due.id,
        webhook_id: due.webhook.id.clone(),
        at,
        status_code: Some(if result == DeliveryResult::Delivered {
            204
        } else {
            503
        }),
        latency_ms: 3,
        error: None,
        result,
        disable_if_failing_since: Timestamp::from_millis(0),
    }
}

fn domains_of(due: &[DueDelivery]) -> Vec<String> {
    due.iter()
        .map(|d| match &d.event.target {
            EventTarget::Domain(n) => n.to_string(),
            other => panic!("a delivery for {other:?}"),
        })
        .collect()
}

/// Registration, change and removal are kept, and logged as events.
pub async fn webhooks_round_trip(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let mut w = webhook(&a, WebhookEvent::All, "domain=watched.example");
    store.create_webhook(&actor(), &w).await.unwrap();
    assert_eq!(
        store.find_webhook(&a, &w.id).await.unwrap(),
        Some(w.clone())
    );
    assert_eq!(
        store.find_webhook(&b, &w.id).await.unwrap(),
        None,
        "another organization's"
    );
    assert_eq!(store.list_webhooks(&a).await.unwrap(), vec![w.clone()]);
    w.name = "renamed".into();
    w.status = WebhookStatus::Inactive;
    w.updated_at = at(1);
    assert!(store.update_webhook(&actor(), &w).await.unwrap());
    assert_eq!(
        store.find_webhook(&a, &w.id).await.unwrap(),
        Some(w.clone())
    );
    assert!(store.delete_webhook(&actor(), &a, &w.id).await.unwrap());
    assert!(!store.delete_webhook(&actor(), &a, &w.id).await.unwrap());
    assert!(store.list_webhooks(&a).await.unwrap().is_empty());
    let kinds: Vec<EventKind> = store
        .list_audit_events(&super::events::everything(&a))
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::OrganizationCreated,
            EventKind::WebhookCreated,
            EventKind::WebhookUpdated,
            EventKind::WebhookDeleted
        ]
    );
}

/// Each domain event is queued, in its own transaction, for the webhooks that want it — by
/// organization, event and filter — and leased to one dispatcher at a time.
pub async fn events_are_queued_for_the_webhooks_that_want_them(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let all = webhook(&a, WebhookEvent::All, "");
    let claims = webhook(&a, WebhookEvent::Updated, "domain=x.example");
    let created = webhook(&a, WebhookEvent::Created, "");
    let theirs = webhook(&b, WebhookEvent::All, "");
    for w in [&all, &claims, &created, &theirs] {
        store.create_webhook(&actor(), w).await.unwrap();
    }
    let x = verified(&*store, &a, "x.example").await; // token_issued, verified
    claim(&*store, &a, &x, at(3)).await.unwrap();
    store
        .issue_token(&actor(), &a, &name("y.example"), req(TTL, 0), at(4))
        .await
        .unwrap();

    let now = Timestamp::now();
    let due = store
        .lease_due_deliveries(&lease("d1", now), now, 100)
        .await
        .unwrap();
    let per = |w: &Webhook| {
        due.iter()
            .filter(|d| d.webhook.id == w.id)
            .map(|d| d.event.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        per(&all),
        [
            EventKind::TokenIssued,
            EventKind::Verified,
            EventKind::Claimed,
            EventKind::TokenIssued
        ]
    );
    assert_eq!(per(&claims), [EventKind::Verified, EventKind::Claimed]);
    assert_eq!(
        per(&created),
        [EventKind::TokenIssued, EventKind::TokenIssued]
    );
    assert!(
        per(&theirs).is_empty(),
        "another organization's webhook sees nothing"
    );
    let claimed = due
        .iter()
        .find(|d| d.event.kind == EventKind::Claimed)
        .unwrap();
    assert_eq!(claimed.event.state.as_deref(), Some("claimed"));
    assert_eq!(claimed.event.tracking_id.as_deref(), Some("conformance"));
    assert_eq!(domains_of(&due[..1]), ["x.example"]);
    // Leased: another dispatcher gets none of them.
    assert!(
        store
            .lease_due_deliveries(&lease("d2", now), now, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Handed back unattempted: only by its holder, due again when it says, attempts unchanged.
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    assert_eq!(store.release_deliveries("d2", &ids, now).await.unwrap(), 0);
    let soon = now.plus(Duration::from_secs(5));
    assert_eq!(
        store
            .release_deliveries("d1", &ids[..2], soon)
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .lease_due_deliveries(&lease("d2", now), now, 100)
            .await
            .unwrap()
            .is_empty(),
        "not due before the time it was handed back for"
    );
    let again = store
        .lease_due_deliveries(&lease("d2", soon), soon, 100)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        [(ids[0], 0), (ids[1], 0)]
    );
}

/// Delivered is done; a failure is tried again when due; out of time it is given up; a webhook
/// failing for too long turns inactive, and its deliveries wait until a replay.
pub async fn deliveries_are_retried_given_up_and_replayed(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let w = webhook(&a, WebhookEvent::All, "");
    store.create_webhook(&actor(), &w).await.unwrap();
    for d in ["one.example", "two.example", "three.example"] {
        store
            .issue_token(&actor(), &a, &name(d), req(TTL, 0), at(1))
            .await
            .unwrap();
    }
    let t0 = Timestamp::now();
    let due = store
        .lease_due_deliveries(&lease("d", t0), t0, 10)
        .await
        .unwrap();
    assert_eq!(
        domains_of(&due),
        ["one.example", "two.example", "three.example"]
    );
    let later = t0.plus(Duration::from_secs(60));
    let results = vec![
        outcome(&due[0], t0, DeliveryResult::Delivered),
        outcome(&due[1], t0, DeliveryResult::Retry { at: later }),
        outcome(&due[2], t0, DeliveryResult::GaveUp),
    ];
    // A dispatcher whose lease another took records nothing.
    assert_eq!(
        store
            .record_deliveries(&actor(), "other", results.clone())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .record_deliveries(&actor(), "d", results)
            .await
            .unwrap(),
        3
    );
    assert!(
        store
            .lease_due_deliveries(&lease("d", t0), t0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store
        .lease_due_deliveries(&lease("d", later), later, 10)
        .await
        .unwrap();
    assert_eq!(domains_of(&retried), ["two.example"]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(
        retried[0].id, due[1].id,
        "the same delivery: receivers deduplicate by it"
    );
    let log = store.list_delivery_attempts(&a, &w.id, 10).await.unwrap();
    assert_eq!(log.len(), 6, "every attempt, the refused ones too");

    // Failing since long before the cutoff: inactive, and an event says so.
    let cutoff = DeliveryOutcome {
        disable_if_failing_since: later,
        ..outcome(&retried[0], later, DeliveryResult::Retry { at: later })
    };
    store
        .record_deliveries(&actor(), "d", vec![cutoff])
        .await
        .unwrap();
    let now = store.find_webhook(&a, &w.id).await.unwrap().unwrap();
    assert_eq!(now.status, WebhookStatus::Inactive);
    assert!(now.failing_since.is_some());
    let t9 = later.plus(Duration::from_secs(3600));
    assert!(
        store
            .lease_due_deliveries(&lease("d", t9), t9, 10)
            .await
            .unwrap()
            .is_empty(),
        "an inactive webhook gets nothing"
    );
    // Events while inactive are not queued…
    store
        .issue_token(&actor(), &a, &name("four.example"), req(TTL, 0), at(2))
        .await
        .unwrap();
    // …until the webhook is active again and replayed: every event since, delivered or not.
    let active = Webhook {
        status: WebhookStatus::Active,
        failing_since: None,
        ..now
    };
    store.update_webhook(&actor(), &active).await.unwrap();
    let queued = store
        .replay_deliveries(&actor(), &a, &w.id, at(0), t9)
        .await
        .unwrap();
    assert_eq!(queued, 4);
    let again = store
        .lease_due_deliveries(&lease("d", t9), t9, 10)
        .await
        .unwrap();
    let mut names = domains_of(&again);
    names.sort();
    assert_eq!(
        names,
        [
            "four.example",
            "one.example",
            "three.example",
            "two.example"
        ]
    );
    let first = again
        .iter()
        .find(|d| d.id == due[0].id)
        .expect("the delivered one again, same id");
    assert_eq!(first.attempts, 0);
}

/// Events pruned by retention take their deliveries along; the younger ones keep theirs.
pub async fn pruned_events_take_their_deliveries_along(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let w = webhook(&a, WebhookEvent::All, "");
    store.create_webhook(&actor(), &w).await.unwrap();
    // One event dated 2023 (as the suite's are), one now.
    store
        .issue_token(&actor(), &a, &name("old.example"), req(TTL, 0), at(1))
        .await
        .unwrap();
    let now = Timestamp::now();
    store
        .issue_token(&actor(), &a, &name("new.example"), req(TTL, 0), now)
        .await
        .unwrap();
    store
        .prune_events(Duration::from_secs(3600), now)
        .await
        .unwrap();
    let due = store
        .lease_due_deliveries(&lease("d", now), now, 100)
        .await
        .unwrap();
    assert_eq!(domains_of(&due), ["new.example"]);
    // Nothing of the old one is left to lease later, either.
    let later = now.plus(Duration::from_secs(3600));
    let replayed = store
        .replay_deliveries(&actor(), &a, &w.id, at(0), later)
        .await
        .unwrap();
    assert_eq!(replayed, 1, "only the event still kept is replayed");
}

/// A webhook hears of the events after it was registered, not of those before.
pub async fn a_webhook_hears_only_what_happened_after_it_was_registered(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    store
        .issue_token(&actor(), &a, &name("before.example"), req(TTL, 0), at(1))
        .await
        .unwrap();
    let w = Webhook {
        created_at: at(2),
        updated_at: at(2),
        ..webhook(&a, WebhookEvent::All, "")
    };
    store.create_webhook(&actor(), &w).await.unwrap();
    store
        .issue_token(&actor(), &a, &name("after.example"), req(TTL, 0), at(3))
        .await
        .unwrap();
    let now = Timestamp::now();
    let due = store
        .lease_due_deliveries(&lease("d", now), now, 100)
        .await
        .unwrap();
    assert_eq!(domains_of(&due), ["after.example"]);
}
