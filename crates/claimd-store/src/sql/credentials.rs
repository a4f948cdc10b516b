//! Credentials on SQL: the secret is stored only as its hash; scopes and roles as
//! space-separated words.

use async_trait::async_trait;
use claimd_domain::{Credential, CredentialId, NewCredential, OrgId, SecretHash, Timestamp};

use super::backend::{Backend, Db, Lock, read_all, read_optional, unit};
use super::statement::{Row, Statement};
use crate::credentials::CredentialStore;
use crate::error::{StoreError, StoreResult};

const SELECT: &str =
    "SELECT id, org_id, label, scopes, roles, created_at, expires_at, revoked_at FROM credentials";

fn decode(row: &impl Row) -> StoreResult<Credential> {
    let words = |s: String| s.split_whitespace().map(str::to_owned).collect();
    Ok(Credential {
        id: CredentialId::new(row.text("id")?),
        org_id: row.text_or_null("org_id")?.map(OrgId::new),
        label: row.text("label")?,
        scopes: words(row.text("scopes")?),
        roles: words(row.text("roles")?),
        created_at: row.timestamp("created_at")?,
        expires_at: row.timestamp_or_null("expires_at")?,
        revoked_at: row.timestamp_or_null("revoked_at")?,
    })
}

/// Inserts a new credential; an organization that does not exist is caught by the foreign key.
pub(super) async fn insert<B: Backend>(
    db: &mut Db<'_, B>,
    new: &NewCredential,
    secret: &SecretHash,
    now: Timestamp,
) -> StoreResult<Credential> {
    let credential = Credential {
        id: CredentialId::generate(),
        org_id: new.org_id.clone(),
        label: new.label.clone(),
        scopes: new.scopes.clone(),
        roles: new.roles.clone(),
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
    };
    let (scopes, roles) = (credential.scopes.join(" "), credential.roles.join(" "));
    let mut statement = Statement::new(
        "INSERT INTO credentials (id, org_id, label, secret_hash, scopes, roles, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(credential.id.as_str())
    .bind(credential.org_id.as_ref().map(OrgId::as_str))
    .bind(credential.label.as_str())
    .bind(secret.as_bytes().as_slice())
    .bind(scopes.as_str())
    .bind(roles.as_str())
    .bind(now)
    .bind(credential.expires_at);
    if let Some(org) = &new.org_id {
        statement =
            statement.on_foreign_key_violation(StoreError::UnknownOrganization(org.clone()));
    }
    db.execute(statement).await?;
    Ok(credential)
}

#[async_trait]
impl<B: Backend> CredentialStore for B {
    async fn create_credential(
        &self,
        new: &NewCredential,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Credential> {
        let (new, secret) = (new.clone(), secret.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { insert(&mut db, &new, &secret, now).await })
        })
        .await
    }

    async fn find_credential_by_secret(
        &self,
        secret: &SecretHash,
    ) -> StoreResult<Option<Credential>> {
        let statement = Statement::new(format!("{SELECT} WHERE secret_hash = $1"))
            .bind(secret.as_bytes().as_slice());
        let row = read_optional(self, statement).await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list_credentials(&self, org: &OrgId) -> StoreResult<Vec<Credential>> {
        let statement = Statement::new(format!(
            "{SELECT} WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org.as_str());
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }

    async fn revoke_credential(&self, id: &CredentialId, now: Timestamp) -> StoreResult<bool> {
        let id = id.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let statement = Statement::new(
                    "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                )
                .bind(now)
                .bind(id.as_str());
                Ok(db.execute(statement).await? > 0)
            })
        })
        .await
    }

    async fn credential_changes(&self) -> StoreResult<i64> {
        let statement = Statement::new("SELECT epoch FROM credential_changes WHERE id = 1");
        let row = read_optional(self, statement).await?;
        row.ok_or_else(|| StoreError::Internal("the credential change counter is missing".into()))?
            .int("epoch")
    }
}
