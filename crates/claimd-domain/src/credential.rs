use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use sha2::{Digest as _, Sha256};

use crate::Timestamp;

pub const SCOPE_IDENTITY_ORGANIZATION: &str = "Identity:Organization";
pub const SCOPE_ORGANIZATIONS_RW: &str = "identity:organizations_rw";
pub const SCOPE_ORGANIZATIONS_READ: &str = "identity:organizations_read";
/// Reading the admin audit events (Cisco's scope for them).
pub const SCOPE_AUDIT_READ: &str = "audit:events_read";
/// Managing the organization's users (SCIM), and reading them.
pub const SCOPE_PEOPLE_RW: &str = "identity:people_rw";
pub const SCOPE_PEOPLE_READ: &str = "identity:people_read";
pub const KNOWN_SCOPES: &[&str] = &[
    SCOPE_IDENTITY_ORGANIZATION,
    SCOPE_ORGANIZATIONS_RW,
    SCOPE_ORGANIZATIONS_READ,
    SCOPE_AUDIT_READ,
    SCOPE_PEOPLE_RW,
    SCOPE_PEOPLE_READ,
];

pub const ROLE_FULL_ADMIN: &str = "id_full_admin";
/// Manages users only.
pub const ROLE_USER_ADMIN: &str = "id_user_admin";
pub const ROLE_READONLY_ADMIN: &str = "id_readonly_admin";
pub const KNOWN_ROLES: &[&str] = &[ROLE_FULL_ADMIN, ROLE_USER_ADMIN, ROLE_READONLY_ADMIN];

/// A string identifier, generated as a random UUID.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// An organization identifier (a UUID, as Webex uses).
    OrgId
);
uuid_id!(
    /// The public identifier of a credential (never the secret).
    CredentialId
);
uuid_id!(
    /// A user of the directory (SCIM `id`).
    UserId
);
uuid_id!(
    /// A webhook's identifier.
    WebhookId
);

/// A bearer secret as handed to the user once: `claimd_` and 256 random bits, base64url.
pub struct ApiSecret(String);

impl ApiSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator failed");
        Self(format!("claimd_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(..)")
    }
}

/// SHA-256 of a bearer secret: what is stored and looked up. The secrets carry 256 bits of
/// entropy, so a fast hash is enough; a slow KDF would only slow every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// What a new credential will carry.
#[derive(Clone, Debug)]
pub struct NewCredential {
    /// `None` makes an operator credential valid for every organization.
    pub org_id: Option<OrgId>,
    pub label: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub expires_at: Option<Timestamp>,
}

impl NewCredential {
    /// An organization administrator able to use all five actions and the reads.
    pub fn org_admin(org_id: OrgId, label: impl Into<String>) -> Self {
        Self {
            org_id: Some(org_id),
            label: label.into(),
            scopes: vec![
                SCOPE_ORGANIZATIONS_RW.to_owned(),
                SCOPE_PEOPLE_RW.to_owned(),
            ],
            roles: vec![ROLE_FULL_ADMIN.to_owned()],
            expires_at: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub id: CredentialId,
    pub org_id: Option<OrgId>,
    pub label: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Credential {
    /// Usable now: not revoked and not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    pub fn has_any_scope(&self, wanted: &[&str]) -> bool {
        self.scopes.iter().any(|s| wanted.contains(&s.as_str()))
    }

    pub fn has_any_role(&self, wanted: &[&str]) -> bool {
        self.roles.iter().any(|r| wanted.contains(&r.as_str()))
    }

    /// Operator credentials reach every organization; the others only their own.
    pub fn covers(&self, org: &OrgId) -> bool {
        self.org_id.as_ref().is_none_or(|own| own == org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hash_stably() {
        let a = ApiSecret::generate();
        let b = ApiSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().len() >= 7 + 43);
        assert_eq!(a.hash(), SecretHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(&a.expose()[7..]));
    }

    #[test]
    fn activity_and_coverage() {
        let org = OrgId::new("o1");
        let mut c = Credential {
            id: CredentialId::new("c"),
            org_id: Some(org.clone()),
            label: String::new(),
            scopes: vec![],
            roles: vec![],
            created_at: Timestamp::from_millis(0),
            expires_at: Some(Timestamp::from_millis(10)),
            revoked_at: None,
        };
        assert!(c.is_active(Timestamp::from_millis(9)));
        assert!(!c.is_active(Timestamp::from_millis(10)));
        assert!(c.covers(&org) && !c.covers(&OrgId::new("o2")));
        c.org_id = None;
        assert!(c.covers(&OrgId::new("o2")));
        c.expires_at = None;
        c.revoked_at = Some(Timestamp::from_millis(1));
        assert!(!c.is_active(Timestamp::from_millis(0)));
    }
}
