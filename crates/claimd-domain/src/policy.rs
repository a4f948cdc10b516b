//! Which domains an organization may not verify at all: consumer mail providers, whose names
//! identify millions of unrelated people rather than one organization.

use crate::DomainName;

/// The built-in list. `name.*` stands for the name under any public suffix (`gmx.de`, `gmx.net`).
pub const CONSUMER_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.*",
    "live.com",
    "msn.com",
    "yahoo.*",
    "ymail.com",
    "rocketmail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "aim.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "tutanota.com",
    "tuta.io",
    "gmx.*",
    "web.de",
    "mail.com",
    "yandex.*",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "daum.net",
    "rediffmail.com",
    "zoho.com",
    "fastmail.com",
    "hey.com",
];

/// The deny list in force; matches a listed name and every name below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPolicy {
    denied: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{domain} belongs to a consumer mail provider ({pattern}) and cannot be verified by an organization"
)]
pub struct DeniedDomain {
    pub domain: DomainName,
    pub pattern: String,
}

impl Default for DomainPolicy {
    fn default() -> Self {
        Self::new(CONSUMER_MAIL_DOMAINS.iter().map(|s| (*s).to_owned()))
    }
}

impl DomainPolicy {
    /// A policy from patterns (`example.com` or `name.*`), lower-cased and trimmed.
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        let denied = patterns
            .into_iter()
            .map(|p| p.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
            .collect();
        Self { denied }
    }

    /// Reads one pattern per line; `#` starts a comment line. An empty file denies nothing.
    pub fn parse_list(text: &str) -> Self {
        Self::new(text.lines().map(str::to_owned))
    }

    /// Refuses a domain on the deny list, naming the pattern it matched.
    pub fn allow(&self, domain: &DomainName) -> Result<(), DeniedDomain> {
        let name = domain.as_str();
        let registrable = domain.registrable();
        let registrable_label = registrable.split('.').next().unwrap_or_default();
        let hit = self
            .denied
            .iter()
            .find(|pattern| match pattern.strip_suffix(".*") {
                Some(label) => registrable_label == label,
                None => {
                    name == pattern.as_str()
                        || (name.ends_with(pattern.as_str())
                            && name.as_bytes().get(name.len() - pattern.len() - 1) == Some(&b'.'))
                }
            });
        match hit {
            Some(pattern) => Err(DeniedDomain {
                domain: domain.clone(),
                pattern: pattern.clone(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_allowed(policy: &DomainPolicy, s: &str) -> bool {
        policy.allow(&DomainName::parse(s).unwrap()).is_ok()
    }

    #[test]
    fn consumer_domains_are_denied_with_their_subdomains_and_wildcard_suffixes() {
        let p = DomainPolicy::default();
        for denied in [
            "gmail.com",
            "GMAIL.com",
            "mx.gmail.com",
            "gmx.de",
            "gmx.net",
            "yahoo.co.uk",
            "yandex.ru",
            "qq.com",
        ] {
            assert!(!is_allowed(&p, denied), "{denied}");
        }
        for allowed in [
            "example.com",
            "notgmail.com",
            "gmail.com.example.org",
            "gmx-partner.de",
            "acme.github.io",
        ] {
            assert!(is_allowed(&p, allowed), "{allowed}");
        }
        let err = p.allow(&DomainName::parse("gmx.at").unwrap()).unwrap_err();
        assert_eq!(err.pattern, "gmx.*");
        assert!(err.to_string().contains("consumer mail provider"));
    }

    #[test]
    fn the_list_can_be_replaced() {
        let p = DomainPolicy::parse_list("# ours\nexample.com\n\n");
        assert!(!is_allowed(&p, "a.example.com"));
        assert!(is_allowed(&p, "gmail.com"));
        assert!(is_allowed(&DomainPolicy::parse_list(""), "gmail.com"));
    }
}
