//! What the SQL implementations share: row types, their conversion into domain values, and the
//! units of work themselves ([`impl_sql_store!`](crate::impl_sql_store)), written once with
//! numbered parameters (`$1`) that both SQLite and PostgreSQL accept.
//!
//! Each implementation crate supplies what differs between databases: how a write transaction
//! starts, how claims on one registrable domain are serialized, and how driver errors map to
//! [`StoreError`].

use std::future::Future;
use std::pin::Pin;

pub use async_trait::async_trait;
use claimd_domain::{
    CheckSummary, ClaimFlags, Credential, CredentialId, DomainName, DomainRecord, DomainState,
    OrgId, Organization, Timestamp, VerificationToken,
};
pub use sqlx;

use crate::{Event, EventKind, StoreError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub const DOMAIN_COLUMNS: &str = "org_id, domain, state, token, token_expires_at, \
    reserve_domain, force_domain_claim, claim_domain_only, created_at, updated_at, verified_at, \
    claimed_at, last_check_at, last_check_outcome, last_check_detail";

pub const CREDENTIAL_COLUMNS: &str =
    "id, org_id, label, scopes, roles, created_at, expires_at, revoked_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable stored value: {what}"))
}

pub fn parse_stored_name(s: &str) -> Result<DomainName, StoreError> {
    DomainName::parse(s).map_err(|_| corrupt("domain"))
}

#[derive(sqlx::FromRow)]
pub struct DomainRow {
    org_id: String,
    domain: String,
    state: String,
    token: String,
    token_expires_at: i64,
    reserve_domain: bool,
    force_domain_claim: bool,
    claim_domain_only: bool,
    created_at: i64,
    updated_at: i64,
    verified_at: Option<i64>,
    claimed_at: Option<i64>,
    last_check_at: Option<i64>,
    last_check_outcome: Option<String>,
    last_check_detail: Option<String>,
}

impl TryFrom<DomainRow> for DomainRecord {
    type Error = StoreError;

    fn try_from(r: DomainRow) -> Result<Self, StoreError> {
        Ok(DomainRecord {
            org_id: OrgId::new(r.org_id),
            domain: parse_stored_name(&r.domain)?,
            state: DomainState::parse(&r.state).ok_or_else(|| corrupt("state"))?,
            token: VerificationToken::from_stored(r.token),
            token_expires_at: Timestamp::from_millis(r.token_expires_at),
            reserve_domain: r.reserve_domain,
            flags: ClaimFlags {
                force_domain_claim: r.force_domain_claim,
                claim_domain_only: r.claim_domain_only,
            },
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
            verified_at: r.verified_at.map(Timestamp::from_millis),
            claimed_at: r.claimed_at.map(Timestamp::from_millis),
            last_check: r.last_check_at.map(|at| CheckSummary {
                at: Timestamp::from_millis(at),
                outcome: r.last_check_outcome.unwrap_or_default(),
                detail: r.last_check_detail.unwrap_or_default(),
                // The evidence lives in the event log, not on the record.
                evidence: String::new(),
            }),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct CredentialRow {
    id: String,
    org_id: Option<String>,
    label: String,
    scopes: String,
    roles: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<CredentialRow> for Credential {
    fn from(r: CredentialRow) -> Self {
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        Credential {
            id: CredentialId::new(r.id),
            org_id: r.org_id.map(OrgId::new),
            label: r.label,
            scopes: words(&r.scopes),
            roles: words(&r.roles),
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: r.expires_at.map(Timestamp::from_millis),
            revoked_at: r.revoked_at.map(Timestamp::from_millis),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct OrganizationRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<OrganizationRow> for Organization {
    fn from(r: OrganizationRow) -> Self {
        Organization {
            id: OrgId::new(r.id),
            name: r.name,
            created_at: Timestamp::from_millis(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    id: i64,
    at: i64,
    org_id: String,
    domain: String,
    kind: String,
    credential_id: Option<String>,
    tracking_id: Option<String>,
    detail: Option<String>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.id,
            at: Timestamp::from_millis(r.at),
            org_id: OrgId::new(r.org_id),
            domain: parse_stored_name(&r.domain)?,
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("event kind"))?,
            credential_id: r.credential_id.map(CredentialId::new),
            tracking_id: r.tracking_id,
            detail: r.detail,
        })
    }
}

/// `INSERT INTO {table} VALUES ($1, …), (…), …` for `rows` rows of `columns` values.
pub fn bulk_insert_sql(table: &str, columns: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * columns + col + 1));
        }
        sql.push(')');
    }
    sql
}

/// The registrable domains of `domains`, sorted and without repeats: the order in which
/// per-family locks are taken, so that two batches can never wait on each other in a cycle.
pub fn families(domains: &[DomainName]) -> Vec<String> {
    let mut families: Vec<String> = domains.iter().map(|d| d.registrable().to_owned()).collect();
    families.sort();
    families.dedup();
    families
}

/// Implements [`Store`](crate::Store) for a SQL store type. The calling crate provides:
///
/// - `fn db_error(sqlx::Error) -> StoreError`;
/// - `const PENDING_INSERT_WITH_EVENT: &str`: SQL run as one query (one round trip) that inserts
///   a pending domain row — `$1` org id, `$2` domain, `$3` registrable domain, `$4` token,
///   `$5` token expiry, `$6` now — and its event: `$7` kind, `$8` credential id, `$9` tracking
///   id, at `$6`, no detail;
/// - on the store type, `async fn reader(&self) -> StoreResult<impl DerefMut<Target = Conn>>`
///   (a connection for reads, held until dropped) and
///   `async fn write<T, F>(&self, work: F) -> StoreResult<T>` running `work` as one write
///   transaction (or a savepoint of one, under group commit) in a task the caller does not
///   own, answering only once it is committed, where
///   `F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static`;
/// - `async fn write_serialized<T, F>(&self, families: Vec<String>, work: F) -> StoreResult<T>`,
///   the same for a unit of work that changes domains: it must not overlap another unit of work
///   on any of the registrable domains `families` (sorted, no repeats);
/// - `async fn lock_bootstrap(conn: &mut Conn) -> StoreResult<()>`, called first in the
///   first-start bootstrap's unit of work, which must serialize bootstraps until the transaction
///   ends.
#[macro_export]
macro_rules! impl_sql_store {
    ($store:ty, $conn:ty) => {
        mod units {
            use super::*;
            use $crate::sql::sqlx;
            use $crate::sql::{
                CREDENTIAL_COLUMNS, CredentialRow, DOMAIN_COLUMNS, DomainRow, EventRow,
                OrganizationRow, parse_stored_name,
            };
            use $crate::{Actor, DomainSummary, EventKind, StoreError, StoreResult};
            use claimd_domain::{
                ClaimFlags, Credential, CredentialId, DomainName, DomainRecord, LifecycleError,
                NewCredential, OrgId, SecretHash, Timestamp,
            };

            pub(super) async fn load_domain(
                conn: &mut $conn,
                org: &OrgId,
                domain: &DomainName,
            ) -> StoreResult<Option<DomainRecord>> {
                let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE org_id = $1 AND domain = $2");
                sqlx::query_as::<_, DomainRow>(&sql)
                    .bind(org.as_str())
                    .bind(domain.as_str())
                    .fetch_optional(conn)
                    .await
                    .map_err(db_error)?
                    .map(DomainRecord::try_from)
                    .transpose()
            }

            /// The organization's own record for `domain`, and whether another organization
            /// holds the claim on it, in one query.
            pub(super) async fn load_with_claim(
                conn: &mut $conn,
                org: &OrgId,
                domain: &DomainName,
            ) -> StoreResult<(Option<DomainRecord>, bool)> {
                let sql = format!(
                    "SELECT {DOMAIN_COLUMNS} FROM domains WHERE (org_id = $1 AND domain = $2) \
                     OR (domain = $2 AND state = 'claimed')"
                );
                let rows = sqlx::query_as::<_, DomainRow>(&sql)
                    .bind(org.as_str())
                    .bind(domain.as_str())
                    .fetch_all(conn)
                    .await
                    .map_err(db_error)?;
                let mut own = None;
                let mut claimed_by_other = false;
                for row in rows {
                    let record = DomainRecord::try_from(row)?;
                    if &record.org_id == org {
                        own = Some(record);
                    } else {
                        claimed_by_other = true;
                    }
                }
                Ok((own, claimed_by_other))
            }

            pub(super) async fn organization_exists(conn: &mut $conn, org: &OrgId) -> StoreResult<()> {
                let found = sqlx::query("SELECT 1 FROM organizations WHERE id = $1")
                    .bind(org.as_str())
                    .fetch_optional(conn)
                    .await
                    .map_err(db_error)?;
                match found {
                    Some(_) => Ok(()),
                    None => Err(StoreError::UnknownOrganization(org.clone())),
                }
            }

            pub(super) async fn count_pending(conn: &mut $conn, org: &OrgId) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM domains WHERE org_id = $1 AND state = 'pending'",
                )
                .bind(org.as_str())
                .fetch_one(conn)
                .await
                .map_err(db_error)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            /// Current claims under the same registrable domain, for the hierarchy rule.
            async fn claims_in_family(
                conn: &mut $conn,
                domain: &DomainName,
            ) -> StoreResult<Vec<(OrgId, DomainName)>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT org_id, domain FROM domains WHERE registrable = $1 AND state = 'claimed'",
                )
                .bind(domain.registrable())
                .fetch_all(conn)
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(org, name)| Ok((OrgId::new(org), parse_stored_name(&name)?)))
                    .collect()
            }

            pub(super) async fn summarize(conn: &mut $conn, org: &OrgId) -> StoreResult<DomainSummary> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT domain, state FROM domains WHERE org_id = $1 \
                     AND state <> 'pending' ORDER BY domain",
                )
                .bind(org.as_str())
                .fetch_all(conn)
                .await
                .map_err(db_error)?;
                let mut summary = DomainSummary::default();
                for (name, state) in rows {
                    let name = parse_stored_name(&name)?;
                    if state == "claimed" {
                        summary.claimed.push(name.clone());
                    }
                    summary.verified.push(name);
                }
                Ok(summary)
            }

            pub(super) async fn append_event(
                conn: &mut $conn,
                actor: &Actor,
                org: &OrgId,
                domain: &DomainName,
                kind: EventKind,
                detail: Option<&str>,
                now: Timestamp,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO events (at, org_id, domain, kind, credential_id, tracking_id, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(now.as_millis())
                .bind(org.as_str())
                .bind(domain.as_str())
                .bind(kind.as_str())
                .bind(actor.credential_id.as_ref().map(CredentialId::as_str))
                .bind(actor.tracking_id.as_deref())
                .bind(detail)
                .execute(conn)
                .await
                .map_err(db_error)?;
                Ok(())
            }

            /// A new pending record and its `token_issued` event, in one round trip.
            pub(super) async fn insert_pending(
                conn: &mut $conn,
                actor: &Actor,
                org: &OrgId,
                domain: &DomainName,
                token: &claimd_domain::VerificationToken,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> StoreResult<()> {
                sqlx::query(PENDING_INSERT_WITH_EVENT)
                    .bind(org.as_str())
                    .bind(domain.as_str())
                    .bind(domain.registrable())
                    .bind(token.as_str())
                    .bind(expires_at.as_millis())
                    .bind(now.as_millis())
                    .bind(EventKind::TokenIssued.as_str())
                    .bind(actor.credential_id.as_ref().map(CredentialId::as_str))
                    .bind(actor.tracking_id.as_deref())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                            StoreError::UnknownOrganization(org.clone())
                        }
                        other => db_error(other),
                    })?;
                Ok(())
            }

            /// Runs one UPDATE of the (org, domain) record with the given binds after the
            /// statement's own `$1…`; the record key binds come last.
            pub(super) async fn update_domain(
                conn: &mut $conn,
                set: &str,
                values: &[Option<i64>],
                org: &OrgId,
                domain: &DomainName,
            ) -> StoreResult<u64> {
                let n = values.len();
                let sql = format!(
                    "UPDATE domains SET {set} WHERE org_id = ${} AND domain = ${}",
                    n + 1,
                    n + 2
                );
                let mut query = sqlx::query(&sql);
                for v in values {
                    query = query.bind(*v);
                }
                let done = query
                    .bind(org.as_str())
                    .bind(domain.as_str())
                    .execute(conn)
                    .await
                    .map_err(db_error)?;
                Ok(done.rows_affected())
            }

            /// Claims one domain inside the open transaction, after the rules allow it.
            pub(super) async fn claim_one(
                conn: &mut $conn,
                actor: &Actor,
                org: &OrgId,
                domain: &DomainName,
                flags: ClaimFlags,
                now: Timestamp,
            ) -> StoreResult<()> {
                let own = load_domain(conn, org, domain).await?;
                let family = claims_in_family(conn, domain).await?;
                if claimd_domain::check_claimable(org, domain, own.as_ref(), &family)? {
                    return Ok(());
                }
                let result = sqlx::query(
                    "UPDATE domains SET state = 'claimed', claimed_at = $1, updated_at = $1, \
                     force_domain_claim = $2, claim_domain_only = $3 WHERE org_id = $4 AND domain = $5",
                )
                .bind(now.as_millis())
                .bind(flags.force_domain_claim)
                .bind(flags.claim_domain_only)
                .bind(org.as_str())
                .bind(domain.as_str())
                .execute(&mut *conn)
                .await;
                match result {
                    Ok(_) => {}
                    // The unique index caught a claim the rule check could not see.
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                        return Err(LifecycleError::ClaimedByOther(domain.clone()).into());
                    }
                    Err(e) => return Err(db_error(e)),
                }
                append_event(conn, actor, org, domain, EventKind::Claimed, None, now).await
            }

            pub(super) async fn insert_credential(
                conn: &mut $conn,
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
                sqlx::query(
                    "INSERT INTO credentials (id, org_id, label, secret_hash, scopes, roles, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(credential.id.as_str())
                .bind(credential.org_id.as_ref().map(OrgId::as_str))
                .bind(&credential.label)
                .bind(secret.as_bytes().as_slice())
                .bind(credential.scopes.join(" "))
                .bind(credential.roles.join(" "))
                .bind(now.as_millis())
                .bind(credential.expires_at.map(Timestamp::as_millis))
                .execute(conn)
                .await
                .map_err(db_error)?;
                Ok(credential)
            }

            pub(super) async fn insert_organization(
                conn: &mut $conn,
                org: &claimd_domain::Organization,
            ) -> StoreResult<()> {
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.as_str())
                    .bind(&org.name)
                    .bind(org.created_at.as_millis())
                    .execute(conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            pub(super) fn organization_query() -> &'static str {
                "SELECT id, name, created_at FROM organizations"
            }

            pub(super) fn credential_query(filter: &str) -> String {
                format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE {filter}")
            }

            pub(super) fn map_orgs(rows: Vec<OrganizationRow>) -> Vec<claimd_domain::Organization> {
                rows.into_iter().map(Into::into).collect()
            }

            pub(super) fn map_events(rows: Vec<EventRow>) -> StoreResult<Vec<$crate::Event>> {
                rows.into_iter().map($crate::Event::try_from).collect()
            }

            pub(super) fn map_credentials(rows: Vec<CredentialRow>) -> Vec<Credential> {
                rows.into_iter().map(Into::into).collect()
            }
        }

        #[$crate::sql::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> $crate::StoreResult<()> {
                $crate::sql::sqlx::query("SELECT 1")
                    .execute(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn create_organization(
                &self,
                name: &str,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<claimd_domain::Organization> {
                let org = claimd_domain::Organization {
                    id: claimd_domain::OrgId::generate(),
                    name: name.to_owned(),
                    created_at: now,
                };
                let row = org.clone();
                self.write(move |conn| Box::pin(async move { units::insert_organization(conn, &row).await }))
                    .await?;
                Ok(org)
            }

            async fn find_organization(
                &self,
                id: &claimd_domain::OrgId,
            ) -> $crate::StoreResult<Option<claimd_domain::Organization>> {
                let sql = format!("{} WHERE id = $1", units::organization_query());
                Ok($crate::sql::sqlx::query_as::<_, $crate::sql::OrganizationRow>(&sql)
                    .bind(id.as_str())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?
                    .map(Into::into))
            }

            async fn list_organizations(&self) -> $crate::StoreResult<Vec<claimd_domain::Organization>> {
                let sql = format!("{} ORDER BY created_at, id", units::organization_query());
                let rows = $crate::sql::sqlx::query_as::<_, $crate::sql::OrganizationRow>(&sql)
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?;
                Ok(units::map_orgs(rows))
            }

            async fn create_first_organization(
                &self,
                org_name: &str,
                secret: &claimd_domain::SecretHash,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<Option<(claimd_domain::Organization, claimd_domain::Credential)>> {
                let org = claimd_domain::Organization {
                    id: claimd_domain::OrgId::generate(),
                    name: org_name.to_owned(),
                    created_at: now,
                };
                let new = claimd_domain::NewCredential::org_admin(org.id.clone(), "initial admin");
                let secret = secret.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        lock_bootstrap(conn).await?;
                        let existing = $crate::sql::sqlx::query("SELECT 1 FROM organizations LIMIT 1")
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(db_error)?;
                        if existing.is_some() {
                            return Ok(None);
                        }
                        units::insert_organization(conn, &org).await?;
                        let credential = units::insert_credential(conn, &new, &secret, now).await?;
                        Ok(Some((org, credential)))
                    })
                })
                .await
            }

            async fn create_credential(
                &self,
                new: &claimd_domain::NewCredential,
                secret: &claimd_domain::SecretHash,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<claimd_domain::Credential> {
                let new = new.clone();
                let secret = secret.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        if let Some(org) = &new.org_id {
                            units::organization_exists(conn, org).await?;
                        }
                        units::insert_credential(conn, &new, &secret, now).await
                    })
                })
                .await
            }

            async fn find_credential_by_secret(
                &self,
                secret: &claimd_domain::SecretHash,
            ) -> $crate::StoreResult<Option<claimd_domain::Credential>> {
                let sql = units::credential_query("secret_hash = $1");
                Ok($crate::sql::sqlx::query_as::<_, $crate::sql::CredentialRow>(&sql)
                    .bind(secret.as_bytes().as_slice())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?
                    .map(Into::into))
            }

            async fn list_credentials(
                &self,
                org: &claimd_domain::OrgId,
            ) -> $crate::StoreResult<Vec<claimd_domain::Credential>> {
                let sql = units::credential_query("org_id = $1 ORDER BY created_at, id");
                let rows = $crate::sql::sqlx::query_as::<_, $crate::sql::CredentialRow>(&sql)
                    .bind(org.as_str())
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?;
                Ok(units::map_credentials(rows))
            }

            async fn revoke_credential(
                &self,
                id: &claimd_domain::CredentialId,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<bool> {
                let id = id.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        let done = $crate::sql::sqlx::query(
                            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                        )
                        .bind(now.as_millis())
                        .bind(id.as_str())
                        .execute(conn)
                        .await
                        .map_err(db_error)?;
                        Ok(done.rows_affected() > 0)
                    })
                })
                .await
            }

            async fn credential_changes(&self) -> $crate::StoreResult<i64> {
                let (epoch,): (i64,) =
                    $crate::sql::sqlx::query_as("SELECT epoch FROM credential_changes WHERE id = 1")
                        .fetch_one(&mut *self.reader().await?)
                        .await
                        .map_err(db_error)?;
                Ok(epoch)
            }

            async fn find_domain(
                &self,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
            ) -> $crate::StoreResult<Option<claimd_domain::DomainRecord>> {
                let mut conn = self.reader().await?;
                units::load_domain(&mut conn, org, domain).await
            }

            async fn list_domains(
                &self,
                org: &claimd_domain::OrgId,
                after: Option<&claimd_domain::DomainName>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<claimd_domain::DomainRecord>> {
                let sql = format!(
                    "SELECT {} FROM domains WHERE org_id = $1 AND domain > $2 ORDER BY domain LIMIT $3",
                    $crate::sql::DOMAIN_COLUMNS
                );
                $crate::sql::sqlx::query_as::<_, $crate::sql::DomainRow>(&sql)
                    .bind(org.as_str())
                    .bind(after.map_or("", |d| d.as_str()))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(claimd_domain::DomainRecord::try_from)
                    .collect()
            }

            async fn summarize_domains(
                &self,
                org: &claimd_domain::OrgId,
            ) -> $crate::StoreResult<$crate::DomainSummary> {
                let mut conn = self.reader().await?;
                units::summarize(&mut conn, org).await
            }

            async fn find_domain_and_claim(
                &self,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
            ) -> $crate::StoreResult<(Option<claimd_domain::DomainRecord>, bool)> {
                let mut conn = self.reader().await?;
                units::load_with_claim(&mut conn, org, domain).await
            }

            async fn list_events(
                &self,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
            ) -> $crate::StoreResult<Vec<$crate::Event>> {
                let rows = $crate::sql::sqlx::query_as::<_, $crate::sql::EventRow>(
                    "SELECT id, at, org_id, domain, kind, credential_id, tracking_id, detail \
                     FROM events WHERE org_id = $1 AND domain = $2 ORDER BY id",
                )
                .bind(org.as_str())
                .bind(domain.as_str())
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(db_error)?;
                units::map_events(rows)
            }

            async fn issue_token(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
                request: $crate::TokenRequest,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<claimd_domain::DomainRecord> {
                let $crate::TokenRequest { fresh, ttl, max_pending } = request;
                let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
                let families = $crate::sql::families(std::slice::from_ref(&domain));
                self.write_serialized(families, move |conn| {
                    Box::pin(async move {
                        // One read for the organization's own record and another's claim; an
                        // unknown organization is caught by the foreign key on insert.
                        let (own, taken) = units::load_with_claim(conn, &org, &domain).await?;
                        let pending = if own.is_none() && max_pending > 0 {
                            units::count_pending(conn, &org).await?
                        } else {
                            0
                        };
                        let cap = claimd_domain::PendingCap { pending, max: max_pending };
                        let issue = claimd_domain::issue_token(&domain, own.as_ref(), taken, cap, now, ttl, fresh)?;
                        let vanished = || $crate::StoreError::Internal("the record vanished".into());
                        match issue {
                            claimd_domain::TokenIssue::Existing => own.ok_or_else(vanished),
                            claimd_domain::TokenIssue::New { token, expires_at } => {
                                units::insert_pending(conn, &actor, &org, &domain, &token, expires_at, now).await?;
                                Ok(claimd_domain::DomainRecord {
                                    org_id: org.clone(),
                                    domain: domain.clone(),
                                    state: claimd_domain::DomainState::Pending,
                                    token,
                                    token_expires_at: expires_at,
                                    reserve_domain: false,
                                    flags: claimd_domain::ClaimFlags::default(),
                                    created_at: now,
                                    updated_at: now,
                                    verified_at: None,
                                    claimed_at: None,
                                    last_check: None,
                                })
                            }
                            claimd_domain::TokenIssue::Renewed { token, expires_at } => {
                                $crate::sql::sqlx::query(
                                    "UPDATE domains SET token = $1, token_expires_at = $2, updated_at = $3 \
                                     WHERE org_id = $4 AND domain = $5",
                                )
                                .bind(token.as_str())
                                .bind(expires_at.as_millis())
                                .bind(now.as_millis())
                                .bind(org.as_str())
                                .bind(domain.as_str())
                                .execute(&mut *conn)
                                .await
                                .map_err(db_error)?;
                                units::append_event(conn, &actor, &org, &domain, $crate::EventKind::TokenRenewed, None, now)
                                    .await?;
                                let mut record = own.ok_or_else(vanished)?;
                                record.token = token;
                                record.token_expires_at = expires_at;
                                record.updated_at = now;
                                Ok(record)
                            }
                        }
                    })
                })
                .await
            }

            async fn record_failed_check(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
                check: &claimd_domain::CheckSummary,
            ) -> $crate::StoreResult<()> {
                let (actor, org, domain, check) = (actor.clone(), org.clone(), domain.clone(), check.clone());
                let families = $crate::sql::families(std::slice::from_ref(&domain));
                self.write_serialized(families, move |conn| {
                    Box::pin(async move {
                        let updated = $crate::sql::sqlx::query(
                            "UPDATE domains SET last_check_at = $1, last_check_outcome = $2, \
                             last_check_detail = $3 WHERE org_id = $4 AND domain = $5",
                        )
                        .bind(check.at.as_millis())
                        .bind(&check.outcome)
                        .bind(&check.detail)
                        .bind(org.as_str())
                        .bind(domain.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(db_error)?;
                        if updated.rows_affected() > 0 {
                            units::append_event(conn, &actor, &org, &domain, $crate::EventKind::CheckFailed, Some(check.evidence_or_detail()), check.at)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .await
            }

            async fn complete_verification(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                verification: &$crate::Verification,
                flags: claimd_domain::ClaimFlags,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::DomainSummary> {
                let (actor, org, v) = (actor.clone(), org.clone(), verification.clone());
                let org_for_unit = org.clone();
                let families = $crate::sql::families(std::slice::from_ref(&v.domain));
                self.write_serialized(families, move |conn| {
                    let org = org_for_unit;
                    Box::pin(async move {
                        let own = units::load_domain(conn, &org, &v.domain).await?;
                        if claimd_domain::accept_verification(&v.domain, own.as_ref(), &v.token)? {
                            $crate::sql::sqlx::query(
                                "UPDATE domains SET state = 'verified', verified_at = $1, updated_at = $1, \
                                 last_check_at = $2, last_check_outcome = $3, last_check_detail = $4 \
                                 WHERE org_id = $5 AND domain = $6",
                            )
                            .bind(now.as_millis())
                            .bind(v.check.at.as_millis())
                            .bind(&v.check.outcome)
                            .bind(&v.check.detail)
                            .bind(org.as_str())
                            .bind(v.domain.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(db_error)?;
                            units::append_event(conn, &actor, &org, &v.domain, $crate::EventKind::Verified, Some(v.check.evidence_or_detail()), now)
                                .await?;
                        }
                        if v.reserve_domain {
                            units::update_domain(conn, "reserve_domain = TRUE", &[], &org, &v.domain).await?;
                        }
                        if v.claim {
                            units::claim_one(conn, &actor, &org, &v.domain, flags, now).await?;
                        }
                        Ok(())
                    })
                })
                .await?;
                // The listing is read after the commit, off the write path: it sees the change,
                // and an organization's long list never holds the writer.
                self.summarize_domains(&org).await
            }

            async fn import_domains(
                &self,
                actor: &$crate::Actor,
                records: Vec<claimd_domain::DomainRecord>,
            ) -> $crate::StoreResult<u64> {
                let actor = actor.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        // Multi-row statements keep a large import to a few round trips.
                        const ROWS: usize = 400;
                        let mut imported = 0u64;
                        for chunk in records.chunks(ROWS) {
                            let sql = $crate::sql::bulk_insert_sql(
                                "domains (org_id, domain, registrable, state, token, token_expires_at, \
                                 reserve_domain, force_domain_claim, claim_domain_only, created_at, \
                                 updated_at, verified_at, claimed_at)",
                                13,
                                chunk.len(),
                            );
                            let mut query = $crate::sql::sqlx::query(&sql);
                            for r in chunk {
                                query = query
                                    .bind(r.org_id.as_str())
                                    .bind(r.domain.as_str())
                                    .bind(r.domain.registrable())
                                    .bind(r.state.as_str())
                                    .bind(r.token.as_str())
                                    .bind(r.token_expires_at.as_millis())
                                    .bind(r.reserve_domain)
                                    .bind(r.flags.force_domain_claim)
                                    .bind(r.flags.claim_domain_only)
                                    .bind(r.created_at.as_millis())
                                    .bind(r.updated_at.as_millis())
                                    .bind(r.verified_at.map(claimd_domain::Timestamp::as_millis))
                                    .bind(r.claimed_at.map(claimd_domain::Timestamp::as_millis));
                            }
                            imported += query.execute(&mut *conn).await.map_err(db_error)?.rows_affected();
                            let sql = $crate::sql::bulk_insert_sql(
                                "events (at, org_id, domain, kind, credential_id, tracking_id)",
                                6,
                                chunk.len(),
                            );
                            let mut query = $crate::sql::sqlx::query(&sql);
                            for r in chunk {
                                query = query
                                    .bind(r.updated_at.as_millis())
                                    .bind(r.org_id.as_str())
                                    .bind(r.domain.as_str())
                                    .bind($crate::EventKind::Imported.as_str())
                                    .bind(actor.credential_id.as_ref().map(claimd_domain::CredentialId::as_str))
                                    .bind(actor.tracking_id.as_deref());
                            }
                            query.execute(&mut *conn).await.map_err(db_error)?;
                        }
                        Ok(imported)
                    })
                })
                .await
            }

            async fn claim_domains(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                domains: &[claimd_domain::DomainName],
                flags: claimd_domain::ClaimFlags,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                if domains.is_empty() {
                    return Err(claimd_domain::LifecycleError::EmptyClaimList.into());
                }
                let mut domains = domains.to_vec();
                domains.sort();
                domains.dedup();
                let (actor, org) = (actor.clone(), org.clone());
                let families = $crate::sql::families(&domains);
                self.write_serialized(families, move |conn| {
                    Box::pin(async move {
                        for domain in &domains {
                            units::claim_one(conn, &actor, &org, domain, flags, now).await?;
                        }
                        Ok(())
                    })
                })
                .await
            }

            async fn unclaim_domain(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
                let families = $crate::sql::families(std::slice::from_ref(&domain));
                self.write_serialized(families, move |conn| {
                    Box::pin(async move {
                        let own = units::load_domain(conn, &org, &domain).await?;
                        claimd_domain::check_unclaim(&domain, own.as_ref())?;
                        units::update_domain(
                            conn,
                            "state = 'verified', claimed_at = NULL, updated_at = $1",
                            &[Some(now.as_millis())],
                            &org,
                            &domain,
                        )
                        .await?;
                        units::append_event(conn, &actor, &org, &domain, $crate::EventKind::Unclaimed, None, now).await
                    })
                })
                .await
            }

            async fn unverify_domain(
                &self,
                actor: &$crate::Actor,
                org: &claimd_domain::OrgId,
                domain: &claimd_domain::DomainName,
                remove_pending: bool,
                now: claimd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::DomainSummary> {
                let (actor, domain) = (actor.clone(), domain.clone());
                let org_for_unit = org.clone();
                let families = $crate::sql::families(std::slice::from_ref(&domain));
                self.write_serialized(families, move |conn| {
                    let org = org_for_unit;
                    Box::pin(async move {
                        let own = units::load_domain(conn, &org, &domain).await?;
                        let was_verified = own.as_ref().is_some_and(|r| r.state.is_verified());
                        match claimd_domain::check_unverify(&domain, own.as_ref(), remove_pending)? {
                            claimd_domain::UnverifyAction::Delete => {
                                $crate::sql::sqlx::query("DELETE FROM domains WHERE org_id = $1 AND domain = $2")
                                    .bind(org.as_str())
                                    .bind(domain.as_str())
                                    .execute(&mut *conn)
                                    .await
                                    .map_err(db_error)?;
                                units::append_event(conn, &actor, &org, &domain, $crate::EventKind::Removed, None, now)
                                    .await?;
                            }
                            claimd_domain::UnverifyAction::BackToPending if was_verified => {
                                units::update_domain(
                                    conn,
                                    "state = 'pending', verified_at = NULL, updated_at = $1",
                                    &[Some(now.as_millis())],
                                    &org,
                                    &domain,
                                )
                                .await?;
                                units::append_event(conn, &actor, &org, &domain, $crate::EventKind::Unverified, None, now)
                                    .await?;
                            }
                            claimd_domain::UnverifyAction::BackToPending => {}
                        }
                        Ok(())
                    })
                })
                .await?;
                self.summarize_domains(org).await
            }
        }
    };
}
