//! The event log on SQL: appended to by the units of work of the other aggregates, in their
//! transaction; read per domain.

use async_trait::async_trait;
use claimd_domain::{CredentialId, DomainName, OrgId, Timestamp};

use super::backend::{Backend, Db, read_all};
use super::statement::{Row, Statement, Value, corrupt};
use crate::error::StoreResult;
use crate::events::{Actor, Event, EventKind, EventStore};

/// The columns an event is written with (`id` is the database's).
pub(super) const COLUMNS: [&str; 7] = [
    "at",
    "org_id",
    "domain",
    "kind",
    "credential_id",
    "tracking_id",
    "detail",
];

/// An event about to be appended.
pub(super) struct NewEvent<'a> {
    pub kind: EventKind,
    pub org: &'a OrgId,
    pub domain: &'a DomainName,
    pub actor: &'a Actor,
    pub detail: Option<&'a str>,
    pub at: Timestamp,
}

impl<'a> NewEvent<'a> {
    pub fn values(&self) -> [Value<'a>; 7] {
        [
            self.at.into(),
            self.org.as_str().into(),
            self.domain.as_str().into(),
            self.kind.as_str().into(),
            self.actor
                .credential_id
                .as_ref()
                .map(CredentialId::as_str)
                .into(),
            self.actor.tracking_id.as_deref().into(),
            self.detail.into(),
        ]
    }
}

pub(super) async fn append<B: Backend>(db: &mut Db<'_, B>, event: NewEvent<'_>) -> StoreResult<()> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::insert_sql("events", &COLUMNS, 1));
    db.execute(Statement::new(SQL.as_str()).bind_all(event.values()))
        .await?;
    Ok(())
}

fn decode(row: &impl Row) -> StoreResult<Event> {
    let domain = row.text("domain")?;
    let kind = row.text("kind")?;
    Ok(Event {
        id: row.int("id")?,
        at: row.timestamp("at")?,
        org_id: OrgId::new(row.text("org_id")?),
        domain: DomainName::parse(&domain).map_err(|_| corrupt("domain"))?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        credential_id: row.text_or_null("credential_id")?.map(CredentialId::new),
        tracking_id: row.text_or_null("tracking_id")?,
        detail: row.text_or_null("detail")?,
    })
}

#[async_trait]
impl<B: Backend> EventStore for B {
    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>> {
        let statement = Statement::new(
            "SELECT id, at, org_id, domain, kind, credential_id, tracking_id, detail \
             FROM events WHERE org_id = $1 AND domain = $2 ORDER BY id",
        )
        .bind(org.as_str())
        .bind(domain.as_str());
        let rows = read_all(self, statement).await?;
        rows.iter().map(decode).collect()
    }
}
