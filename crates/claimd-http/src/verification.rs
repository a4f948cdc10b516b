//! The verify and dry-run sequences. verifyDomain: plan → another organization's claim →
//! lookup limits → DNS lookup (no transaction open) → a failed lookup is recorded and refused,
//! a successful one completes the verification in one unit of work. The dry run: the same
//! lookup, reported and changing nothing — for the route `…/domains/{id}/check` and for
//! `claimd dry-run`.

use axum::http::StatusCode;
use axum::response::Response;
use claimd_dns::{Evidence, Report, Verifier};
use claimd_domain::{DomainName, DomainRecord, Timestamp, VerifyPlan, plan_verification};
use claimd_store::{Change, DomainSummary, Proof, Verification};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::preview;
use crate::state::AppState;

/// What verifyDomain was asked.
pub struct VerifyRequest {
    pub domain: DomainName,
    /// Also claim (both or neither).
    pub claim: bool,
    pub reserve: bool,
}

/// verifyDomain for `caller`: the organization's verified and claimed domains afterwards.
pub async fn verify(
    state: &AppState,
    caller: &Caller,
    request: VerifyRequest,
) -> Result<DomainSummary, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    let domain = request.domain;
    let proof = match plan(state, caller, &domain).await? {
        VerifyPlan::AlreadyVerified => None,
        VerifyPlan::Lookup(token) => {
            state.limits.allow_lookup(org, &domain)?;
            let report = state.verifier.lookup(&domain, &token).await;
            let lookup = report.summary(state.clock.now());
            if !report.outcome.is_verified() {
                state
                    .store
                    .record_failed_lookup(&actor, org, &domain, &lookup)
                    .await?;
                return Err(refusal(&report));
            }
            Some(Proof { token, lookup })
        }
    };
    let verification = Verification {
        domain,
        proof,
        claim: request.claim,
        reserve_domain: request.reserve,
        recheck: state.config.recheck,
    };
    let now = state.clock.now();
    Ok(state
        .store
        .complete_verification(&actor, org, &verification, now)
        .await?)
}

/// What verifyDomain must do for `domain`, read before any lookup.
async fn plan(
    state: &AppState,
    caller: &Caller,
    domain: &DomainName,
) -> Result<VerifyPlan, ApiError> {
    let (own, elsewhere) = state
        .store
        .find_domain_and_claim(&caller.org, domain)
        .await?;
    // Another organization's claim (or reservation) is the answer whatever this one holds
    // (Cisco's contract lists the conflict): asking for a token first would only lead to this
    // 409. The write re-checks the reservation under the family's lock.
    if let Some(refusal) = elsewhere.refusal(domain) {
        return Err(refusal.into());
    }
    Ok(plan_verification(domain, own.as_ref(), state.clock.now())?)
}

/// verifyDomain `?preview=true`: what the verification would do to users if its lookup found
/// the token, refused as the verification would be before its lookup; no lookup is made.
pub async fn preview(
    state: &AppState,
    caller: &Caller,
    request: VerifyRequest,
) -> Result<Response, ApiError> {
    plan(state, caller, &request.domain).await?;
    let change = Change::Verify {
        domain: request.domain,
        claim: request.claim,
        reserve_domain: request.reserve,
    };
    preview::answer(state, caller, change).await
}

/// A lookup that did not prove control, as the response the user sees.
fn refusal(report: &Report) -> ApiError {
    use claimd_dns::Outcome;
    match report.outcome {
        Outcome::DnsFailure { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, report.explain()).with_retry_after(30)
        }
        Outcome::Timeout => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, report.explain()).with_retry_after(30)
        }
        _ => ApiError::bad_request(format!(
            "The domain could not be verified. {}",
            report.explain()
        )),
    }
}

/// The lookup verifyDomain would make for `record` now.
pub struct DryRun {
    pub record: DomainRecord,
    pub report: Report,
    /// The token can no longer be verified: request a new one.
    pub token_expired: bool,
}

/// The dry run on the wire: the record's state and the lookup's evidence.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunBody<'a> {
    pub domain: &'a str,
    pub status: &'static str,
    /// Whether verifyDomain would succeed now.
    pub verified: bool,
    pub token_expired: bool,
    /// For a person: what was looked up and seen, and what to do.
    pub description: String,
    #[serde(flatten)]
    pub evidence: Evidence<'a>,
}

impl DryRun {
    pub fn body(&self) -> DryRunBody<'_> {
        DryRunBody {
            domain: self.record.domain.as_str(),
            status: self.record.state.as_str(),
            verified: self.report.outcome.is_verified(),
            token_expired: self.token_expired,
            description: self.report.explain(),
            evidence: self.report.evidence(),
        }
    }
}

/// Looks `record`'s token up as verifyDomain would, changing nothing. `limits`, when given,
/// count it like a verification.
pub async fn dry_run(
    verifier: &Verifier,
    limits: Option<&Limits>,
    record: DomainRecord,
    now: Timestamp,
) -> Result<DryRun, ApiError> {
    if let Some(limits) = limits {
        limits.allow_lookup(&record.org_id, &record.domain)?;
    }
    let report = verifier.lookup(&record.domain, &record.token).await;
    let token_expired = record.token_expired(now);
    Ok(DryRun {
        record,
        report,
        token_expired,
    })
}
