//! Organizations on SQL, and the first-start bootstrap (an organization with its first
//! credential).

use async_trait::async_trait;
use claimd_domain::{Credential, NewCredential, OrgId, Organization, SecretHash, Timestamp};

use super::backend::{Backend, Db, Lock, read_all, read_optional, unit};
use super::credentials;
use super::statement::{Row, Statement};
use crate::error::StoreResult;
use crate::organizations::OrganizationStore;

const SELECT: &str = "SELECT id, name, created_at FROM organizations";

fn decode(row: &impl Row) -> StoreResult<Organization> {
    Ok(Organization {
        id: OrgId::new(row.text("id")?),
        name: row.text("name")?,
        created_at: row.timestamp("created_at")?,
    })
}

async fn insert<B: Backend>(db: &mut Db<'_, B>, org: &Organization) -> StoreResult<()> {
    let statement =
        Statement::new("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.as_str())
            .bind(org.name.as_str())
            .bind(org.created_at);
    db.execute(statement).await?;
    Ok(())
}

/// The bootstrap's unit of work: runs alone (under [`Lock::Bootstrap`]), so two processes
/// starting on one empty database create one organization.
async fn create_first<B: Backend>(
    db: &mut Db<'_, B>,
    org: Organization,
    credential: NewCredential,
    secret: &SecretHash,
    now: Timestamp,
) -> StoreResult<Option<(Organization, Credential)>> {
    let any = db
        .fetch_optional(Statement::new("SELECT 1 AS one FROM organizations LIMIT 1"))
        .await?;
    if any.is_some() {
        return Ok(None);
    }
    insert(db, &org).await?;
    let credential = credentials::insert(db, &credential, secret, now).await?;
    Ok(Some((org, credential)))
}

#[async_trait]
impl<B: Backend> OrganizationStore for B {
    async fn create_organization(&self, name: &str, now: Timestamp) -> StoreResult<Organization> {
        let org = Organization {
            id: OrgId::generate(),
            name: name.to_owned(),
            created_at: now,
        };
        let row = org.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { insert(&mut db, &row).await })
        })
        .await?;
        Ok(org)
    }

    async fn find_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let statement = Statement::new(format!("{SELECT} WHERE id = $1")).bind(id.as_str());
        let row = read_optional(self, statement).await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list_organizations(&self) -> StoreResult<Vec<Organization>> {
        let statement = Statement::new(format!("{SELECT} ORDER BY created_at, id"));
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }

    async fn create_first_organization(
        &self,
        org_name: &str,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Organization, Credential)>> {
        let org = Organization {
            id: OrgId::generate(),
            name: org_name.to_owned(),
            created_at: now,
        };
        let credential = NewCredential::org_admin(org.id.clone(), "initial admin");
        let secret = secret.clone();
        unit(self, Lock::Bootstrap, move |mut db| {
            Box::pin(async move { create_first(&mut db, org, credential, &secret, now).await })
        })
        .await
    }
}
