//! Console sessions, held on the server — in the database, so that every `claimd serve`
//! process on it knows every session and a browser may reach any of them. The browser keeps
//! only a random id in an `HttpOnly`, `SameSite=Strict` cookie; the database keeps the id's
//! SHA-256, so a copy of the table hands out no live cookie. A session ends when it is idle
//! too long, when it reaches its absolute lifetime, at sign-out, and as soon as the credential
//! behind it stops working (the credential is checked on every request, as the API checks it).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimd_domain::{Credential, CredentialId, OrgId, SecretHash, Timestamp};
use claimd_store::{SessionWindow, Store, StoreError, StoreResult, StoredSession};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::SessionIdentity;

/// A session ends after this long without a request…
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// …and after this long in any case.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A random value for a cookie or a form: 256 bits, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time comparison of a presented value with the expected one.
pub fn same(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A message shown once, on the next page the session sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Flash {
    Done(String),
    Refused(String),
    /// A dry run's answer (the API's JSON), for the domain page to explain.
    Checked(serde_json::Value),
}

/// One signed-in person.
#[derive(Clone)]
pub struct Session {
    pub identity: SessionIdentity,
    /// The organization the console shows.
    pub org: OrgId,
    /// Who signed in (a credential's label, a person's subject), shown in the header.
    pub label: String,
    /// Every form of this session carries it.
    pub csrf: String,
}

impl Session {
    pub fn new(identity: SessionIdentity, org: OrgId, label: String) -> Self {
        Self {
            identity,
            org,
            label,
            csrf: random_token(),
        }
    }
}

/// A session as the store keeps it (its `data`).
#[derive(Serialize, Deserialize)]
struct Kept {
    identity: KeptIdentity,
    org: String,
    label: String,
    csrf: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KeptIdentity {
    /// The SHA-256 of an opaque credential's secret (what the credentials table holds too).
    Secret { hash: String },
    /// A verified JWT's claims (never the token itself).
    Token {
        id: String,
        org: Option<String>,
        label: String,
        scopes: Vec<String>,
        roles: Vec<String>,
        created_at: i64,
        expires_at: Option<i64>,
    },
}

impl Kept {
    fn of(s: &Session) -> Self {
        let identity = match &s.identity {
            SessionIdentity::Secret(hash) => KeptIdentity::Secret {
                hash: URL_SAFE_NO_PAD.encode(hash.as_bytes()),
            },
            SessionIdentity::Token(c) => KeptIdentity::Token {
                id: c.id.as_str().to_owned(),
                org: c.org_id.as_ref().map(|o| o.as_str().to_owned()),
                label: c.label.clone(),
                scopes: c.scopes.clone(),
                roles: c.roles.clone(),
                created_at: c.created_at.as_millis(),
                expires_at: c.expires_at.map(Timestamp::as_millis),
            },
        };
        Self {
            identity,
            org: s.org.as_str().to_owned(),
            label: s.label.clone(),
            csrf: s.csrf.clone(),
        }
    }

    fn session(self) -> Option<Session> {
        let identity = match self.identity {
            KeptIdentity::Secret { hash } => {
                let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(hash).ok()?.try_into().ok()?;
                SessionIdentity::Secret(SecretHash::from_bytes(bytes))
            }
            KeptIdentity::Token {
                id,
                org,
                label,
                scopes,
                roles,
                created_at,
                expires_at,
            } => SessionIdentity::Token(Credential {
                id: CredentialId::new(id),
                org_id: org.map(|o| OrgId::new(&o)),
                label,
                scopes,
                roles,
                created_at: Timestamp::from_millis(created_at),
                expires_at: expires_at.map(Timestamp::from_millis),
                revoked_at: None,
            }),
        };
        Some(Session {
            identity,
            org: OrgId::new(&self.org),
            label: self.label,
            csrf: self.csrf,
        })
    }
}

/// The store's key for a session id: its SHA-256.
fn key(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(id.as_bytes()))
}

fn window(now: Timestamp) -> SessionWindow {
    let before =
        |d: Duration| Timestamp::from_millis(now.as_millis().saturating_sub(d.as_millis() as i64));
    SessionWindow {
        idle_since: before(IDLE),
        born_after: before(LIFETIME),
    }
}

/// Every session, in the store.
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Starts `session`; answers the id for its cookie.
    pub async fn start(&self, session: &Session, now: Timestamp) -> StoreResult<String> {
        let id = random_token();
        let data = serde_json::to_string(&Kept::of(session))
            .map_err(|e| StoreError::Internal(format!("session: {e}")))?;
        let stored = StoredSession {
            key: key(&id),
            data,
            created_at: now,
            last_seen_at: now,
            flash: None,
        };
        self.store.create_session(&stored, window(now)).await?;
        Ok(id)
    }

    /// The live session with this id, marked as used now, with the message left for it.
    pub async fn touch(
        &self,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<(Session, Option<Flash>)>> {
        let Some(stored) = self.store.touch_session(&key(id), now, window(now)).await? else {
            return Ok(None);
        };
        let session = serde_json::from_str::<Kept>(&stored.data)
            .ok()
            .and_then(Kept::session)
            .ok_or_else(|| StoreError::Internal("a stored console session is corrupt".into()))?;
        let flash = stored
            .flash
            .and_then(|f| serde_json::from_str::<Flash>(&f).ok());
        Ok(Some((session, flash)))
    }

    /// Leaves `flash` for the session's next page.
    pub async fn flash(&self, id: &str, flash: &Flash) -> StoreResult<()> {
        let text = serde_json::to_string(flash)
            .map_err(|e| StoreError::Internal(format!("session: {e}")))?;
        self.store.set_session_flash(&key(id), &text).await
    }

    pub async fn end(&self, id: &str) -> StoreResult<()> {
        self.store.end_session(&key(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &Session) -> Session {
        let text = serde_json::to_string(&Kept::of(s)).unwrap();
        serde_json::from_str::<Kept>(&text)
            .unwrap()
            .session()
            .unwrap()
    }

    #[test]
    fn a_session_is_kept_without_any_secret_and_read_back_whole() {
        let secret = SecretHash::of("claimd_secret");
        let s = Session::new(
            SessionIdentity::Secret(secret.clone()),
            OrgId::new("org-1"),
            "admin".into(),
        );
        let text = serde_json::to_string(&Kept::of(&s)).unwrap();
        assert!(!text.contains("claimd_secret"));
        let back = round_trip(&s);
        assert!(matches!(&back.identity, SessionIdentity::Secret(h) if *h == secret));
        assert_eq!(
            (back.org, back.label, back.csrf),
            (s.org.clone(), s.label.clone(), s.csrf.clone())
        );

        let person = Credential {
            id: CredentialId::new("jwt:alice"),
            org_id: Some(OrgId::new("org-1")),
            label: "JWT from https://idp".into(),
            scopes: vec!["identity:organizations_read".into()],
            roles: vec!["id_readonly_admin".into()],
            created_at: Timestamp::from_millis(1),
            expires_at: Some(Timestamp::from_millis(2)),
            revoked_at: None,
        };
        let s = Session::new(
            SessionIdentity::Token(person.clone()),
            OrgId::new("org-1"),
            "alice".into(),
        );
        assert!(matches!(round_trip(&s).identity, SessionIdentity::Token(c) if c == person));
    }

    #[test]
    fn ids_are_random_and_kept_hashed_and_flashes_read_back() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_ne!(key(&a), a);
        assert_eq!(key(&a), key(&a));
        for flash in [
            Flash::Done("verified".into()),
            Flash::Refused("no".into()),
            Flash::Checked(serde_json::json!({"verified": true})),
        ] {
            let text = serde_json::to_string(&flash).unwrap();
            assert_eq!(serde_json::from_str::<Flash>(&text).unwrap(), flash);
        }
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn the_window_is_the_idle_time_and_the_lifetime_back_from_now() {
        let now = Timestamp::from_millis(100_000_000);
        let w = window(now);
        assert_eq!(w.idle_since.as_millis(), 100_000_000 - 1_800_000);
        assert_eq!(w.born_after.as_millis(), 100_000_000 - 43_200_000);
    }
}
