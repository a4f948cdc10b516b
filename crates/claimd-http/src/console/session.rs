//! Console sessions, held on the server: the browser keeps only a random id in an `HttpOnly`,
//! `SameSite=Strict` cookie, and the server keeps the id's SHA-256, so a copy of the session
//! table hands out no live cookie. A session ends when it is idle too long, when it reaches its
//! absolute lifetime, at sign-out, and as soon as the credential behind it stops working (the
//! credential is checked on every request, as the API checks it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimd_domain::OrgId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::SessionIdentity;

/// A session ends after this long without a request…
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// …and after this long in any case.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once; beyond it the oldest idle ones go first.
const MAX_SESSIONS: usize = 100_000;

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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// What the sign-in was made with (the credential's label), shown in the header.
    pub label: String,
    /// Every form of this session carries it.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

impl Session {
    pub fn new(identity: SessionIdentity, org: OrgId, label: String, now: Instant) -> Self {
        Self {
            identity,
            org,
            label,
            csrf: random_token(),
            created: now,
            last_seen: now,
            flash: None,
        }
    }

    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE && now.duration_since(self.created) < LIFETIME
    }
}

type Key = [u8; 32];

fn key(id: &str) -> Key {
    Sha256::digest(id.as_bytes()).into()
}

/// Every live session of this process, by the hash of its id.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<Key, Session>>,
}

impl Sessions {
    /// Starts `session`; answers the id for its cookie.
    pub fn start(&self, session: Session, now: Instant) -> String {
        let id = random_token();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= MAX_SESSIONS {
            held.retain(|_, s| s.live(now));
        }
        if held.len() >= MAX_SESSIONS
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            held.remove(&oldest);
        }
        held.insert(key(&id), session);
        id
    }

    /// The live session with this id, marked as used now, with its flash taken out of it.
    pub fn touch(&self, id: &str, now: Instant) -> Option<(Session, Option<Flash>)> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(id);
        let session = held.get_mut(&k)?;
        if !session.live(now) {
            held.remove(&k);
            return None;
        }
        session.last_seen = now;
        let flash = session.flash.take();
        Some((session.clone(), flash))
    }

    /// Leaves `flash` for the session's next page.
    pub fn flash(&self, id: &str, flash: Flash) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = held.get_mut(&key(id)) {
            session.flash = Some(flash);
        }
    }

    pub fn end(&self, id: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&key(id));
    }
}

#[cfg(test)]
mod tests {
    use claimd_domain::SecretHash;

    use super::*;

    fn session(now: Instant) -> Session {
        Session::new(
            SessionIdentity::Secret(SecretHash::of("secret")),
            OrgId::new("org"),
            "admin".into(),
            now,
        )
    }

    #[test]
    fn a_session_ends_when_idle_too_long_or_too_old_or_signed_out() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.start(session(t0), t0);
        assert!(sessions.touch(&id, t0 + IDLE / 2).is_some());
        // Used within the idle limit, again and again: alive until its lifetime ends.
        let mut t = t0;
        while t + IDLE / 2 < t0 + LIFETIME {
            t += IDLE / 2;
            assert!(sessions.touch(&id, t).is_some());
        }
        assert!(sessions.touch(&id, t0 + LIFETIME).is_none());

        let id = sessions.start(session(t0), t0);
        assert!(sessions.touch(&id, t0 + IDLE).is_none(), "idle");
        assert!(
            sessions.touch(&id, t0).is_none(),
            "an expired session is gone"
        );

        let id = sessions.start(session(t0), t0);
        sessions.end(&id);
        assert!(sessions.touch(&id, t0).is_none(), "signed out");
    }

    #[test]
    fn ids_are_random_and_stored_hashed_and_a_flash_shows_once() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.start(session(t0), t0);
        let b = sessions.start(session(t0), t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let held = sessions.held.lock().unwrap();
        assert!(held.contains_key(&key(&a)));
        assert!(!held.keys().any(|k| k.as_slice() == a.as_bytes()));
        drop(held);
        assert!(sessions.touch("not-a-session", t0).is_none());
        sessions.flash(&a, Flash::Done("verified".into()));
        let (_, flash) = sessions.touch(&a, t0).unwrap();
        assert_eq!(flash, Some(Flash::Done("verified".into())));
        let (_, flash) = sessions.touch(&a, t0).unwrap();
        assert_eq!(flash, None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
