//! claimd's HTTP API: the five Webex Domain Management actions, the domain reads, health
//! endpoints, authentication, and the wire conventions (tracking ids, Webex error bodies).
//!
//! The router is built by [`router`] from an [`AppState`]; the binary serves it, tests call it
//! in memory or over a real socket.

mod actions;
pub mod auth;
pub mod credentials;
pub mod error;
pub mod jwt;
pub mod limits;
mod reads;
pub mod serve;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use claimd_dns::Verifier;
use claimd_domain::{DomainPolicy, OrgId, Timestamp};
use claimd_store::Store;
use jwt::JwtVerifier;
use limits::{LimitConfig, Limits};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

/// Where "now" comes from; tests substitute a clock they can move.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Base of every `url` field, e.g. `https://claimd.example.com` (no trailing slash).
    pub public_url: String,
    /// How long an unused verification token stays valid.
    pub token_ttl: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most domains in one claimDomain request.
    pub max_claim_batch: usize,
    /// Most pending domains one organization may have (0: no limit).
    pub max_pending_domains: u64,
    /// Domains no organization may verify (consumer mail providers).
    pub domain_policy: DomainPolicy,
    pub limits: LimitConfig,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How often the credential change counter is polled: the longest a credential revoked
    /// elsewhere keeps working. Zero: no credential cache, every request reads the database.
    pub credential_recheck: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            token_ttl: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 64 * 1024,
            max_claim_batch: 100,
            max_pending_domains: 1000,
            domain_policy: DomainPolicy::default(),
            limits: LimitConfig::default(),
            request_timeout: Duration::from_secs(30),
            credential_recheck: Duration::from_millis(250),
        }
    }
}

/// What every handler shares, behind one reference count: axum clones the state for every
/// extractor and layer that asks for it, and one atomic increment is cheaper than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], reached through it.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    pub config: Arc<HttpConfig>,
    pub clock: Arc<dyn Clock>,
    pub limits: Arc<Limits>,
    /// JWT credentials, when an identity provider is configured.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// Organizations seen to exist. Organizations are never deleted, so a positive answer stays
    /// true and saves a query on every request.
    known_orgs: Arc<std::sync::RwLock<std::collections::HashSet<OrgId>>>,
    /// Opaque credentials in memory (see [`credentials`]); `None` when disabled.
    pub(crate) credentials: Option<Arc<credentials::CredentialCache>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, verifier: Arc<Verifier>, config: HttpConfig) -> Self {
        let mut config = config;
        config.public_url = config.public_url.trim_end_matches('/').to_owned();
        Self(Arc::new(Shared {
            credentials: credentials::CredentialCache::spawn(
                store.clone(),
                config.credential_recheck,
            ),
            store,
            verifier,
            limits: Arc::new(Limits::new(&config.limits)),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            jwt: None,
            known_orgs: Arc::default(),
        }))
    }

    /// Does the organization exist? Answered from memory once it has been seen.
    pub async fn organization_exists(&self, org: &OrgId) -> Result<bool, claimd_store::StoreError> {
        let known = |orgs: &std::collections::HashSet<OrgId>| orgs.contains(org);
        if self.known_orgs.read().map(|o| known(&o)).unwrap_or(false) {
            return Ok(true);
        }
        let exists = self.store.find_organization(org).await?.is_some();
        if exists && let Ok(mut orgs) = self.known_orgs.write() {
            orgs.insert(org.clone());
        }
        Ok(exists)
    }

    pub fn with_jwt(mut self, jwt: JwtVerifier) -> Self {
        Arc::make_mut(&mut self.0).jwt = Some(Arc::new(jwt));
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.0).clock = clock;
        self
    }

    fn org_url(&self, org: &OrgId) -> String {
        format!(
            "{}/v1/identity/organizations/{}",
            self.config.public_url,
            org.as_str()
        )
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    use auth::paths::*;
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route(GET_TOKEN, post(actions::get_domain_verification_token))
        .route(VERIFY, post(actions::verify_domain))
        .route(CLAIM, post(actions::claim_domain))
        .route(UNCLAIM, post(actions::unclaim_domain))
        .route(UNVERIFY, post(actions::unverify_domain))
        .route(DOMAINS, get(reads::list_domains))
        .route(DOMAIN, get(reads::get_domain))
        .route(CHECK, post(actions::check_domain))
        .route("/healthz", get(reads::healthz))
        .route("/readyz", get(reads::readyz))
        .fallback(wire::not_found)
        .method_not_allowed_fallback(wire::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(wire::panic_response))
        .layer(axum::middleware::from_fn(wire::wire))
        .with_state(state)
}
