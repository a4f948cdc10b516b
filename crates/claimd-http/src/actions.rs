//! The five Domain Management actions. Each follows one path: authorize → parse into domain
//! types (a bad value stops here with a 400) → lifecycle rule → at most one DNS lookup, outside
//! any transaction → one store unit of work that re-checks the rule → response.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use claimd_dns::{Outcome, Report};
use claimd_domain::{CheckSummary, ClaimFlags, DomainName, OrgId, VerificationToken, VerifyPlan};
use claimd_store::{DomainSummary, TokenRequest, Verification};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Authorized;
use crate::error::{ApiError, invalid_domain};
use crate::wire::ApiJson;

#[derive(Deserialize)]
pub struct DomainRequest {
    domain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    domain: String,
    #[serde(default)]
    claim_domain: bool,
    #[serde(default)]
    reserve_domain: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    #[serde(default)]
    data: Vec<DomainRequest>,
    #[serde(default = "default_true")]
    force_domain_claim: bool,
    #[serde(default)]
    claim_domain_only: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnverifyRequest {
    domain: String,
    #[serde(default)]
    remove_pending: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    domain: String,
    token: String,
    verification_method: &'static str,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryResponse {
    verified_domains: Vec<String>,
    claimed_domains: Vec<String>,
    url: String,
}

#[derive(Serialize)]
struct ClaimedResponse {
    data: Vec<ClaimedDomain>,
}

#[derive(Serialize)]
struct ClaimedDomain {
    domain: String,
    url: String,
}

fn parse_domain(field: &str, value: &str) -> Result<DomainName, ApiError> {
    DomainName::parse(value).map_err(|e| invalid_domain(field, &e))
}

fn summary_response(
    state: &AppState,
    org: &OrgId,
    action: &str,
    s: DomainSummary,
) -> Json<SummaryResponse> {
    let names = |v: Vec<DomainName>| v.into_iter().map(|d| d.to_string()).collect();
    Json(SummaryResponse {
        verified_domains: names(s.verified),
        claimed_domains: names(s.claimed),
        url: format!("{}/actions/{action}", state.org_url(org)),
    })
}

/// Consumer mail domains cannot be verified by an organization.
fn allowed(state: &AppState, field: &str, domain: &DomainName) -> Result<(), ApiError> {
    state
        .config
        .domain_policy
        .check(domain)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

pub(crate) fn domain_url(state: &AppState, org: &OrgId, domain: &DomainName) -> String {
    format!("{}/domains/{}", state.org_url(org), domain.resource_id())
}

pub async fn get_domain_verification_token(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<DomainRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    let domain = parse_domain("domain", &body.domain)?;
    allowed(&state, "domain", &domain)?;
    let record = state
        .store
        .issue_token(
            &actor,
            org,
            &domain,
            TokenRequest {
                fresh: VerificationToken::generate(),
                ttl: state.config.token_ttl,
                max_pending: state.config.max_pending_domains,
            },
            state.clock.now(),
        )
        .await?;
    Ok(Json(TokenResponse {
        domain: record.domain.to_string(),
        token: record.token.as_str().to_owned(),
        verification_method: "DNS_TXT",
        url: format!("{}/actions/getDomainVerificationToken", state.org_url(org)),
    })
    .into_response())
}

pub async fn verify_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    let domain = parse_domain("domain", &body.domain)?;
    let (own, claimed_by_other) = state.store.find_domain_and_claim(org, &domain).await?;
    let plan = claimd_domain::plan_verification(&domain, own.as_ref(), state.clock.now())?;
    if claimed_by_other {
        return Err(claimd_domain::LifecycleError::ClaimedByOther(domain).into());
    }
    let (token, check) = match plan {
        VerifyPlan::AlreadyVerified => {
            let token = own
                .map(|r| r.token)
                .ok_or_else(|| ApiError::internal("verified record vanished"))?;
            let check = CheckSummary {
                at: state.clock.now(),
                outcome: "already_verified".to_owned(),
                detail: String::new(),
                evidence: String::new(),
            };
            (token, check)
        }
        VerifyPlan::Lookup(token) => {
            state.limits.check_lookup(org, &domain)?;
            let report = state.verifier.check(&domain, &token).await;
            let check = CheckSummary {
                at: state.clock.now(),
                outcome: report.outcome.kind().to_owned(),
                detail: report.explain(),
                evidence: report.to_json().to_string(),
            };
            if !matches!(report.outcome, Outcome::Verified { .. }) {
                state
                    .store
                    .record_failed_check(&actor, org, &domain, &check)
                    .await?;
                return Err(lookup_error(&report));
            }
            (token, check)
        }
    };
    let verification = Verification {
        domain,
        token,
        claim: body.claim_domain,
        reserve_domain: body.reserve_domain,
        check,
    };
    let summary = state
        .store
        .complete_verification(
            &actor,
            org,
            &verification,
            ClaimFlags::default(),
            state.clock.now(),
        )
        .await?;
    Ok(summary_response(&state, org, "verifyDomain", summary).into_response())
}

/// A check that did not prove control, as the response the user sees.
fn lookup_error(report: &Report) -> ApiError {
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

pub async fn claim_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    if body.data.is_empty() {
        return Err(claimd_domain::LifecycleError::EmptyClaimList.into());
    }
    if body.data.len() > state.config.max_claim_batch {
        return Err(ApiError::bad_request(format!(
            "data: at most {} domains can be claimed in one request, got {}",
            state.config.max_claim_batch,
            body.data.len()
        )));
    }
    let mut domains = Vec::with_capacity(body.data.len());
    for (i, item) in body.data.iter().enumerate() {
        let field = format!("data[{i}].domain");
        let d = parse_domain(&field, &item.domain)?;
        allowed(&state, &field, &d)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    let flags = ClaimFlags {
        force_domain_claim: body.force_domain_claim,
        claim_domain_only: body.claim_domain_only,
    };
    state
        .store
        .claim_domains(&actor, org, &domains, flags, state.clock.now())
        .await?;
    let data = domains
        .iter()
        .map(|d| ClaimedDomain {
            domain: d.to_string(),
            url: domain_url(&state, org, d),
        })
        .collect();
    Ok(Json(ClaimedResponse { data }).into_response())
}

pub async fn unclaim_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<DomainRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    // Cisco's documentation shows this field both plain and base64-encoded; accept either.
    let domain = DomainName::parse_plain_or_base64(&body.domain)
        .map_err(|e| invalid_domain("domain", &e))?;
    state
        .store
        .unclaim_domain(&actor, org, &domain, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn unverify_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<UnverifyRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    let domain = parse_domain("domain", &body.domain)?;
    let summary = state
        .store
        .unverify_domain(&actor, org, &domain, body.remove_pending, state.clock.now())
        .await?;
    Ok(summary_response(&state, org, "unverifyDomain", summary).into_response())
}

/// The dry run: the lookup verify would make, reported without changing anything.
pub async fn check_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = &caller.org;
    let record = crate::reads::find_by_resource_id(&state, org, &id).await?;
    let domain = record.domain.clone();
    state.limits.check_lookup(org, &domain)?;
    let report = state.verifier.check(&domain, &record.token).await;
    let mut body = report.to_json();
    body["domain"] = domain.to_string().into();
    body["status"] = record.state.as_str().into();
    body["verified"] = report.outcome.is_verified().into();
    body["tokenExpired"] = (record.state == claimd_domain::DomainState::Pending
        && state.clock.now() >= record.token_expires_at)
        .into();
    body["description"] = report.explain().into();
    Ok(Json(body).into_response())
}
