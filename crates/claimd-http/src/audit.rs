//! The audit log, in Cisco's Admin Audit Events shape: `GET /v1/adminAudit/events` (one
//! organization's events between `from` and `to`, `max` at a time from `offset`, by `actorId`
//! and `eventCategories`) and `GET /v1/adminAudit/eventCategories`; and one domain's history
//! with the DNS evidence of each lookup, `GET …/domains/{id}/events`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use claimd_domain::CredentialId;
use claimd_store::{AuditEntry, AuditQuery, EVENT_CATEGORIES, Event, EventKind, EventTarget};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authorized;
use crate::domains::{domain_in_path, no_such_domain};
use crate::error::ApiError;
use crate::state::AppState;
use crate::webhooks::parse_time;

const MAX_PAGE: u32 = 200;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Events before this time (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// At most this many events, 1 to 200 (default 100); a `Link: rel="next"` header follows.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    max: Option<String>,
    /// Skip this many events.
    #[param(value_type = Option<u64>)]
    offset: Option<String>,
    /// Only the events of this credential.
    actor_id: Option<String>,
    /// Only these categories, comma-separated (`GET /v1/adminAudit/eventCategories`).
    event_categories: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditItem {
    id: String,
    #[schema(format = DateTime)]
    created: String,
    actor_org_id: Option<String>,
    actor_id: Option<String>,
    data: AuditData,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditData {
    event_category: &'static str,
    event_description: &'static str,
    action_text: String,
    actor_name: Option<String>,
    target_type: &'static str,
    target_id: String,
    target_name: String,
    target_org_id: String,
    tracking_id: Option<String>,
    /// The event as the event log names it (`claimed`, `credential_revoked`, …).
    change: &'static str,
    /// For a domain event: the domain's state after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuditList {
    items: Vec<AuditItem>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryList {
    items: Vec<HistoryItem>,
}

fn target_type(target: &EventTarget) -> &'static str {
    match target {
        EventTarget::Domain(_) => "DOMAIN",
        EventTarget::Credential(_) => "CREDENTIAL",
        EventTarget::Organization(_) => "ORGANIZATION",
        EventTarget::Webhook(_) => "WEBHOOK",
        EventTarget::User(_) => "USER",
    }
}

fn item(entry: AuditEntry) -> AuditItem {
    let AuditEntry {
        event,
        actor_org,
        actor_name,
    } = entry;
    let who = match (&actor_name, &event.credential_id) {
        (Some(name), _) if !name.is_empty() => format!("credential '{name}'"),
        (_, Some(id)) => format!("credential {id}"),
        (_, None) => "claimd".to_owned(),
    };
    let action_text = format!(
        "{who}: {} ({})",
        event.kind.description(),
        event.target.id()
    );
    AuditItem {
        id: event.id.to_string(),
        created: event.at.rfc3339(),
        actor_org_id: actor_org.map(|o| o.to_string()),
        actor_id: event.credential_id.map(|c| c.to_string()),
        data: AuditData {
            event_category: event.kind.category(),
            event_description: event.kind.description(),
            action_text,
            actor_name,
            target_type: target_type(&event.target),
            target_id: match &event.target {
                EventTarget::Domain(d) => d.resource_id(),
                other => other.id().to_owned(),
            },
            target_name: event.target.id().to_owned(),
            target_org_id: event.org_id.to_string(),
            tracking_id: event.tracking_id,
            change: event.kind.as_str(),
            status: event.state,
        },
    }
}

fn number(field: &str, value: Option<&str>, default: u64, max: u64) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{field}: must be a whole number up to {max}, got '{v}'"
            ))
        }),
    }
}

pub async fn list_events(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let max = number("max", p.max.as_deref(), 100, u64::from(MAX_PAGE))?;
    if max == 0 {
        return Err(ApiError::bad_request(format!(
            "max: must be a whole number from 1 to {MAX_PAGE}, got 0"
        )));
    }
    let offset = number("offset", p.offset.as_deref(), 0, u64::MAX)?;
    let from = p
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?;
    let to = p.to.as_deref().map(|v| parse_time("to", v)).transpose()?;
    let mut kinds = Vec::new();
    for category in p.event_categories.iter().flat_map(|c| c.split(',')) {
        let category = category.trim().trim_start_matches("EventCategory.");
        if category.is_empty() {
            continue;
        }
        let of = EventKind::in_category(category);
        if of.is_empty() {
            return Err(ApiError::bad_request(format!(
                "eventCategories: '{category}' is not one of {}",
                EVENT_CATEGORIES.join(", ")
            )));
        }
        kinds.extend(of);
    }
    let query = AuditQuery {
        org: caller.org.clone(),
        from,
        to,
        actor: p.actor_id.filter(|a| !a.is_empty()).map(CredentialId::new),
        kinds,
        offset,
        limit: u32::try_from(max).unwrap_or(MAX_PAGE),
    };
    let entries = state.store.list_audit_events(&query).await?;
    let full = entries.len() as u64 == max;
    let items: Vec<AuditItem> = entries.into_iter().map(item).collect();
    let mut response = Json(AuditList { items }).into_response();
    if full {
        // The same query, the next page.
        let mut query_string = url::form_urlencoded::Serializer::new(String::new());
        query_string.append_pair("orgId", caller.org.as_str());
        for (key, value) in [
            ("from", &p.from),
            ("to", &p.to),
            ("eventCategories", &p.event_categories),
        ] {
            if let Some(v) = value {
                query_string.append_pair(key, v);
            }
        }
        if let Some(actor) = &query.actor {
            query_string.append_pair("actorId", actor.as_str());
        }
        query_string.append_pair("max", &max.to_string());
        query_string.append_pair("offset", &(offset + max).to_string());
        let next = format!(
            "{}/v1/adminAudit/events?{}",
            state.config.public_url,
            query_string.finish()
        );
        if let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Categories {
    event_categories: [&'static str; 7],
}

pub async fn list_categories(Authorized(_caller): Authorized) -> Json<impl Serialize> {
    Json(Categories {
        event_categories: EVENT_CATEGORIES,
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryItem {
    id: String,
    #[schema(format = DateTime)]
    created: String,
    change: &'static str,
    description: &'static str,
    status: Option<String>,
    actor_id: Option<String>,
    tracking_id: Option<String>,
    /// The DNS evidence of a lookup (what each resolver saw), when the event carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    evidence: Option<serde_json::Value>,
    /// Otherwise, what the event says.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

fn history_item(event: Event) -> HistoryItem {
    let evidence = event
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(serde_json::Value::is_object);
    HistoryItem {
        id: event.id.to_string(),
        created: event.at.rfc3339(),
        change: event.kind.as_str(),
        description: event.kind.description(),
        status: event.state,
        actor_id: event.credential_id.map(|c| c.to_string()),
        tracking_id: event.tracking_id,
        detail: if evidence.is_some() {
            None
        } else {
            event.detail
        },
        evidence,
    }
}

/// `GET …/domains/{id}/events`: the domain's history in this organization, oldest first.
pub async fn domain_events(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let domain = domain_in_path(&id)?;
    let events = state.store.list_events(&caller.org, &domain).await?;
    if events.is_empty() {
        return Err(no_such_domain(&id));
    }
    let items = events.into_iter().map(history_item).collect();
    Ok(Json(HistoryList { items }).into_response())
}
