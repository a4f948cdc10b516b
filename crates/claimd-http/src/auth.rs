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
    Credential, OrgId, ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN, ROLE_USER_ADMIN, SCOPE_AUDIT_READ,
    SCOPE_IDENTITY_ORGANIZATION, SCOPE_ORGANIZATIONS_READ, SCOPE_ORGANIZATIONS_RW,
    SCOPE_PEOPLE_READ, SCOPE_PEOPLE_RW, SecretHash,
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
    /// Reading the organization's users (SCIM).
    PeopleRead,
    /// Creating, changing and removing them.
    PeopleWrite,
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
            Self::PeopleRead => &[SCOPE_PEOPLE_RW, SCOPE_PEOPLE_READ],
            Self::PeopleWrite => &[SCOPE_PEOPLE_RW],
        }
    }

    /// …and one of these roles.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Write => &[ROLE_FULL_ADMIN],
            Self::Read | Self::Audit => &[ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN],
            Self::PeopleWrite => &[ROLE_FULL_ADMIN, ROLE_USER_ADMIN],
            Self::PeopleRead => &[ROLE_FULL_ADMIN, ROLE_USER_ADMIN, ROLE_READONLY_ADMIN],
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
            // An operator's credential belongs to no organization.
            guarded: self.credential.org_id.is_some(),
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
        let session = parts.extensions.get::<SessionIdentity>().cloned();
        let session = session.as_ref();
        let org = match in_path.or_else(|| org_in_query(parts)) {
            Some(org) => org,
            None => authenticate(state, &parts.headers, session)
                .await?
                .org_id
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "orgId: required with an operator credential, which is valid for every organization",
                    )
                })?,
        };
        let credential = authorize(state, &parts.headers, session, &org, access).await?;
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
    session: Option<&SessionIdentity>,
    org: &OrgId,
    access: Access,
) -> Result<Credential, ApiError> {
    let credential = authenticate(state, headers, session).await?;
    allow(state, &credential, org, access).await?;
    Ok(credential)
}

/// Is `credential` allowed `access` to `org`? 404 for an unknown organization, 403 for another
/// organization or a missing scope or role.
pub(crate) async fn allow(
    state: &AppState,
    credential: &Credential,
    org: &OrgId,
    access: Access,
) -> Result<(), ApiError> {
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
    Ok(())
}

/// Who a console session acts as. The console puts it on the requests it makes to the API
/// in-process; a request from the network cannot carry it.
#[derive(Clone)]
pub(crate) enum SessionIdentity {
    /// An opaque credential, by the hash of its secret: looked up on every request, so a
    /// revoked or expired credential ends its sessions at once.
    Secret(SecretHash),
    /// A verified JWT's claims, valid until the token's own expiry.
    Token(Credential),
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    session: Option<&SessionIdentity>,
) -> Result<Credential, ApiError> {
    match session {
        Some(SessionIdentity::Secret(secret)) => return credential_for_secret(state, secret).await,
        Some(SessionIdentity::Token(credential)) => {
            return if credential.is_active(state.clock.now()) {
                Ok(credential.clone())
            } else {
                Err(unknown_credential())
            };
        }
        None => {}
    }
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
    authenticate_presented(state, presented)
        .await
        .map(|(credential, _)| credential)
}

/// The credential a bearer token stands for, and how a session signed in with it acts.
pub(crate) async fn authenticate_presented(
    state: &AppState,
    presented: &str,
) -> Result<(Credential, SessionIdentity), ApiError> {
    // A JWT has three dot-separated parts; opaque secrets have none.
    if let Some(jwt) = &state.jwt
        && presented.split('.').count() == 3
    {
        let credential = jwt
            .verify(presented)
            .await
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        return Ok((credential.clone(), SessionIdentity::Token(credential)));
    }
    let secret = SecretHash::of(presented);
    let credential = credential_for_secret(state, &secret).await?;
    Ok((credential, SessionIdentity::Secret(secret)))
}

async fn credential_for_secret(
    state: &AppState,
    secret: &SecretHash,
) -> Result<Credential, ApiError> {
    let secret = secret.clone();
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
        .ok_or_else(unknown_credential)
}

fn unknown_credential() -> ApiError {
    ApiError::unauthorized("the credential is unknown, expired or revoked")
}
