//! The domain resources: the listing, one domain, the dry run of its verification, and a
//! re-check on demand.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use claimd_domain::{DomainName, DomainRecord, OrgId, RecheckState};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;
use crate::verification;
use crate::wire::{PageParams, link_next, rfc3339};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DomainResource {
    id: String,
    domain: String,
    /// `pending`, `expired` (pending with a token past its expiry), `verified` or `claimed`.
    status: &'static str,
    verification_method: &'static str,
    token: String,
    /// The exact TXT value to publish at the domain.
    txt_record_value: String,
    #[schema(format = DateTime)]
    token_expires: String,
    reserve_domain: bool,
    force_domain_claim: bool,
    claim_domain_only: bool,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime)]
    last_modified: String,
    #[schema(format = DateTime)]
    verified: Option<String>,
    #[schema(format = DateTime)]
    claimed: Option<String>,
    /// The last DNS lookup made for the record.
    #[serde(rename = "lastCheck")]
    last_lookup: Option<LastLookup>,
    /// Where its re-checks stand (verified and claimed domains).
    recheck: Option<RecheckView>,
    url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecheckView {
    /// `ok`, `at_risk` (the record is gone, the grace period runs), `lapsed` (kept verified by
    /// the organization's policy), or `not_checkable` (no conclusive answer for a while).
    status: &'static str,
    #[schema(format = DateTime)]
    next_check: Option<String>,
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    #[schema(format = DateTime)]
    lapses_at: Option<String>,
    #[schema(format = DateTime)]
    lapsed_at: Option<String>,
    #[schema(format = DateTime)]
    not_checkable_since: Option<String>,
}

impl RecheckView {
    fn of(state: &RecheckState) -> Self {
        let status = if state.lapsed_at.is_some() {
            "lapsed"
        } else if state.failing_since.is_some() {
            "at_risk"
        } else if state.not_checkable_since().is_some() {
            "not_checkable"
        } else {
            "ok"
        };
        Self {
            status,
            next_check: state.due_at.map(rfc3339),
            failing_since: state.failing_since.map(rfc3339),
            lapses_at: state.lapses_at.map(rfc3339),
            lapsed_at: state.lapsed_at.map(rfc3339),
            not_checkable_since: state.not_checkable_since().map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LastLookup {
    #[schema(format = DateTime)]
    time: String,
    outcome: &'static str,
    detail: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainList {
    items: Vec<DomainResource>,
}

fn resource(state: &AppState, org: &OrgId, r: DomainRecord) -> DomainResource {
    let status = if r.token_expired(state.clock.now()) {
        "expired"
    } else {
        r.state.as_str()
    };
    DomainResource {
        id: r.domain.resource_id(),
        domain: r.domain.to_string(),
        status,
        verification_method: "DNS_TXT",
        txt_record_value: state.verifier.expected_value(&r.token),
        token: r.token.as_str().to_owned(),
        token_expires: rfc3339(r.token_expires_at),
        reserve_domain: r.reserve_domain,
        force_domain_claim: r.flags.force_domain_claim,
        claim_domain_only: r.flags.claim_domain_only,
        created: rfc3339(r.created_at),
        last_modified: rfc3339(r.updated_at),
        verified: r.verified_at.map(rfc3339),
        claimed: r.claimed_at.map(rfc3339),
        last_lookup: r.last_lookup.map(|c| LastLookup {
            time: rfc3339(c.at),
            outcome: c.outcome.as_str(),
            detail: c.detail,
        }),
        recheck: r.state.is_verified().then(|| RecheckView::of(&r.recheck)),
        url: state.domain_url(org, &r.domain),
    }
}

pub async fn list_domains(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = &caller.org;
    let (max, cursor) = PageParams::read(params)?;
    let after = match cursor.as_deref() {
        None => None,
        Some(c) => Some(DomainName::from_resource_id(c).ok_or_else(|| {
            ApiError::bad_request(format!("cursor: '{c}' is not a valid cursor"))
        })?),
    };
    let mut records = state
        .store
        .list_domains(org, after.as_ref(), max + 1)
        .await?;
    let more = records.len() > max as usize;
    records.truncate(max as usize);
    let next = more
        .then(|| records.last().map(|r| r.domain.resource_id()))
        .flatten();
    let items = records
        .into_iter()
        .map(|r| resource(&state, org, r))
        .collect();
    let mut response = Json(DomainList { items }).into_response();
    if let Some(cursor) = next {
        let url = format!("{}/domains?max={max}&cursor={cursor}", state.org_url(org));
        link_next(&mut response, &url);
    }
    Ok(response)
}

/// The 404 for a domain `{id}` in a path that names nothing of the organization's, saying what
/// the id may be.
pub(crate) fn no_such_domain(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no domain '{id}' in this organization (the id is the domain name, e.g. example.com, \
         or its resource id: the name in unpadded base64url, as in the `url` of \
         getDomainVerificationToken)"
    ))
}

/// The domain a path's `{id}` names: its resource id or the name itself (the same two forms the
/// actions accept); 404 for anything else.
pub(crate) fn domain_in_path(id: &str) -> Result<DomainName, ApiError> {
    DomainName::parse_plain_or_base64(id).map_err(|_| no_such_domain(id))
}

/// The organization's record behind a path's domain `{id}`; 404 for anything else.
async fn find_by_resource_id(
    state: &AppState,
    org: &OrgId,
    id: &str,
) -> Result<DomainRecord, ApiError> {
    let domain = domain_in_path(id)?;
    state
        .store
        .find_domain(org, &domain)
        .await?
        .ok_or_else(|| no_such_domain(id))
}

pub async fn get_domain(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = find_by_resource_id(&state, &caller.org, &id).await?;
    Ok(Json(resource(&state, &caller.org, record)).into_response())
}

/// `POST …/domains/{id}/check`: the lookup verifyDomain would make, reported without changing
/// anything.
pub async fn dry_run(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = find_by_resource_id(&state, &caller.org, &id).await?;
    let now = state.clock.now();
    let run = verification::dry_run(&state.verifier, Some(&state.limits), record, now).await?;
    Ok(Json(run.body()).into_response())
}

/// `POST …/domains/{id}/recheck`: a re-check now, recorded like the scheduled ones (a lookup
/// that finds the record gone starts the grace period; one past it lapses the domain).
pub async fn recheck(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = &caller.org;
    let record = find_by_resource_id(&state, org, &id).await?;
    if !record.state.is_verified() {
        return Err(ApiError::bad_request(format!(
            "{} is not verified: re-checks are for verified domains; verify it with verifyDomain",
            record.domain
        )));
    }
    state.limits.allow_lookup(org, &record.domain)?;
    let settings = state
        .store
        .find_organization(org)
        .await?
        .map(|o| o.recheck)
        .unwrap_or_default();
    let policy = state.config.recheck.policy(&settings);
    let now = state.clock.now();
    let result = claimd_recheck::recheck(&state.verifier, &record, &policy, now).await;
    state
        .store
        .record_rechecks(&caller.actor(), None, vec![result], now)
        .await?;
    let record = find_by_resource_id(&state, org, &id).await?;
    Ok(Json(resource(&state, org, record)).into_response())
}
