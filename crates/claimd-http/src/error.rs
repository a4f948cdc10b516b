//! The one place where failures become HTTP: status, Webex error body, `Retry-After`.
//!
//! An [`ApiError`] turns into a response that carries the error as an extension; the wire
//! middleware renders it with the request's tracking id and logs 5xx details once. Internal
//! details never reach a response body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claimd_domain::{LifecycleError, NameError};
use claimd_store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Shown to the client, one entry per problem; the first is also the `message`.
    pub descriptions: Vec<String>,
    /// Seconds, for 429/502/503/504.
    pub retry_after: Option<u32>,
    /// Logged with 5xx, never shown.
    pub internal: Option<String>,
    /// The SCIM `scimType` of the refusal, on SCIM paths (`invalidFilter`, `uniqueness`, …).
    pub scim_type: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            descriptions: vec![description.into()],
            retry_after: None,
            internal: None,
            scim_type: None,
        }
    }

    /// The same refusal with its SCIM `scimType`.
    pub fn scim(mut self, scim_type: &'static str) -> Self {
        self.scim_type = Some(scim_type);
        self
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    pub fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, description)
    }

    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, description)
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, description)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            internal: Some(detail.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal error occurred; quote the trackingId when reporting it",
            )
        }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A generic body for a status produced outside our handlers.
    pub fn for_status(status: StatusCode) -> Self {
        let text = match status {
            StatusCode::NOT_FOUND => "No such resource",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed on this resource",
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Content-Type must be application/json",
            StatusCode::REQUEST_TIMEOUT => "The request took too long",
            s if s.is_server_error() => {
                "An internal error occurred; quote the trackingId when reporting it"
            }
            _ => status.canonical_reason().unwrap_or("Request failed"),
        };
        Self::new(status, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        use LifecycleError as L;
        let status = match &e {
            L::ClaimedByOther(_)
            | L::ReservedByOther(_)
            | L::VerifiedByOther(_)
            | L::ClaimedBySelf(_)
            | L::HierarchyConflict { .. }
            | L::UnverifiedMeanwhile(_)
            | L::ExternalUsers { .. }
            | L::AdminLockout
            | L::AdminLockoutElsewhere { .. } => StatusCode::CONFLICT,
            L::NotAssociated(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rule(rule) => rule.into(),
            StoreError::UnknownOrganization(org) => {
                Self::not_found(format!("organization '{org}' does not exist"))
            }
            StoreError::Unavailable(detail) => Self {
                internal: Some(detail),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable; retry later",
                )
                .with_retry_after(5)
            },
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, what).scim("uniqueness"),
            StoreError::VersionMismatch => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "the resource has changed since the version in If-Match",
            ),
            other => Self::internal(other.to_string()),
        }
    }
}

/// A domain name in a field that failed to parse: 400 naming the field.
pub fn invalid_domain(field: &str, e: &NameError) -> ApiError {
    ApiError::bad_request(format!("{field}: {e}"))
}

#[cfg(test)]
mod tests {
    use claimd_domain::DomainName;

    use super::*;

    #[test]
    fn each_refusal_has_its_status() {
        let d = DomainName::parse("example.com").unwrap();
        let cases = [
            (LifecycleError::NoTokenRequested(d.clone()), 400),
            (LifecycleError::TokenExpired(d.clone()), 400),
            (LifecycleError::NotVerified(d.clone()), 400),
            (LifecycleError::NotClaimed(d.clone()), 400),
            (LifecycleError::StillClaimed(d.clone()), 400),
            (LifecycleError::EmptyClaimList, 400),
            (LifecycleError::TooManyPending { max: 1 }, 400),
            (LifecycleError::NotAssociated(d.clone()), 404),
            (LifecycleError::ClaimedByOther(d.clone()), 409),
            (LifecycleError::ClaimedBySelf(d.clone()), 409),
            (LifecycleError::ReservedByOther(d.clone()), 409),
            (LifecycleError::AdminLockout, 409),
            (
                LifecycleError::AdminLockoutElsewhere {
                    domain: d.clone(),
                    count: 1,
                },
                409,
            ),
            (LifecycleError::VerifiedByOther(d.clone()), 409),
            (
                LifecycleError::HierarchyConflict {
                    domain: d.clone(),
                    conflicting: d.clone(),
                },
                409,
            ),
            (LifecycleError::UnverifiedMeanwhile(d.clone()), 409),
            (
                LifecycleError::ExternalUsers {
                    domain: d.clone(),
                    count: 2,
                },
                409,
            ),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status.as_u16(), status, "{text}");
            assert_eq!(api.descriptions, [text]);
        }
    }
}
