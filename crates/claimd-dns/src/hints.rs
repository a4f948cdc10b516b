//! Near misses: what a user most likely got wrong when the TXT record is "there" but does not
//! prove control. Every hint is found here: from the values seen at the name ([`from_values`],
//! pure), and by probing the names where the record is often published by mistake
//! ([`misplaced`]). A new hint goes in one of the two.

use std::fmt;

use crate::lookups::Lookups;
use claimd_domain::{DomainName, LEGACY_TXT_PREFIX, TxtMatch, VerificationToken, match_txt_value};
use tokio::time::Instant;

use crate::query::query_txt;

/// One likely mistake, shown to the user with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// A record with the verification key but another token: an older token for this domain,
    /// or another organization's.
    OtherToken { seen: String },
    /// The expected value wrapped in quotes or padded with spaces inside the record.
    QuotedOrPadded,
    /// The token alone, without the `key=` part.
    TokenWithoutKey,
    /// The token with different letter case (tokens are case-sensitive).
    TokenCase,
    /// The expected value with extra text around it.
    ExtraText,
    /// The value split over two separate TXT records (strings of one record are joined, separate
    /// records are not).
    SplitAcrossRecords,
    /// The expected value is published at another name (a doubled name, or a subdomain).
    PublishedElsewhere { name: String },
    /// Proof found under the older `ciscocidomainverification` key (accepted).
    LegacyKey,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherToken { seen } => write!(
                f,
                "a verification record is published with another token ({seen}): an older token for this domain or another organization's; publish the current token (the old record can stay)"
            ),
            Self::QuotedOrPadded => f.write_str(
                "the value is there but with extra quotes or spaces inside the record; publish it exactly as given",
            ),
            Self::TokenWithoutKey => f.write_str(
                "the token is published alone; the record must be the whole 'key=token' value",
            ),
            Self::TokenCase => f.write_str(
                "the token is published with different upper/lower case; tokens are case-sensitive",
            ),
            Self::ExtraText => f.write_str(
                "a record contains the value with extra text around it; the record must be exactly the value",
            ),
            Self::SplitAcrossRecords => f.write_str(
                "the value is split over separate TXT records; publish it as one record",
            ),
            Self::PublishedElsewhere { name } => write!(
                f,
                "the expected value is published at {name} instead of at the domain itself (DNS consoles often append the domain to the name you type: leave the name empty or use '@')"
            ),
            Self::LegacyKey => f.write_str(
                "found under the older key ciscocidomainverification (accepted)",
            ),
        }
    }
}

/// Hints from the TXT values seen at the domain (character-strings of each record joined).
pub fn from_values(values: &[String], prefix: &str, token: &VerificationToken) -> Vec<Hint> {
    let expected = format!("{prefix}={}", token.as_str());
    let mut hints = Vec::new();
    let mut push = |h: Hint| {
        if !hints.contains(&h) {
            hints.push(h);
        }
    };
    for value in values {
        let trimmed = value.trim();
        if match_txt_value(trimmed, prefix, token) != TxtMatch::NoMatch {
            continue;
        }
        let unquoted: String = trimmed
            .trim_matches(|c| c == '"' || c == '\'')
            .split('=')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("=");
        if unquoted != trimmed && match_txt_value(&unquoted, prefix, token) != TxtMatch::NoMatch {
            push(Hint::QuotedOrPadded);
        } else if unquoted == token.as_str() {
            push(Hint::TokenWithoutKey);
        } else if let Some((key, seen)) = unquoted.split_once('=') {
            let ours =
                key.eq_ignore_ascii_case(prefix) || key.eq_ignore_ascii_case(LEGACY_TXT_PREFIX);
            if ours && seen.eq_ignore_ascii_case(token.as_str()) {
                push(Hint::TokenCase);
            } else if ours {
                push(Hint::OtherToken {
                    seen: shorten(seen),
                });
            } else if value.contains(&expected) || value.contains(token.as_str()) {
                push(Hint::ExtraText);
            }
        } else if value.contains(token.as_str()) {
            push(Hint::ExtraText);
        }
    }
    let split = values.windows(2).any(|pair| {
        let joined = format!("{}{}", pair[0].trim(), pair[1].trim());
        match_txt_value(&joined, prefix, token) != TxtMatch::NoMatch
    });
    if split {
        push(Hint::SplitAcrossRecords);
    }
    hints
}

/// Looks for the expected value, through `resolver`, at names where it is often published by
/// mistake: the name doubled by a DNS console, a subdomain named after the key, `www`.
pub(crate) async fn misplaced(
    resolver: &Lookups,
    validating: bool,
    domain: &DomainName,
    prefix: &str,
    token: &VerificationToken,
    deadline: Instant,
) -> Vec<Hint> {
    let d = domain.as_str();
    let mut found = Vec::new();
    for name in [
        format!("{d}.{d}."),
        format!("_{prefix}.{d}."),
        format!("www.{d}."),
    ] {
        let answer = query_txt(resolver, validating, &name, prefix, token, deadline).await;
        if answer.outcome.is_verified() {
            found.push(Hint::PublishedElsewhere {
                name: name.trim_end_matches('.').to_owned(),
            });
        }
    }
    found
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(values: &[&str]) -> Vec<Hint> {
        let token = VerificationToken::from_stored("abcDEF123456".into());
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        from_values(&values, "cisco-ci-domain-verification", &token)
    }

    #[test]
    fn each_near_miss_is_named() {
        assert_eq!(
            hints(&["\"cisco-ci-domain-verification=abcDEF123456\""]),
            [Hint::QuotedOrPadded]
        );
        assert_eq!(
            hints(&["cisco-ci-domain-verification = abcDEF123456"]),
            [Hint::QuotedOrPadded]
        );
        assert_eq!(hints(&["abcDEF123456"]), [Hint::TokenWithoutKey]);
        assert_eq!(
            hints(&["cisco-ci-domain-verification=ABCdef123456"]),
            [Hint::TokenCase]
        );
        assert_eq!(
            hints(&["cisco-ci-domain-verification=0ld70ken"]),
            [Hint::OtherToken {
                seen: "0ld70ken".into()
            }]
        );
        assert_eq!(
            hints(&["ciscocidomainverification=0ld70ken"]),
            [Hint::OtherToken {
                seen: "0ld70ken".into()
            }]
        );
        assert_eq!(
            hints(&["v=1 cisco-ci-domain-verification=abcDEF123456"]),
            [Hint::ExtraText]
        );
        assert_eq!(
            hints(&["cisco-ci-domain-verification=abcDEF123456x"]),
            [Hint::OtherToken {
                seen: "abcDEF123456…".into()
            }]
        );
        assert_eq!(
            hints(&["cisco-ci-domain-verification=abcDEF", "123456"]),
            [
                Hint::OtherToken {
                    seen: "abcDEF".into()
                },
                Hint::SplitAcrossRecords
            ]
        );
    }

    #[test]
    fn unrelated_records_give_no_hint() {
        assert!(
            hints(&[
                "v=spf1 include:_spf.example -all",
                "google-site-verification=xyz"
            ])
            .is_empty()
        );
        assert!(hints(&["cisco-ci-domain-verification=abcDEF123456"]).is_empty());
    }
}
