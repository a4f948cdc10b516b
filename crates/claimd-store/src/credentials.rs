//! API credentials, kept as hashes of their secrets.

use async_trait::async_trait;
use claimd_domain::{Credential, CredentialId, NewCredential, OrgId, SecretHash, Timestamp};

use crate::error::StoreResult;
use crate::events::Actor;

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Fails with [`StoreError::UnknownOrganization`](crate::error::StoreError) for an organization
    /// that does not exist.
    async fn create_credential(
        &self,
        actor: &Actor,
        new: &NewCredential,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Credential>;
    async fn find_credential_by_secret(
        &self,
        secret: &SecretHash,
    ) -> StoreResult<Option<Credential>>;
    async fn list_credentials(&self, org: &OrgId) -> StoreResult<Vec<Credential>>;
    /// Returns false if no such credential exists. Revoking twice keeps the first time.
    async fn revoke_credential(
        &self,
        actor: &Actor,
        id: &CredentialId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// A counter that moves whenever any credential is changed or removed, by any process:
    /// what a cache of credentials polls to know when to forget what it holds.
    async fn credential_changes(&self) -> StoreResult<i64>;
}
