//! Health endpoints: `/healthz` while the process runs, `/readyz` while the database answers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    status: &'static str,
    /// `/readyz`: whether proving lookups are DNSSEC-validated and against which trust anchor
    /// (`off: …` when validation is turned off).
    #[serde(skip_serializing_if = "Option::is_none")]
    dnssec: Option<String>,
}

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        dnssec: None,
    })
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Health {
            status: "ready",
            dnssec: Some(state.verifier.dnssec().describe()),
        })),
        Err(e) => Err(ApiError {
            internal: Some(e.to_string()),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not reachable",
            )
            .with_retry_after(5)
        }),
    }
}
