//! Webhooks, in Cisco's shape: `POST/GET /v1/webhooks`, `GET/PUT/DELETE /v1/webhooks/{id}`,
//! with claimd's `POST /v1/webhooks/{id}/replay?since=…` and `GET /v1/webhooks/{id}/deliveries`
//! (the delivery log). A webhook belongs to the organization the request is about (the
//! credential's, or `orgId` for an operator). Its secret is shown once, when it is created.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use claimd_domain::{
    Timestamp, Webhook, WebhookEvent, WebhookFilter, WebhookId, WebhookResource, WebhookSecret,
    WebhookStatus,
};
use claimd_store::DeliveryAttempt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Authorized, Caller};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewWebhook {
    name: String,
    target_url: String,
    resource: String,
    event: String,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookChange {
    name: String,
    target_url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    filter: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookResponse {
    id: String,
    name: String,
    target_url: String,
    resource: &'static str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    /// Only in the answer to the request that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    status: &'static str,
    #[schema(format = DateTime)]
    created: String,
    org_id: String,
    created_by: Option<String>,
    owned_by: &'static str,
    /// Every delivery attempt has failed since then.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    failing_since: Option<String>,
}

fn response(w: Webhook, with_secret: bool) -> WebhookResponse {
    WebhookResponse {
        id: w.id.to_string(),
        name: w.name,
        target_url: w.target_url,
        resource: w.resource.as_str(),
        event: w.event.as_str(),
        filter: w.filter.stored(),
        secret: with_secret.then(|| w.secret.expose().to_owned()),
        status: w.status.as_str(),
        created: w.created_at.rfc3339(),
        org_id: w.org_id.to_string(),
        created_by: w.created_by.map(|c| c.to_string()),
        owned_by: "org",
        failing_since: w.failing_since.map(Timestamp::rfc3339),
    }
}

fn bad(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{field}: {reason}"))
}

fn name(value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 128 {
        return Err(bad("name", "must be 1 to 128 characters"));
    }
    Ok(trimmed.to_owned())
}

async fn target(state: &AppState, url: &str) -> Result<String, ApiError> {
    state
        .config
        .webhook_targets
        .check(url)
        .await
        .map(|u| u.to_string())
        .map_err(|e| bad("targetUrl", e))
}

fn event(value: &str) -> Result<WebhookEvent, ApiError> {
    WebhookEvent::parse(value).ok_or_else(|| {
        bad(
            "event",
            format!("'{value}' is not one of created, updated, deleted, all"),
        )
    })
}

fn filter(value: Option<&str>) -> Result<WebhookFilter, ApiError> {
    WebhookFilter::parse(value.unwrap_or_default()).map_err(|e| bad("filter", e))
}

fn secret(value: Option<&str>) -> Result<WebhookSecret, ApiError> {
    value
        .map_or_else(|| Ok(WebhookSecret::generate()), WebhookSecret::parse)
        .map_err(|e| bad("secret", e))
}

async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    state
        .store
        .find_webhook(&caller.org, &WebhookId::new(id))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no webhook with id '{id}' in this organization"))
        })
}

pub async fn create_webhook(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<Response, ApiError> {
    let resource = WebhookResource::parse(&body.resource).ok_or_else(|| {
        bad(
            "resource",
            format!(
                "'{}' is not a resource claimd has; use domains",
                body.resource
            ),
        )
    })?;
    let now = state.clock.now();
    let webhook = Webhook {
        id: WebhookId::generate(),
        org_id: caller.org.clone(),
        name: name(&body.name)?,
        target_url: target(&state, &body.target_url).await?,
        resource,
        event: event(&body.event)?,
        filter: filter(body.filter.as_deref())?,
        secret: secret(body.secret.as_deref())?,
        status: WebhookStatus::Active,
        created_by: Some(caller.credential.id.clone()),
        created_at: now,
        updated_at: now,
        failing_since: None,
    };
    state
        .store
        .create_webhook(&caller.actor(), &webhook)
        .await?;
    Ok(Json(response(webhook, true)).into_response())
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookList {
    items: Vec<WebhookResponse>,
}

pub async fn list_webhooks(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
) -> Result<Response, ApiError> {
    let items = state
        .store
        .list_webhooks(&caller.org)
        .await?
        .into_iter()
        .map(|w| response(w, false))
        .collect();
    Ok(Json(WebhookList { items }).into_response())
}

pub async fn get_webhook(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    Ok(Json(response(webhook, false)).into_response())
}

pub async fn update_webhook(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookChange>,
) -> Result<Response, ApiError> {
    let current = owned(&state, &caller, &id).await?;
    let status = match body.status.as_deref() {
        None => current.status,
        Some(s) => WebhookStatus::parse(s)
            .ok_or_else(|| bad("status", format!("'{s}' is not one of active, inactive")))?,
    };
    let reactivated = status == WebhookStatus::Active && current.status == WebhookStatus::Inactive;
    let webhook = Webhook {
        name: name(&body.name)?,
        target_url: target(&state, &body.target_url).await?,
        event: body.event.as_deref().map_or(Ok(current.event), event)?,
        filter: match body.filter.as_deref() {
            None => current.filter.clone(),
            given => filter(given)?,
        },
        secret: match body.secret.as_deref() {
            None => current.secret.clone(),
            given => secret(given)?,
        },
        status,
        updated_at: state.clock.now(),
        // Turned on again: it starts afresh.
        failing_since: if reactivated {
            None
        } else {
            current.failing_since
        },
        ..current
    };
    if !state
        .store
        .update_webhook(&caller.actor(), &webhook)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no webhook with id '{id}' in this organization"
        )));
    }
    Ok(Json(response(webhook, false)).into_response())
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = state
        .store
        .delete_webhook(&caller.actor(), &caller.org, &WebhookId::new(&id))
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "no webhook with id '{id}' in this organization"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// Deliver again every event since this time (RFC 3339).
    #[param(required = true, format = DateTime)]
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Replayed {
    queued: u64,
}

/// A time as RFC 3339 (`2026-12-02T08:00:00Z`), for the `field` query parameter.
pub(crate) fn parse_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            bad(
                field,
                format!("'{value}' is not an RFC 3339 time such as 2026-12-02T08:00:00Z"),
            )
        })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    Ok(Timestamp::from_millis(
        i64::try_from(ms).unwrap_or(i64::MAX),
    ))
}

pub async fn replay_webhook(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path(id): Path<String>,
    params: Result<Query<ReplayParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = params
        .since
        .as_deref()
        .ok_or_else(|| bad("since", "required: the time from which to deliver again"))?;
    let since = parse_time("since", since)?;
    let webhook = owned(&state, &caller, &id).await?;
    let queued = state
        .store
        .replay_deliveries(
            &caller.actor(),
            &caller.org,
            &webhook.id,
            since,
            state.clock.now(),
        )
        .await?;
    Ok(Json(Replayed { queued }).into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptView {
    delivery_id: String,
    event_id: i64,
    #[schema(format = DateTime)]
    time: String,
    status_code: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptList {
    items: Vec<AttemptView>,
}

pub async fn list_deliveries(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    let attempts = state
        .store
        .list_delivery_attempts(&caller.org, &webhook.id, 100)
        .await?;
    let items = attempts
        .into_iter()
        .map(|a: DeliveryAttempt| AttemptView {
            delivery_id: claimd_webhooks::signing::message_id(a.delivery_id),
            event_id: a.event_id,
            time: a.at.rfc3339(),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
        })
        .collect();
    Ok(Json(AttemptList { items }).into_response())
}
