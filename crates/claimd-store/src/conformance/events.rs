//! The event log.

use std::sync::Arc;

use claimd_domain::{
    ApiSecret, DomainState, LookupOutcome, LookupSummary, NewCredential, OrganizationPatch,
    RecheckConfig, Timestamp,
};

use super::{TTL, actor, at, found, name, org, req, verified};
use crate::domains::{Proof, Verification};
use crate::events::{Actor, AuditQuery, EventKind, EventTarget};
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

/// Organizations, credentials and their changes are in the audit log too, with who made them;
/// the audit log filters by actor, kind and time.
pub async fn every_change_is_in_the_audit_log(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let admin = Actor {
        credential_id: Some(claimd_domain::CredentialId::new("c-admin")),
        tracking_id: Some("audit".into()),
        guarded: false,
    };
    let credential = store
        .create_credential(
            &admin,
            &NewCredential::org_admin(a.clone(), "ci"),
            &ApiSecret::generate().hash(),
            at(2),
        )
        .await
        .unwrap();
    store
        .revoke_credential(&actor(), &credential.id, at(3))
        .await
        .unwrap();
    store
        .revoke_credential(&actor(), &credential.id, at(4))
        .await
        .unwrap();
    let patch = OrganizationPatch {
        name: Some("A, Inc.".into()),
        ..OrganizationPatch::default()
    };
    store
        .update_organization(&admin, &a, &patch, at(5))
        .await
        .unwrap();
    let d = verified(&*store, &a, "audit.example").await;

    let query = AuditQuery {
        org: a.clone(),
        from: None,
        to: None,
        actor: None,
        kinds: Vec::new(),
        offset: 0,
        limit: 100,
    };
    let all = store.list_audit_events(&query).await.unwrap();
    let kinds: Vec<EventKind> = all.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::OrganizationCreated,
            EventKind::CredentialCreated,
            EventKind::CredentialRevoked,
            EventKind::OrganizationUpdated,
            EventKind::TokenIssued,
            EventKind::Verified
        ],
        "one revocation event for two revocations"
    );
    assert_eq!(
        all[1].event.target,
        EventTarget::Credential(credential.id.clone())
    );
    assert_eq!(all[3].event.detail.as_deref(), Some("changed: displayName"));
    assert_eq!(all[4].event.target, EventTarget::Domain(d.clone()));
    assert_eq!(all[5].event.state.as_deref(), Some("verified"));
    let by_admin = store
        .list_audit_events(&AuditQuery {
            actor: admin.credential_id.clone(),
            ..query.clone()
        })
        .await
        .unwrap();
    let kinds: Vec<EventKind> = by_admin.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::CredentialCreated, EventKind::OrganizationUpdated]
    );
    let credentials_only = store
        .list_audit_events(&AuditQuery {
            kinds: EventKind::in_category("CREDENTIALS"),
            ..query.clone()
        })
        .await
        .unwrap();
    assert_eq!(credentials_only.len(), 2);
    let window = store
        .list_audit_events(&AuditQuery {
            from: Some(at(3)),
            to: Some(at(5)),
            ..query.clone()
        })
        .await
        .unwrap();
    let kinds: Vec<EventKind> = window.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::CredentialRevoked],
        "from inclusive, to exclusive"
    );
    // The credential that made a change is named, with its organization.
    let made = store
        .list_audit_events(&AuditQuery {
            kinds: vec![EventKind::Verified],
            ..query
        })
        .await
        .unwrap();
    assert_eq!(made[0].event.tracking_id.as_deref(), Some("conformance"));
}

/// Pages read while events are written concurrently neither skip nor repeat an event.
pub async fn audit_pages_neither_skip_nor_repeat(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    // Four writers at once: on a database with several writers ids can commit out of order.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(async move {
                for i in 0..30 {
                    let d = name(&format!("w{w}p{i}.example"));
                    store
                        .issue_token(&actor(), &a, &d, req(TTL, 0), at(i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let query = |offset: u64| AuditQuery {
        org: a.clone(),
        from: None,
        to: None,
        actor: None,
        kinds: Vec::new(),
        offset,
        limit: 7,
    };
    let mut read: Vec<i64> = Vec::new();
    loop {
        // Finished before this page was read: an empty page then means the end.
        let finished = writers.iter().all(|w| w.is_finished());
        let page = store
            .list_audit_events(&query(read.len() as u64))
            .await
            .unwrap();
        read.extend(page.iter().map(|e| e.event.id));
        if page.is_empty() && finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let all: Vec<i64> = store
        .list_audit_events(&AuditQuery {
            limit: 1000,
            ..query(0)
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(all.len(), 121, "the organization's creation and 120 tokens");
    assert_eq!(read, all, "every event once, in the same order");
}

/// The log refuses changes, and deletions of events younger than the retention period.
pub async fn retention_prunes_only_what_it_allows(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    // Events dated now, beside the suite's (dated 2023).
    store
        .issue_token(
            &actor(),
            &a,
            &name("recent.example"),
            req(TTL, 0),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let before = store
        .list_audit_events(&everything(&a))
        .await
        .unwrap()
        .len();
    assert_eq!(before, 2);
    let pruned = store
        .prune_events(std::time::Duration::from_secs(3600), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the organization's creation, dated 2023");
    let left = store.list_audit_events(&everything(&a)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.kind, EventKind::TokenIssued);
}

pub(super) fn everything(org: &claimd_domain::OrgId) -> AuditQuery {
    AuditQuery {
        org: org.clone(),
        from: None,
        to: None,
        actor: None,
        kinds: Vec::new(),
        offset: 0,
        limit: 1000,
    }
}
