//! Health endpoints: `/healthz` while the process runs, `/readyz` while the database answers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(serde_json::json!({"status": "ready"}))),
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
