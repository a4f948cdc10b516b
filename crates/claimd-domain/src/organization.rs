//! An organization: the tenant every domain, credential and (later) user belongs to.

use std::time::Duration;

use crate::{LapseAction, OrgId, RecheckSettings, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    /// The display name.
    pub name: String,
    /// The default language for its users, ISO 639 with a region (`en_US`).
    pub preferred_language: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Its own re-check choices.
    pub recheck: RecheckSettings,
    /// Once it has a verified domain, its users must have addresses in its verified domains
    /// (the others are transient; new ones are refused).
    pub enforce_verified_domains: bool,
}

impl Organization {
    pub fn new(name: &str, now: Timestamp) -> Self {
        Self {
            id: OrgId::generate(),
            name: name.to_owned(),
            preferred_language: None,
            created_at: now,
            updated_at: now,
            recheck: RecheckSettings::default(),
            enforce_verified_domains: false,
        }
    }
}

/// A change to an organization: each field present replaces the current value; `Some(None)`
/// goes back to the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub preferred_language: Option<Option<String>>,
    pub recheck_interval: Option<Option<Duration>>,
    pub recheck_grace: Option<Option<Duration>>,
    pub lapse_action: Option<Option<LapseAction>>,
    pub enforce_verified_domains: Option<bool>,
}

impl OrganizationPatch {
    pub fn apply(&self, org: &mut Organization, now: Timestamp) {
        if let Some(name) = &self.name {
            org.name.clone_from(name);
        }
        if let Some(language) = &self.preferred_language {
            org.preferred_language.clone_from(language);
        }
        if let Some(interval) = self.recheck_interval {
            org.recheck.interval = interval;
        }
        if let Some(grace) = self.recheck_grace {
            org.recheck.grace = grace;
        }
        if let Some(action) = self.lapse_action {
            org.recheck.lapse_action = action;
        }
        if let Some(enforce) = self.enforce_verified_domains {
            org.enforce_verified_domains = enforce;
        }
        org.updated_at = now;
    }

    /// The re-check settings the organization would have after the change.
    pub fn recheck_after(&self, current: &RecheckSettings) -> RecheckSettings {
        RecheckSettings {
            interval: self.recheck_interval.unwrap_or(current.interval),
            grace: self.recheck_grace.unwrap_or(current.grace),
            lapse_action: self.lapse_action.unwrap_or(current.lapse_action),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_what_it_names_and_resets_to_defaults() {
        let mut org = Organization::new("Acme", Timestamp::from_millis(1));
        org.recheck.interval = Some(Duration::from_secs(7200));
        let patch = OrganizationPatch {
            preferred_language: Some(Some("en_US".into())),
            recheck_interval: Some(None),
            lapse_action: Some(Some(LapseAction::Keep)),
            ..OrganizationPatch::default()
        };
        assert_eq!(patch.recheck_after(&org.recheck).interval, None);
        patch.apply(&mut org, Timestamp::from_millis(5));
        assert_eq!(org.name, "Acme", "not named: unchanged");
        assert_eq!(org.preferred_language.as_deref(), Some("en_US"));
        assert_eq!(org.recheck.interval, None, "back to the default");
        assert_eq!(org.recheck.lapse_action, Some(LapseAction::Keep));
        assert_eq!(org.updated_at, Timestamp::from_millis(5));
        assert_eq!(org.created_at, Timestamp::from_millis(1));
    }
}
