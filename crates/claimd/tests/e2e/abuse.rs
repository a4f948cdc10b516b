//! Credentials and abuse controls: the authorization matrix over every endpoint, JWTs from an
//! identity provider (keys made here, JWKS served here), rate limits, caps, consumer domains and
//! hostile input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use claimd_domain::{
    ApiSecret, OrgId, ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN, SCOPE_ORGANIZATIONS_READ,
    SCOPE_ORGANIZATIONS_RW, SCOPE_PEOPLE_READ, SCOPE_PEOPLE_RW, Timestamp,
};
use claimd_http::auth::Access;
use claimd_http::jwt::{JwtConfig, JwtVerifier, KeySource};
use claimd_http::limits::LimitConfig;
use claimd_http::routes::endpoints;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::support::{Backend, Setup, TestApp};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "claimd";

/// A signing key made for the test, with its public JWK.
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let der = key.to_pkcs8_der().unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": B64.encode(key.verifying_key().as_bytes())}),
        }
    }

    fn p256(kid: &str) -> Self {
        use p256::pkcs8::EncodePrivateKey as _;
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let point =
            p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())}),
        }
    }

    fn rsa(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({"kty": "RSA", "kid": kid, "n": B64.encode(key.n().to_bytes_be()), "e": B64.encode(key.e().to_bytes_be())}),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(org: Option<&OrgId>, scope: &str, roles: &[&str]) -> Value {
    let mut c = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now_s(), "exp": now_s() + 600,
                       "scope": scope, "roles": roles});
    if let Some(org) = org {
        c["org_id"] = org.as_str().into();
    }
    c
}

/// A JWKS endpoint on loopback whose key set the test can change; counts its fetches.
struct JwksServer {
    url: String,
    keys: Arc<RwLock<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(RwLock::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"keys": *k.read().await}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, keys, fetches }
    }

    async fn verifier(&self, refetch_interval: Duration) -> JwtVerifier {
        JwtVerifier::new(JwtConfig {
            refetch_interval,
            ..JwtConfig::new(ISSUER, AUDIENCE, KeySource::Url(self.url.clone()))
        })
        .await
        .unwrap()
    }
}

/// What a credential is, for the expected status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invalid,
    OtherOrg,
    ReadOnly,
    MissingScopeOrRole,
    Allowed,
}

/// The expectation derived from the server's own table...
fn expected_from_table(kind: Kind, access: Access) -> Option<u16> {
    match (kind, access) {
        (Kind::Invalid, _) => Some(401),
        (Kind::OtherOrg | Kind::MissingScopeOrRole, _) => Some(403),
        (Kind::ReadOnly, Access::Write | Access::PeopleWrite) => Some(403),
        (Kind::ReadOnly, Access::Read | Access::Audit | Access::PeopleRead)
        | (Kind::Allowed, _) => {
            None // passes auth
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_over_every_endpoint() {
    let signing = TestKey::ed25519("k1");
    let jwks = JwksServer::start(vec![signing.jwk.clone()]).await;
    let setup = Setup {
        jwt: Some(jwks.verifier(Duration::from_secs(60)).await),
        ..Setup::default()
    };
    let app = TestApp::start_setup(Backend::Sqlite, setup).await;
    let a = app.a.id.clone();
    app.token_for(&app.a, "matrix.test").await;

    let (revoked, revoked_id) = app
        .credential(
            Some(&a),
            &[SCOPE_ORGANIZATIONS_RW],
            &[ROLE_FULL_ADMIN],
            None,
        )
        .await;
    app.store
        .revoke_credential(
            &claimd_store::Actor::default(),
            &revoked_id,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (expired, _) = app
        .credential(
            Some(&a),
            &[SCOPE_ORGANIZATIONS_RW],
            &[ROLE_FULL_ADMIN],
            Some(Timestamp::now()),
        )
        .await;
    app.clock.advance(Duration::from_secs(1));
    let (read_only, _) = app
        .credential(
            Some(&a),
            &[SCOPE_ORGANIZATIONS_READ, SCOPE_PEOPLE_READ],
            &[ROLE_READONLY_ADMIN],
            None,
        )
        .await;
    let (no_role, _) = app
        .credential(Some(&a), &[SCOPE_ORGANIZATIONS_RW], &[], None)
        .await;
    let (operator, _) = app
        .credential(
            None,
            &[SCOPE_ORGANIZATIONS_RW, SCOPE_PEOPLE_RW],
            &[ROLE_FULL_ADMIN],
            None,
        )
        .await;

    let rw = "identity:organizations_rw identity:people_rw";
    let admin_claims = claims(Some(&a), rw, &[ROLE_FULL_ADMIN]);
    let other_key = TestKey::ed25519("k1"); // same kid, another key: a bad signature
    let mut wrong_iss = admin_claims.clone();
    wrong_iss["iss"] = "https://evil.test".into();
    let mut wrong_aud = admin_claims.clone();
    wrong_aud["aud"] = "someone-else".into();
    let mut jwt_expired = admin_claims.clone();
    jwt_expired["exp"] = (now_s() - 3600).into();
    let alg_none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(admin_claims.to_string())
    );
    // HMAC "signed" with the public key as the secret: the classic confusion attack.
    let public_x = signing.jwk["x"].as_str().unwrap().to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let hmac_public = jsonwebtoken::encode(
        &hs_header,
        &admin_claims,
        &EncodingKey::from_secret(public_x.as_bytes()),
    )
    .unwrap();

    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let credentials: Vec<(&str, Option<String>, Kind)> = vec![
        ("no credential", None, Kind::Invalid),
        ("malformed header", Some("Token abc".into()), Kind::Invalid),
        (
            "unknown token",
            bearer(ApiSecret::generate().expose()),
            Kind::Invalid,
        ),
        ("revoked", bearer(&revoked), Kind::Invalid),
        ("expired", bearer(&expired), Kind::Invalid),
        (
            "JWT bad signature",
            bearer(&other_key.sign(&admin_claims)),
            Kind::Invalid,
        ),
        (
            "JWT wrong issuer",
            bearer(&signing.sign(&wrong_iss)),
            Kind::Invalid,
        ),
        (
            "JWT wrong audience",
            bearer(&signing.sign(&wrong_aud)),
            Kind::Invalid,
        ),
        (
            "JWT expired",
            bearer(&signing.sign(&jwt_expired)),
            Kind::Invalid,
        ),
        ("JWT alg none", bearer(&alg_none), Kind::Invalid),
        (
            "JWT HMAC with the public key",
            bearer(&hmac_public),
            Kind::Invalid,
        ),
        ("other organization", bearer(&app.b.token), Kind::OtherOrg),
        (
            "JWT of another organization",
            bearer(&signing.sign(&claims(Some(&app.b.id), rw, &[ROLE_FULL_ADMIN]))),
            Kind::OtherOrg,
        ),
        ("read-only", bearer(&read_only), Kind::ReadOnly),
        (
            "JWT read-only",
            bearer(&signing.sign(&claims(
                Some(&a),
                "identity:organizations_read identity:people_read",
                &[ROLE_READONLY_ADMIN],
            ))),
            Kind::ReadOnly,
        ),
        ("missing role", bearer(&no_role), Kind::MissingScopeOrRole),
        (
            "JWT missing scope",
            bearer(&signing.sign(&claims(Some(&a), "openid", &[ROLE_FULL_ADMIN]))),
            Kind::MissingScopeOrRole,
        ),
        ("operator", bearer(&operator), Kind::Allowed),
        (
            "JWT operator",
            bearer(&signing.sign(&claims(None, rw, &["claimd_operator", ROLE_FULL_ADMIN]))),
            Kind::Allowed,
        ),
        ("organization admin", bearer(&app.a.token), Kind::Allowed),
        (
            "JWT organization admin",
            bearer(&signing.sign(&admin_claims)),
            Kind::Allowed,
        ),
    ];
    // ...and the sensitive cells written out by hand, so the test does not only mirror the code.
    let by_hand: &[(&str, &str, &str, u16)] = &[
        ("read-only", "POST", "getDomainVerificationToken", 403),
        ("read-only", "GET", "/domains", 200),
        ("read-only", "POST", "/check", 403),
        ("JWT read-only", "POST", "claimDomain", 403),
        ("other organization", "GET", "/domains/", 403),
        ("JWT alg none", "GET", "/domains", 401),
        ("JWT HMAC with the public key", "GET", "/domains", 401),
        ("operator", "GET", "/domains", 200),
        ("JWT operator", "GET", "/domains", 200),
        ("read-only", "DELETE", "/v2/Users/", 403),
        ("JWT read-only", "PUT", "/v2/Users/", 403),
        ("other organization", "POST", "/v2/Users", 403),
        ("read-only", "GET", "/v2/Users/", 404),
    ];

    let mut checked_by_hand = 0;
    // Every route of the table that needs a credential (the health endpoints need none).
    let protected = endpoints().into_iter().filter_map(|e| Some((e, e.access?)));
    for (endpoint, access) in protected {
        // Routes without the organization in the path (webhooks, audit) take it as `orgId`.
        let org_query = if endpoint.path.contains("{orgId}") {
            String::new()
        } else {
            format!("?orgId={a}")
        };
        let url = format!(
            "{}{}{org_query}",
            app.base,
            endpoint
                .path
                .replace("{orgId}", a.as_str())
                .replace("{domainId}", "bWF0cml4LnRlc3Q")
                .replace("{userId}", "no-such-user")
        );
        for (name, header, kind) in &credentials {
            let method = reqwest::Method::from_bytes(endpoint.method.as_bytes()).unwrap();
            let mut request = match endpoint.method {
                "GET" => app.client.get(&url),
                _ => app
                    .client
                    .request(method, &url)
                    .json(&json!({"domain": "matrix.test", "data": [{"domain": "matrix.test"}]})),
            };
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            let r = app.send(request).await;
            let status = r.status.as_u16();
            match expected_from_table(*kind, access) {
                Some(expected) => {
                    assert_eq!(
                        status, expected,
                        "{name} on {} {}: {}",
                        endpoint.method, endpoint.path, r.body
                    );
                    r.assert_error(expected);
                }
                None => assert!(
                    ![401, 403].contains(&status) && status < 500,
                    "{name} on {} {} got {status}: {}",
                    endpoint.method,
                    endpoint.path,
                    r.body
                ),
            }
            for (cell, method, path_part, expected) in by_hand {
                if cell == name
                    && *method == endpoint.method
                    && url.contains(path_part)
                    && !(path_part == &"/domains" && url.contains("/domains/"))
                {
                    assert_eq!(
                        status, *expected,
                        "hand-written cell {cell} {method} {path_part}"
                    );
                    checked_by_hand += 1;
                }
            }
        }
    }
    assert!(
        checked_by_hand >= by_hand.len(),
        "every hand-written cell was checked ({checked_by_hand})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_algorithms_and_key_rotation() {
    let (ed, ec, rsa) = (
        TestKey::ed25519("ed"),
        TestKey::p256("ec"),
        TestKey::rsa("rsa"),
    );
    let jwks = JwksServer::start(vec![ed.jwk.clone(), ec.jwk.clone(), rsa.jwk.clone()]).await;
    let setup = Setup {
        jwt: Some(jwks.verifier(Duration::ZERO).await),
        ..Setup::default()
    };
    let app = TestApp::start_setup(Backend::Sqlite, setup).await;
    let admin = claims(
        Some(&app.a.id),
        "openid identity:organizations_rw",
        &[ROLE_FULL_ADMIN],
    );
    let get_token = |jwt: String| {
        let url = format!("{}/actions/getDomainVerificationToken", app.org_url(&app.a));
        app.send(
            app.client
                .post(url)
                .bearer_auth(jwt)
                .json(&json!({"domain": "jwt.test"})),
        )
    };
    for key in [&ed, &ec, &rsa] {
        let r = get_token(key.sign(&admin)).await;
        assert_eq!(r.status, 200, "{:?}: {}", key.alg, r.body);
    }
    // `scp` as an array works as well as a `scope` string.
    let mut scp = admin.clone();
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!(["identity:organizations_rw"]);
    assert_eq!(get_token(ed.sign(&scp)).await.status, 200);
    // The event log names the JWT's subject as the actor.
    let events = app
        .store
        .list_events(
            &app.a.id,
            &claimd_domain::DomainName::parse("jwt.test").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        events[0].credential_id.as_ref().map(|c| c.as_str()),
        Some("jwt:alice")
    );

    // Rotation: a key published after start is picked up on its first use.
    let rotated = TestKey::ed25519("rotated");
    let before = jwks.fetches.load(Ordering::SeqCst);
    assert_eq!(
        get_token(rotated.sign(&admin)).await.status,
        401,
        "unknown until published"
    );
    jwks.keys.write().await.push(rotated.jwk.clone());
    assert_eq!(get_token(rotated.sign(&admin)).await.status, 200);
    assert!(jwks.fetches.load(Ordering::SeqCst) >= before + 2);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_a_minute() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
    let verifier = jwks.verifier(Duration::from_secs(60)).await;
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    let stranger = TestKey::ed25519("unknown");
    for _ in 0..5 {
        let token = stranger.sign(&claims(Some(&OrgId::new("o")), "x", &[]));
        assert!(verifier.verify(&token).await.is_err());
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "a flood of unknown kids does not hammer the IdP"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let mut setup = Setup::default();
    setup.config.limits = LimitConfig {
        per_credential: 5,
        per_organization: 0,
        lookups_per_domain: 2,
        lookups_per_registrable: 3,
    };
    let app = TestApp::start_setup(Backend::Sqlite, setup).await;
    app.token_for(&app.a, "limited.test").await;
    app.token_for(&app.a, "x.limited.test").await;
    // Two DNS checks of one domain per minute: the third is refused, the dry run counts too.
    app.verify(&app.a, "limited.test").await.assert_error(400);
    let check = format!("{}/domains/bGltaXRlZC50ZXN0/check", app.org_url(&app.a));
    assert_eq!(
        app.send(app.client.post(&check).bearer_auth(&app.a.token))
            .await
            .status,
        200
    );
    let r = app.verify(&app.a, "limited.test").await;
    r.assert_error(429);
    assert!(r.headers.get("retry-after").is_some());
    assert!(
        r.description().contains("rate limit"),
        "{}",
        r.description()
    );
    // The credential has now made 5 requests: the next is refused whatever it is...
    let r = app
        .get(&app.a, &format!("{}/domains", app.org_url(&app.a)))
        .await;
    r.assert_error(429);
    // ...while another organization is unaffected, up to the registrable-domain cap shared by all.
    app.token_for(&app.b, "y.limited.test").await;
    app.verify(&app.b, "y.limited.test").await.assert_error(400);
    let r = app.verify(&app.b, "y.limited.test").await;
    r.assert_error(429);
    assert!(
        r.description().contains("registrable"),
        "{}",
        r.description()
    );
}

#[tokio::test]
async fn caps_public_suffixes_and_consumer_domains() {
    let mut setup = Setup::default();
    setup.config.max_pending_domains = 2;
    setup.config.max_claim_batch = 3;
    let app = TestApp::start_setup(Backend::Sqlite, setup).await;
    let get = |domain: &'static str| {
        app.action(
            &app.a,
            "getDomainVerificationToken",
            json!({"domain": domain}),
        )
    };
    for (domain, words) in [
        ("gmail.com", "consumer mail"),
        ("mail.GoogleMail.com", "consumer mail"),
        ("gmx.de", "consumer mail"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
    ] {
        let r = get(domain).await;
        r.assert_error(400);
        assert!(
            r.description().contains(words),
            "{domain}: {}",
            r.description()
        );
    }
    // A tenant under a private-section suffix is a domain of its own.
    assert_eq!(get("acme.github.io").await.status, 200);
    assert_eq!(get("second.test").await.status, 200);
    let r = get("third.test").await;
    r.assert_error(400);
    assert!(r.description().contains("2 pending"), "{}", r.description());
    let four: Vec<Value> = (0..4)
        .map(|i| json!({"domain": format!("d{i}.test")}))
        .collect();
    let r = app
        .action(&app.a, "claimDomain", json!({"data": four}))
        .await;
    r.assert_error(400);
    assert!(r.description().contains("at most 3"), "{}", r.description());
}

#[tokio::test]
async fn hostile_input_never_gets_a_5xx_or_changes_anything() {
    let app = TestApp::start(Backend::Sqlite).await;
    let url = format!("{}/actions/getDomainVerificationToken", app.org_url(&app.a));
    let post = |body: Vec<u8>| {
        app.client
            .post(&url)
            .bearer_auth(&app.a.token)
            .header("content-type", "application/json")
            .body(body)
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "deeply nested",
            format!("{{\"domain\": {}}}", "[".repeat(5000) + &"]".repeat(5000)).into_bytes(),
            400,
        ),
        ("deeper than the body limit", deep.into_bytes(), 413),
        (
            "invalid UTF-8",
            b"{\"domain\": \"\xff\xfe.test\"}".to_vec(),
            400,
        ),
        (
            "NUL in the name",
            b"{\"domain\": \"a\\u0000b.test\"}".to_vec(),
            400,
        ),
        ("a number", b"{\"domain\": 12}".to_vec(), 400),
        ("null", b"{\"domain\": null}".to_vec(), 400),
        ("not an object", b"[\"a.test\"]".to_vec(), 400),
        ("empty", Vec::new(), 400),
        (
            "huge name",
            format!("{{\"domain\": \"{}.test\"}}", "a".repeat(60_000)).into_bytes(),
            400,
        ),
        (
            "bidi and emoji",
            "{\"domain\": \"\u{202e}moc.\u{1F600}\"}"
                .as_bytes()
                .to_vec(),
            400,
        ),
    ];
    for (name, body, status) in cases {
        let r = app.send(post(body)).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.body);
        r.assert_error(status);
    }
    // Huge headers are refused by the HTTP layer; the server keeps serving.
    let huge = "x".repeat(200_000);
    let refused = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-junk", &huge)
        .send()
        .await;
    if let Ok(r) = refused {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let r = app
        .get(&app.a, &format!("{}/domains", app.org_url(&app.a)))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut setup = Setup::default();
    setup.connection.header_read_timeout = Duration::from_millis(300);
    let app = TestApp::start_setup(Backend::Sqlite, setup).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Half a request head, then nothing: the server must not wait for the rest forever.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection was held open");
    // Everyone else is still served.
    assert_eq!(
        app.send(app.client.get(format!("{}/healthz", app.base)))
            .await
            .status,
        200
    );
}
