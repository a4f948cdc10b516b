use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Why a string is not an acceptable domain name. The messages are shown to API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("the domain is empty")]
    Empty,
    #[error("'{0}' is an IP address, not a domain name")]
    IpAddress(String),
    #[error("'{0}' is not a valid internationalized domain name")]
    Idna(String),
    #[error("'{0}' is longer than 253 characters")]
    TooLong(String),
    #[error(
        "'{name}' has an invalid label '{label}': labels are 1-63 letters, digits or inner hyphens"
    )]
    BadLabel { name: String, label: String },
    #[error("'{0}' needs at least two labels (like example.com)")]
    SingleLabel(String),
    #[error("'{0}' ends in a numeric top-level label")]
    NumericTld(String),
    #[error("'{0}' is a public suffix; only a domain registered under it can be verified")]
    PublicSuffix(String),
    #[error("'{given}' is a URL or an address, not a domain name: give the domain alone, '{host}'")]
    NotAName { given: String, host: String },
}

/// The host in something pasted where a domain name belongs: a URL (`https://example.com/x`),
/// a name with a path (`example.com/x`) or a port, or an email address (`ann@example.com`).
fn host_in(input: &str) -> Option<&str> {
    let rest = input.split_once("://").map_or(input, |(_, rest)| rest);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = match rest.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => rest,
    };
    (host != input && !host.is_empty()).then_some(host)
}

/// A DNS name in claimd's normalized form: lower-case ASCII (IDNA A-labels), no trailing dot,
/// syntactically valid, and not a public suffix. The only way to get one is [`DomainName::parse`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Normalizes user input: trim, strip one trailing dot, lower-case, IDNA (UTS-46) to ASCII,
    /// then check the length, label syntax, label count and the Public Suffix List.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let shown = clip(trimmed);
        let unbracketed = trimmed.trim_start_matches('[').trim_end_matches(']');
        if unbracketed.parse::<IpAddr>().is_ok() {
            return Err(NameError::IpAddress(shown));
        }
        if let Some(host) = host_in(trimmed) {
            return Err(NameError::NotAName {
                given: shown,
                host: clip(host),
            });
        }
        let lower = trimmed.to_lowercase();
        let ascii =
            idna::domain_to_ascii_strict(&lower).map_err(|_| NameError::Idna(shown.clone()))?;
        let ascii = ascii.strip_suffix('.').unwrap_or(&ascii).to_owned();
        if ascii.is_empty() {
            return Err(NameError::Empty);
        }
        if ascii.len() > 253 {
            return Err(NameError::TooLong(shown));
        }
        if ascii.parse::<IpAddr>().is_ok() {
            return Err(NameError::IpAddress(shown));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if let Some(bad) = labels.iter().find(|l| !valid_label(l)) {
            return Err(NameError::BadLabel {
                name: shown,
                label: clip(bad),
            });
        }
        if labels.len() < 2 {
            return Err(NameError::SingleLabel(shown));
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(NameError::NumericTld(shown));
        }
        if is_public_suffix(&ascii) {
            return Err(NameError::PublicSuffix(ascii));
        }
        Ok(Self(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registrable domain (public suffix plus one label) this name sits under. Claims can only
    /// conflict through the hierarchy rule within one registrable domain.
    pub fn registrable(&self) -> &str {
        psl::domain_str(&self.0).unwrap_or(&self.0)
    }

    /// True when one name is a proper ancestor of the other (`example.com` / `x.example.com`).
    pub fn is_related(&self, other: &DomainName) -> bool {
        is_proper_subdomain(&self.0, &other.0) || is_proper_subdomain(&other.0, &self.0)
    }

    /// The identifier of the domain resource: base64url (no padding) of the normalized name.
    pub fn resource_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// Inverse of [`DomainName::resource_id`]; `None` if the id does not decode to a valid name.
    pub fn from_resource_id(id: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(id.trim_end_matches('=')).ok()?;
        let name = Self::parse(std::str::from_utf8(&bytes).ok()?).ok()?;
        (name.resource_id() == id.trim_end_matches('=')).then_some(name)
    }

    /// Accepts a domain name, or the same name base64-encoded (standard or URL-safe alphabet,
    /// padded or not). A base64 string never contains a dot and a domain name always does, so
    /// the two forms cannot be confused.
    pub fn parse_plain_or_base64(input: &str) -> Result<Self, NameError> {
        let trimmed = input.trim();
        if trimmed.contains('.') || trimmed.is_empty() {
            return Self::parse(trimmed);
        }
        [URL_SAFE_NO_PAD, URL_SAFE, STANDARD, STANDARD_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(trimmed).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|decoded| decoded.contains('.'))
            .map_or_else(|| Self::parse(trimmed), |decoded| Self::parse(&decoded))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn valid_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_public_suffix(ascii: &str) -> bool {
    psl::suffix(ascii.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == ascii.as_bytes())
}

fn is_proper_subdomain(child: &str, parent: &str) -> bool {
    child.len() > parent.len() + 1
        && child.ends_with(parent)
        && child.as_bytes()[child.len() - parent.len() - 1] == b'.'
}

/// Echo user input in an error without letting a huge value through.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> String {
        DomainName::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_case_whitespace_trailing_dot_and_idn() {
        assert_eq!(ok("  Example.COM. "), "example.com");
        assert_eq!(ok("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
        assert_eq!(ok("a-b.example.co.uk"), "a-b.example.co.uk");
    }

    #[test]
    fn rejects_what_is_not_a_registrable_name() {
        use NameError::*;
        type Expect = fn(&NameError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, Empty)),
            (" . ", |e| matches!(e, Empty)),
            ("192.168.1.1", |e| matches!(e, IpAddress(_))),
            ("[::1]", |e| matches!(e, IpAddress(_))),
            ("localhost", |e| matches!(e, SingleLabel(_))),
            ("com", |e| matches!(e, SingleLabel(_) | PublicSuffix(_))),
            ("co.uk", |e| matches!(e, PublicSuffix(_))),
            ("github.io", |e| matches!(e, PublicSuffix(_))),
            ("-a.example.com", |e| matches!(e, BadLabel { .. } | Idna(_))),
            ("a_b.example.com", |e| {
                matches!(e, BadLabel { .. } | Idna(_))
            }),
            ("a..example.com", |e| matches!(e, BadLabel { .. } | Idna(_))),
            ("example.123", |e| matches!(e, NumericTld(_))),
        ];
        for (input, expect) in cases {
            let err = DomainName::parse(input).unwrap_err();
            assert!(expect(&err), "{input:?} gave {err:?}");
        }
        // Something pasted from a browser or an address book: told what to give instead.
        for (input, host) in [
            ("https://Example.com/", "Example.com"),
            ("http://example.com:8080/path?q=1", "example.com"),
            ("example.com/about", "example.com"),
            ("ann@example.com", "example.com"),
            ("example.com:443", "example.com"),
        ] {
            let err = DomainName::parse(input).unwrap_err();
            assert!(
                matches!(&err, NotAName { host: h, .. } if h == host),
                "{input:?} gave {err:?}"
            );
            assert!(err.to_string().contains(&format!("'{host}'")), "{err}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(DomainName::parse(&long_label).is_err());
        let long_name = format!("{}example.com", "abcdefghi.".repeat(25));
        assert!(DomainName::parse(&long_name).is_err());
    }

    #[test]
    fn tenant_names_under_private_suffixes_are_allowed() {
        assert_eq!(ok("foo.github.io"), "foo.github.io");
        assert_eq!(
            DomainName::parse("a.foo.github.io").unwrap().registrable(),
            "foo.github.io"
        );
        assert_eq!(
            DomainName::parse("x.y.example.co.uk")
                .unwrap()
                .registrable(),
            "example.co.uk"
        );
    }

    #[test]
    fn hierarchy_relation() {
        let p = DomainName::parse("example.com").unwrap();
        let c = DomainName::parse("x.example.com").unwrap();
        let other = DomainName::parse("xexample.com").unwrap();
        assert!(p.is_related(&c) && c.is_related(&p));
        assert!(!p.is_related(&p));
        assert!(!p.is_related(&other));
    }

    #[test]
    fn resource_ids_and_base64_input_round_trip() {
        let d = DomainName::parse("example3.com").unwrap();
        assert_eq!(d.resource_id(), "ZXhhbXBsZTMuY29t");
        assert_eq!(
            DomainName::from_resource_id("ZXhhbXBsZTMuY29t"),
            Some(d.clone())
        );
        assert_eq!(DomainName::from_resource_id("!!"), None);
        assert_eq!(DomainName::from_resource_id("example3.com"), None);
        for segment in ["ZXhhbXBsZTMuY29t", "example3.com", "Example3.COM."] {
            assert_eq!(
                DomainName::parse_plain_or_base64(segment).ok(),
                Some(d.clone())
            );
        }
        assert_eq!(DomainName::parse_plain_or_base64("not a name.").ok(), None);
        assert_eq!(DomainName::parse_plain_or_base64("!!").ok(), None);
        assert_eq!(
            DomainName::parse_plain_or_base64("ZXhhbXBsZTMuY29t").unwrap(),
            d
        );
        assert_eq!(
            DomainName::parse_plain_or_base64("ZXhhbXBsZTMuY29t").unwrap(),
            d
        );
        assert_eq!(
            DomainName::parse_plain_or_base64("example3.com").unwrap(),
            d
        );
        assert!(DomainName::parse_plain_or_base64("Y29t").is_err()); // "com"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn normalization_is_idempotent_and_output_valid(input in "\\PC{0,40}") {
            match DomainName::parse(&input) {
                Ok(name) => {
                    let again = DomainName::parse(name.as_str()).expect("normalized form must parse");
                    prop_assert_eq!(&again, &name);
                    prop_assert!(name.as_str().len() <= 253);
                    prop_assert!(name.as_str().split('.').count() >= 2);
                    prop_assert!(name.as_str().split('.').all(valid_label));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn domain_like_inputs_are_idempotent(
            labels in proptest::collection::vec("[a-zA-Z0-9ß-ü-]{1,12}", 2..5),
            dot in proptest::bool::ANY,
        ) {
            let input = format!("{}{}", labels.join("."), if dot { "." } else { "" });
            if let Ok(name) = DomainName::parse(&input) {
                prop_assert_eq!(DomainName::parse(name.as_str()).unwrap(), name.clone());
                prop_assert_eq!(DomainName::from_resource_id(&name.resource_id()), Some(name));
            }
        }
    }
}
