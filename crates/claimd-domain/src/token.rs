use std::fmt;

use rand::TryRngCore as _;
use subtle::ConstantTimeEq as _;

/// The TXT key Webex clients publish: `cisco-ci-domain-verification=<token>`.
pub const TXT_PREFIX: &str = "cisco-ci-domain-verification";
/// The key from Webex's older documentation; records in the wild still use it.
pub const LEGACY_TXT_PREFIX: &str = "ciscocidomainverification";

/// The secret an organization publishes in DNS to prove control of a domain: 128 bits from the
/// OS CSPRNG, rendered as 32 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerificationToken(String);

impl VerificationToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator failed");
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Wraps a token read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationToken(..)")
    }
}

/// How one TXT record's value relates to the expected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxtMatch {
    /// `<prefix>=<token>`: proves control.
    Exact,
    /// `ciscocidomainverification=<token>`: the legacy key, also proves control.
    Legacy,
    /// Not a proof.
    NoMatch,
}

/// Compares one TXT record (its character-strings already joined) with the expected token.
/// Surrounding whitespace is ignored, the key is case-insensitive (RFC 1464), the token is
/// compared exactly and in constant time.
pub fn match_txt_value(record: &str, prefix: &str, token: &VerificationToken) -> TxtMatch {
    let Some((key, value)) = record.trim().split_once('=') else {
        return TxtMatch::NoMatch;
    };
    let equal = bool::from(value.as_bytes().ct_eq(token.0.as_bytes()));
    if !equal {
        TxtMatch::NoMatch
    } else if key.eq_ignore_ascii_case(prefix) {
        TxtMatch::Exact
    } else if key.eq_ignore_ascii_case(LEGACY_TXT_PREFIX) {
        TxtMatch::Legacy
    } else {
        TxtMatch::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_distinct() {
        let a = VerificationToken::generate();
        let b = VerificationToken::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn matching_rules() {
        let t = VerificationToken::from_stored("abc123".into());
        let m = |s: &str| match_txt_value(s, TXT_PREFIX, &t);
        assert_eq!(m("cisco-ci-domain-verification=abc123"), TxtMatch::Exact);
        assert_eq!(m("  CISCO-CI-Domain-Verification=abc123 "), TxtMatch::Exact);
        assert_eq!(m("ciscocidomainverification=abc123"), TxtMatch::Legacy);
        assert_eq!(m("cisco-ci-domain-verification=ABC123"), TxtMatch::NoMatch);
        assert_eq!(m("cisco-ci-domain-verification=abc1234"), TxtMatch::NoMatch);
        assert_eq!(m("xcisco-ci-domain-verification=abc123"), TxtMatch::NoMatch);
        assert_eq!(m("v=spf1 -all"), TxtMatch::NoMatch);
        assert_eq!(m("abc123"), TxtMatch::NoMatch);
    }
}
