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
    /// An organization's credentials, or with `None` the operator credentials (valid for every
    /// organization), oldest first.
    async fn list_credentials(&self, org: Option<&OrgId>) -> StoreResult<Vec<Credential>>;
    /// Revokes a credential; returns it as it was before (`revoked_at` set if it already was:
    /// revoking twice keeps the first time), or `None` if there is no such credential.
    async fn revoke_credential(
        &self,
        actor: &Actor,
        id: &CredentialId,
        now: Timestamp,
    ) -> StoreResult<Option<Credential>>;
    /// A counter that moves whenever any credential is changed or removed, by any process:
    /// what a cache of credentials polls to know when to forget what it holds.
    async fn credential_changes(&self) -> StoreResult<i64>;
}
