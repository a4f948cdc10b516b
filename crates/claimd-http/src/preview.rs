//! `?preview=true` on the changes that move users (verifyDomain, claimDomain, unclaimDomain,
//! unverifyDomain, and the organization's enforcement switch): the change's rules are applied
//! in full and undone, and the answer says what would have happened to whom, by count.

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use claimd_store::{Change, Impact};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewParams {
    /// `true`: change nothing, answer what the change would do to users (an impact preview).
    #[param(value_type = Option<bool>)]
    preview: Option<String>,
}

/// Whether the request asks for a preview. Other query parameters are left to the route.
pub struct Preview(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Preview {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<PreviewParams>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        match params.preview.as_deref() {
            None | Some("false") => Ok(Self(false)),
            Some("true") => Ok(Self(true)),
            Some(other) => Err(ApiError::bad_request(format!(
                "preview: must be true or false, got '{other}'"
            ))),
        }
    }
}

/// What a change would do to users' account status, by count (never who).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImpactResponse {
    /// Always true: nothing was changed.
    preview: bool,
    /// Users of this organization that would become transient.
    users_becoming_transient: u64,
    /// Users of this organization that would become active again.
    users_becoming_active: u64,
    /// Users of other organizations that would be marked transient (external users).
    external_users_marked: u64,
    /// Users of other organizations that would become active again.
    external_users_restored: u64,
}

impl From<Impact> for ImpactResponse {
    fn from(i: Impact) -> Self {
        Self {
            preview: true,
            users_becoming_transient: i.users_becoming_transient,
            users_becoming_active: i.users_becoming_active,
            external_users_marked: i.external_users_marked,
            external_users_restored: i.external_users_restored,
        }
    }
}

/// Previews `change` by the caller's organization: the answer, or the refusal the change
/// itself would meet.
pub async fn answer(
    state: &AppState,
    caller: &Caller,
    change: Change,
) -> Result<Response, ApiError> {
    let impact = state
        .store
        .preview(&caller.actor(), &caller.org, change, state.clock.now())
        .await?;
    Ok(Json(ImpactResponse::from(impact)).into_response())
}
