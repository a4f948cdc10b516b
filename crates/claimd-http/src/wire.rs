//! Wire conventions shared by every route: the `TrackingID` header, the Webex error body, and
//! a JSON extractor whose rejections speak that shape.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use claimd_domain::Timestamp;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

pub const TRACKING_HEADER: &str = "trackingid";

/// The id that ties a request, its response, its log lines and its events together.
#[derive(Clone, Debug)]
pub struct TrackingId(pub String);

/// Accepts the caller's `TrackingID` when it is sane, so ids can be followed across services.
fn accept_tracking_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// Middleware: assigns the tracking id, renders every error as a Webex error body carrying it,
/// and logs server errors once with their internal detail.
pub async fn wire(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let tracking = request
        .headers()
        .get(TRACKING_HEADER)
        .and_then(accept_tracking_id)
        .unwrap_or_else(|| format!("claimd_{}", uuid::Uuid::new_v4()));
    request
        .extensions_mut()
        .insert(TrackingId(tracking.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();

    let mut response = next.run(request).await;
    state.metrics.record(&response, &method, started.elapsed());
    let status = response.status();
    // The access log: never headers or bodies, which carry credentials.
    tracing::info!(
        tracking_id = %tracking, %method, %path, status = status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(e) => Some(e),
        // Errors produced outside our handlers (a layer, a panic) get the same shape.
        None if status.is_client_error() || status.is_server_error() => {
            Some(ApiError::for_status(status))
        }
        None => None,
    };
    if let Some(error) = error {
        if status.is_server_error() {
            tracing::error!(
                tracking_id = %tracking, %method, %path, status = status.as_u16(),
                detail = error.internal.as_deref().unwrap_or("-"),
                "request failed"
            );
        }
        let message = error.descriptions.first().cloned().unwrap_or_default();
        // SCIM paths answer in SCIM's error shape (RFC 7644, section 3.12).
        let (body, media) = if path.starts_with(crate::scim::PREFIX) {
            // Exactly RFC 7643's Error attributes (strict clients refuse others); the
            // tracking id is in the TrackingID header.
            let mut body = serde_json::json!({
                "schemas": [crate::scim::ERROR_SCHEMA],
                "status": status.as_u16().to_string(),
                "detail": message,
            });
            if let Some(scim_type) = error.scim_type {
                body["scimType"] = scim_type.into();
            }
            (body, crate::scim::MEDIA_TYPE)
        } else {
            let body = serde_json::json!({
                "message": message,
                "errors": error.descriptions.iter().map(|d| serde_json::json!({"description": d})).collect::<Vec<_>>(),
                "trackingId": tracking,
            });
            (body, "application/json")
        };
        *response.body_mut() = Body::from(body.to_string());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if let Ok(value) = HeaderValue::from_str(&tracking) {
        response.headers_mut().insert("TrackingID", value);
    }
    response
}

/// `Json<T>` whose rejections are [`ApiError`]s: 415 without a JSON content type, 413 for an
/// oversized body, 400 naming the field for malformed JSON or a wrong type.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(json_rejection(&JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "The request body is too large")
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })?;
        // serde would also read a struct from an array; the API takes objects only.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// `application/json`, or any `application/…+json`.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ),
        JsonRejection::JsonDataError(_) => ApiError::bad_request(format!(
            "invalid request body: {}",
            text.trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        )),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(format!(
            "malformed JSON: {}",
            text.trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "The request body is too large")
        }
        _ => ApiError::new(status, text),
    }
}

/// Used for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("No such resource")
}

/// Used for known routes with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// A panic inside a handler becomes a 500 in the usual shape.
/// `max` and `cursor` of a list paged by cursor (domains, external users).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// At most this many items, 1 to 1000 (default 100); a `Link: rel="next"` header follows
    /// when there are more.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    max: Option<String>,
    /// Where the previous page ended (from its `Link` header).
    cursor: Option<String>,
}

impl PageParams {
    const DEFAULT: u32 = 100;
    const MAX: u32 = 1000;

    /// The page size and the cursor (none when empty), or a 400 naming the parameter.
    pub fn read(
        params: Result<axum::extract::Query<Self>, axum::extract::rejection::QueryRejection>,
    ) -> Result<(u32, Option<String>), ApiError> {
        let axum::extract::Query(params) =
            params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let max = match params.max.as_deref() {
            None => Self::DEFAULT,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=Self::MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "max: must be a whole number from 1 to {}, got '{v}'",
                        Self::MAX
                    ))
                })?,
        };
        Ok((max, params.cursor.filter(|c| !c.is_empty())))
    }
}

/// Adds `Link: <{url}>; rel="next"` to a full page's answer.
pub fn link_next(response: &mut Response, url: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
        response.headers_mut().insert(header::LINK, value);
    }
}

/// A path segment or query value with everything but unreserved characters percent-encoded,
/// so a value from a URL, a form or the database cannot reach another route or parameter.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// A point in time as the API shows it: RFC 3339, UTC.
pub fn rfc3339(t: Timestamp) -> String {
    t.rfc3339()
}
