//! Signing in to the console through the identity provider whose JWTs the API accepts: the
//! OpenID Connect authorization-code flow with PKCE (RFC 7636, `S256`).
//!
//! claimd is the client: it sends the browser to the provider's authorization endpoint with a
//! `state` bound to the browser by a cookie and a code challenge, and exchanges the code (with
//! its verifier) at the token endpoint, both found by discovery
//! (`{issuer}/.well-known/openid-configuration`). The access token it gets back is a JWT that
//! the API's own verifier checks (issuer, audience, signature, organization, scopes and
//! roles): a session signed in this way has exactly the rights that token would have on the
//! API, until the token expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::session::random_token;

/// What the operator configures (`--oidc-client-id` and friends).
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The provider: the JWT issuer, where discovery starts.
    pub issuer: String,
    pub client_id: String,
    /// For a confidential client (sent with HTTP Basic); a public client relies on PKCE alone.
    pub client_secret: Option<String>,
    /// Space-separated scopes to ask for; `openid` is always among them.
    pub scopes: String,
}

/// A sign-in must come back from the provider within this time.
pub const PENDING_FOR: Duration = Duration::from_secs(10 * 60);
/// Most sign-ins waiting for the provider at once.
const MAX_PENDING: usize = 10_000;

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

struct Pending {
    verifier: String,
    started: Instant,
}

pub struct Oidc {
    config: OidcConfig,
    /// Where the provider sends the browser back: `{public_url}/console/oidc/callback`.
    redirect_uri: String,
    http: reqwest::Client,
    endpoints: OnceCell<Discovery>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Why a sign-in through the provider did not happen; shown on the sign-in page.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(pub String);

/// The code challenge of a verifier (`S256`).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Oidc {
    pub fn new(config: OidcConfig, public_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            redirect_uri: format!("{public_url}/console/oidc/callback"),
            config,
            http,
            endpoints: OnceCell::new(),
            pending: Mutex::default(),
        }
    }

    /// The provider's endpoints, discovered once (again after a failure).
    async fn endpoints(&self) -> Result<&Discovery, OidcError> {
        self.endpoints
            .get_or_try_init(|| async {
                let issuer = self.config.issuer.trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let unreachable = |e: reqwest::Error| {
                    OidcError(format!(
                        "the identity provider's discovery document ({url}) could not be read: {e}"
                    ))
                };
                let found: Discovery = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(unreachable)?
                    .json()
                    .await
                    .map_err(unreachable)?;
                if found.issuer.trim_end_matches('/') != issuer {
                    return Err(OidcError(format!(
                        "the identity provider's discovery document names issuer {}, not {issuer}",
                        found.issuer
                    )));
                }
                Ok(found)
            })
            .await
    }

    /// Starts a sign-in: the `state` to bind to the browser, and where to send the browser.
    pub async fn start(&self) -> Result<(String, String), OidcError> {
        let endpoints = self.endpoints().await?;
        let state = random_token();
        let verifier = random_token();
        let mut url = url::Url::parse(&endpoints.authorization_endpoint).map_err(|e| {
            OidcError(format!(
                "the identity provider's authorization endpoint is not a URL: {e}"
            ))
        })?;
        let scopes = if self.config.scopes.split(' ').any(|s| s == "openid") {
            self.config.scopes.clone()
        } else {
            format!("openid {}", self.config.scopes).trim().to_owned()
        };
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &scopes)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| now.duration_since(p.started) < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            return Err(OidcError(
                "too many sign-ins are waiting for the identity provider; try again in a few minutes".into(),
            ));
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                started: now,
            },
        );
        Ok((state, url.into()))
    }

    /// Completes the sign-in `state` started: exchanges `code` for the access token. A state
    /// is used once.
    pub async fn finish(&self, state: &str, code: &str) -> Result<String, OidcError> {
        let pending = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.remove(state)
        };
        let Some(pending) = pending.filter(|p| p.started.elapsed() < PENDING_FOR) else {
            return Err(OidcError(
                "this sign-in took too long or was already used; sign in again".into(),
            ));
        };
        let endpoints = self.endpoints().await?;
        let mut request = self.http.post(&endpoints.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("client_id", &self.config.client_id),
            ("code_verifier", &pending.verifier),
        ]);
        if let Some(secret) = &self.config.client_secret {
            request = request.basic_auth(&self.config.client_id, Some(secret));
        }
        let failed = |e: reqwest::Error| {
            OidcError(format!(
                "the identity provider's token endpoint could not be reached: {e}"
            ))
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let answer: TokenAnswer = response.json().await.map_err(|e| {
            OidcError(format!(
                "the identity provider's token endpoint answered {status} without a token: {e}"
            ))
        })?;
        match (answer.access_token, answer.error) {
            (Some(token), None) if status.is_success() => Ok(token),
            (_, error) => Err(OidcError(format!(
                "the identity provider refused the code ({}): {}",
                error.as_deref().unwrap_or(status.as_str()),
                answer
                    .error_description
                    .as_deref()
                    .unwrap_or("no description")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn a_state_is_used_once_and_an_unknown_one_never() {
        let oidc = Oidc::new(
            OidcConfig {
                issuer: "http://127.0.0.1:9".into(),
                client_id: "console".into(),
                client_secret: None,
                scopes: "openid".into(),
            },
            "http://127.0.0.1:8080",
        );
        oidc.pending.lock().unwrap().insert(
            "s1".into(),
            Pending {
                verifier: "v".into(),
                started: Instant::now() - PENDING_FOR,
            },
        );
        let late = oidc.finish("s1", "code").await.unwrap_err();
        assert!(late.0.contains("took too long"), "{late}");
        let unknown = oidc.finish("s1", "code").await.unwrap_err();
        assert!(unknown.0.contains("already used"), "{unknown}");
    }
}
