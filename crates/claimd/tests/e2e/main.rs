//! End-to-end tests: claimd over real HTTP, on a real SQLite file, verifying against a real
//! DNS server on loopback. One test binary; the modules are the features.

mod abuse;
mod audit;
mod auth;
mod binary;
mod checks;
mod console;
mod dnssec;
mod durability;
mod idp;
mod knot;
mod lifecycle;
mod multiprocess;
mod openapi;
mod process;
mod receiver;
mod rechecks;
mod rules;
mod scim;
mod support;
mod webhooks;
mod wire;

/// Runs each listed scenario once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        on_both_stores!(@store sqlite, Sqlite; $($module: [$($name),*]),*);
        on_both_stores!(@store postgres, Postgres; $($module: [$($name),*]),*);
    };
    (@store $store:ident, $backend:ident; $($module:ident: [$($name:ident),*]),*) => {
        mod $store {
            $(
                mod $module {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $name() {
                            crate::$module::$name(crate::support::Backend::$backend).await;
                        }
                    )*
                }
            )*
        }
    };
}

on_both_stores! {
    lifecycle: [full_lifecycle_over_http_and_dns, verify_with_claim_domain_does_both, already_verified_then_claim_through_verify, remove_pending_deletes_the_record, token_reissue_is_stable_until_expiry, unclaim_accepts_base64_domains, legacy_txt_prefix_is_accepted, another_organizations_token_proves_nothing, listing_is_paginated_with_a_link_header],
    scim: [users_round_trip_with_filters_versions_and_refusals, a_claim_marks_other_organizations_users_and_an_unclaim_restores_them, discovery_says_what_is_supported, patch_changes_some_of_a_user_all_or_nothing, a_scim_client_library_round_trips, enforcement_keeps_users_inside_the_verified_domains, previews_answer_what_would_change_and_change_nothing, the_claimant_lists_and_converts_its_external_users, the_last_full_admin_stays],
    rules: [get_token_refusals, verify_refusals, a_verified_org_is_refused_while_another_holds_the_claim, a_reserved_name_stays_with_its_organization, claim_refusals_and_batch_atomicity, unclaim_and_unverify_refusals, hierarchy_conflicts_name_the_claim_not_the_org, dns_server_failure_is_502_and_timeout_is_504, concurrent_claims_over_http],
    auth: [the_authorization_matrix, a_refused_request_changes_nothing],
    checks: [dry_run_reports_without_changing_anything, every_attempt_leaves_evidence],
    dnssec: [signed_answers_prove_and_bogus_ones_never_do],
    durability: [disconnecting_clients_leave_nothing_behind],
    wire: [every_response_carries_a_tracking_id_and_errors_the_webex_shape, unknown_fields_are_ignored_and_health_endpoints_answer],
    rechecks: [a_removed_record_lapses_its_domain_by_policy, a_record_restored_in_time_recovers, an_unreachable_server_never_lapses_a_domain, the_organization_resource_holds_the_recheck_policy, a_recheck_on_demand_applies_the_same_rules],
    audit: [the_audit_log_in_ciscos_shape_with_filters_and_refusals, audit_pages_are_stable_under_concurrent_writes, a_domains_history_carries_its_evidence],
    webhooks: [deliveries_are_signed_both_ways_and_carry_the_new_state, a_receiver_down_for_a_while_gets_every_event, a_slow_receiver_times_out_and_is_retried_without_pile_up, a_failing_webhook_turns_inactive_and_a_replay_delivers_what_it_missed, registration_refuses_bad_input_and_unsafe_targets, the_dispatcher_checks_the_target_again]
}
