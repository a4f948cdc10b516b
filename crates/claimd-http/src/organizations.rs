//! The organization resource, in Cisco's Identity Organization shape (`schemas`, `id`,
//! `displayName`, `preferredLanguage`, `meta`), with claimd's re-check policy beside it:
//! `recheckInterval` and `recheckGrace` (seconds) and `lapseAction` (`unverify`, `unclaim`,
//! `keep`). GET shows the policy in force; PATCH changes what it names, `null` returning a
//! field to the operator's default.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use claimd_domain::{LapseAction, Organization, OrganizationPatch, RecheckSettings};
use claimd_store::Change;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::preview::{self, Preview};
use crate::state::AppState;
use crate::wire::{ApiJson, rfc3339};

/// Cisco's schema URN for the organization resource.
pub const ORGANIZATION_SCHEMA: &str = "urn:cisco:codev:identity:organization:core:1.0";

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrganizationResource {
    schemas: [&'static str; 1],
    id: String,
    display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_language: Option<String>,
    meta: Meta,
    /// Seconds between two re-checks of a domain that is fine.
    recheck_interval: u64,
    /// Seconds from a domain's record going missing to its lapse.
    recheck_grace: u64,
    lapse_action: &'static str,
    /// claimd's extension: once the organization has a verified domain, its users must have
    /// addresses in its verified domains (others are transient; new ones are refused).
    enforce_verified_domains: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime)]
    last_modified: String,
}

/// A PATCH body: every field may be absent (unchanged); the nullable ones may be `null` (back
/// to the default).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationChange {
    #[serde(default)]
    schemas: Option<Vec<String>>,
    #[serde(default)]
    display_name: Option<String>,
    /// `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    preferred_language: Option<Option<String>>,
    /// Seconds between two re-checks, within the operator's bounds; `null`: the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    recheck_interval: Option<Option<u64>>,
    /// Seconds from a record going missing to the domain's lapse; `null`: the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    recheck_grace: Option<Option<u64>>,
    /// What a lapse does: `unverify`, `unclaim` or `keep`; `null`: the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    lapse_action: Option<Option<String>>,
    /// Require users' addresses to be in the verified domains (default false).
    #[serde(default)]
    enforce_verified_domains: Option<bool>,
}

/// A field that is there, `null` or not: `Some(None)` for `null`, absent stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::deserialize(d).map(Some)
}

impl OrganizationChange {
    fn into_patch(self) -> Result<OrganizationPatch, ApiError> {
        if let Some(schemas) = &self.schemas
            && !schemas.iter().any(|s| s == ORGANIZATION_SCHEMA)
        {
            return Err(ApiError::bad_request(format!(
                "schemas: must include {ORGANIZATION_SCHEMA}"
            )));
        }
        if let Some(name) = &self.display_name
            && (name.trim().is_empty() || name.chars().count() > 256)
        {
            return Err(ApiError::bad_request(
                "displayName: must be 1 to 256 characters, not only spaces",
            ));
        }
        if let Some(Some(language)) = &self.preferred_language
            && !is_language_tag(language)
        {
            return Err(ApiError::bad_request(format!(
                "preferredLanguage: '{language}' is not a language such as en or en_US"
            )));
        }
        let seconds = |field: &str, v: Option<Option<u64>>| match v {
            Some(Some(0)) => Err(ApiError::bad_request(format!(
                "{field}: must be a positive number of seconds"
            ))),
            other => Ok(other.map(|s| s.map(Duration::from_secs))),
        };
        let lapse_action = match self.lapse_action {
            Some(Some(s)) => Some(Some(LapseAction::parse(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "lapseAction: '{s}' is not one of unverify, unclaim, keep"
                ))
            })?)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(OrganizationPatch {
            name: self.display_name.map(|n| n.trim().to_owned()),
            preferred_language: self.preferred_language,
            recheck_interval: seconds("recheckInterval", self.recheck_interval)?,
            recheck_grace: seconds("recheckGrace", self.recheck_grace)?,
            lapse_action,
            enforce_verified_domains: self.enforce_verified_domains,
        })
    }
}

/// `en`, `en_US`, `fr_CA`: ISO 639 with an optional region, as Cisco writes them.
fn is_language_tag(s: &str) -> bool {
    let (language, region) = s.split_once('_').unwrap_or((s, ""));
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty()
            || (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())))
}

fn resource(state: &AppState, org: Organization) -> OrganizationResource {
    let policy = state.config.recheck.policy(&org.recheck);
    OrganizationResource {
        schemas: [ORGANIZATION_SCHEMA],
        id: org.id.to_string(),
        display_name: org.name,
        preferred_language: org.preferred_language,
        meta: Meta {
            created: rfc3339(org.created_at),
            last_modified: rfc3339(org.updated_at),
        },
        recheck_interval: policy.interval.as_secs(),
        recheck_grace: policy.grace.as_secs(),
        lapse_action: policy.lapse_action.as_str(),
        enforce_verified_domains: org.enforce_verified_domains,
    }
}

pub async fn get_organization(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
) -> Result<Response, ApiError> {
    let org = state
        .store
        .find_organization(&caller.org)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("organization {} does not exist", caller.org))
        })?;
    Ok(Json(resource(&state, org)).into_response())
}

pub async fn patch_organization(
    State(state): State<AppState>,
    Authorized(caller): Authorized,
    Preview(preview): Preview,
    ApiJson(change): ApiJson<OrganizationChange>,
) -> Result<Response, ApiError> {
    let patch = change.into_patch()?;
    // Only what this change chooses must be within the bounds (they may have narrowed since
    // earlier choices).
    let chosen = RecheckSettings {
        interval: patch.recheck_interval.flatten(),
        grace: patch.recheck_grace.flatten(),
        lapse_action: None,
    };
    state
        .config
        .recheck
        .check_settings(&chosen)
        .map_err(ApiError::bad_request)?;
    if preview {
        return preview::answer(&state, &caller, Change::Organization(patch)).await;
    }
    let org = state
        .store
        .update_organization(&caller.actor(), &caller.org, &patch, state.clock.now())
        .await?;
    Ok(Json(resource(&state, org)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["en", "en_US", "fr_CA", "haw"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "EN", "en-US", "en_us", "english", "e", "en_USA"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
