//! The re-check schedule: leases, results, transitions.

use std::sync::Arc;
use std::time::Duration;

use claimd_domain::{
    DomainName, DomainState, LapseAction, LookupOutcome, LookupSummary, OrganizationPatch,
    RecheckConfig, RecheckPolicy, RecheckSettings, RecheckState, RecheckStep, Timestamp,
    plan_recheck,
};

use super::{actor, at, claim, event_kinds, name, org, verified};
use crate::events::EventKind;
use crate::rechecks::{DueRecheck, Lease, RecheckResult};
use crate::store::Store;

fn lease(owner: &str, until: Timestamp) -> Lease {
    Lease {
        owner: owner.to_owned(),
        until,
    }
}

fn lookup(outcome: LookupOutcome, now: Timestamp) -> LookupSummary {
    LookupSummary {
        at: now,
        outcome,
        detail: format!("looked up: {}", outcome.as_str()),
        evidence: format!(r#"{{"outcome":"{}"}}"#, outcome.as_str()),
    }
}

/// What a re-check of `due` concluding `outcome` at `now` records, under `policy`.
fn result(
    due: &DueRecheck,
    outcome: LookupOutcome,
    now: Timestamp,
    policy: &RecheckPolicy,
) -> RecheckResult {
    let (step, state) = plan_recheck(&due.record, outcome, now, policy, Duration::ZERO);
    RecheckResult {
        org_id: due.record.org_id.clone(),
        domain: due.record.domain.clone(),
        token: due.record.token.clone(),
        lookup: lookup(outcome, now),
        step,
        state,
    }
}

fn policy(lapse_action: LapseAction) -> RecheckPolicy {
    RecheckPolicy {
        interval: Duration::from_secs(3600),
        grace: Duration::from_secs(600),
        lapse_action,
    }
}

/// A verification schedules the first re-check one interval ahead, by the organization's own
/// interval when it chose one; due domains are leased to one worker at a time; a lease that
/// ran out is taken by the next; pending domains are never leased.
pub async fn due_domains_are_leased_once(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let two_hours = Duration::from_secs(7200);
    let patch = OrganizationPatch {
        recheck_interval: Some(Some(two_hours)),
        ..OrganizationPatch::default()
    };
    store
        .update_organization(&actor(), &a, &patch, at(1))
        .await
        .unwrap();
    let d = verified(&*store, &a, "example.com").await;
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    let due = rec.recheck.due_at.expect("scheduled by the verification");
    // Verified at at(2): due two hours later plus at most a tenth of it.
    assert!(
        due >= at(2).plus(two_hours) && due < at(2).plus(two_hours * 11 / 10),
        "{due:?}"
    );
    store
        .issue_token(
            &actor(),
            &a,
            &name("pending.com"),
            super::req(super::TTL, 0),
            at(1),
        )
        .await
        .unwrap();

    let late = due.plus(Duration::from_secs(1));
    assert!(
        store
            .lease_due_rechecks(&lease("w1", at(0)), at(3), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let first = store
        .lease_due_rechecks(&lease("w1", late.plus(Duration::from_secs(60))), late, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "the verified domain only");
    assert_eq!(first[0].record.domain, d);
    assert_eq!(first[0].settings.interval, Some(two_hours));
    let second = store
        .lease_due_rechecks(&lease("w2", late.plus(Duration::from_secs(60))), late, 10)
        .await
        .unwrap();
    assert!(second.is_empty(), "leased to w1 already");
    // w1 died: once its lease ran out, w2 takes the domain.
    let after = late.plus(Duration::from_secs(61));
    let taken = store
        .lease_due_rechecks(&lease("w2", after.plus(Duration::from_secs(60))), after, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // w1's late result no longer counts; w2's does, and moves the schedule.
    let p = RecheckConfig::default().policy(&first[0].settings);
    let stale = result(&first[0], LookupOutcome::Verified, after, &p);
    assert_eq!(
        store
            .record_rechecks(&actor(), Some("w1"), vec![stale], after)
            .await
            .unwrap(),
        0
    );
    let fresh = result(&taken[0], LookupOutcome::Verified, after, &p);
    assert_eq!(
        store
            .record_rechecks(&actor(), Some("w2"), vec![fresh], after)
            .await
            .unwrap(),
        1
    );
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.recheck.due_at, Some(after.plus(two_hours)));
    let last = rec.last_lookup.unwrap();
    assert_eq!((last.at, last.outcome), (after, LookupOutcome::Verified));
    // Routine re-checks leave no event.
    let kinds = event_kinds(&*store, &a, &d).await;
    assert_eq!(kinds, [EventKind::TokenIssued, EventKind::Verified]);
    // Released: nothing due until the next check.
    assert!(
        store
            .lease_due_rechecks(&lease("w3", after.plus(two_hours)), after, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Leases taken one after another by one worker, with the same owner and expiry, hand out
/// each due domain once, never more than asked for, soonest due first.
pub async fn leases_in_a_row_hand_out_each_domain_once(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let mut domains = Vec::new();
    for i in 0..5 {
        domains.push(verified(&*store, &a, &format!("d{i}.example.com")).await);
    }
    // Past every due time (one interval and its jitter after the verification).
    let late = at(2).plus(Duration::from_secs(3 * 24 * 3600));
    let same = lease("w", late.plus(Duration::from_secs(60)));
    let mut seen = Vec::new();
    let mut last_due = None;
    for expected in [2, 2, 1, 0] {
        let taken = store.lease_due_rechecks(&same, late, 2).await.unwrap();
        assert_eq!(taken.len(), expected, "leased {seen:?} before");
        for due in taken {
            let due_at = due.record.recheck.due_at;
            assert!(
                last_due <= due_at,
                "soonest due first: {last_due:?} then {due_at:?}"
            );
            last_due = due_at;
            assert!(
                !seen.contains(&due.record.domain),
                "{} twice",
                due.record.domain
            );
            seen.push(due.record.domain);
        }
    }
    seen.sort();
    assert_eq!(seen, domains);
}

/// A worker that stops gives back the leases it holds: another worker leases those domains at
/// once, long before the leases would have run out; the leases of other workers stay.
pub async fn released_leases_are_leased_again_at_once(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    for i in 0..4 {
        verified(&*store, &a, &format!("d{i}.example.com")).await;
    }
    let late = at(2).plus(Duration::from_secs(3 * 24 * 3600));
    let hour = Duration::from_secs(3600);
    let stopping = store
        .lease_due_rechecks(&lease("stopping", late.plus(hour)), late, 3)
        .await
        .unwrap();
    let other = store
        .lease_due_rechecks(&lease("other", late.plus(hour)), late, 3)
        .await
        .unwrap();
    assert_eq!((stopping.len(), other.len()), (3, 1));
    assert_eq!(store.release_rechecks("stopping", late).await.unwrap(), 3);
    assert_eq!(store.release_rechecks("stopping", late).await.unwrap(), 0);
    // A minute later, with every lease still running: only the given-back domains are free.
    let next = store
        .lease_due_rechecks(
            &lease("next", late.plus(hour)),
            late.plus(Duration::from_secs(60)),
            10,
        )
        .await
        .unwrap();
    let names = |due: &[DueRecheck]| {
        let mut names: Vec<DomainName> = due.iter().map(|d| d.record.domain.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&next), names(&stopping));
}

/// At risk, then lapsed by each policy: the record, the claim and the events follow.
pub async fn lapses_apply_the_policy(store: Arc<dyn Store>) {
    for action in LapseAction::ALL {
        let a = org(&*store, action.as_str()).await;
        let d = verified(&*store, &a, &format!("{}.example", action.as_str())).await;
        claim(&*store, &a, &d, at(3)).await.unwrap();
        let p = policy(action);
        let owner = format!("w-{}", action.as_str());
        let due_at = |store: Arc<dyn Store>, now: Timestamp| {
            let owner = owner.clone();
            async move {
                store
                    .lease_due_rechecks(&lease(&owner, now.plus(Duration::from_secs(30))), now, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|due| {
                        due.record.domain.registrable() == format!("{}.example", action.as_str())
                    })
                    .expect("due")
            }
        };
        // Past the first re-check (a day, and up to a tenth more).
        let t1 = at(0).plus(Duration::from_secs(27 * 3600));
        let due = due_at(store.clone(), t1).await;
        let gone = result(&due, LookupOutcome::NotFound, t1, &p);
        assert!(matches!(gone.step, RecheckStep::AtRisk { .. }));
        store
            .record_rechecks(&actor(), Some(&owner), vec![gone], t1)
            .await
            .unwrap();
        let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
        assert_eq!(
            rec.state,
            DomainState::Claimed,
            "still claimed while at risk"
        );
        assert_eq!(rec.recheck.failing_since, Some(t1));
        let summary = store.summarize_domains(&a).await.unwrap();
        assert_eq!(summary.claimed, vec![d.clone()], "and in the lists");

        let t2 = t1.plus(Duration::from_secs(600));
        let due = due_at(store.clone(), t2).await;
        let still = result(&due, LookupOutcome::WrongValue, t2, &p);
        assert_eq!(still.step, RecheckStep::Lapse(action));
        store
            .record_rechecks(&actor(), Some(&owner), vec![still], t2)
            .await
            .unwrap();
        let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
        let kinds = event_kinds(&*store, &a, &d).await;
        let tail: &[EventKind] = match action {
            LapseAction::Unverify => {
                assert_eq!(rec.state, DomainState::Pending);
                assert_eq!(rec.recheck, RecheckState::default(), "no more re-checks");
                &[
                    EventKind::AtRisk,
                    EventKind::Lapsed,
                    EventKind::Unclaimed,
                    EventKind::Unverified,
                ]
            }
            LapseAction::Unclaim => {
                assert_eq!(rec.state, DomainState::Verified);
                assert_eq!(rec.recheck.lapsed_at, Some(t2));
                &[EventKind::AtRisk, EventKind::Lapsed, EventKind::Unclaimed]
            }
            LapseAction::Keep => {
                assert_eq!(rec.state, DomainState::Claimed);
                assert_eq!(rec.recheck.lapsed_at, Some(t2));
                &[EventKind::AtRisk, EventKind::Lapsed]
            }
        };
        assert!(kinds.ends_with(tail), "{action:?}: {kinds:?}");
        let events = store.list_events(&a, &d).await.unwrap();
        let lapsed = events.iter().find(|e| e.kind == EventKind::Lapsed).unwrap();
        assert_eq!(
            lapsed.detail.as_deref(),
            Some(r#"{"outcome":"wrong_value"}"#),
            "the evidence"
        );
    }
}

/// A result for a record that changed meanwhile (unverified, or a new token) is not recorded.
pub async fn results_for_changed_records_are_dropped(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = verified(&*store, &a, "example.com").await;
    let now = at(0).plus(Duration::from_secs(100_000));
    let due = store
        .lease_due_rechecks(&lease("w", now.plus(Duration::from_secs(30))), now, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    store
        .unverify_domain(&actor(), &a, &d, false, now)
        .await
        .unwrap();
    let p = policy(LapseAction::Unverify);
    let routine = result(&due, LookupOutcome::Verified, now, &p);
    let failing = result(&due, LookupOutcome::NotFound, now, &p);
    let recorded = store
        .record_rechecks(&actor(), Some("w"), vec![routine, failing], now)
        .await
        .unwrap();
    assert_eq!(recorded, 0);
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.recheck.due_at),
        (DomainState::Pending, None)
    );
}

/// An organization's resource fields and re-check choices, changed field by field.
pub async fn organizations_are_updated_field_by_field(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let patch = OrganizationPatch {
        name: Some("Acme".into()),
        preferred_language: Some(Some("en_US".into())),
        recheck_grace: Some(Some(Duration::from_secs(3600))),
        lapse_action: Some(Some(LapseAction::Keep)),
        ..OrganizationPatch::default()
    };
    let updated = store
        .update_organization(&actor(), &a, &patch, at(9))
        .await
        .unwrap();
    assert_eq!(
        store.find_organization(&a).await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(updated.name, "Acme");
    assert_eq!(updated.updated_at, at(9));
    assert_eq!(
        updated.recheck,
        RecheckSettings {
            interval: None,
            grace: Some(Duration::from_secs(3600)),
            lapse_action: Some(LapseAction::Keep),
        }
    );
    let back = OrganizationPatch {
        lapse_action: Some(None),
        ..OrganizationPatch::default()
    };
    let updated = store
        .update_organization(&actor(), &a, &back, at(10))
        .await
        .unwrap();
    assert_eq!(updated.recheck.lapse_action, None);
    assert_eq!(
        updated.preferred_language.as_deref(),
        Some("en_US"),
        "unnamed: kept"
    );
    let ghost = claimd_domain::OrgId::generate();
    assert!(matches!(
        store
            .update_organization(&actor(), &ghost, &back, at(10))
            .await,
        Err(crate::error::StoreError::UnknownOrganization(_))
    ));
}
