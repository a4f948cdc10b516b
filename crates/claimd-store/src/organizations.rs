//! Organizations: the tenants every domain and credential belongs to.

use async_trait::async_trait;
use claimd_domain::{Credential, OrgId, Organization, OrganizationPatch, SecretHash, Timestamp};

use crate::error::StoreResult;
use crate::events::Actor;

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    async fn create_organization(
        &self,
        actor: &Actor,
        name: &str,
        now: Timestamp,
    ) -> StoreResult<Organization>;
    async fn find_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;
    async fn list_organizations(&self) -> StoreResult<Vec<Organization>>;
    /// Applies `patch` to the organization as it is now; its new state.
    async fn update_organization(
        &self,
        actor: &Actor,
        id: &OrgId,
        patch: &OrganizationPatch,
        now: Timestamp,
    ) -> StoreResult<Organization>;
    /// Creates `org_name` and an admin credential if and only if no organization exists yet,
    /// atomically (two processes starting at once create one). `None` if the store had one.
    async fn create_first_organization(
        &self,
        org_name: &str,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Organization, Credential)>>;
}
