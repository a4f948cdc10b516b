//! Every route claimd serves, in one table: method, path, the access it needs, and its handler.
//! The router is built from the table, and the access of each route travels with it to the
//! [`Authorized`](crate::auth::Authorized) extractor; the authorization matrix test walks the
//! same table ([`endpoints`]). A new endpoint is one more row here.

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::Access;
use crate::state::AppState;
use crate::{actions, audit, domains, health, metrics, organizations, webhooks, wire};

/// The paths of the organization API.
pub mod paths {
    pub const GET_TOKEN: &str =
        "/v1/identity/organizations/{org_id}/actions/getDomainVerificationToken";
    pub const VERIFY: &str = "/v1/identity/organizations/{org_id}/actions/verifyDomain";
    pub const CLAIM: &str = "/v1/identity/organizations/{org_id}/actions/claimDomain";
    pub const UNCLAIM: &str = "/v1/identity/organizations/{org_id}/actions/unclaimDomain";
    pub const UNVERIFY: &str = "/v1/identity/organizations/{org_id}/actions/unverifyDomain";
    pub const ORGANIZATION: &str = "/v1/identity/organizations/{org_id}";
    pub const DOMAINS: &str = "/v1/identity/organizations/{org_id}/domains";
    pub const DOMAIN: &str = "/v1/identity/organizations/{org_id}/domains/{id}";
    /// The dry run of a verification (the path keeps the name it was published under).
    pub const DRY_RUN: &str = "/v1/identity/organizations/{org_id}/domains/{id}/check";
    pub const RECHECK: &str = "/v1/identity/organizations/{org_id}/domains/{id}/recheck";
    pub const DOMAIN_EVENTS: &str = "/v1/identity/organizations/{org_id}/domains/{id}/events";
    pub const AUDIT_EVENTS: &str = "/v1/adminAudit/events";
    pub const AUDIT_CATEGORIES: &str = "/v1/adminAudit/eventCategories";
    pub const WEBHOOKS: &str = "/v1/webhooks";
    pub const WEBHOOK: &str = "/v1/webhooks/{webhook_id}";
    pub const WEBHOOK_REPLAY: &str = "/v1/webhooks/{webhook_id}/replay";
    pub const WEBHOOK_DELIVERIES: &str = "/v1/webhooks/{webhook_id}/deliveries";
}

/// A route and who may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: open to anyone (health).
    pub access: Option<Access>,
}

struct Route {
    endpoint: Endpoint,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(
    method: &'static str,
    path: &'static str,
    access: Option<Access>,
    handler: H,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = Method::from_bytes(method.as_bytes())
        .ok()
        .and_then(|m| MethodFilter::try_from(m).ok())
        .unwrap_or_else(|| panic!("route table: {method} is not a method axum routes"));
    // The answer carries its route template, for the metrics the wire middleware counts.
    let mut handler = axum::routing::on(filter, handler).layer(axum::middleware::map_response(
        move |mut response: Response| async move {
            response
                .extensions_mut()
                .insert(metrics::RouteTemplate(path));
            response
        },
    ));
    if let Some(access) = access {
        handler = handler.layer(Extension(access));
    }
    Route {
        endpoint: Endpoint {
            method,
            path,
            access,
        },
        handler,
    }
}

fn table() -> Vec<Route> {
    use paths::*;
    let (read, write, audit) = (Some(Access::Read), Some(Access::Write), Some(Access::Audit));
    vec![
        route(
            "POST",
            GET_TOKEN,
            write,
            actions::get_domain_verification_token,
        ),
        route("POST", VERIFY, write, actions::verify_domain),
        route("POST", CLAIM, write, actions::claim_domain),
        route("POST", UNCLAIM, write, actions::unclaim_domain),
        route("POST", UNVERIFY, write, actions::unverify_domain),
        route("GET", DOMAINS, read, domains::list_domains),
        route("GET", DOMAIN, read, domains::get_domain),
        // The dry run sends DNS queries on the caller's behalf: as strict as verify.
        route("POST", DRY_RUN, write, domains::dry_run),
        route("POST", RECHECK, write, domains::recheck),
        route("GET", ORGANIZATION, read, organizations::get_organization),
        route(
            "PATCH",
            ORGANIZATION,
            write,
            organizations::patch_organization,
        ),
        route("GET", DOMAIN_EVENTS, read, audit::domain_events),
        route("GET", AUDIT_EVENTS, audit, audit::list_events),
        route("GET", AUDIT_CATEGORIES, audit, audit::list_categories),
        route("POST", WEBHOOKS, write, webhooks::create_webhook),
        route("GET", WEBHOOKS, read, webhooks::list_webhooks),
        route("GET", WEBHOOK, read, webhooks::get_webhook),
        route("PUT", WEBHOOK, write, webhooks::update_webhook),
        route("DELETE", WEBHOOK, write, webhooks::delete_webhook),
        route("POST", WEBHOOK_REPLAY, write, webhooks::replay_webhook),
        route("GET", WEBHOOK_DELIVERIES, read, webhooks::list_deliveries),
        route("GET", "/healthz", None, health::healthz),
        route("GET", "/readyz", None, health::readyz),
        // Its own bearer token (--metrics-token), not an API credential.
        route("GET", "/metrics", None, metrics::metrics),
    ]
}

/// Every route with the access it needs.
pub fn endpoints() -> Vec<Endpoint> {
    table().into_iter().map(|r| r.endpoint).collect()
}

/// The whole API over `state`, with the wire conventions, limits and panic handling.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let request_timeout = state.config.request_timeout;
    let routes = table().into_iter().fold(Router::new(), |router, r| {
        router.route(r.endpoint.path, r.handler)
    });
    routes
        .fallback(wire::not_found)
        .method_not_allowed_fallback(wire::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(wire::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wire::wire,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_organization_route_needs_a_credential() {
        for e in endpoints() {
            assert_eq!(
                e.access.is_some(),
                e.path.starts_with("/v1/"),
                "{} {}",
                e.method,
                e.path
            );
        }
    }
}
