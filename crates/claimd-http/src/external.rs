//! External users: the users of other organizations that this organization's claims made
//! transient. The claimant lists them (`GET …/externalUsers`, by userName, with a `Link` to the
//! next page) and converts them into itself (`POST …/externalUsers/{userId}/convert`): the user
//! is then the claimant's, active, and the organization it left sees it leave, never who took
//! it. A claimd extension: Cisco's contract names the users, not an API for them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use claimd_domain::UserId;
use claimd_store::ExternalUser;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::scim;
use crate::state::AppState;
use crate::wire::{PageParams, link_next, segment};

/// An external user as the claimant sees it: who, and which of its claims holds the user;
/// nothing of the organization the user is in.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalUserView {
    id: String,
    user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    /// Always `transient`: the claim made it so.
    account_status: &'static str,
    /// The claimed domain the user's address is in (or below).
    claimed_domain: String,
}

#[derive(Serialize, ToSchema)]
pub struct ExternalUserList {
    items: Vec<ExternalUserView>,
}

fn view(e: ExternalUser) -> ExternalUserView {
    ExternalUserView {
        id: e.user.id.as_str().to_owned(),
        user_name: e.user.fields.user_name,
        display_name: e.user.fields.display_name,
        account_status: e.user.account_status.as_str(),
        claimed_domain: e.claimed_domain.to_string(),
    }
}

pub async fn list_external_users(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (max, after) = PageParams::read(params)?;
    let mut users = state
        .store
        .list_external_users(&caller.org, after.as_deref(), max + 1)
        .await?;
    let more = users.len() > max as usize;
    users.truncate(max as usize);
    let next = more
        .then(|| users.last().map(|e| segment(&e.user.fields.user_name)))
        .flatten();
    let items = users.into_iter().map(view).collect();
    let mut response = Json(ExternalUserList { items }).into_response();
    if let Some(cursor) = next {
        let org = state.org_url(&caller.org);
        link_next(
            &mut response,
            &format!("{org}/externalUsers?max={max}&cursor={cursor}"),
        );
    }
    Ok(response)
}

/// Converts the external user into the caller's organization; answers the user as it is now
/// (SCIM's shape), or 404 when the id is not one of the organization's external users.
pub async fn convert_user(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = state
        .store
        .convert_user(
            &caller.actor(),
            &caller.org,
            &UserId::new(id.clone()),
            state.clock.now(),
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no external user '{id}': not a user whose address is in a domain this \
                 organization claims, or converted already"
            ))
        })?;
    Ok(Json(scim::resource(&state, &user)).into_response())
}
