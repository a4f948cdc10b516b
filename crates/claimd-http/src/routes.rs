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
use crate::openapi::{self, Doc};
use crate::state::AppState;
use crate::{
    actions, audit, console, domains, external, health, metrics, organizations, preview, scim,
    verification, webhooks, wire,
};

/// The paths of the organization API.
pub mod paths {
    pub const GET_TOKEN: &str =
        "/v1/identity/organizations/{orgId}/actions/getDomainVerificationToken";
    pub const VERIFY: &str = "/v1/identity/organizations/{orgId}/actions/verifyDomain";
    pub const CLAIM: &str = "/v1/identity/organizations/{orgId}/actions/claimDomain";
    pub const UNCLAIM: &str = "/v1/identity/organizations/{orgId}/actions/unclaimDomain";
    pub const UNVERIFY: &str = "/v1/identity/organizations/{orgId}/actions/unverifyDomain";
    pub const ORGANIZATION: &str = "/v1/identity/organizations/{orgId}";
    pub const DOMAINS: &str = "/v1/identity/organizations/{orgId}/domains";
    pub const DOMAIN: &str = "/v1/identity/organizations/{orgId}/domains/{domainId}";
    /// The dry run of a verification (the path keeps the name it was published under).
    pub const DRY_RUN: &str = "/v1/identity/organizations/{orgId}/domains/{domainId}/check";
    pub const RECHECK: &str = "/v1/identity/organizations/{orgId}/domains/{domainId}/recheck";
    pub const DOMAIN_EVENTS: &str = "/v1/identity/organizations/{orgId}/domains/{domainId}/events";
    pub const AUDIT_EVENTS: &str = "/v1/adminAudit/events";
    pub const AUDIT_CATEGORIES: &str = "/v1/adminAudit/eventCategories";
    pub const WEBHOOKS: &str = "/v1/webhooks";
    pub const WEBHOOK: &str = "/v1/webhooks/{webhookId}";
    pub const WEBHOOK_REPLAY: &str = "/v1/webhooks/{webhookId}/replay";
    pub const WEBHOOK_DELIVERIES: &str = "/v1/webhooks/{webhookId}/deliveries";
    /// SCIM 2.0 Users, at Cisco's paths (no `/v1`).
    pub const SCIM_USERS: &str = "/identity/scim/{orgId}/v2/Users";
    pub const EXTERNAL_USERS: &str = "/v1/identity/organizations/{orgId}/externalUsers";
    pub const CONVERT_USER: &str =
        "/v1/identity/organizations/{orgId}/externalUsers/{userId}/convert";
    pub const SCIM_USER: &str = "/identity/scim/{orgId}/v2/Users/{userId}";
    pub const SCIM_CONFIG: &str = "/identity/scim/{orgId}/v2/ServiceProviderConfig";
    pub const SCIM_SCHEMAS: &str = "/identity/scim/{orgId}/v2/Schemas";
    pub const SCIM_RESOURCE_TYPES: &str = "/identity/scim/{orgId}/v2/ResourceTypes";
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
    /// What the OpenAPI document says about it.
    doc: Doc,
}

fn route<H, T>(
    method: &'static str,
    path: &'static str,
    access: Option<Access>,
    handler: H,
    doc: Doc,
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
        doc,
    }
}

fn table() -> Vec<Route> {
    use paths::*;
    let (read, write, audit) = (Some(Access::Read), Some(Access::Write), Some(Access::Audit));
    let (people_read, people_write) = (Some(Access::PeopleRead), Some(Access::PeopleWrite));
    const TAG_USERS: &str = "Users (SCIM 2.0)";
    const TAG_ACTIONS: &str = "Domain management";
    const TAG_DOMAINS: &str = "Domains";
    const TAG_ORG: &str = "Organization";
    const TAG_AUDIT: &str = "Audit events";
    const TAG_HOOKS: &str = "Webhooks";
    const TAG_OPS: &str = "Operations";
    vec![
        route(
            "POST",
            GET_TOKEN,
            write,
            actions::get_domain_verification_token,
            Doc::new(
                "getDomainVerificationToken",
                TAG_ACTIONS,
                "Get the token that proves control of a domain",
            )
            .description(
                "Starts (or continues) a domain's verification: answers the token to publish \
                 as a TXT record. Asking again before the token expires answers the same token.",
            )
            .body::<actions::DomainRequest>()
            .answers::<actions::TokenResponse>(200)
            .errors(&[409]),
        ),
        route(
            "POST",
            VERIFY,
            write,
            actions::verify_domain,
            Doc::new("verifyDomain", TAG_ACTIONS, "Verify a domain")
                .description(
                    "Looks the token up in DNS and, when it is published, marks the domain \
                     verified (and claims it with `claimDomain: true`). A refusal explains what \
                     each resolver saw. With `reserveDomain: true` no other organization may \
                     request a token for the name or verify it while this one keeps it \
                     verified. `?preview=true`: no lookup, nothing changed; answers how many \
                     users the verification would move (an `ImpactResponse`).",
                )
                .query::<preview::PreviewParams>()
                .schema::<preview::ImpactResponse>()
                .body::<actions::VerifyRequest>()
                .answers::<actions::SummaryResponse>(200)
                .errors(&[409, 502, 504]),
        ),
        route(
            "POST",
            CLAIM,
            write,
            actions::claim_domain,
            Doc::new("claimDomain", TAG_ACTIONS, "Claim verified domains")
                .description(
                    "Claims each listed domain, which must be verified by the organization; \
                     no other organization can then verify or claim it. `?preview=true`: \
                     nothing changed; answers how many users the claim would move.",
                )
                .query::<preview::PreviewParams>()
                .body::<actions::ClaimRequest>()
                .answers::<actions::ClaimedResponse>(200)
                .errors(&[409]),
        ),
        route(
            "POST",
            UNCLAIM,
            write,
            actions::unclaim_domain,
            Doc::new("unclaimDomain", TAG_ACTIONS, "Release a claimed domain")
                .description(
                    "Releases the claim; the users it made transient are active again. \
                     `?preview=true`: nothing changed; answers (200) how many users it would \
                     move.",
                )
                .query::<preview::PreviewParams>()
                .body::<actions::DomainRequest>()
                .empty(204),
        ),
        route(
            "POST",
            UNVERIFY,
            write,
            actions::unverify_domain,
            Doc::new("unverifyDomain", TAG_ACTIONS, "Give up a verified domain")
                .description(
                    "Drops the verification (a claimed domain must be unclaimed first); with \
                     `removePending: true`, also forgets a domain still waiting for its record. \
                     `?preview=true`: nothing changed; answers how many users it would move.",
                )
                .query::<preview::PreviewParams>()
                .body::<actions::UnverifyRequest>()
                .answers::<actions::SummaryResponse>(200),
        ),
        route(
            "GET",
            DOMAINS,
            read,
            domains::list_domains,
            Doc::new(
                "listDomains",
                TAG_DOMAINS,
                "List the organization's domains",
            )
            .query::<wire::PageParams>()
            .answers::<domains::DomainList>(200),
        ),
        route(
            "GET",
            DOMAIN,
            read,
            domains::get_domain,
            Doc::new(
                "getDomain",
                TAG_DOMAINS,
                "One domain, with its token and re-check state",
            )
            .answers::<domains::DomainResource>(200),
        ),
        // The dry run sends DNS queries on the caller's behalf: as strict as verify.
        route(
            "POST",
            DRY_RUN,
            write,
            domains::dry_run,
            Doc::new(
                "checkDomain",
                TAG_DOMAINS,
                "Dry run: would verifyDomain succeed now?",
            )
            .description(
                "Makes the lookup verifyDomain would make and answers what it saw, changing \
                     nothing: each resolver's answer, near-miss hints, and a `dig` command.",
            )
            .answers::<verification::DryRunBody>(200),
        ),
        route(
            "POST",
            RECHECK,
            write,
            domains::recheck,
            Doc::new(
                "recheckDomain",
                TAG_DOMAINS,
                "Re-check a verified domain now",
            )
            .answers::<domains::DomainResource>(200)
            .errors(&[409]),
        ),
        route(
            "GET",
            ORGANIZATION,
            read,
            organizations::get_organization,
            Doc::new(
                "getOrganization",
                TAG_ORG,
                "The organization and its re-check policy",
            )
            .answers::<organizations::OrganizationResource>(200),
        ),
        route(
            "PATCH",
            ORGANIZATION,
            write,
            organizations::patch_organization,
            Doc::new(
                "patchOrganization",
                TAG_ORG,
                "Change the organization's name or policy",
            )
            .description(
                "`?preview=true`: nothing changed; answers how many users the change (the \
                 enforcement switch) would move.",
            )
            .query::<preview::PreviewParams>()
            .body::<organizations::OrganizationChange>()
            .answers::<organizations::OrganizationResource>(200),
        ),
        route(
            "GET",
            DOMAIN_EVENTS,
            read,
            audit::domain_events,
            Doc::new(
                "domainEvents",
                TAG_DOMAINS,
                "A domain's history, with its DNS evidence",
            )
            .answers::<audit::HistoryList>(200),
        ),
        route(
            "GET",
            AUDIT_EVENTS,
            audit,
            audit::list_events,
            Doc::new(
                "listAuditEvents",
                TAG_AUDIT,
                "The organization's audit events",
            )
            .query::<audit::AuditParams>()
            .answers::<audit::AuditList>(200),
        ),
        route(
            "GET",
            AUDIT_CATEGORIES,
            audit,
            audit::list_categories,
            Doc::new(
                "listAuditEventCategories",
                TAG_AUDIT,
                "The audit event categories",
            )
            .answers::<audit::Categories>(200),
        ),
        route(
            "POST",
            WEBHOOKS,
            write,
            webhooks::create_webhook,
            Doc::new("createWebhook", TAG_HOOKS, "Register a webhook")
                .description(
                    "The answer is the only one that shows the signing secret (Standard \
                     Webhooks signatures).",
                )
                .body::<webhooks::NewWebhook>()
                .answers::<webhooks::WebhookResponse>(200),
        ),
        route(
            "GET",
            WEBHOOKS,
            read,
            webhooks::list_webhooks,
            Doc::new("listWebhooks", TAG_HOOKS, "The organization's webhooks")
                .answers::<webhooks::WebhookList>(200),
        ),
        route(
            "GET",
            WEBHOOK,
            read,
            webhooks::get_webhook,
            Doc::new("getWebhook", TAG_HOOKS, "One webhook")
                .answers::<webhooks::WebhookResponse>(200),
        ),
        route(
            "PUT",
            WEBHOOK,
            write,
            webhooks::update_webhook,
            Doc::new("updateWebhook", TAG_HOOKS, "Change a webhook")
                .body::<webhooks::WebhookChange>()
                .answers::<webhooks::WebhookResponse>(200),
        ),
        route(
            "DELETE",
            WEBHOOK,
            write,
            webhooks::delete_webhook,
            Doc::new("deleteWebhook", TAG_HOOKS, "Delete a webhook").empty(204),
        ),
        route(
            "POST",
            WEBHOOK_REPLAY,
            write,
            webhooks::replay_webhook,
            Doc::new(
                "replayWebhook",
                TAG_HOOKS,
                "Deliver a webhook's events again",
            )
            .query::<webhooks::ReplayParams>()
            .answers::<webhooks::Replayed>(200),
        ),
        route(
            "GET",
            WEBHOOK_DELIVERIES,
            read,
            webhooks::list_deliveries,
            Doc::new(
                "listWebhookDeliveries",
                TAG_HOOKS,
                "A webhook's recent delivery attempts",
            )
            .answers::<webhooks::AttemptList>(200),
        ),
        route(
            "GET",
            "/healthz",
            None,
            health::healthz,
            Doc::new("healthz", TAG_OPS, "Whether the process runs").answers::<health::Health>(200),
        ),
        route(
            "GET",
            "/readyz",
            None,
            health::readyz,
            Doc::new("readyz", TAG_OPS, "Whether the database answers")
                .answers::<health::Health>(200),
        ),
        // Its own bearer token (--metrics-token), not an API credential.
        route(
            "GET",
            "/metrics",
            None,
            metrics::metrics,
            Doc::new("metrics", TAG_OPS, "Prometheus metrics")
                .description(
                    "In the Prometheus text format. Served here unless `--metrics-listen` \
                     gives it its own address; with `--metrics-token`, only to that bearer token.",
                )
                .media("text/plain; version=0.0.4")
                .errors(&[401, 404]),
        ),
        route(
            "GET",
            "/openapi.json",
            None,
            openapi::openapi_json,
            Doc::new("openapi", TAG_OPS, "This document (OpenAPI 3.1)").media("application/json"),
        ),
        route(
            "POST",
            SCIM_USERS,
            people_write,
            scim::create_user,
            Doc::new("createUser", TAG_USERS, "Create a user")
                .description(
                    "A SCIM 2.0 User (`application/scim+json`): `userName` is the primary email, \
                     unique across all organizations ignoring case (409 `uniqueness`).",
                )
                .media_with(201, scim::MEDIA_TYPE)
                .errors(&[409]),
        ),
        route(
            "GET",
            SCIM_USERS,
            people_read,
            scim::list_users,
            Doc::new("listUsers", TAG_USERS, "Search the organization's users")
                .description(
                    "`filter` (RFC 7644: eq ne co sw ew gt ge lt le pr, and/or/not, parentheses; \
                     on userName, emails.value, displayName, name.givenName, name.familyName, \
                     externalId, active, meta.created, meta.lastModified), `startIndex` and \
                     `count` (at most 1000), `sortBy`/`sortOrder`, `attributes`/`excludedAttributes`.",
                )
                .media(scim::MEDIA_TYPE),
        ),
        route(
            "GET",
            SCIM_USER,
            people_read,
            scim::get_user,
            Doc::new("getUser", TAG_USERS, "One user").media(scim::MEDIA_TYPE),
        ),
        route(
            "PUT",
            SCIM_USER,
            people_write,
            scim::replace_user,
            Doc::new("replaceUser", TAG_USERS, "Replace a user")
                .description("`If-Match` with the user's `meta.version` refuses a stale change (412).")
                .media(scim::MEDIA_TYPE)
                .errors(&[409, 412]),
        ),
        route(
            "PATCH",
            SCIM_USER,
            people_write,
            scim::patch_user,
            Doc::new("patchUser", TAG_USERS, "Change some of a user")
                .description(
                    "SCIM PatchOp: `Operations` of `add`, `replace`, `remove` on `userName`, \
                     `displayName`, `active`, `externalId`, `name(.givenName|.familyName)`, \
                     `emails`, `emails[type eq \"work\"].value`, `roles` and \
                     `roles[value eq \"id_full_admin\"]`; all or nothing. The admin lock-out \
                     guard refuses (409) a change that leaves the organization without an \
                     active `id_full_admin`.",
                )
                .media(scim::MEDIA_TYPE)
                .errors(&[409, 412]),
        ),
        route(
            "DELETE",
            SCIM_USER,
            people_write,
            scim::delete_user,
            Doc::new("deleteUser", TAG_USERS, "Remove a user")
                .empty(204)
                .errors(&[412]),
        ),
        route(
            "GET",
            EXTERNAL_USERS,
            people_read,
            external::list_external_users,
            Doc::new(
                "listExternalUsers",
                TAG_USERS,
                "Users of other organizations in the claimed domains",
            )
            .description(
                "The users of other organizations that this organization's claims made \
                 transient, by userName, with the claimed domain each is in; nothing of the \
                 organization they are in.",
            )
            .query::<wire::PageParams>()
            .answers::<external::ExternalUserList>(200),
        ),
        route(
            "POST",
            CONVERT_USER,
            people_write,
            external::convert_user,
            Doc::new(
                "convertExternalUser",
                TAG_USERS,
                "Convert an external user into this organization",
            )
            .description(
                "Moves the user into this organization, active; the organization it left \
                 sees it leave (an event), not who took it. Answers the user in SCIM's shape.",
            )
            .media("application/json")
            .errors(&[404]),
        ),
        route(
            "GET",
            SCIM_CONFIG,
            people_read,
            scim::service_provider_config,
            Doc::new(
                "scimServiceProviderConfig",
                TAG_USERS,
                "What this SCIM service supports",
            )
            .media(scim::MEDIA_TYPE),
        ),
        route(
            "GET",
            SCIM_SCHEMAS,
            people_read,
            scim::schemas,
            Doc::new("scimSchemas", TAG_USERS, "The User schema").media(scim::MEDIA_TYPE),
        ),
        route(
            "GET",
            SCIM_RESOURCE_TYPES,
            people_read,
            scim::resource_types,
            Doc::new("scimResourceTypes", TAG_USERS, "The resource types (User)")
                .media(scim::MEDIA_TYPE),
        ),
        route(
            "GET",
            "/docs",
            None,
            openapi::docs_index,
            Doc::new(
                "docs",
                TAG_OPS,
                "A browsable view of this document (Swagger UI)",
            )
            .media("text/html"),
        ),
        route("GET", "/docs/", None, openapi::docs_home, Doc::hidden()),
        route(
            "GET",
            "/docs/{*file}",
            None,
            openapi::docs_file,
            Doc::hidden(),
        ),
    ]
}

/// The OpenAPI document of every route, served from `public_url`.
pub fn openapi_document(public_url: &str) -> utoipa::openapi::OpenApi {
    let table = table();
    openapi::document(table.iter().map(|r| (&r.endpoint, &r.doc)), public_url)
}

/// Every route with the access it needs.
pub fn endpoints() -> Vec<Endpoint> {
    table().into_iter().map(|r| r.endpoint).collect()
}

/// The whole API over `state`, with the wire conventions, limits and panic handling; and the
/// console, which calls it.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let request_timeout = state.config.request_timeout;
    let table = table();
    let document = openapi::document(
        table.iter().map(|r| (&r.endpoint, &r.doc)),
        &state.config.public_url,
    );
    let served = openapi::Served(
        serde_json::to_string(&document)
            .expect("the OpenAPI document serializes")
            .into(),
    );
    let routes = table.into_iter().fold(Router::new(), |router, r| {
        router.route(r.endpoint.path, r.handler)
    });
    let api = routes
        .layer(Extension(served))
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
        .with_state(state.clone());
    // The console calls the API in-process, through the same router.
    api.clone().merge(console::router(state, api))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_organization_route_needs_a_credential() {
        for e in endpoints() {
            assert_eq!(
                e.access.is_some(),
                e.path.starts_with("/v1/") || e.path.starts_with(crate::scim::PREFIX),
                "{} {}",
                e.method,
                e.path
            );
        }
    }
}
