//! Domains: the lifecycle, its rules, and claims under contention.

use std::sync::Arc;
use std::time::Duration;

use claimd_domain::{
    ClaimFlags, DomainName, DomainRecord, DomainState, HeldElsewhere, LifecycleError, OrgId,
    RecheckConfig, RecheckState, VerificationToken,
};

use super::{TTL, actor, at, claim, event_kinds, found, name, org, req, rule, verified};
use tokio::task::JoinHandle;

use crate::domains::{Proof, TokenRequest, Verification};
use crate::error::{StoreError, StoreResult};
use crate::events::EventKind;
use crate::store::Store;

pub async fn lifecycle_walk(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = name("Example.COM");
    let first = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    assert_eq!(first.state, DomainState::Pending);
    assert_eq!(first.domain.as_str(), "example.com");
    assert_eq!(first.token_expires_at, at(1).plus(TTL));

    let v = Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: first.token.clone(),
            lookup: found(at(2)),
        }),
        claim: false,
        reserve_domain: true,
        recheck: RecheckConfig::default(),
    };
    let summary = store
        .complete_verification(&actor(), &a, &v, at(2))
        .await
        .unwrap();
    assert_eq!(summary.verified, vec![d.clone()]);
    assert!(summary.claimed.is_empty());
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Verified);
    assert!(rec.reserve_domain);
    assert_eq!(rec.verified_at, Some(at(2)));
    assert_eq!(
        rec.last_lookup.as_ref().map(|c| c.outcome.as_str()),
        Some("verified")
    );

    let flags = ClaimFlags {
        force_domain_claim: false,
        claim_domain_only: true,
    };
    store
        .claim_domains(&actor(), &a, std::slice::from_ref(&d), flags, at(3))
        .await
        .unwrap();
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Claimed);
    assert_eq!(rec.flags, flags);
    assert_eq!(rec.claimed_at, Some(at(3)));
    let summary = store.summarize_domains(&a).await.unwrap();
    assert_eq!((summary.verified.len(), summary.claimed.len()), (1, 1));

    store.unclaim_domain(&actor(), &a, &d, at(4)).await.unwrap();
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Verified);
    assert_eq!(rec.claimed_at, None);

    let summary = store
        .unverify_domain(&actor(), &a, &d, false, at(5))
        .await
        .unwrap();
    assert!(summary.verified.is_empty());
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Pending);
    assert_eq!(rec.token, first.token, "unverify keeps the token");

    store
        .unverify_domain(&actor(), &a, &d, true, at(6))
        .await
        .unwrap();
    assert_eq!(store.find_domain(&a, &d).await.unwrap(), None);

    let kinds: Vec<EventKind> = store
        .list_events(&a, &d)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::TokenIssued,
            EventKind::Verified,
            EventKind::Claimed,
            EventKind::Unclaimed,
            EventKind::Unverified,
            EventKind::Removed
        ]
    );
    let events = store.list_events(&a, &d).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.tracking_id.as_deref() == Some("conformance"))
    );
}

pub async fn token_reissue_and_renewal(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = name("example.com");
    let ttl = Duration::from_millis(100);
    let first = store
        .issue_token(&actor(), &a, &d, req(ttl, 0), at(0))
        .await
        .unwrap();
    let again = store
        .issue_token(&actor(), &a, &d, req(ttl, 0), at(99))
        .await
        .unwrap();
    assert_eq!(again.token, first.token, "a retry returns the same token");
    assert_eq!(again.token_expires_at, first.token_expires_at);
    let renewed = store
        .issue_token(&actor(), &a, &d, req(ttl, 0), at(100))
        .await
        .unwrap();
    assert_ne!(renewed.token, first.token, "an expired token is replaced");
    assert_eq!(renewed.token_expires_at, at(200));
    let kinds = event_kinds(&*store, &a, &d).await;
    assert_eq!(kinds, [EventKind::TokenIssued, EventKind::TokenRenewed]);
}

/// A token request in a task of its own, so that many run at once.
fn spawn_token_request(
    store: &Arc<dyn Store>,
    org: &OrgId,
    domain: &DomainName,
    request: TokenRequest,
    at_ms: i64,
) -> JoinHandle<StoreResult<DomainRecord>> {
    let (store, org, domain) = (store.clone(), org.clone(), domain.clone());
    tokio::spawn(async move {
        store
            .issue_token(&actor(), &org, &domain, request, at(at_ms))
            .await
    })
}

/// The answers to requests for one name all carry one token, and it is the one stored.
async fn assert_one_token(
    store: &dyn Store,
    org: &OrgId,
    domain: &DomainName,
    answers: Vec<JoinHandle<StoreResult<DomainRecord>>>,
) {
    let mut tokens = Vec::new();
    for answer in answers {
        tokens.push(answer.await.unwrap().unwrap().token);
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one token for {domain}");
    let stored = store.find_domain(org, domain).await.unwrap().unwrap();
    assert_eq!(
        stored.token, tokens[0],
        "the token answered is the one stored"
    );
}

/// Token requests run beside each other (many names of one registrable domain at once): the
/// same name asked for many times at once gets one token and one event, a renewal raced by
/// another is not overwritten, and names of one family each get theirs.
pub async fn concurrent_token_requests_agree(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let ttl = Duration::from_millis(100);
    let ask = |domain: &DomainName, at_ms: i64| {
        spawn_token_request(&store, &a, domain, req(ttl, 0), at_ms)
    };
    let d = name("same.example.com");
    for when in [0, 150] {
        // First a new record, then (its token expired) a renewal, each asked 16 times at once.
        let asks: Vec<_> = (0..16).map(|_| ask(&d, when)).collect();
        assert_one_token(&*store, &a, &d, asks).await;
    }
    let kinds = event_kinds(&*store, &a, &d).await;
    assert_eq!(kinds, [EventKind::TokenIssued, EventKind::TokenRenewed]);

    let names: Vec<DomainName> = (0..32)
        .map(|i| name(&format!("n{i}.family.example")))
        .collect();
    let asks: Vec<_> = names.iter().map(|n| ask(n, 0)).collect();
    for t in asks {
        t.await.unwrap().unwrap();
    }
    for n in &names {
        assert!(store.find_domain(&a, n).await.unwrap().is_some(), "{n}");
    }
}

/// Many token requests at once, of every kind — new names, one name asked for many times, a
/// name another organization claims, an organization that does not exist, another already at
/// its cap — each get their own answer, however the store groups them into statements.
pub async fn many_token_requests_at_once_each_get_their_own_answer(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let full = org(&*store, "full").await;
    let taken = verified(&*store, &b, "taken.many.example").await;
    claim(&*store, &b, &taken, at(3)).await.unwrap();
    store
        .issue_token(
            &actor(),
            &full,
            &name("first.full.example"),
            req(TTL, 1),
            at(4),
        )
        .await
        .unwrap();
    let ghost = OrgId::new("no-such-organization");
    let same = name("same.many.example");
    let ask = |org: &OrgId, domain: &DomainName, max: u64| {
        spawn_token_request(&store, org, domain, req(TTL, max), 10)
    };
    let (mut fresh, mut repeated, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..48 {
        let d = name(&format!("n{i}.many{}.example", i % 3));
        fresh.push((d.clone(), ask(&a, &d, 100)));
        match i % 8 {
            0 => repeated.push(ask(&a, &same, 0)),
            3 => refused.push(ask(&a, &taken, 0)),
            5 => refused.push(ask(&ghost, &name(&format!("g{i}.example")), 0)),
            7 => refused.push(ask(&full, &name(&format!("f{i}.full.example")), 1)),
            _ => {}
        }
    }
    for (d, answer) in fresh {
        let record = answer.await.unwrap().unwrap();
        assert_eq!(record.domain, d);
        assert_eq!(store.find_domain(&a, &d).await.unwrap(), Some(record));
        assert_eq!(event_kinds(&*store, &a, &d).await, [EventKind::TokenIssued]);
    }
    assert_one_token(&*store, &a, &same, repeated).await;
    assert_eq!(
        event_kinds(&*store, &a, &same).await,
        [EventKind::TokenIssued]
    );
    for answer in refused {
        match answer.await.unwrap() {
            Err(StoreError::Rule(LifecycleError::ClaimedByOther(d))) => assert_eq!(d, taken),
            Err(StoreError::Rule(LifecycleError::TooManyPending { max: 1 })) => {}
            Err(StoreError::UnknownOrganization(id)) => assert_eq!(id, ghost),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(store.find_domain(&a, &taken).await.unwrap(), None);
    let listed = store.list_domains(&full, None, 10).await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the organization at its cap got nothing more"
    );
}

pub async fn claims_are_exclusive(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let d = verified(&*store, &a, "example.com").await;
    verified(&*store, &b, "example.com").await;
    claim(&*store, &a, &d, at(3)).await.unwrap();
    // Claiming again is an idempotent success.
    claim(&*store, &a, &d, at(4)).await.unwrap();

    let err = claim(&*store, &b, &d, at(4)).await;
    assert_eq!(
        rule(err.unwrap_err()),
        LifecycleError::ClaimedByOther(d.clone())
    );
    let err = store
        .issue_token(&actor(), &b, &d, req(TTL, 0), at(4))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::ClaimedByOther(d.clone()));
    let err = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(4))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::ClaimedBySelf(d.clone()));
    // An organization with no record of the name is refused as well, and nothing is written.
    let c = org(&*store, "c").await;
    let err = store
        .issue_token(&actor(), &c, &d, req(TTL, 0), at(4))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::ClaimedByOther(d.clone()));
    assert_eq!(store.find_domain(&c, &d).await.unwrap(), None);
    assert!(event_kinds(&*store, &c, &d).await.is_empty());
    let (own, elsewhere) = store.find_domain_and_claim(&b, &d).await.unwrap();
    assert_eq!(own.map(|r| r.state), Some(DomainState::Verified));
    assert_eq!(elsewhere, HeldElsewhere::Claim);
    let (own, elsewhere) = store.find_domain_and_claim(&a, &d).await.unwrap();
    assert_eq!(own.map(|r| r.state), Some(DomainState::Claimed));
    assert_eq!(
        elsewhere,
        HeldElsewhere::Nothing,
        "its own claim is not another's"
    );
    let (own, elsewhere) = store
        .find_domain_and_claim(&b, &name("nowhere.example"))
        .await
        .unwrap();
    assert!(own.is_none());
    assert_eq!(elsewhere, HeldElsewhere::Nothing);
    assert_eq!(
        store.find_domain(&b, &d).await.unwrap().unwrap().state,
        DomainState::Verified
    );
}

/// A verification with `reserveDomain` keeps the name to its organization while it stays
/// verified: other organizations' token requests (new or for a record they already had) and
/// verifications are refused, a second reservation is refused, and unverifying ends it.
pub async fn reservations_hold_while_verified(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let c = org(&*store, "c").await;
    let d = name("reserved.example");
    // b asked for a token before a reserved the name; c verified a sibling name.
    let b_pending = store
        .issue_token(&actor(), &b, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    let a_token = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    let reserve = |org_token: VerificationToken| Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: org_token,
            lookup: found(at(2)),
        }),
        claim: false,
        reserve_domain: true,
        recheck: RecheckConfig::default(),
    };
    store
        .complete_verification(&actor(), &a, &reserve(a_token.token.clone()), at(2))
        .await
        .unwrap();
    assert!(
        store
            .find_domain(&a, &d)
            .await
            .unwrap()
            .unwrap()
            .reserve_domain
    );
    let (_, elsewhere) = store.find_domain_and_claim(&b, &d).await.unwrap();
    assert_eq!(elsewhere, HeldElsewhere::Reservation);
    let (_, elsewhere) = store.find_domain_and_claim(&a, &d).await.unwrap();
    assert_eq!(elsewhere, HeldElsewhere::Nothing, "its own reservation");

    // A token request by an organization new to the name (the one-statement path) and by one
    // that already had a record (the read path) are both refused; nothing is written.
    for (o, kinds) in [(&c, 0), (&b, 1)] {
        let err = store
            .issue_token(&actor(), o, &d, req(TTL, 0), at(3))
            .await
            .unwrap_err();
        assert_eq!(rule(err), LifecycleError::ReservedByOther(d.clone()));
        assert_eq!(event_kinds(&*store, o, &d).await.len(), kinds);
    }
    assert_eq!(store.find_domain(&c, &d).await.unwrap(), None);
    // b's lookup of its old token proves control, and is still refused: the name is a's.
    let mut b_verifies = reserve(b_pending.token.clone());
    b_verifies.reserve_domain = false;
    let err = store
        .complete_verification(&actor(), &b, &b_verifies, at(3))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::ReservedByOther(d.clone()));
    let rec = store.find_domain(&b, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Pending);
    // Its own verification again is fine (idempotent, no lookup).
    let again = Verification {
        proof: None,
        ..reserve(a_token.token.clone())
    };
    store
        .complete_verification(&actor(), &a, &again, at(3))
        .await
        .unwrap();

    // Unverifying ends the reservation: b may verify now, and a may not reserve again while b
    // has it verified too.
    store
        .unverify_domain(&actor(), &a, &d, false, at(4))
        .await
        .unwrap();
    assert!(
        !store
            .find_domain(&a, &d)
            .await
            .unwrap()
            .unwrap()
            .reserve_domain
    );
    store
        .complete_verification(&actor(), &b, &b_verifies, at(5))
        .await
        .unwrap();
    let err = store
        .complete_verification(&actor(), &a, &reserve(a_token.token.clone()), at(6))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::VerifiedByOther(d.clone()));
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Pending, "nothing changed");
    // Without the reservation a's verification is the usual one.
    let mut plain = reserve(a_token.token.clone());
    plain.reserve_domain = false;
    store
        .complete_verification(&actor(), &a, &plain, at(6))
        .await
        .unwrap();
    // c's token request is a token request like any other again.
    store
        .issue_token(&actor(), &c, &d, req(TTL, 0), at(7))
        .await
        .unwrap();
}

pub async fn hierarchy_conflicts(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let parent = verified(&*store, &a, "example.com").await;
    let child = verified(&*store, &b, "x.example.com").await;
    let b_parent = verified(&*store, &b, "example.com").await;
    let a_child = verified(&*store, &a, "deep.x.example.com").await;
    claim(&*store, &a, &parent, at(3)).await.unwrap();
    // The owner of the parent may also claim below it.
    claim(&*store, &a, &a_child, at(3)).await.unwrap();

    let err = claim(&*store, &b, &child, at(4)).await;
    assert!(matches!(
        rule(err.unwrap_err()),
        LifecycleError::HierarchyConflict { domain, conflicting }
            if domain == child && (conflicting == parent || conflicting == a_child)
    ));
    // The exact name held by the other organization is a plain conflict.
    let err = store
        .claim_domains(&actor(), &b, &[b_parent], ClaimFlags::default(), at(4))
        .await;
    assert_eq!(
        rule(err.unwrap_err()),
        LifecycleError::ClaimedByOther(parent.clone())
    );
    store
        .unclaim_domain(&actor(), &a, &parent, at(5))
        .await
        .unwrap();
    store
        .unclaim_domain(&actor(), &a, &a_child, at(5))
        .await
        .unwrap();
    claim(&*store, &b, &child, at(6)).await.unwrap();
    let err = claim(&*store, &a, &parent, at(7)).await;
    assert_eq!(
        rule(err.unwrap_err()),
        LifecycleError::HierarchyConflict {
            domain: parent.clone(),
            conflicting: child.clone()
        }
    );
    // An unrelated name that merely ends with the same letters does not conflict.
    let lookalike = verified(&*store, &a, "notexample.com").await;
    store
        .claim_domains(&actor(), &a, &[lookalike], ClaimFlags::default(), at(8))
        .await
        .unwrap();
}

pub async fn batch_claims_are_atomic(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let one = verified(&*store, &a, "one.com").await;
    let two = verified(&*store, &a, "two.com").await;
    let pending = name("zzz-pending.com");
    store
        .issue_token(&actor(), &a, &pending, req(TTL, 0), at(1))
        .await
        .unwrap();
    let err = store
        .claim_domains(
            &actor(),
            &a,
            &[one.clone(), two.clone(), pending.clone()],
            ClaimFlags::default(),
            at(3),
        )
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::NotVerified(pending));
    for d in [&one, &two] {
        assert_eq!(
            store.find_domain(&a, d).await.unwrap().unwrap().state,
            DomainState::Verified
        );
    }
    let err = store
        .claim_domains(&actor(), &a, &[], ClaimFlags::default(), at(3))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::EmptyClaimList);
    // Duplicates in one batch are one claim.
    store
        .claim_domains(
            &actor(),
            &a,
            &[one.clone(), two.clone(), one.clone()],
            ClaimFlags::default(),
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(
        store.summarize_domains(&a).await.unwrap().claimed,
        vec![one, two]
    );
}

pub async fn verify_and_claim_is_atomic(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let d = verified(&*store, &b, "example.com").await;
    claim(&*store, &b, &d, at(3)).await.unwrap();
    let rec = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(1))
        .await;
    assert_eq!(
        rule(rec.unwrap_err()),
        LifecycleError::ClaimedByOther(d.clone())
    );

    // b releases, a gets a token, b claims again while a's lookup runs: a's verify+claim fails
    // as a whole and a stays pending.
    store.unclaim_domain(&actor(), &b, &d, at(4)).await.unwrap();
    let rec = store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(5))
        .await
        .unwrap();
    claim(&*store, &b, &d, at(6)).await.unwrap();
    let v = Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: rec.token,
            lookup: found(at(7)),
        }),
        claim: true,
        reserve_domain: false,
        recheck: RecheckConfig::default(),
    };
    let err = store.complete_verification(&actor(), &a, &v, at(7)).await;
    assert_eq!(
        rule(err.unwrap_err()),
        LifecycleError::ClaimedByOther(d.clone())
    );
    assert_eq!(
        store.find_domain(&a, &d).await.unwrap().unwrap().state,
        DomainState::Pending
    );

    // With the claim released, verify+claim does both.
    store.unclaim_domain(&actor(), &b, &d, at(8)).await.unwrap();
    let summary = store
        .complete_verification(&actor(), &a, &v, at(9))
        .await
        .unwrap();
    assert_eq!(summary.claimed, vec![d.clone()]);
}

pub async fn stale_token_is_refused(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = name("example.com");
    store
        .issue_token(&actor(), &a, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    let v = Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: VerificationToken::generate(),
            lookup: found(at(2)),
        }),
        claim: false,
        reserve_domain: false,
        recheck: RecheckConfig::default(),
    };
    let err = store.complete_verification(&actor(), &a, &v, at(2)).await;
    assert_eq!(
        rule(err.unwrap_err()),
        LifecycleError::TokenExpired(d.clone())
    );
    let other = Verification {
        domain: name("never-requested.com"),
        ..v
    };
    let err = store
        .complete_verification(&actor(), &a, &other, at(2))
        .await;
    assert!(matches!(
        rule(err.unwrap_err()),
        LifecycleError::NoTokenRequested(_)
    ));
}

/// verifyDomain on a record verified when the request began makes no lookup. It is idempotent
/// (and may still reserve or claim); but if the record was unverified meanwhile, nothing proves
/// control any more, and it is refused.
pub async fn a_verification_without_lookup_needs_a_verified_record(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = verified(&*store, &a, "example.com").await;
    let again = Verification {
        domain: d.clone(),
        proof: None,
        claim: false,
        reserve_domain: true,
        recheck: RecheckConfig::default(),
    };
    let summary = store
        .complete_verification(&actor(), &a, &again, at(3))
        .await
        .unwrap();
    assert_eq!(summary.verified, vec![d.clone()]);
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert!(rec.reserve_domain);
    assert_eq!(rec.verified_at, Some(at(2)), "not verified anew");
    let kinds = event_kinds(&*store, &a, &d).await;
    assert_eq!(kinds, [EventKind::TokenIssued, EventKind::Verified]);

    store
        .unverify_domain(&actor(), &a, &d, false, at(4))
        .await
        .unwrap();
    let claim_too = Verification {
        claim: true,
        ..again
    };
    let err = store
        .complete_verification(&actor(), &a, &claim_too, at(5))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::UnverifiedMeanwhile(d.clone()));
    let rec = store.find_domain(&a, &d).await.unwrap().unwrap();
    assert_eq!(rec.state, DomainState::Pending);
}

pub async fn unverify_and_unclaim_rules(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let d = verified(&*store, &a, "example.com").await;
    let unknown = name("unknown.com");
    let err = store
        .unclaim_domain(&actor(), &a, &d, at(3))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::NotClaimed(d.clone()));
    let err = store
        .unclaim_domain(&actor(), &a, &unknown, at(3))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::NotAssociated(unknown.clone()));
    let err = store
        .unverify_domain(&actor(), &a, &unknown, false, at(3))
        .await
        .unwrap_err();
    assert_eq!(rule(err), LifecycleError::NotAssociated(unknown));
    claim(&*store, &a, &d, at(3)).await.unwrap();
    for remove in [false, true] {
        let err = store
            .unverify_domain(&actor(), &a, &d, remove, at(4))
            .await
            .unwrap_err();
        assert_eq!(rule(err), LifecycleError::StillClaimed(d.clone()));
    }
    assert_eq!(
        store.find_domain(&a, &d).await.unwrap().unwrap().state,
        DomainState::Claimed
    );
}

pub async fn listing_pages_in_name_order(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    for n in ["c.com", "a.com", "e.com", "b.com", "d.com"] {
        store
            .issue_token(&actor(), &a, &name(n), req(TTL, 0), at(1))
            .await
            .unwrap();
    }
    store
        .issue_token(&actor(), &b, &name("b-only.com"), req(TTL, 0), at(1))
        .await
        .unwrap();
    let page1 = store.list_domains(&a, None, 2).await.unwrap();
    let names = |v: &[claimd_domain::DomainRecord]| {
        v.iter().map(|r| r.domain.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&page1), ["a.com", "b.com"]);
    let page2 = store
        .list_domains(&a, Some(&page1[1].domain), 2)
        .await
        .unwrap();
    assert_eq!(names(&page2), ["c.com", "d.com"]);
    let page3 = store
        .list_domains(&a, Some(&page2[1].domain), 2)
        .await
        .unwrap();
    assert_eq!(names(&page3), ["e.com"]);
}

/// 50 concurrent claims of one domain by two verified organizations: exactly one organization
/// ends up holding it and every request of the other is refused with a rule, never an error.
pub async fn concurrent_claims_have_one_winner(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let d = verified(&*store, &a, "race.example").await;
    verified(&*store, &b, "race.example").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let who = if i % 2 == 0 { a.clone() } else { b.clone() };
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let r = store
                .claim_domains(&actor(), &who, &[d], ClaimFlags::default(), at(10))
                .await;
            (who, r)
        }));
    }
    let mut winners = std::collections::HashSet::new();
    let mut refusals = 0;
    for t in tasks {
        let (who, r) = t.await.unwrap();
        match r {
            Ok(()) => {
                winners.insert(who);
            }
            Err(StoreError::Rule(LifecycleError::ClaimedByOther(_))) => refusals += 1,
            Err(other) => panic!("unexpected failure under contention: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one organization wins");
    assert_eq!(refusals, 25, "every request of the loser is refused");
    let winner = winners.into_iter().next().unwrap();
    let loser = if winner == a { &b } else { &a };
    assert_eq!(
        store.find_domain(&winner, &d).await.unwrap().unwrap().state,
        DomainState::Claimed
    );
    assert_eq!(
        store.find_domain(loser, &d).await.unwrap().unwrap().state,
        DomainState::Verified
    );
}

/// A parent and a child claimed at the same moment by two organizations, round after round:
/// never both. (Without per-family serialization the two rule checks can pass together.)
pub async fn concurrent_parent_and_child_claims_have_one_winner(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    for round in 0..60 {
        let parent = verified(&*store, &a, &format!("r{round}.example")).await;
        let child = verified(&*store, &b, &format!("x.r{round}.example")).await;
        let claim_a = {
            let (store, a, parent) = (store.clone(), a.clone(), parent.clone());
            tokio::spawn(async move { claim(&*store, &a, &parent, at(10)).await })
        };
        let claim_b = {
            let (store, b, child) = (store.clone(), b.clone(), child.clone());
            tokio::spawn(async move { claim(&*store, &b, &child, at(10)).await })
        };
        let (ra, rb) = (claim_a.await.unwrap(), claim_b.await.unwrap());
        match (&ra, &rb) {
            (Ok(()), Err(StoreError::Rule(LifecycleError::HierarchyConflict { .. })))
            | (Err(StoreError::Rule(LifecycleError::HierarchyConflict { .. })), Ok(())) => {}
            other => panic!("round {round}: {other:?}"),
        }
    }
}

pub async fn pending_domains_are_capped(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let issue = |org: OrgId, d: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .issue_token(&actor(), &org, &name(d), req(TTL, 2), at(now))
                .await
        }
    };
    issue(a.clone(), "one.com", 1).await.unwrap();
    issue(a.clone(), "two.com", 1).await.unwrap();
    let err = issue(a.clone(), "three.com", 1).await.unwrap_err();
    assert_eq!(rule(err), LifecycleError::TooManyPending { max: 2 });
    assert_eq!(
        store.find_domain(&a, &name("three.com")).await.unwrap(),
        None
    );
    assert!(
        event_kinds(&*store, &a, &name("three.com"))
            .await
            .is_empty()
    );
    // Asking again for a pending domain is not a new one; other organizations are unaffected.
    issue(a.clone(), "one.com", 2).await.unwrap();
    issue(b.clone(), "three.com", 2).await.unwrap();
    // A verified domain no longer counts.
    let rec = store
        .find_domain(&a, &name("one.com"))
        .await
        .unwrap()
        .unwrap();
    let v = Verification {
        domain: name("one.com"),
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
    issue(a.clone(), "three.com", 4).await.unwrap();
}

pub async fn bulk_import(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let b = org(&*store, "b").await;
    let record = |org: &OrgId, i: usize, state: DomainState| DomainRecord {
        org_id: org.clone(),
        domain: name(&format!("d{i}.bulk.example")),
        state,
        token: VerificationToken::generate(),
        token_expires_at: at(1000),
        reserve_domain: false,
        flags: ClaimFlags::default(),
        created_at: at(1),
        updated_at: at(1),
        verified_at: (state != DomainState::Pending).then(|| at(1)),
        claimed_at: (state == DomainState::Claimed).then(|| at(1)),
        last_lookup: None,
        recheck: RecheckState::default(),
    };
    // A user of b in a domain the import claims for a: marked as a claim made here would.
    let bob = store
        .create_user(
            &actor(),
            &b,
            &crate::conformance::users::fields("bob@d2.bulk.example", None),
            claimd_domain::AccountStatus::Active,
            at(1),
        )
        .await
        .unwrap();
    let records: Vec<DomainRecord> = (0..1000)
        .map(|i| {
            record(
                &a,
                i,
                [
                    DomainState::Pending,
                    DomainState::Verified,
                    DomainState::Claimed,
                ][i % 3],
            )
        })
        .collect();
    assert_eq!(
        store
            .import_domains(&actor(), records.clone())
            .await
            .unwrap(),
        1000
    );
    let found = store
        .find_domain(&a, &records[2].domain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.state, found.token),
        (DomainState::Claimed, records[2].token.clone())
    );
    let events = store.list_events(&a, &records[2].domain).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Imported]
    );
    let status = |store: Arc<dyn Store>, b: OrgId, id: claimd_domain::UserId| async move {
        store
            .find_user(&b, &id)
            .await
            .unwrap()
            .unwrap()
            .account_status
    };
    assert_eq!(
        status(store.clone(), b.clone(), bob.id.clone()).await,
        claimd_domain::AccountStatus::Transient
    );
    // The claim constraint holds for imports too, and a failed import changes nothing.
    let clash = vec![
        record(&b, 5000, DomainState::Pending),
        record(&b, 2, DomainState::Claimed),
    ];
    assert!(store.import_domains(&actor(), clash).await.is_err());
    assert_eq!(
        store
            .find_domain(&b, &name("d5000.bulk.example"))
            .await
            .unwrap(),
        None
    );
    // Imported records follow the lifecycle like any other.
    store
        .unclaim_domain(&actor(), &a, &records[2].domain, at(5))
        .await
        .unwrap();
    assert_eq!(
        status(store.clone(), b.clone(), bob.id.clone()).await,
        claimd_domain::AccountStatus::Active
    );
}

pub async fn gauges_count_what_the_database_holds(store: Arc<dyn Store>) {
    let empty = store.gauges(at(0)).await.unwrap();
    assert_eq!(
        empty.domains,
        vec![("pending", 0), ("verified", 0), ("claimed", 0)],
        "every state, even at zero"
    );
    let a = org(&*store, "a").await;
    store
        .issue_token(&actor(), &a, &name("pending.com"), req(TTL, 0), at(1))
        .await
        .unwrap();
    verified(&*store, &a, "verified.com").await;
    let c = verified(&*store, &a, "claimed.com").await;
    claim(&*store, &a, &c, at(3)).await.unwrap();
    let now = store.gauges(at(4)).await.unwrap();
    assert_eq!(
        now.domains,
        vec![("pending", 1), ("verified", 1), ("claimed", 1)]
    );
    assert_eq!((now.rechecks_due, now.domains_at_risk), (0, 0));
    let month = Duration::from_secs(30 * 24 * 3600);
    let later = store.gauges(at(4).plus(month)).await.unwrap();
    assert_eq!(
        later.rechecks_due, 2,
        "both verified domains are due by then"
    );
    assert_eq!(later.deliveries_pending, 0);
    let connections = store.connections();
    assert!(
        connections.open >= 1 && connections.idle <= connections.open,
        "{connections:?}"
    );
}
