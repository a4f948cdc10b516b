//! JWT credentials from an external identity provider, validated against a configured issuer,
//! audience and JWKS. Only asymmetric algorithms (RS256, ES256, EdDSA) are accepted, each key
//! only for the algorithm of its own type: `alg: none` and HMAC signed with a public key are
//! refused by construction.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use claimd_domain::{Credential, CredentialId, OrgId, Timestamp};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

/// Where the signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// Fetched at start, and again (at most once a minute) when a token names an unknown `kid`.
    Url(String),
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    pub keys: KeySource,
    /// The claim holding the organization id.
    pub org_claim: String,
    /// The claim holding the scopes: a space-separated string (`scope`) or an array (`scp`,
    /// which is also looked at when this one is absent).
    pub scope_claim: String,
    /// The claim holding the roles: an array or a space-separated string.
    pub roles_claim: String,
    /// A role that makes the token valid for every organization (an operator).
    pub operator_role: String,
    /// Tolerance on `exp` and `nbf`.
    pub leeway: Duration,
    /// Timeout of one JWKS fetch.
    pub fetch_timeout: Duration,
    /// Shortest time between two refetches for unknown key ids.
    pub refetch_interval: Duration,
}

impl JwtConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, keys: KeySource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys,
            org_claim: "org_id".to_owned(),
            scope_claim: "scope".to_owned(),
            roles_claim: "roles".to_owned(),
            operator_role: "claimd_operator".to_owned(),
            leeway: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
            refetch_interval: Duration::from_secs(60),
        }
    }
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    config: JwtConfig,
    keys: RwLock<Vec<Key>>,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

/// Why a JWT was refused; shown to the caller (nothing secret in it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(String);

fn refuse(reason: impl Into<String>) -> JwtError {
    JwtError(reason.into())
}

/// Only the asymmetric algorithms, each tied to its key type.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("invalid JWKS: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let alg = algorithm_of(jwk)?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect())
}

impl JwtVerifier {
    /// Loads the keys once; fails if they cannot be read.
    pub async fn new(config: JwtConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let verifier = Self {
            config,
            keys: RwLock::new(Vec::new()),
            last_fetch: Mutex::new(None),
            http,
        };
        let keys = verifier.load().await?;
        if keys.is_empty() {
            return Err("the JWKS holds no RS256, ES256 or EdDSA key".to_owned());
        }
        *verifier.keys.write().await = keys;
        Ok(verifier)
    }

    async fn load(&self) -> Result<Vec<Key>, String> {
        let text = match &self.config.keys {
            KeySource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            KeySource::Url(url) => {
                *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                self.http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| format!("cannot fetch the JWKS: {e}"))?
                    .text()
                    .await
                    .map_err(|e| format!("cannot fetch the JWKS: {e}"))?
            }
        };
        parse_jwks(&text)
    }

    /// Refetches the JWKS for an unknown key id, at most once per refetch interval.
    async fn refresh(&self) -> bool {
        if !matches!(self.config.keys, KeySource::Url(_)) {
            return false;
        }
        let due = self
            .last_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|at| at.elapsed() >= self.config.refetch_interval);
        if !due {
            return false;
        }
        match self.load().await {
            Ok(keys) if !keys.is_empty() => {
                *self.keys.write().await = keys;
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refetch failed");
                false
            }
        }
    }

    async fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Option<Result<Value, JwtError>> {
        let keys = self.keys.read().await;
        let key = keys.iter().find(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => k.alg == alg,
        })?;
        if key.alg != alg {
            return Some(Err(refuse(format!("the key {kid:?} is not for {alg:?}"))));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        Some(
            jsonwebtoken::decode::<Value>(token, &key.key, &validation)
                .map(|data| data.claims)
                .map_err(|e| refuse(format!("the JWT is not valid: {e}"))),
        )
    }

    /// Validates `token` and turns its claims into a credential.
    pub async fn verify(&self, token: &str) -> Result<Credential, JwtError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refuse(format!("the JWT header is not acceptable: {e}")))?;
        let alg = header.alg;
        if !matches!(alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(refuse(format!("JWT algorithm {alg:?} is not accepted")));
        }
        let kid = header.kid.as_deref();
        let claims = match self.decode(token, alg, kid).await {
            Some(result) => result?,
            None if self.refresh().await => self
                .decode(token, alg, kid)
                .await
                .unwrap_or_else(|| Err(refuse("the JWT is signed with an unknown key")))?,
            None => return Err(refuse("the JWT is signed with an unknown key")),
        };
        self.credential(&claims)
    }

    fn credential(&self, claims: &Value) -> Result<Credential, JwtError> {
        let words = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let scopes = words(
            claims
                .get(&self.config.scope_claim)
                .or_else(|| claims.get("scp")),
        );
        let roles = words(claims.get(&self.config.roles_claim));
        let operator = roles.contains(&self.config.operator_role);
        let org_id = match claims.get(&self.config.org_claim).and_then(Value::as_str) {
            _ if operator => None,
            Some(org) if !org.is_empty() => Some(OrgId::new(org)),
            _ => {
                return Err(refuse(format!(
                    "the JWT carries no organization (claim '{}')",
                    self.config.org_claim
                )));
            }
        };
        let seconds = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_i64)
                .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        Ok(Credential {
            id: CredentialId::new(format!("jwt:{subject}")),
            org_id,
            label: format!("JWT from {}", self.config.issuer),
            scopes,
            roles,
            created_at: seconds("iat").unwrap_or_else(Timestamp::now),
            expires_at: seconds("exp"),
            revoked_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_keys_are_loaded() {
        let jwks = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let keys = parse_jwks(jwks).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].kid.as_deref(), keys[0].alg),
            (Some("e"), Algorithm::EdDSA)
        );
    }
}
