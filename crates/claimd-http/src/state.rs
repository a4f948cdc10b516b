//! What every handler shares: the store, the verifier, the configuration, the clock, the rate
//! limits and credentials held in memory; and the absolute URLs responses link to.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use claimd_dns::Verifier;
use claimd_domain::{DomainName, DomainPolicy, OrgId, RecheckConfig, Timestamp};
use claimd_store::{Store, StoreError};

use crate::credentials::CredentialCache;
use crate::jwt::JwtVerifier;
use crate::limits::{LimitConfig, Limits};
use crate::metrics::Metrics;

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
    /// The re-check defaults, and the bounds organizations choose within.
    pub recheck: RecheckConfig,
    /// Where webhooks may point.
    pub webhook_targets: claimd_webhooks::target::TargetPolicy,
    /// The hash of the bearer token `GET /metrics` needs on this listener; `None`: not served
    /// here (see [`crate::metrics`]).
    pub metrics_token: Option<claimd_domain::SecretHash>,
    /// Console sign-in through the identity provider (OpenID Connect); `None`: credentials only.
    pub oidc: Option<crate::OidcConfig>,
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
            recheck: RecheckConfig::default(),
            webhook_targets: claimd_webhooks::target::TargetPolicy::default(),
            metrics_token: None,
            oidc: None,
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
    known_orgs: Arc<RwLock<HashSet<OrgId>>>,
    /// Opaque credentials in memory (see [`crate::credentials`]); `None` when disabled.
    pub(crate) credentials: Option<Arc<CredentialCache>>,
    /// Requests counted for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, verifier: Arc<Verifier>, config: HttpConfig) -> Self {
        let mut config = config;
        config.public_url = config.public_url.trim_end_matches('/').to_owned();
        Self(Arc::new(Shared {
            credentials: CredentialCache::spawn(store.clone(), config.credential_recheck),
            store,
            verifier,
            limits: Arc::new(Limits::new(&config.limits)),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            jwt: None,
            known_orgs: Arc::default(),
            metrics: Arc::default(),
        }))
    }

    pub fn with_jwt(mut self, jwt: JwtVerifier) -> Self {
        Arc::make_mut(&mut self.0).jwt = Some(Arc::new(jwt));
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.0).clock = clock;
        self
    }

    /// Does the organization exist? Answered from memory once it has been seen.
    pub async fn organization_exists(&self, org: &OrgId) -> Result<bool, StoreError> {
        let known = |orgs: &HashSet<OrgId>| orgs.contains(org);
        if self.known_orgs.read().map(|o| known(&o)).unwrap_or(false) {
            return Ok(true);
        }
        let exists = self.store.find_organization(org).await?.is_some();
        if exists && let Ok(mut orgs) = self.known_orgs.write() {
            orgs.insert(org.clone());
        }
        Ok(exists)
    }

    /// `…/v1/identity/organizations/{org}` on this server.
    pub fn org_url(&self, org: &OrgId) -> String {
        format!(
            "{}/v1/identity/organizations/{}",
            self.config.public_url,
            org.as_str()
        )
    }

    /// The URL of an action, as the action responses give it.
    pub fn action_url(&self, org: &OrgId, action: &str) -> String {
        format!("{}/actions/{action}", self.org_url(org))
    }

    /// The domain resource: `{id}` is the base64url of the normalized name.
    pub fn domain_url(&self, org: &OrgId, domain: &DomainName) -> String {
        format!("{}/domains/{}", self.org_url(org), domain.resource_id())
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
