//! Credentials on SQL: the secret is stored only as its hash; scopes and roles as
//! space-separated words.

use async_trait::async_trait;
use claimd_domain::{Credential, CredentialId, NewCredential, OrgId, SecretHash, Timestamp};

use super::backend::{Backend, Db, Lock, read_all, read_optional, unit};
use super::events::{self, NewEvent};
use super::statement::{Row, Statement};
use crate::credentials::CredentialStore;
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, EventKind, EventTarget};

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

/// Inserts a new credential, and its event; an organization that does not exist is caught by
/// the foreign key.
pub(super) async fn insert<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
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
    let detail = format!(
        "label '{}', scopes {}, roles {}",
        credential.label,
        credential.scopes.join(" "),
        credential.roles.join(" ")
    );
    event(
        db,
        actor,
        EventKind::CredentialCreated,
        &credential,
        &detail,
        now,
    )
    .await?;
    Ok(credential)
}

/// An event about a credential, in its organization's log (an operator's credential belongs to
/// none: its events are kept under an empty organization id).
async fn event<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    kind: EventKind,
    credential: &Credential,
    detail: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let org = credential.org_id.clone().unwrap_or_else(|| OrgId::new(""));
    let event = NewEvent {
        detail: Some(detail),
        ..NewEvent::new(
            kind,
            &org,
            EventTarget::Credential(credential.id.clone()),
            actor,
            at,
        )
    };
    events::append(db, event).await
}

/// Revokes a credential once (a second revocation keeps the first time); the credential as it
/// was, or `None` if there is no such credential.
async fn revoke<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    id: &CredentialId,
    now: Timestamp,
) -> StoreResult<Option<Credential>> {
    let found = Statement::new(format!("{SELECT} WHERE id = $1")).bind(id.as_str());
    let Some(credential) = db
        .fetch_optional(found)
        .await?
        .as_ref()
        .map(decode)
        .transpose()?
    else {
        return Ok(None);
    };
    if credential.revoked_at.is_none() {
        let statement = Statement::new("UPDATE credentials SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str());
        db.execute(statement).await?;
        event(
            db,
            actor,
            EventKind::CredentialRevoked,
            &credential,
            &credential.label,
            now,
        )
        .await?;
    }
    Ok(Some(credential))
}

#[async_trait]
impl<B: Backend> CredentialStore for B {
    async fn create_credential(
        &self,
        actor: &Actor,
        new: &NewCredential,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Credential> {
        let (actor, new, secret) = (actor.clone(), new.clone(), secret.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { insert(&mut db, &actor, &new, &secret, now).await })
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

    async fn list_credentials(&self, org: Option<&OrgId>) -> StoreResult<Vec<Credential>> {
        let statement = match org {
            Some(org) => Statement::new(format!(
                "{SELECT} WHERE org_id = $1 ORDER BY created_at, id"
            ))
            .bind(org.as_str()),
            None => Statement::new(format!(
                "{SELECT} WHERE org_id IS NULL ORDER BY created_at, id"
            )),
        };
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }

    async fn revoke_credential(
        &self,
        actor: &Actor,
        id: &CredentialId,
        now: Timestamp,
    ) -> StoreResult<Option<Credential>> {
        let (actor, id) = (actor.clone(), id.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { revoke(&mut db, &actor, &id, now).await })
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
