//! A claimd API on a real socket, a real SQLite file and a real (in-process, authoritative) DNS
//! server, plus helpers to drive it like a client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use claimd_dns::testing::TestDnsServer;
use claimd_dns::{DnssecMode, Verifier, VerifierConfig};
use claimd_domain::{ApiSecret, NewCredential, OrgId, Timestamp};
use claimd_http::jwt::JwtVerifier;
use claimd_http::limits::LimitConfig;
use claimd_http::serve::ConnectionLimits;
use claimd_http::{AppState, Clock, HttpConfig};
use claimd_store::Store;
use claimd_store_postgres::testing::TestDatabase;
use claimd_store_postgres::{PgSettings, PgStore};
use claimd_store_sqlite::{SqliteSettings, SqliteStore};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A clock the test moves by hand (token expiry).
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Which store implementation an app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps a test's database alive; dropping it removes the database.
pub enum Database {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Database {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Self::Postgres(TestDatabase::create().await),
        }
    }

    /// The `--database-url` of this database.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite:{}", dir.path().join("claimd.db").display()),
            Self::Postgres(db) => db.url(),
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(_) => Arc::new(
                SqliteStore::open(&self.url(), &SqliteSettings::default())
                    .await
                    .unwrap(),
            ),
            Self::Postgres(db) => Arc::new(
                PgStore::open(&db.url(), &PgSettings::default())
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// How a test wants its claimd.
pub struct Setup {
    /// The DNS server to publish on and the servers claimd asks (default: a fresh server, asked).
    pub dns: Option<(TestDnsServer, Vec<SocketAddr>)>,
    pub dns_timeout: Duration,
    pub config: HttpConfig,
    pub jwt: Option<JwtVerifier>,
    pub connection: ConnectionLimits,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            dns: None,
            dns_timeout: Duration::from_secs(3),
            config: HttpConfig {
                token_ttl: TOKEN_TTL,
                // Off here; the rate-limit tests turn them on with small numbers.
                limits: LimitConfig {
                    per_credential: 0,
                    per_organization: 0,
                    lookups_per_domain: 0,
                    lookups_per_registrable: 0,
                },
                ..HttpConfig::default()
            },
            jwt: None,
            connection: ConnectionLimits::default(),
        }
    }
}

pub struct Org {
    pub id: OrgId,
    pub token: String,
}

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub dns: TestDnsServer,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    pub a: Org,
    pub b: Org,
    db: Database,
}

/// A request expected to be refused: who sends it, the action, the body, the status, and a
/// text the error description contains.
pub type Refusal<'a> = (&'a Org, &'static str, Value, u16, &'static str);

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The first error description of a Webex error body.
    pub fn description(&self) -> &str {
        self.body["errors"][0]["description"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn tracking_id(&self) -> &str {
        self.headers
            .get("trackingid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts the Webex error shape (SCIM's, on SCIM paths) with the tracking id of the header.
    pub fn assert_error(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        if self.body["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error" {
            assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
            assert!(
                self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}",
                self.body
            );
            assert_eq!(
                self.headers["content-type"], "application/scim+json",
                "{}",
                self.body
            );
            assert!(!self.tracking_id().is_empty());
            return self;
        }
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(!self.description().is_empty(), "{}", self.body);
        assert!(!self.tracking_id().is_empty());
        assert_eq!(self.body["trackingId"].as_str(), Some(self.tracking_id()));
        self
    }
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_setup(backend, Setup::default()).await
    }

    /// claimd asking `dns_servers` (the test DNS server still runs for publishing).
    pub async fn start_with(
        backend: Backend,
        dns: TestDnsServer,
        dns_servers: Vec<SocketAddr>,
        dns_timeout: Duration,
    ) -> Self {
        let setup = Setup {
            dns: Some((dns, dns_servers)),
            dns_timeout,
            ..Setup::default()
        };
        Self::start_setup(backend, setup).await
    }

    pub async fn start_setup(backend: Backend, setup: Setup) -> Self {
        let (dns, dns_servers) = match setup.dns {
            Some(given) => given,
            None => {
                let dns = TestDnsServer::start().await.unwrap();
                let addr = dns.addr();
                (dns, vec![addr])
            }
        };
        let db = Database::create(backend).await;
        let store = db.open().await;
        let verifier = Verifier::new(VerifierConfig {
            timeout: setup.dns_timeout,
            dnssec: DnssecMode::Off,
            ..VerifierConfig::with_servers(dns_servers)
        })
        .unwrap();
        let clock = Arc::new(ManualClock(AtomicI64::new(Timestamp::now().as_millis())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = HttpConfig {
            public_url: base.clone(),
            ..setup.config
        };
        let mut state =
            AppState::new(store.clone(), Arc::new(verifier), config).with_clock(clock.clone());
        if let Some(jwt) = setup.jwt {
            state = state.with_jwt(jwt);
        }
        let app = claimd_http::router(state);
        tokio::spawn(claimd_http::serve::serve(
            listener,
            app,
            setup.connection,
            std::future::pending(),
        ));
        let a = new_org(&*store, "org a").await;
        let b = new_org(&*store, "org b").await;
        Self {
            base,
            store,
            dns,
            clock,
            client: reqwest::Client::new(),
            a,
            b,
            db,
        }
    }

    /// A credential made directly in the store: (secret, id).
    pub async fn credential(
        &self,
        org: Option<&OrgId>,
        scopes: &[&str],
        roles: &[&str],
        expires: Option<Timestamp>,
    ) -> (String, claimd_domain::CredentialId) {
        let secret = ApiSecret::generate();
        let new = NewCredential {
            org_id: org.cloned(),
            label: "test".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: expires,
        };
        let c = self
            .store
            .create_credential(
                &claimd_store::Actor::default(),
                &new,
                &secret.hash(),
                Timestamp::now(),
            )
            .await
            .unwrap();
        (secret.expose().to_owned(), c.id)
    }

    /// The `--database-url` of this app's database.
    pub fn database_url(&self) -> String {
        self.db.url()
    }

    pub fn org_url(&self, org: &Org) -> String {
        format!("{}/v1/identity/organizations/{}", self.base, org.id)
    }

    /// POST an action with a JSON body as `org`'s admin.
    pub async fn action(&self, org: &Org, action: &str, body: Value) -> Reply {
        self.send(
            self.client
                .post(format!("{}/actions/{action}", self.org_url(org)))
                .bearer_auth(&org.token)
                .json(&body),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, org: &Org, url: &str) -> Reply {
        self.send(self.client.get(url).bearer_auth(&org.token))
            .await
    }

    pub async fn request_token(&self, org: &Org, domain: &str) -> Reply {
        let body = json!({ "domain": domain });
        self.action(org, "getDomainVerificationToken", body).await
    }

    pub async fn verify(&self, org: &Org, domain: &str) -> Reply {
        self.action(org, "verifyDomain", json!({ "domain": domain }))
            .await
    }

    /// claimDomain for every one of `domains`, in one request.
    pub async fn claim(&self, org: &Org, domains: &[&str]) -> Reply {
        let data: Vec<Value> = domains.iter().map(|d| json!({ "domain": d })).collect();
        self.action(org, "claimDomain", json!({ "data": data }))
            .await
    }

    pub async fn unclaim(&self, org: &Org, domain: &str) -> Reply {
        self.action(org, "unclaimDomain", json!({ "domain": domain }))
            .await
    }

    pub async fn unverify(&self, org: &Org, domain: &str) -> Reply {
        self.action(org, "unverifyDomain", json!({ "domain": domain }))
            .await
    }

    /// GET the domain resource of `domain` (its id is the base64url of the name).
    pub async fn domain(&self, org: &Org, domain: &str) -> Reply {
        let id = claimd_domain::DomainName::parse(domain)
            .unwrap()
            .resource_id();
        self.get(org, &format!("{}/domains/{id}", self.org_url(org)))
            .await
    }

    /// Sends each request and asserts its refusal: the status, the Webex error shape, and a
    /// text the description must contain.
    pub async fn assert_refused(&self, refusals: &[Refusal<'_>]) {
        for (org, action, body, status, says) in refusals {
            let r = self.action(org, action, body.clone()).await;
            r.assert_error(*status);
            assert!(
                r.description().contains(says),
                "{action} {body}: expected '{says}' in: {}",
                r.description()
            );
        }
    }

    /// getDomainVerificationToken, expecting success; returns the token.
    pub async fn token_for(&self, org: &Org, domain: &str) -> String {
        let r = self.request_token(org, domain).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Gets a token, publishes it, verifies: the domain ends verified for `org`.
    pub async fn verified(&self, org: &Org, domain: &str) {
        let token = self.token_for(org, domain).await;
        self.publish(domain, &[&token]).await;
        let r = self.verify(org, domain).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Verified and claimed by `org`.
    pub async fn claimed(&self, org: &Org, domain: &str) {
        self.verified(org, domain).await;
        let r = self.claim(org, &[domain]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Publishes the TXT records proving control with each token (replacing what was there).
    pub async fn publish(&self, domain: &str, tokens: &[&str]) {
        let values: Vec<String> = tokens
            .iter()
            .map(|t| format!("cisco-ci-domain-verification={t}"))
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.dns.set_txt(domain, &values).await;
    }
}

pub async fn new_org(store: &dyn Store, name: &str) -> Org {
    let org = store
        .create_organization(&claimd_store::Actor::default(), name, Timestamp::now())
        .await
        .unwrap();
    let secret = ApiSecret::generate();
    store
        .create_credential(
            &claimd_store::Actor::default(),
            &NewCredential::org_admin(org.id.clone(), "test"),
            &secret.hash(),
            Timestamp::now(),
        )
        .await
        .unwrap();
    Org {
        id: org.id,
        token: secret.expose().to_owned(),
    }
}
