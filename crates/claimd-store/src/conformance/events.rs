//! The event log.

use std::sync::Arc;

use claimd_domain::{DomainState, LookupOutcome, LookupSummary, RecheckConfig};

use super::{TTL, actor, at, found, name, org, req};
use crate::domains::{Proof, Verification};
use crate::events::EventKind;
use crate::store::Store;

pub async fn lookups_leave_their_evidence(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = name("example.com");
    let rec = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    let check = LookupSummary {
        at: at(2),
        outcome: LookupOutcome::NotFound,
        detail: "no TXT at example.com".into(),
        evidence: r#"{"outcome":"not_found","perspectives":[]}"#.into(),
    };
    store
        .record_failed_lookup(&actor(), &a, &d, &check)
        .await
        .unwrap();
    let after = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(after.state, DomainState::Pending);
    let last = after.last_lookup.unwrap();
    assert_eq!(
        (last.at, last.outcome.as_str(), last.detail.as_str()),
        (check.at, "not_found", "no TXT at example.com")
    );
    // The event log keeps the full evidence, of failures and of the verification.
    let events = store.list_events(&a, &d).await.unwrap();
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::LookupFailed));
    assert_eq!(
        events.last().unwrap().detail.as_deref(),
        Some(check.evidence.as_str())
    );
    let v = Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: rec.token,
            lookup: found(at(3)),
        }),
        claim: false,
        reserve_domain: false,
        recheck: RecheckConfig::default(),
    };
    store
        .complete_verification(&actor(), &a, &v, at(3))
        .await
        .unwrap();
    let events = store.list_events(&a, &d).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind, last.detail.as_deref()),
        (EventKind::Verified, Some(found(at(3)).evidence.as_str()))
    );
}
