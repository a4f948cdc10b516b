//! The storage contract on an embedded SQLite file.
//!
//! - WAL journal, `synchronous = FULL`: a commit that returned is on disk.
//! - Writes go through a pool of one connection and start with `BEGIN IMMEDIATE`, so the write
//!   lock is taken before the first read of a unit of work and the rules are re-checked under it;
//!   other processes on the same file (the CLI) wait on the busy timeout instead of failing.
//! - Reads use a separate small pool and never block writers (WAL).
//! - Every unit of work runs in its own spawned task: if the caller's future is dropped (client
//!   disconnected) the transaction still commits or rolls back as a whole, and the single writer
//!   connection never returns to the pool in the middle of a transaction.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::{
    CheckSummary, ClaimFlags, Credential, CredentialId, DomainName, DomainRecord, DomainState,
    LifecycleError, NewCredential, OrgId, Organization, SecretHash, Timestamp, TokenIssue,
    UnverifyAction, VerificationToken,
};
use claimd_store::{
    Actor, DomainSummary, Event, EventKind, Store, StoreError, StoreResult, Verification,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, SqliteConnection};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const DOMAIN_COLUMNS: &str = "org_id, domain, state, token, token_expires_at, reserve_domain, \
    force_domain_claim, claim_domain_only, created_at, updated_at, verified_at, claimed_at, \
    last_check_at, last_check_outcome, last_check_detail";

/// Options for opening the store.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// How long a write waits for another process holding the file's write lock.
    pub busy_timeout: Duration,
    /// Connections for reads.
    pub read_connections: u32,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` — `sqlite:path`, `sqlite://path` or a
    /// plain file path — and applies the embedded migrations.
    pub async fn open(url: &str, settings: &SqliteSettings) -> StoreResult<Self> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite:{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Internal(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.busy_timeout * 2)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.read_connections.max(1))
            .acquire_timeout(settings.busy_timeout * 2)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        Ok(Self { writer, reader })
    }

    /// The names of the embedded migrations, in order (the PostgreSQL store must match them).
    pub fn migration_names() -> Vec<String> {
        MIGRATOR
            .iter()
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect()
    }

    /// Runs `work` as one write transaction in its own task, so that dropping the caller's
    /// future cannot interrupt it halfway.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let pool = self.writer.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
            let value = work(&mut tx).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("unit of work aborted: {e}")))?
    }

    async fn read<T, F, Fut>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(SqlitePool) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        work(self.reader.clone()).await
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("5" | "6" | "517")) => {
            // SQLITE_BUSY / SQLITE_LOCKED / SQLITE_BUSY_SNAPSHOT: another writer held on too long.
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable stored value: {what}"))
}

fn domain_from_row(row: &SqliteRow) -> StoreResult<DomainRecord> {
    let get_ts = |col: &str| -> StoreResult<Option<Timestamp>> {
        Ok(row
            .try_get::<Option<i64>, _>(col)
            .map_err(db_error)?
            .map(Timestamp::from_millis))
    };
    let text =
        |col: &str| -> StoreResult<String> { row.try_get::<String, _>(col).map_err(db_error) };
    let flag = |col: &str| -> StoreResult<bool> { row.try_get::<bool, _>(col).map_err(db_error) };
    let domain = DomainName::parse(&text("domain")?).map_err(|_| corrupt("domain"))?;
    let state = DomainState::parse(&text("state")?).ok_or_else(|| corrupt("state"))?;
    let last_check = match get_ts("last_check_at")? {
        Some(at) => Some(CheckSummary {
            at,
            outcome: row
                .try_get::<Option<String>, _>("last_check_outcome")
                .map_err(db_error)?
                .unwrap_or_default(),
            detail: row
                .try_get::<Option<String>, _>("last_check_detail")
                .map_err(db_error)?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(DomainRecord {
        org_id: OrgId::new(text("org_id")?),
        domain,
        state,
        token: VerificationToken::from_stored(text("token")?),
        token_expires_at: get_ts("token_expires_at")?.ok_or_else(|| corrupt("token_expires_at"))?,
        reserve_domain: flag("reserve_domain")?,
        flags: ClaimFlags {
            force_domain_claim: flag("force_domain_claim")?,
            claim_domain_only: flag("claim_domain_only")?,
        },
        created_at: get_ts("created_at")?.ok_or_else(|| corrupt("created_at"))?,
        updated_at: get_ts("updated_at")?.ok_or_else(|| corrupt("updated_at"))?,
        verified_at: get_ts("verified_at")?,
        claimed_at: get_ts("claimed_at")?,
        last_check,
    })
}

fn credential_from_row(row: &SqliteRow) -> StoreResult<Credential> {
    let words = |col: &str| -> StoreResult<Vec<String>> {
        Ok(row
            .try_get::<String, _>(col)
            .map_err(db_error)?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    };
    Ok(Credential {
        id: CredentialId::new(row.try_get::<String, _>("id").map_err(db_error)?),
        org_id: row
            .try_get::<Option<String>, _>("org_id")
            .map_err(db_error)?
            .map(OrgId::new),
        label: row.try_get("label").map_err(db_error)?,
        scopes: words("scopes")?,
        roles: words("roles")?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(db_error)?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")
            .map_err(db_error)?
            .map(Timestamp::from_millis),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(db_error)?
            .map(Timestamp::from_millis),
    })
}

fn organization_from_row(row: &SqliteRow) -> StoreResult<Organization> {
    Ok(Organization {
        id: OrgId::new(row.try_get::<String, _>("id").map_err(db_error)?),
        name: row.try_get("name").map_err(db_error)?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(db_error)?),
    })
}

// ---- statements shared by the units of work; each runs on the open transaction ----

async fn load_domain(
    conn: &mut SqliteConnection,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<Option<DomainRecord>> {
    let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE org_id = ? AND domain = ?");
    sqlx::query(&sql)
        .bind(org.as_str())
        .bind(domain.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(domain_from_row)
        .transpose()
}

async fn organization_exists(conn: &mut SqliteConnection, org: &OrgId) -> StoreResult<()> {
    let found = sqlx::query("SELECT 1 FROM organizations WHERE id = ?")
        .bind(org.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownOrganization(org.clone())),
    }
}

async fn claimed_by_other(
    conn: &mut SqliteConnection,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM domains WHERE domain = ? AND state = 'claimed' AND org_id <> ?")
            .bind(domain.as_str())
            .bind(org.as_str())
            .fetch_optional(conn)
            .await
            .map_err(db_error)?
            .is_some(),
    )
}

/// Current claims under the same registrable domain, for the hierarchy rule.
async fn claims_in_family(
    conn: &mut SqliteConnection,
    domain: &DomainName,
) -> StoreResult<Vec<(OrgId, DomainName)>> {
    let rows = sqlx::query(
        "SELECT org_id, domain FROM domains WHERE registrable = ? AND state = 'claimed'",
    )
    .bind(domain.registrable())
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let org: String = r.try_get("org_id").map_err(db_error)?;
            let name: String = r.try_get("domain").map_err(db_error)?;
            let name = DomainName::parse(&name).map_err(|_| corrupt("domain"))?;
            Ok((OrgId::new(org), name))
        })
        .collect()
}

async fn summarize(conn: &mut SqliteConnection, org: &OrgId) -> StoreResult<DomainSummary> {
    let rows = sqlx::query(
        "SELECT domain, state FROM domains WHERE org_id = ? AND state IN ('verified', 'claimed') \
         ORDER BY domain",
    )
    .bind(org.as_str())
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    let mut summary = DomainSummary::default();
    for row in rows {
        let name: String = row.try_get("domain").map_err(db_error)?;
        let name = DomainName::parse(&name).map_err(|_| corrupt("domain"))?;
        let state: String = row.try_get("state").map_err(db_error)?;
        if state == "claimed" {
            summary.claimed.push(name.clone());
        }
        summary.verified.push(name);
    }
    Ok(summary)
}

async fn append_event(
    conn: &mut SqliteConnection,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    kind: EventKind,
    detail: Option<&str>,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (at, org_id, domain, kind, credential_id, tracking_id, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
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

/// Claims one domain inside the open transaction, after the rules allow it.
async fn claim_one(
    conn: &mut SqliteConnection,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    flags: ClaimFlags,
    now: Timestamp,
) -> StoreResult<()> {
    let own = load_domain(conn, org, domain).await?;
    let family = claims_in_family(conn, domain).await?;
    let already = claimd_domain::check_claimable(org, domain, own.as_ref(), &family)?;
    if already {
        return Ok(());
    }
    let result = sqlx::query(
        "UPDATE domains SET state = 'claimed', claimed_at = ?, updated_at = ?, \
         force_domain_claim = ?, claim_domain_only = ? WHERE org_id = ? AND domain = ?",
    )
    .bind(now.as_millis())
    .bind(now.as_millis())
    .bind(flags.force_domain_claim)
    .bind(flags.claim_domain_only)
    .bind(org.as_str())
    .bind(domain.as_str())
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => {}
        // The unique index caught a claim the rule check could not see: lost the race.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(LifecycleError::ClaimedByOther(domain.clone()).into());
        }
        Err(e) => return Err(db_error(e)),
    }
    append_event(conn, actor, org, domain, EventKind::Claimed, None, now).await
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn create_organization(&self, name: &str, now: Timestamp) -> StoreResult<Organization> {
        let org = Organization {
            id: OrgId::generate(),
            name: name.to_owned(),
            created_at: now,
        };
        let row = org.clone();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
                    .bind(row.id.as_str())
                    .bind(&row.name)
                    .bind(row.created_at.as_millis())
                    .execute(conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            })
        })
        .await?;
        Ok(org)
    }

    async fn find_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let id = id.clone();
        self.read(move |pool| async move {
            sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&pool)
                .await
                .map_err(db_error)?
                .as_ref()
                .map(organization_from_row)
                .transpose()
        })
        .await
    }

    async fn list_organizations(&self) -> StoreResult<Vec<Organization>> {
        self.read(|pool| async move {
            sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY created_at, id")
                .fetch_all(&pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(organization_from_row)
                .collect()
        })
        .await
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
        let new = NewCredential::org_admin(org.id.clone(), "initial admin");
        let secret = secret.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let existing = sqlx::query("SELECT 1 FROM organizations LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_error)?;
                if existing.is_some() {
                    return Ok(None);
                }
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
                    .bind(org.id.as_str())
                    .bind(&org.name)
                    .bind(now.as_millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
                let credential = insert_credential(conn, &new, &secret, now).await?;
                Ok(Some((org, credential)))
            })
        })
        .await
    }

    async fn create_credential(
        &self,
        new: &NewCredential,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Credential> {
        let new = new.clone();
        let secret = secret.clone();
        self.write(move |conn| {
            Box::pin(async move {
                if let Some(org) = &new.org_id {
                    organization_exists(conn, org).await?;
                }
                insert_credential(conn, &new, &secret, now).await
            })
        })
        .await
    }

    async fn find_credential_by_secret(
        &self,
        secret: &SecretHash,
    ) -> StoreResult<Option<Credential>> {
        let hash = secret.as_bytes().to_vec();
        self.read(move |pool| async move {
            sqlx::query(
                "SELECT id, org_id, label, scopes, roles, created_at, expires_at, revoked_at \
                 FROM credentials WHERE secret_hash = ?",
            )
            .bind(hash)
            .fetch_optional(&pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(credential_from_row)
            .transpose()
        })
        .await
    }

    async fn list_credentials(&self, org: &OrgId) -> StoreResult<Vec<Credential>> {
        let org = org.clone();
        self.read(move |pool| async move {
            sqlx::query(
                "SELECT id, org_id, label, scopes, roles, created_at, expires_at, revoked_at \
                 FROM credentials WHERE org_id = ? ORDER BY created_at, id",
            )
            .bind(org.as_str())
            .fetch_all(&pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(credential_from_row)
            .collect()
        })
        .await
    }

    async fn revoke_credential(&self, id: &CredentialId, now: Timestamp) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let found = sqlx::query(
                    "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                )
                .bind(now.as_millis())
                .bind(id.as_str())
                .execute(conn)
                .await
                .map_err(db_error)?;
                Ok(found.rows_affected() > 0)
            })
        })
        .await
    }

    async fn find_domain(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<Option<DomainRecord>> {
        let (org, domain) = (org.clone(), domain.clone());
        self.read(move |pool| async move {
            let mut conn = pool.acquire().await.map_err(db_error)?;
            load_domain(&mut conn, &org, &domain).await
        })
        .await
    }

    async fn list_domains(
        &self,
        org: &OrgId,
        after: Option<&DomainName>,
        limit: u32,
    ) -> StoreResult<Vec<DomainRecord>> {
        let org = org.clone();
        let after = after.map(|d| d.as_str().to_owned());
        self.read(move |pool| async move {
            let sql = format!(
                "SELECT {DOMAIN_COLUMNS} FROM domains WHERE org_id = ? AND domain > ? \
                 ORDER BY domain LIMIT ?"
            );
            sqlx::query(&sql)
                .bind(org.as_str())
                .bind(after.unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(domain_from_row)
                .collect()
        })
        .await
    }

    async fn summarize_domains(&self, org: &OrgId) -> StoreResult<DomainSummary> {
        let org = org.clone();
        self.read(move |pool| async move {
            let mut conn = pool.acquire().await.map_err(db_error)?;
            summarize(&mut conn, &org).await
        })
        .await
    }

    async fn is_claimed_by_other(&self, org: &OrgId, domain: &DomainName) -> StoreResult<bool> {
        let (org, domain) = (org.clone(), domain.clone());
        self.read(move |pool| async move {
            let mut conn = pool.acquire().await.map_err(db_error)?;
            claimed_by_other(&mut conn, &org, &domain).await
        })
        .await
    }

    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>> {
        let (org, domain) = (org.clone(), domain.clone());
        self.read(move |pool| async move {
            let rows = sqlx::query(
                "SELECT id, at, kind, credential_id, tracking_id, detail FROM events \
                 WHERE org_id = ? AND domain = ? ORDER BY id",
            )
            .bind(org.as_str())
            .bind(domain.as_str())
            .fetch_all(&pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    let kind: String = r.try_get("kind").map_err(db_error)?;
                    Ok(Event {
                        id: r.try_get("id").map_err(db_error)?,
                        at: Timestamp::from_millis(r.try_get("at").map_err(db_error)?),
                        org_id: org.clone(),
                        domain: domain.clone(),
                        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind"))?,
                        credential_id: r
                            .try_get::<Option<String>, _>("credential_id")
                            .map_err(db_error)?
                            .map(CredentialId::new),
                        tracking_id: r.try_get("tracking_id").map_err(db_error)?,
                        detail: r.try_get("detail").map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn issue_token(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        fresh: VerificationToken,
        ttl: Duration,
        now: Timestamp,
    ) -> StoreResult<DomainRecord> {
        let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
        self.write(move |conn| {
            Box::pin(async move {
                organization_exists(conn, &org).await?;
                let own = load_domain(conn, &org, &domain).await?;
                let taken = claimed_by_other(conn, &org, &domain).await?;
                let issue =
                    claimd_domain::issue_token(&domain, own.as_ref(), taken, now, ttl, fresh)?;
                match issue {
                    TokenIssue::Existing => {}
                    TokenIssue::New { token, expires_at } => {
                        sqlx::query(
                            "INSERT INTO domains (org_id, domain, registrable, state, token, \
                             token_expires_at, created_at, updated_at) \
                             VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                        )
                        .bind(org.as_str())
                        .bind(domain.as_str())
                        .bind(domain.registrable())
                        .bind(token.as_str())
                        .bind(expires_at.as_millis())
                        .bind(now.as_millis())
                        .bind(now.as_millis())
                        .execute(&mut *conn)
                        .await
                        .map_err(db_error)?;
                        append_event(
                            conn,
                            &actor,
                            &org,
                            &domain,
                            EventKind::TokenIssued,
                            None,
                            now,
                        )
                        .await?;
                    }
                    TokenIssue::Renewed { token, expires_at } => {
                        sqlx::query(
                            "UPDATE domains SET token = ?, token_expires_at = ?, updated_at = ? \
                             WHERE org_id = ? AND domain = ?",
                        )
                        .bind(token.as_str())
                        .bind(expires_at.as_millis())
                        .bind(now.as_millis())
                        .bind(org.as_str())
                        .bind(domain.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(db_error)?;
                        append_event(
                            conn,
                            &actor,
                            &org,
                            &domain,
                            EventKind::TokenRenewed,
                            None,
                            now,
                        )
                        .await?;
                    }
                }
                load_domain(conn, &org, &domain)
                    .await?
                    .ok_or_else(|| StoreError::Internal("issued record vanished".into()))
            })
        })
        .await
    }

    async fn record_failed_check(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        check: &CheckSummary,
    ) -> StoreResult<()> {
        let (actor, org, domain, check) =
            (actor.clone(), org.clone(), domain.clone(), check.clone());
        self.write(move |conn| {
            Box::pin(async move {
                let updated = sqlx::query(
                    "UPDATE domains SET last_check_at = ?, last_check_outcome = ?, \
                     last_check_detail = ? WHERE org_id = ? AND domain = ?",
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
                    let detail = format!("{}: {}", check.outcome, check.detail);
                    append_event(
                        conn,
                        &actor,
                        &org,
                        &domain,
                        EventKind::CheckFailed,
                        Some(&detail),
                        check.at,
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn complete_verification(
        &self,
        actor: &Actor,
        org: &OrgId,
        verification: &Verification,
        flags: ClaimFlags,
        now: Timestamp,
    ) -> StoreResult<DomainSummary> {
        let (actor, org, v) = (actor.clone(), org.clone(), verification.clone());
        self.write(move |conn| {
            Box::pin(async move {
                let own = load_domain(conn, &org, &v.domain).await?;
                let changed =
                    claimd_domain::accept_verification(&v.domain, own.as_ref(), &v.token)?;
                if changed {
                    sqlx::query(
                        "UPDATE domains SET state = 'verified', verified_at = ?, updated_at = ?, \
                         last_check_at = ?, last_check_outcome = ?, last_check_detail = ? \
                         WHERE org_id = ? AND domain = ?",
                    )
                    .bind(now.as_millis())
                    .bind(now.as_millis())
                    .bind(v.check.at.as_millis())
                    .bind(&v.check.outcome)
                    .bind(&v.check.detail)
                    .bind(org.as_str())
                    .bind(v.domain.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
                    append_event(
                        conn,
                        &actor,
                        &org,
                        &v.domain,
                        EventKind::Verified,
                        Some(&v.check.detail),
                        now,
                    )
                    .await?;
                }
                if v.reserve_domain {
                    sqlx::query(
                        "UPDATE domains SET reserve_domain = 1 WHERE org_id = ? AND domain = ?",
                    )
                    .bind(org.as_str())
                    .bind(v.domain.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
                }
                if v.claim {
                    claim_one(conn, &actor, &org, &v.domain, flags, now).await?;
                }
                summarize(conn, &org).await
            })
        })
        .await
    }

    async fn claim_domains(
        &self,
        actor: &Actor,
        org: &OrgId,
        domains: &[DomainName],
        flags: ClaimFlags,
        now: Timestamp,
    ) -> StoreResult<()> {
        if domains.is_empty() {
            return Err(LifecycleError::EmptyClaimList.into());
        }
        let mut domains = domains.to_vec();
        domains.sort();
        domains.dedup();
        let (actor, org) = (actor.clone(), org.clone());
        self.write(move |conn| {
            Box::pin(async move {
                for domain in &domains {
                    claim_one(conn, &actor, &org, domain, flags, now).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn unclaim_domain(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
        self.write(move |conn| {
            Box::pin(async move {
                let own = load_domain(conn, &org, &domain).await?;
                claimd_domain::check_unclaim(&domain, own.as_ref())?;
                sqlx::query(
                    "UPDATE domains SET state = 'verified', claimed_at = NULL, updated_at = ? \
                     WHERE org_id = ? AND domain = ?",
                )
                .bind(now.as_millis())
                .bind(org.as_str())
                .bind(domain.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
                append_event(conn, &actor, &org, &domain, EventKind::Unclaimed, None, now).await
            })
        })
        .await
    }

    async fn unverify_domain(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        remove_pending: bool,
        now: Timestamp,
    ) -> StoreResult<DomainSummary> {
        let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
        self.write(move |conn| {
            Box::pin(async move {
                let own = load_domain(conn, &org, &domain).await?;
                let was_verified = own.as_ref().is_some_and(|r| r.state.is_verified());
                match claimd_domain::check_unverify(&domain, own.as_ref(), remove_pending)? {
                    UnverifyAction::Delete => {
                        sqlx::query("DELETE FROM domains WHERE org_id = ? AND domain = ?")
                            .bind(org.as_str())
                            .bind(domain.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(db_error)?;
                        append_event(conn, &actor, &org, &domain, EventKind::Removed, None, now)
                            .await?;
                    }
                    UnverifyAction::BackToPending if was_verified => {
                        sqlx::query(
                            "UPDATE domains SET state = 'pending', verified_at = NULL, \
                             updated_at = ? WHERE org_id = ? AND domain = ?",
                        )
                        .bind(now.as_millis())
                        .bind(org.as_str())
                        .bind(domain.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(db_error)?;
                        append_event(
                            conn,
                            &actor,
                            &org,
                            &domain,
                            EventKind::Unverified,
                            None,
                            now,
                        )
                        .await?;
                    }
                    UnverifyAction::BackToPending => {}
                }
                summarize(conn, &org).await
            })
        })
        .await
    }
}

async fn insert_credential(
    conn: &mut SqliteConnection,
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
        "INSERT INTO credentials (id, org_id, label, secret_hash, scopes, roles, created_at, \
         expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn open_temp() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimd.db");
        let store = SqliteStore::open(path.to_str().unwrap(), &SqliteSettings::default())
            .await
            .unwrap();
        (store, dir)
    }

    claimd_store::conformance_suite!(crate::tests::open_temp);

    #[tokio::test]
    async fn reopening_keeps_data_and_reapplies_no_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimd.db");
        let path = path.to_str().unwrap();
        let org = {
            let store = SqliteStore::open(path, &SqliteSettings::default())
                .await
                .unwrap();
            store
                .create_organization("kept", Timestamp::now())
                .await
                .unwrap()
        };
        let store = SqliteStore::open(path, &SqliteSettings::default())
            .await
            .unwrap();
        assert_eq!(store.find_organization(&org.id).await.unwrap(), Some(org));
    }

    #[test]
    fn migrations_are_embedded() {
        assert_eq!(
            SqliteStore::migration_names(),
            vec!["20261126000001_initial".to_owned()]
        );
    }
}
