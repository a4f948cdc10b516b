//! The five Domain Management actions. Each follows one path: authorize → parse into domain
//! types (a bad value stops here with a 400) → lifecycle rule → at most one DNS lookup, outside
//! any transaction ([`crate::verification`]) → one store unit of work that re-checks the rule
//! → response. `?preview=true` on the four that change state answers what the change would do
//! to users instead ([`crate::preview`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use claimd_domain::{ClaimFlags, DomainName, LifecycleError, OrgId, VerificationToken};
use claimd_store::{Change, DomainSummary, TokenRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Authorized;
use crate::error::{ApiError, invalid_domain};
use crate::preview::{self, Preview};
use crate::state::AppState;
use crate::verification::{self, VerifyRequest as Verify};
use crate::wire::ApiJson;

#[derive(Deserialize, ToSchema)]
pub struct DomainRequest {
    domain: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    domain: String,
    #[serde(default)]
    claim_domain: bool,
    #[serde(default)]
    reserve_domain: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    #[serde(default)]
    data: Vec<DomainRequest>,
    #[serde(default = "default_true")]
    #[schema(default = true)]
    force_domain_claim: bool,
    #[serde(default)]
    claim_domain_only: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnverifyRequest {
    domain: String,
    #[serde(default)]
    remove_pending: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenResponse {
    domain: String,
    token: String,
    verification_method: &'static str,
    url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SummaryResponse {
    verified_domains: Vec<String>,
    claimed_domains: Vec<String>,
    url: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClaimedResponse {
    data: Vec<ClaimedDomain>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClaimedDomain {
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
        url: state.action_url(org, action),
    })
}

/// Consumer mail domains cannot be verified by an organization.
fn allowed(state: &AppState, field: &str, domain: &DomainName) -> Result<(), ApiError> {
    state
        .config
        .domain_policy
        .allow(domain)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
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
        url: state.action_url(org, "getDomainVerificationToken"),
    })
    .into_response())
}

pub async fn verify_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Preview(preview): Preview,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let request = Verify {
        domain: parse_domain("domain", &body.domain)?,
        claim: body.claim_domain,
        reserve: body.reserve_domain,
    };
    if preview {
        return verification::preview(&state, &caller, request).await;
    }
    let summary = verification::verify(&state, &caller, request).await?;
    Ok(summary_response(&state, &caller.org, "verifyDomain", summary).into_response())
}

pub async fn claim_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Preview(preview): Preview,
    ApiJson(body): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    if body.data.is_empty() {
        return Err(LifecycleError::EmptyClaimList.into());
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
    if preview {
        return preview::answer(&state, &caller, Change::Claim { domains, flags }).await;
    }
    state
        .store
        .claim_domains(&actor, org, &domains, flags, state.clock.now())
        .await?;
    let data = domains
        .iter()
        .map(|d| ClaimedDomain {
            domain: d.to_string(),
            url: state.domain_url(org, d),
        })
        .collect();
    Ok(Json(ClaimedResponse { data }).into_response())
}

pub async fn unclaim_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Preview(preview): Preview,
    ApiJson(body): ApiJson<DomainRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    // Cisco's documentation shows this field both plain and base64-encoded; accept either.
    let domain = DomainName::parse_plain_or_base64(&body.domain)
        .map_err(|e| invalid_domain("domain", &e))?;
    if preview {
        return preview::answer(&state, &caller, Change::Unclaim(domain)).await;
    }
    state
        .store
        .unclaim_domain(&actor, org, &domain, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn unverify_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Preview(preview): Preview,
    ApiJson(body): ApiJson<UnverifyRequest>,
) -> Result<Response, ApiError> {
    let (org, actor) = (&caller.org, caller.actor());
    let domain = parse_domain("domain", &body.domain)?;
    if preview {
        let change = Change::Unverify {
            domain,
            remove_pending: body.remove_pending,
        };
        return preview::answer(&state, &caller, change).await;
    }
    let summary = state
        .store
        .unverify_domain(&actor, org, &domain, body.remove_pending, state.clock.now())
        .await?;
    Ok(summary_response(&state, org, "unverifyDomain", summary).into_response())
}
