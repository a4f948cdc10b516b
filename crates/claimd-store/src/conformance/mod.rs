//! The behaviour every [`Store`] implementation must show, one section per aggregate. An
//! implementation crate runs the whole suite with
//! [`conformance_suite!`](crate::conformance_suite), giving it an async function that opens a
//! fresh, empty store (and a guard that keeps it alive). A new aggregate adds its section here
//! and its cases to the macro.

use std::time::Duration;

use claimd_domain::{
    ClaimFlags, DomainName, LifecycleError, LookupOutcome, LookupSummary, OrgId, RecheckConfig,
    Timestamp, VerificationToken,
};

use crate::domains::{Proof, TokenRequest, Verification};
use crate::error::StoreError;
use crate::events::{Actor, EventKind};
use crate::store::Store;

pub mod credentials;
pub mod domains;
pub mod events;
pub mod fleet;
pub mod organizations;
pub mod rechecks;
pub mod sessions;
pub mod users;
pub mod webhooks;

/// Generates one `#[tokio::test]` per conformance case, in a module per section.
#[macro_export]
macro_rules! conformance_suite {
    ($open:path) => {
        mod conformance {
            $crate::conformance_suite!(@section $open; organizations:
                first_organization_once, unknown_organization_is_refused);
            $crate::conformance_suite!(@section $open; credentials: credentials_round_trip);
            $crate::conformance_suite!(@section $open; fleet:
                members_count_while_their_heartbeat_is_recent);
            $crate::conformance_suite!(@section $open; sessions:
                sessions_live_while_used_and_end_when_idle_old_or_ended,
                a_flash_is_shown_once_and_dead_sessions_are_pruned);
            $crate::conformance_suite!(@section $open; users:
                users_are_unique_by_user_name_across_organizations,
                filters_find_exactly_their_users, pages_and_order_are_stable,
                previews_count_what_would_change_and_change_nothing,
                external_users_are_listed_and_converted, the_last_active_full_admin_is_kept);
            $crate::conformance_suite!(@section $open; events:
                lookups_leave_their_evidence, every_change_is_in_the_audit_log,
                audit_pages_neither_skip_nor_repeat, retention_prunes_only_what_it_allows);
            $crate::conformance_suite!(@section $open; rechecks:
                due_domains_are_leased_once, leases_in_a_row_hand_out_each_domain_once,
                released_leases_are_leased_again_at_once, lapses_apply_the_policy,
                results_for_changed_records_are_dropped, organizations_are_updated_field_by_field);
            $crate::conformance_suite!(@section $open; webhooks:
                webhooks_round_trip, events_are_queued_for_the_webhooks_that_want_them,
                deliveries_are_retried_given_up_and_replayed,
                pruned_events_take_their_deliveries_along,
                a_webhook_hears_only_what_happened_after_it_was_registered);
            $crate::conformance_suite!(@section $open; domains:
                lifecycle_walk, token_reissue_and_renewal, concurrent_token_requests_agree,
                many_token_requests_at_once_each_get_their_own_answer,
                claims_are_exclusive,
                reservations_hold_while_verified,
                hierarchy_conflicts, batch_claims_are_atomic, verify_and_claim_is_atomic,
                stale_token_is_refused, a_verification_without_lookup_needs_a_verified_record,
                unverify_and_unclaim_rules, listing_pages_in_name_order,
                concurrent_claims_have_one_winner,
                concurrent_parent_and_child_claims_have_one_winner, pending_domains_are_capped,
                bulk_import, gauges_count_what_the_database_holds);
        }
    };
    (@section $open:path; $section:ident: $($case:ident),* $(,)?) => {
        mod $section {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = $open().await;
                    $crate::conformance::$section::$case(::std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

pub(crate) const TTL: Duration = Duration::from_secs(3600);

pub(crate) fn name(s: &str) -> DomainName {
    DomainName::parse(s).unwrap()
}

pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

pub(crate) fn actor() -> Actor {
    Actor {
        credential_id: None,
        tracking_id: Some("conformance".into()),
        guarded: false,
    }
}

pub(crate) fn found(now: Timestamp) -> LookupSummary {
    LookupSummary {
        at: now,
        outcome: LookupOutcome::Verified,
        detail: "TXT found".into(),
        evidence: r#"{"outcome":"verified"}"#.into(),
    }
}

/// The kinds of `domain`'s events, oldest first.
pub(crate) async fn event_kinds(
    store: &dyn Store,
    org: &OrgId,
    domain: &DomainName,
) -> Vec<EventKind> {
    store
        .list_events(org, domain)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect()
}

pub(crate) async fn org(store: &dyn Store, label: &str) -> OrgId {
    store
        .create_organization(&actor(), label, at(0))
        .await
        .unwrap()
        .id
}

/// Issues a token and records its verification.
pub(crate) async fn verified(store: &dyn Store, org: &OrgId, domain: &str) -> DomainName {
    let d = name(domain);
    let rec = store
        .issue_token(&actor(), org, &d, req(TTL, 0), at(1))
        .await
        .unwrap();
    let v = Verification {
        domain: d.clone(),
        proof: Some(Proof {
            token: rec.token,
            lookup: found(at(2)),
        }),
        claim: false,
        reserve_domain: false,
        recheck: RecheckConfig::default(),
    };
    store
        .complete_verification(&actor(), org, &v, at(2))
        .await
        .unwrap();
    d
}

pub(crate) async fn claim(
    store: &dyn Store,
    org: &OrgId,
    d: &DomainName,
    now: Timestamp,
) -> crate::error::StoreResult<()> {
    store
        .claim_domains(
            &actor(),
            org,
            std::slice::from_ref(d),
            ClaimFlags::default(),
            now,
        )
        .await
}

pub(crate) fn req(ttl: Duration, max_pending: u64) -> TokenRequest {
    TokenRequest {
        fresh: VerificationToken::generate(),
        ttl,
        max_pending,
    }
}

pub(crate) fn rule(err: StoreError) -> LifecycleError {
    match err {
        StoreError::Rule(r) => r,
        other => panic!("expected a rule refusal, got {other:?}"),
    }
}
