//! The people of an organization (the user directory SCIM manages), and how their email
//! addresses are normalized: the domain part like a domain name (IDN to A-label, lowercase), so
//! that a user's domain compares with verified and claimed domains exactly.

use std::fmt;

use crate::credential::{ROLE_FULL_ADMIN, UserId};
use crate::{DomainName, NameError, OrgId, Timestamp};

/// Where a user stands, as claimd decides it (Cisco's `accountStatus`; read-only to clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Outside the organization's verified domains, or in a domain another organization has
    /// claimed.
    Transient,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Transient => "transient",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "transient" => Some(Self::Transient),
            _ => None,
        }
    }
}

/// One of a user's email addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// Normalized ([`normalize_email`]).
    pub value: String,
    /// `work`, `home`, `room` or `other`.
    pub kind: Option<String>,
    pub primary: bool,
    pub display: Option<String>,
}

/// What a new or replaced user carries (everything a client may set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFields {
    /// The primary email, normalized; unique across all organizations, ignoring case.
    pub user_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub emails: Vec<Email>,
    /// Cisco's CI roles (`roles` of type `ciRole`): `id_full_admin`, `id_user_admin`, …
    pub roles: Vec<String>,
    /// SCIM's enterprise extension.
    pub enterprise: Enterprise,
}

/// The attributes of SCIM's enterprise User extension (RFC 7643 §4.3) that claimd keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enterprise {
    pub employee_number: Option<String>,
    pub cost_center: Option<String>,
    pub organization: Option<String>,
    pub division: Option<String>,
    pub department: Option<String>,
    /// The manager's user id (`manager.value`).
    pub manager: Option<String>,
}

impl Enterprise {
    /// Each attribute by its SCIM name, the manager's id as `manager`.
    pub fn attributes(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("employeeNumber", &self.employee_number),
            ("costCenter", &self.cost_center),
            ("organization", &self.organization),
            ("division", &self.division),
            ("department", &self.department),
            ("manager", &self.manager),
        ]
    }

    /// The same, to set them.
    pub fn attributes_mut(&mut self) -> [(&'static str, &mut Option<String>); 6] {
        [
            ("employeeNumber", &mut self.employee_number),
            ("costCenter", &mut self.cost_center),
            ("organization", &mut self.organization),
            ("division", &mut self.division),
            ("department", &mut self.department),
            ("manager", &mut self.manager),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.attributes().iter().all(|(_, v)| v.is_none())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub fields: UserFields,
    pub account_status: AccountStatus,
    pub created_at: Timestamp,
    pub last_modified: Timestamp,
    /// Moves on every change: the ETag.
    pub version: i64,
}

impl UserFields {
    /// Holds `id_full_admin`: one of those the admin lock-out guard keeps at least one of.
    pub fn is_full_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ROLE_FULL_ADMIN)
    }

    /// The domain of the user's primary email.
    pub fn domain(&self) -> Option<DomainName> {
        let (_, domain) = self.user_name.rsplit_once('@')?;
        DomainName::parse(domain).ok()
    }
}

/// The key a case-insensitive attribute is searched and kept unique by.
pub fn search_key(value: &str) -> String {
    value.to_lowercase()
}

/// Why an email address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("'{0}' is not an email address (expected local-part@domain)")]
    Shape(String),
    #[error("the domain of '{address}' is not a domain name: {reason}")]
    Domain { address: String, reason: NameError },
}

/// `Local@Domain` with the domain normalized like a domain name (IDN to A-label, lowercase);
/// the local part is kept as given. Answers the address and its domain.
pub fn normalize_email(address: &str) -> Result<(String, DomainName), EmailError> {
    let trimmed = address.trim();
    let shape = || EmailError::Shape(address.to_owned());
    let (local, domain) = trimmed.rsplit_once('@').ok_or_else(shape)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.chars().any(|c| c.is_whitespace() || c.is_control());
    if !local_ok {
        return Err(shape());
    }
    let domain = DomainName::parse(domain).map_err(|reason| EmailError::Domain {
        address: address.to_owned(),
        reason,
    })?;
    Ok((format!("{local}@{}", domain.as_str()), domain))
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_normalized_and_the_local_part_kept() {
        let (address, domain) = normalize_email(" Bob.Smith@Bücher.Example ").unwrap();
        assert_eq!(address, "Bob.Smith@xn--bcher-kva.example");
        assert_eq!(domain.as_str(), "xn--bcher-kva.example");
        assert_eq!(search_key(&address), "bob.smith@xn--bcher-kva.example");
        for bad in [
            "",
            "bob",
            "@example.com",
            "a b@example.com",
            "a@b@example.com",
        ] {
            assert!(
                matches!(normalize_email(bad), Err(EmailError::Shape(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            normalize_email("bob@exa mple.com"),
            Err(EmailError::Domain { .. })
        ));
    }

    #[test]
    fn a_users_domain_is_its_primary_emails() {
        let fields = UserFields {
            user_name: "ann@sales.example.com".into(),
            display_name: None,
            given_name: None,
            family_name: None,
            external_id: None,
            active: true,
            emails: vec![],
            roles: vec!["id_user_admin".into()],
            enterprise: Enterprise::default(),
        };
        assert!(fields.enterprise.is_empty());
        let mut e = Enterprise::default();
        for (name, value) in e.attributes_mut() {
            *value = Some(name.to_owned());
        }
        assert_eq!(e.manager.as_deref(), Some("manager"));
        assert_eq!(e.cost_center.as_deref(), Some("costCenter"));
        assert!(!e.is_empty());
        assert_eq!(fields.domain().unwrap().as_str(), "sales.example.com");
        assert!(!fields.is_full_admin());
        let admin = UserFields {
            roles: vec![ROLE_FULL_ADMIN.into()],
            ..fields.clone()
        };
        assert!(admin.is_full_admin());
        assert_eq!(
            AccountStatus::parse("transient"),
            Some(AccountStatus::Transient)
        );
        assert_eq!(AccountStatus::parse("gone"), None);
    }
}
