//! Authentication (bearer credential → [`Credential`]) and authorization against the
//! organization a request is about: the one in the path, else the `orgId` query parameter
//! (as Cisco's audit and webhook APIs take it), else the credential's own. What each endpoint
//! requires is its row in the route table ([`crate::routes`]); what each kind of access
//! requires is [`Access`]; nothing else decides.

use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use claimd_domain::{
    Credential, OrgId, ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN, SCOPE_AUDIT_READ,
    SCOPE_IDENTITY_ORGANIZATION, SCOPE_ORGANIZATIONS_READ, SCOPE_ORGANIZATIONS_RW, SecretHash,
};

use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::TrackingId;

/// What an endpoint does to an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The reads (`GET …/domains`, `GET …/domains/{id}`, webhooks).
    Read,
    /// The five actions, and every other change.
    Write,
    /// Reading the audit log.
    Audit,
}

impl Access {
    /// A credential needs one of these scopes…
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::Write => &[SCOPE_IDENTITY_ORGANIZATION, SCOPE_ORGANIZATIONS_RW],
            Self::Read => &[
                SCOPE_IDENTITY_ORGANIZATION,
                SCOPE_ORGANIZATIONS_RW,
                SCOPE_ORGANIZATIONS_READ,
            ],
            Self::Audit => &[
                SCOPE_AUDIT_READ,
                SCOPE_IDENTITY_ORGANIZATION,
                SCOPE_ORGANIZATIONS_RW,
                SCOPE_ORGANIZATIONS_READ,
            ],
        }
    }

    /// …and one of these roles.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Write => &[ROLE_FULL_ADMIN],
            Self::Read | Self::Audit => &[ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN],
        }
    }
}

/// The organization in the path, and a caller allowed to read or change its domains.
pub struct Caller {
    pub org: OrgId,
    pub credential: Credential,
    pub tracking: TrackingId,
}

impl Caller {
    /// Who made a change, for the event log.
    pub fn actor(&self) -> claimd_store::Actor {
        claimd_store::Actor {
            credential_id: Some(self.credential.id.clone()),
            tracking_id: Some(self.tracking.0.clone()),
        }
    }

    async fn extract(
        parts: &mut Parts,
        state: &AppState,
        access: Access,
    ) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("No such resource"))?;
        let in_path = params
            .iter()
            .find(|(name, _)| *name == "orgId")
            .map(|(_, value)| OrgId::new(value));
        let org = match in_path.or_else(|| org_in_query(parts)) {
            Some(org) => org,
            None => authenticate(state, &parts.headers)
                .await?
                .org_id
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "orgId: required with an operator credential, which is valid for every organization",
                    )
                })?,
        };
        let credential = authorize(state, &parts.headers, &org, access).await?;
        state.limits.allow_request(credential.id.as_str(), &org)?;
        let tracking = parts
            .extensions
            .get::<TrackingId>()
            .cloned()
            .unwrap_or_else(|| TrackingId(String::new()));
        Ok(Self {
            org,
            credential,
            tracking,
        })
    }
}

/// The `orgId` query parameter, if the request has one (percent-decoded).
fn org_in_query(parts: &Parts) -> Option<OrgId> {
    #[derive(serde::Deserialize)]
    struct OrgQuery {
        #[serde(rename = "orgId")]
        org_id: Option<String>,
    }
    let Query(query) = Query::<OrgQuery>::try_from_uri(&parts.uri).ok()?;
    query
        .org_id
        .filter(|v| !v.is_empty())
        .map(|v| OrgId::new(&v))
}

/// Extracts the [`Caller`] with the access the route table gives the matched route. A route
/// without one is refused.
pub struct Authorized(pub Caller);

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let access = parts.extensions.get::<Access>().copied().ok_or_else(|| {
            ApiError::internal(format!("no authorization policy for {}", parts.uri.path()))
        })?;
        Caller::extract(parts, state, access).await.map(Self)
    }
}

/// The caller, authenticated and allowed `access` to `org`: 401 without a usable credential,
/// 404 for an unknown organization, 403 for another organization or a missing scope or role.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    org: &OrgId,
    access: Access,
) -> Result<Credential, ApiError> {
    let credential = authenticate(state, headers).await?;
    if !state.organization_exists(org).await? {
        return Err(ApiError::not_found(format!(
            "organization {org} does not exist"
        )));
    }
    if !credential.covers(org) {
        return Err(ApiError::forbidden(
            "this credential is not valid for the organization in the path",
        ));
    }
    if !credential.has_any_scope(access.scopes()) {
        return Err(ApiError::forbidden(format!(
            "this credential lacks a required scope (one of: {})",
            access.scopes().join(", ")
        )));
    }
    if !credential.has_any_role(access.roles()) {
        return Err(ApiError::forbidden(format!(
            "this credential lacks a required role (one of: {})",
            access.roles().join(", ")
        )));
    }
    Ok(credential)
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <token>'",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| {
            ApiError::unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        })?;
    // A JWT has three dot-separated parts; opaque secrets have none.
    if let Some(jwt) = &state.jwt
        && presented.split('.').count() == 3
    {
        return jwt
            .verify(presented)
            .await
            .map_err(|e| ApiError::unauthorized(e.to_string()));
    }
    let secret = SecretHash::of(presented);
    let cache = state.credentials.as_deref();
    let held = cache.and_then(|c| c.get(&secret));
    let credential = match held {
        Some(credential) => Some(credential),
        None => {
            let ticket = cache.map(|c| c.ticket());
            let found = state.store.find_credential_by_secret(&secret).await?;
            if let (Some(cache), Some(ticket), Some(found)) = (cache, ticket, &found) {
                cache.insert(ticket, secret, found.clone());
            }
            found
        }
    };
    // Expiry is checked on every use, cached or not.
    credential
        .filter(|c| c.is_active(state.clock.now()))
        .ok_or_else(|| ApiError::unauthorized("the credential is unknown, expired or revoked"))
}
