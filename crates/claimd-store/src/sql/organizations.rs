//! Organizations on SQL, and the first-start bootstrap (an organization with its first
//! credential).

use std::time::Duration;

use async_trait::async_trait;

use claimd_domain::{
    Credential, LapseAction, NewCredential, OrgId, Organization, OrganizationPatch,
    RecheckSettings, SecretHash, Timestamp,
};

use super::backend::{Backend, Db, Lock, read_all, unit};
use super::credentials;
use super::events::{self, NewEvent};
use super::statement::{Row, Statement, Value, corrupt, insert_sql, update_sql};
use super::users;
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, EventKind, EventTarget};
use crate::organizations::OrganizationStore;

static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT id, name, preferred_language, created_at, updated_at, enforce_verified_domains, \
         {SETTINGS} FROM organizations"
    )
});

/// An organization's re-check choices, from a row that has its three columns.
pub(super) fn decode_settings(row: &impl Row) -> StoreResult<RecheckSettings> {
    let millis = |column: &str| -> StoreResult<Option<Duration>> {
        let ms = row.int_or_null(column)?;
        Ok(ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    };
    let lapse_action = match row.text_or_null("lapse_action")? {
        None => None,
        Some(s) => Some(LapseAction::parse(&s).ok_or_else(|| corrupt("lapse_action"))?),
    };
    Ok(RecheckSettings {
        interval: millis("recheck_interval_ms")?,
        grace: millis("recheck_grace_ms")?,
        lapse_action,
    })
}

/// The columns [`decode_settings`] reads.
pub(super) const SETTINGS: &str = "recheck_interval_ms, recheck_grace_ms, lapse_action";

fn decode(row: &impl Row) -> StoreResult<Organization> {
    let created_at = row.timestamp("created_at")?;
    Ok(Organization {
        id: OrgId::new(row.text("id")?),
        name: row.text("name")?,
        preferred_language: row.text_or_null("preferred_language")?,
        created_at,
        // Organizations created before the column existed were never changed since.
        updated_at: row.timestamp_or_null("updated_at")?.unwrap_or(created_at),
        recheck: decode_settings(row)?,
        enforce_verified_domains: row.flag("enforce_verified_domains")?,
    })
}

/// The columns an organization is written with, and their values.
fn columns(org: &Organization) -> [(&'static str, Value<'_>); 9] {
    let millis = |d: Option<Duration>| {
        Value::Int(d.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    };
    [
        ("id", org.id.as_str().into()),
        ("name", org.name.as_str().into()),
        (
            "preferred_language",
            org.preferred_language.as_deref().into(),
        ),
        ("created_at", org.created_at.into()),
        ("updated_at", org.updated_at.into()),
        ("recheck_interval_ms", millis(org.recheck.interval)),
        ("recheck_grace_ms", millis(org.recheck.grace)),
        (
            "lapse_action",
            org.recheck.lapse_action.map(LapseAction::as_str).into(),
        ),
        (
            "enforce_verified_domains",
            org.enforce_verified_domains.into(),
        ),
    ]
}

async fn insert<B: Backend>(db: &mut Db<'_, B>, org: &Organization) -> StoreResult<()> {
    let (names, values): (Vec<&str>, Vec<Value<'_>>) = columns(org).into_iter().unzip();
    let statement = Statement::new(insert_sql("organizations", &names, 1)).bind_all(values);
    db.execute(statement).await?;
    Ok(())
}

async fn find<B: Backend>(db: &mut Db<'_, B>, id: &OrgId) -> StoreResult<Option<Organization>> {
    let statement = Statement::new(format!("{} WHERE id = $1", *SELECT)).bind(id.as_str());
    db.fetch_optional(statement)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// What a patch names, for the event log.
fn changed_fields(patch: &OrganizationPatch) -> String {
    let named = [
        (patch.name.is_some(), "displayName"),
        (patch.preferred_language.is_some(), "preferredLanguage"),
        (patch.recheck_interval.is_some(), "recheckInterval"),
        (patch.recheck_grace.is_some(), "recheckGrace"),
        (patch.lapse_action.is_some(), "lapseAction"),
        (
            patch.enforce_verified_domains.is_some(),
            "enforceVerifiedDomains",
        ),
    ];
    let fields: Vec<&str> = named
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, f)| *f)
        .collect();
    format!("changed: {}", fields.join(", "))
}

async fn created<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &Organization,
) -> StoreResult<()> {
    let event = NewEvent {
        detail: Some(&org.name),
        ..NewEvent::new(
            EventKind::OrganizationCreated,
            &org.id,
            EventTarget::Organization(org.id.clone()),
            actor,
            org.created_at,
        )
    };
    events::append(db, event).await
}

pub(super) async fn update<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    id: &OrgId,
    patch: &OrganizationPatch,
    now: Timestamp,
) -> StoreResult<Organization> {
    let mut org = find(db, id)
        .await?
        .ok_or_else(|| StoreError::UnknownOrganization(id.clone()))?;
    patch.apply(&mut org, now);
    let (names, values): (Vec<&str>, Vec<Value<'_>>) = columns(&org)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "id" | "created_at"))
        .unzip();
    let statement = Statement::new(update_sql("organizations", &names, &["id"]))
        .bind_all(values)
        .bind(org.id.as_str());
    db.execute(statement).await?;
    // The organization's users, under its enforcement as it is now.
    users::recompute(db, actor, &org.id, now).await?;
    let changed = changed_fields(patch);
    let event = NewEvent {
        detail: Some(&changed),
        ..NewEvent::new(
            EventKind::OrganizationUpdated,
            &org.id,
            EventTarget::Organization(org.id.clone()),
            actor,
            now,
        )
    };
    events::append(db, event).await?;
    Ok(org)
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
    let actor = Actor {
        credential_id: None,
        tracking_id: Some("first start".into()),
        guarded: false,
    };
    insert(db, &org).await?;
    created(db, &actor, &org).await?;
    let credential = credentials::insert(db, &actor, &credential, secret, now).await?;
    Ok(Some((org, credential)))
}

#[async_trait]
impl<B: Backend> OrganizationStore for B {
    async fn create_organization(
        &self,
        actor: &Actor,
        name: &str,
        now: Timestamp,
    ) -> StoreResult<Organization> {
        let org = Organization::new(name, now);
        let (row, actor) = (org.clone(), actor.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                insert(&mut db, &row).await?;
                created(&mut db, &actor, &row).await
            })
        })
        .await?;
        Ok(org)
    }

    async fn find_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let mut conn = self.reader().await?;
        find(&mut Db::<B>::new(&mut conn), id).await
    }

    async fn list_organizations(&self) -> StoreResult<Vec<Organization>> {
        let statement = Statement::new(format!("{} ORDER BY created_at, id", *SELECT));
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }

    async fn update_organization(
        &self,
        actor: &Actor,
        id: &OrgId,
        patch: &OrganizationPatch,
        now: Timestamp,
    ) -> StoreResult<Organization> {
        let (actor, id, patch) = (actor.clone(), id.clone(), patch.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { update(&mut db, &actor, &id, &patch, now).await })
        })
        .await
    }

    async fn create_first_organization(
        &self,
        org_name: &str,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Organization, Credential)>> {
        let org = Organization::new(org_name, now);
        let credential = NewCredential::org_admin(org.id.clone(), "initial admin");
        let secret = secret.clone();
        unit(self, Lock::Bootstrap, move |mut db| {
            Box::pin(async move { create_first(&mut db, org, credential, &secret, now).await })
        })
        .await
    }
}
