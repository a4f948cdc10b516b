//! The event log on SQL: appended to by the units of work of the other aggregates, in their
//! transaction; read per domain and per organization. It is also the webhook outbox: the
//! dispatchers turn its domain events into deliveries (see [`super::webhooks`]), so a write
//! pays for its event and nothing more.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::{CredentialId, DomainName, OrgId, Timestamp, UserId, WebhookId};

use super::backend::{Backend, Db, Lock, read_all, unit};
use super::statement::{Dialect, Row, Statement, Value, corrupt, insert_sql};
use crate::error::StoreResult;
use crate::events::{Actor, AuditEntry, AuditQuery, Event, EventKind, EventStore, EventTarget};

/// The columns an event is written with (`id`, and on PostgreSQL `tx`, are the database's).
pub(super) const COLUMNS: [&str; 10] = [
    "at",
    "org_id",
    "domain",
    "kind",
    "credential_id",
    "tracking_id",
    "detail",
    "target_type",
    "target_id",
    "state",
];

/// An event about to be appended.
pub(super) struct NewEvent<'a> {
    pub kind: EventKind,
    pub org: &'a OrgId,
    pub target: EventTarget,
    /// For a domain event, the domain's state after it.
    pub state: Option<&'static str>,
    pub actor: &'a Actor,
    pub detail: Option<&'a str>,
    pub at: Timestamp,
}

impl<'a> NewEvent<'a> {
    pub fn new(
        kind: EventKind,
        org: &'a OrgId,
        target: EventTarget,
        actor: &'a Actor,
        at: Timestamp,
    ) -> Self {
        Self {
            kind,
            org,
            target,
            state: None,
            actor,
            detail: None,
            at,
        }
    }

    pub fn values(&self) -> [Value<'_>; 10] {
        let domain = self.target.domain().map_or("", DomainName::as_str);
        [
            self.at.into(),
            self.org.as_str().into(),
            domain.into(),
            self.kind.as_str().into(),
            self.actor
                .credential_id
                .as_ref()
                .map(CredentialId::as_str)
                .into(),
            self.actor.tracking_id.as_deref().into(),
            self.detail.into(),
            self.target.kind().into(),
            self.target.id().into(),
            self.state.into(),
        ]
    }
}

/// The SQL appending an event whose parameters start at `$first`.
pub(super) fn append_sql(first: usize) -> String {
    insert_sql("events", &COLUMNS, first)
}

/// Appends the event.
pub(super) async fn append<B: Backend>(db: &mut Db<'_, B>, event: NewEvent<'_>) -> StoreResult<()> {
    static APPEND: LazyLock<String> = LazyLock::new(|| append_sql(1));
    let statement = Statement::new(APPEND.as_str()).bind_all(event.values());
    db.execute(statement).await?;
    Ok(())
}

const SELECT: &str = "SELECT e.id, e.at, e.org_id, e.domain, e.kind, e.credential_id, \
     e.tracking_id, e.detail, e.target_type, e.target_id, e.state FROM events e";

/// An event from a row that has its columns under their own names.
pub(super) fn decode(row: &impl Row) -> StoreResult<Event> {
    let kind = row.text("kind")?;
    let id = row.text_or_null("target_id")?;
    let domain = row.text("domain")?;
    // Events written before targets were recorded are about their domain.
    let id = id.unwrap_or(domain);
    let target = match row.text("target_type")?.as_str() {
        "domain" => EventTarget::Domain(DomainName::parse(&id).map_err(|_| corrupt("target_id"))?),
        "credential" => EventTarget::Credential(CredentialId::new(id)),
        "organization" => EventTarget::Organization(OrgId::new(id)),
        "webhook" => EventTarget::Webhook(WebhookId::new(id)),
        "user" => EventTarget::User(UserId::new(id)),
        _ => return Err(corrupt("target_type")),
    };
    Ok(Event {
        id: row.int("id")?,
        at: row.timestamp("at")?,
        org_id: OrgId::new(row.text("org_id")?),
        target,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        credential_id: row.text_or_null("credential_id")?.map(CredentialId::new),
        tracking_id: row.text_or_null("tracking_id")?,
        detail: row.text_or_null("detail")?,
        state: row.text_or_null("state")?,
    })
}

impl Dialect {
    /// The audit log's order: the order events become visible in. On SQLite, with one writer,
    /// that is the id. On PostgreSQL ids are taken before commit, so a transaction can commit an
    /// event with a smaller id after a larger one was read; events are read in (transaction,
    /// id) order instead, and only those of transactions older than every transaction of this
    /// database still running (the horizon), so an event that becomes visible later always
    /// comes after those already read.
    fn audit_order(self) -> &'static str {
        match self {
            Self::Sqlite => "e.id",
            Self::Postgres => "e.tx, e.id",
        }
    }

    /// A query for the horizon (PostgreSQL): the oldest transaction id still running in this
    /// database, or the next one to be given out. Run as a statement of its own before the read,
    /// whose snapshot is then taken after every transaction below it finished.
    pub(super) fn audit_horizon(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some(
                "SELECT COALESCE((SELECT min(x::TEXT::BIGINT) \
                 FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
                 WHERE x::TEXT::BIGINT % 4294967296 IN (SELECT backend_xid::TEXT::BIGINT \
                 FROM pg_stat_activity WHERE datname = current_database() \
                 AND backend_xid IS NOT NULL)), \
                 pg_snapshot_xmax(pg_current_snapshot())::TEXT::BIGINT) AS horizon",
            ),
        }
    }
}

#[async_trait]
impl<B: Backend> EventStore for B {
    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>> {
        let statement = Statement::new(format!(
            "{SELECT} WHERE e.org_id = $1 AND e.domain = $2 ORDER BY e.id"
        ))
        .bind(org.as_str())
        .bind(domain.as_str());
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }

    async fn list_audit_events(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut conn = self.reader().await?;
        let mut db = Db::<B>::new(&mut conn);
        let horizon = match B::DIALECT.audit_horizon() {
            Some(sql) => {
                let row = db.fetch_optional(Statement::new(sql)).await?;
                Some(row.map_or(Ok(i64::MAX), |r| r.int("horizon"))?)
            }
            None => None,
        };
        let mut sql = String::from(
            "SELECT e.id, e.at, e.org_id, e.domain, e.kind, e.credential_id, e.tracking_id, \
             e.detail, e.target_type, e.target_id, e.state, c.org_id AS actor_org_id, \
             c.label AS actor_name FROM events e LEFT JOIN credentials c ON c.id = e.credential_id \
             WHERE e.org_id = $1 AND e.at >= $2 AND e.at < $3",
        );
        let mut n = 3;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if horizon.is_some() {
            sql += &format!(" AND e.tx < {}", param());
        }
        if q.actor.is_some() {
            sql += &format!(" AND e.credential_id = {}", param());
        }
        if !q.kinds.is_empty() {
            let kinds: Vec<String> = q.kinds.iter().map(|_| param()).collect();
            sql += &format!(" AND e.kind IN ({})", kinds.join(", "));
        }
        let order = B::DIALECT.audit_order();
        sql += &format!(" ORDER BY {order} LIMIT {} OFFSET {}", param(), param());
        let statement = Statement::new(sql)
            .bind(q.org.as_str())
            .bind(q.from.unwrap_or(Timestamp::from_millis(0)))
            .bind(q.to.unwrap_or(Timestamp::from_millis(i64::MAX)))
            .bind_all(horizon.map(Value::from))
            .bind_all(q.actor.as_ref().map(|a| a.as_str().into()))
            .bind_all(q.kinds.iter().map(|k| k.as_str().into()))
            .bind(i64::from(q.limit))
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let rows = db.fetch_all(statement).await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    event: decode(row)?,
                    actor_org: row.text_or_null("actor_org_id")?.map(OrgId::new),
                    actor_name: row.text_or_null("actor_name")?,
                })
            })
            .collect()
    }

    async fn prune_events(&self, keep: Duration, now: Timestamp) -> StoreResult<u64> {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let before = now.as_millis().saturating_sub(keep_ms);
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let retention =
                    Statement::new("UPDATE audit_retention SET keep_ms = $1 WHERE id = 1")
                        .bind(keep_ms);
                db.execute(retention).await?;
                // Their webhook deliveries (and delivery logs) go with them.
                let deliveries = Statement::new(
                    "DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE at < $1)",
                )
                .bind(Timestamp::from_millis(before));
                db.execute(deliveries).await?;
                let prune = Statement::new("DELETE FROM events WHERE at < $1")
                    .bind(Timestamp::from_millis(before));
                db.execute(prune).await
            })
        })
        .await
    }
}
