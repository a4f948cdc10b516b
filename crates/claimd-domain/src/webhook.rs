//! Webhooks: where an organization wants its changes pushed, and the secret the deliveries are
//! signed with.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore as _;

use crate::{CredentialId, DomainName, OrgId, Timestamp, WebhookId};

/// The resources a webhook can follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookResource {
    Domains,
}

impl WebhookResource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domains => "domains",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s == "domains").then_some(Self::Domains)
    }
}

/// What happened to a resource, as a webhook subscribes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    Created,
    Updated,
    Deleted,
    /// Any of them.
    All,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 4] = [Self::Created, Self::Updated, Self::Deleted, Self::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookStatus {
    Active,
    /// Turned off by its owner, or by claimd after it kept failing; deliveries wait.
    Inactive,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// A webhook's filter: which domain's changes it wants (`domain=example.com`), in the
/// normalized form the events carry; `None` for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookFilter(Option<DomainName>);

impl WebhookFilter {
    pub fn any() -> Self {
        Self(None)
    }

    /// `domain=NAME`, or empty for no filter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self(None));
        }
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!("'{s}' is not key=value (e.g. domain=example.com)"));
        };
        if key.trim() != "domain" {
            return Err(format!(
                "cannot filter on '{}': the domains resource filters on domain",
                key.trim()
            ));
        }
        let name = DomainName::parse(value).map_err(|e| format!("domain: {e}"))?;
        Ok(Self(Some(name)))
    }

    /// The stored and compared form: `domain=NAME`, or `None`.
    pub fn stored(&self) -> Option<String> {
        self.0.as_ref().map(Self::of)
    }

    /// The filter value an event about `domain` matches.
    pub fn of(domain: &DomainName) -> String {
        format!("domain={}", domain.as_str())
    }
}

/// The key deliveries are signed with. It follows the Standard Webhooks specification: base64
/// of 16 to 64 random bytes, optionally prefixed `whsec_`; the HMAC-SHA256 key is the decoded
/// bytes. Cisco's `X-Spark-Signature` is keyed with the secret as written.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";

    /// A new secret: `whsec_` and 32 random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator");
        Self(format!("{}{}", Self::PREFIX, STANDARD.encode(bytes)))
    }

    /// A secret as a client gave it; refused (saying why) unless it is base64 of 16 to 64 bytes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let encoded = s.strip_prefix(Self::PREFIX).unwrap_or(s);
        let key = STANDARD.decode(encoded).map_err(|_| {
            "must be base64 (optionally prefixed whsec_), as Standard Webhooks secrets are"
                .to_owned()
        })?;
        if !(16..=64).contains(&key.len()) {
            return Err(format!("must encode 16 to 64 bytes, not {}", key.len()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC-SHA256 key of the Standard Webhooks signature.
    pub fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(Self::PREFIX).unwrap_or(&self.0);
        STANDARD.decode(encoded).unwrap_or_default()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub name: String,
    pub target_url: String,
    pub resource: WebhookResource,
    pub event: WebhookEvent,
    pub filter: WebhookFilter,
    pub secret: WebhookSecret,
    pub status: WebhookStatus,
    /// The credential that registered it.
    pub created_by: Option<CredentialId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Every delivery attempt has failed since then.
    pub failing_since: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_follow_standard_webhooks() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key().len(), 32);
        assert_eq!(WebhookSecret::parse(s.expose()), Ok(s.clone()));
        let plain = STANDARD.encode([7u8; 24]);
        assert_eq!(WebhookSecret::parse(&plain).unwrap().key(), vec![7u8; 24]);
        assert!(
            WebhookSecret::parse("not base64!")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            WebhookSecret::parse(&STANDARD.encode([1u8; 8]))
                .unwrap_err()
                .contains("16 to 64")
        );
        assert_eq!(format!("{s:?}"), "WebhookSecret(…)", "never printed");
    }

    #[test]
    fn filters_name_one_domain() {
        assert_eq!(WebhookFilter::parse("").unwrap().stored(), None);
        assert_eq!(
            WebhookFilter::parse("domain=Example.COM")
                .unwrap()
                .stored()
                .as_deref(),
            Some("domain=example.com")
        );
        assert!(
            WebhookFilter::parse("roomId=x")
                .unwrap_err()
                .contains("roomId")
        );
        assert!(
            WebhookFilter::parse("example.com")
                .unwrap_err()
                .contains("key=value")
        );
        assert!(
            WebhookFilter::parse("domain=com")
                .unwrap_err()
                .starts_with("domain:")
        );
    }

    #[test]
    fn names_round_trip() {
        for e in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(
            WebhookResource::parse("domains"),
            Some(WebhookResource::Domains)
        );
        assert_eq!(WebhookResource::parse("messages"), None);
        assert_eq!(
            WebhookStatus::parse("inactive"),
            Some(WebhookStatus::Inactive)
        );
    }
}
