//! An OpenID Connect provider on loopback for the console's sign-in: discovery, an
//! authorization endpoint with a page where the person approves or denies, a token endpoint
//! that holds the client to the protocol (a registered redirect URI, single-use codes bound to
//! it, and PKCE `S256`), and its JWKS. Its access tokens are JWTs for claimd's audience,
//! carrying the organization, scopes and roles the test gives the person.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::abuse::TestKey;

pub const CLIENT_ID: &str = "claimd-console";
pub const AUDIENCE: &str = "claimd";

struct Grant {
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct Held {
    /// The client's registered redirect URI (known once claimd listens).
    redirect_uri: Option<String>,
    /// The claims of the person who signs in (beside iss, aud, sub, iat, exp).
    person: Value,
    codes: HashMap<String, Grant>,
    /// Codes exchanged for a token.
    exchanged: usize,
}

#[derive(Clone)]
pub struct Idp {
    pub issuer: String,
    held: Arc<Mutex<Held>>,
    key: Arc<TestKey>,
}

impl Idp {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = Self {
            issuer,
            held: Arc::default(),
            key: Arc::new(TestKey::ed25519("idp-1")),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/authorize/decide", post(decide))
            .route("/token", post(token))
            .route("/jwks.json", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    /// Registers the client's redirect URI, and who signs in (claims beside iss, aud, sub,
    /// iat and exp).
    pub fn register(&self, redirect_uri: String, person: Value) {
        let mut held = self.held.lock().unwrap();
        held.redirect_uri = Some(redirect_uri);
        held.person = person;
    }

    pub fn exchanged(&self) -> usize {
        self.held.lock().unwrap().exchanged
    }

    /// `claimd serve` flags that trust this provider and sign the console in through it.
    pub fn flags(&self) -> Vec<String> {
        [
            "--jwt-issuer",
            &self.issuer,
            "--jwt-audience",
            AUDIENCE,
            "--jwt-jwks-url",
            &format!("{}/jwks.json", self.issuer),
            "--oidc-client-id",
            CLIENT_ID,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

async fn discovery(State(idp): State<Idp>) -> Json<Value> {
    let i = &idp.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks.json"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }))
}

async fn jwks(State(idp): State<Idp>) -> Json<Value> {
    Json(json!({"keys": [idp.key.jwk]}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
}

fn bad(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}

/// The provider's sign-in page: the person approves or denies.
async fn authorize(State(idp): State<Idp>, Query(q): Query<AuthorizeQuery>) -> Response {
    let registered = idp.held.lock().unwrap().redirect_uri.clone();
    if q.client_id != CLIENT_ID || Some(&q.redirect_uri) != registered.as_ref() {
        return bad("unknown client or unregistered redirect_uri");
    }
    if q.response_type != "code" || !q.scope.split(' ').any(|s| s == "openid") {
        return bad("response_type must be code and scope must hold openid");
    }
    if q.code_challenge_method != "S256" || q.code_challenge.len() != 43 {
        return bad("PKCE S256 required");
    }
    let fields = format!(
        r#"<input type="hidden" name="state" value="{}"><input type="hidden" name="challenge" value="{}"><input type="hidden" name="redirect_uri" value="{}">"#,
        q.state, q.code_challenge, q.redirect_uri
    );
    Html(format!(
        r#"<!doctype html><html lang="en"><head><title>Test identity provider</title></head><body><main>
        <h1>Sign in to claimd?</h1>
        <form method="post" action="/authorize/decide">{fields}
        <button name="decision" value="approve">Approve</button>
        <button name="decision" value="deny">Deny</button></form></main></body></html>"#
    ))
    .into_response()
}

#[derive(Deserialize)]
struct Decision {
    state: String,
    challenge: String,
    redirect_uri: String,
    decision: String,
}

async fn decide(State(idp): State<Idp>, Form(d): Form<Decision>) -> Response {
    let back = url::Url::parse(&d.redirect_uri).unwrap();
    let mut back = back;
    if d.decision != "approve" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "the person declined")
            .append_pair("state", &d.state);
        return Redirect::to(back.as_str()).into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4());
    idp.held.lock().unwrap().codes.insert(
        code.clone(),
        Grant {
            challenge: d.challenge,
            redirect_uri: d.redirect_uri.clone(),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &d.state);
    Redirect::to(back.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

fn refused(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": error})),
    )
        .into_response()
}

async fn token(State(idp): State<Idp>, Form(t): Form<TokenRequest>) -> Response {
    let mut held = idp.held.lock().unwrap();
    // A code is used once, whatever the outcome.
    let Some(grant) = held.codes.remove(&t.code) else {
        return refused("invalid_grant");
    };
    if t.grant_type != "authorization_code" || t.client_id != CLIENT_ID {
        return refused("unauthorized_client");
    }
    if t.redirect_uri != grant.redirect_uri {
        return refused("invalid_grant");
    }
    if B64.encode(Sha256::digest(t.code_verifier.as_bytes())) != grant.challenge {
        return refused("invalid_grant");
    }
    held.exchanged += 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"iss": idp.issuer, "aud": AUDIENCE, "sub": "alice@idp.test",
                            "iat": now, "exp": now + 600});
    if let (Some(c), Some(p)) = (claims.as_object_mut(), held.person.as_object()) {
        c.extend(p.clone());
    }
    Json(json!({
        "access_token": idp.key.sign(&claims),
        "token_type": "Bearer",
        "expires_in": 600,
    }))
    .into_response()
}
