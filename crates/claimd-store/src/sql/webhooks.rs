//! Webhooks and their outbox on SQL. The deliveries are queued by the event log's append (see
//! [`super::events`]); here they are leased (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so several
//! dispatchers never take the same one), recorded, and replayed.

use std::sync::LazyLock;

use async_trait::async_trait;
use claimd_domain::{
    CredentialId, OrgId, Timestamp, Webhook, WebhookEvent, WebhookFilter, WebhookId,
    WebhookResource, WebhookSecret, WebhookStatus,
};

use super::backend::{Backend, Db, Lock, read_all, unit};
use super::events::{self, NewEvent};
use super::statement::{Dialect, Row, Statement, Value, bulk_insert_sql, corrupt};
use crate::error::StoreResult;
use crate::events::{Actor, EventKind, EventTarget};
use crate::rechecks::Lease;
use crate::webhooks::{
    DeliveryAttempt, DeliveryOutcome, DeliveryResult, DueDelivery, WebhookStore,
};

/// A webhook's columns, named apart from the events' they are read with.
const WEBHOOK: &str = "w.id AS webhook_id, w.org_id AS webhook_org_id, w.name AS webhook_name, \
     w.target_url, w.resource, w.event AS webhook_event, w.filter, w.secret, \
     w.status AS webhook_status, w.created_by, w.created_at AS webhook_created_at, \
     w.updated_at AS webhook_updated_at, w.failing_since";

fn decode(row: &impl Row) -> StoreResult<Webhook> {
    let filter = row.text_or_null("filter")?.unwrap_or_default();
    let filter = filter
        .strip_prefix("domain=")
        .map_or(Ok(WebhookFilter::any()), |_| WebhookFilter::parse(&filter))
        .map_err(|_| corrupt("filter"))?;
    Ok(Webhook {
        id: WebhookId::new(row.text("webhook_id")?),
        org_id: OrgId::new(row.text("webhook_org_id")?),
        name: row.text("webhook_name")?,
        target_url: row.text("target_url")?,
        resource: WebhookResource::parse(&row.text("resource")?)
            .ok_or_else(|| corrupt("resource"))?,
        event: WebhookEvent::parse(&row.text("webhook_event")?).ok_or_else(|| corrupt("event"))?,
        filter,
        secret: WebhookSecret::from_stored(row.text("secret")?),
        status: WebhookStatus::parse(&row.text("webhook_status")?)
            .ok_or_else(|| corrupt("status"))?,
        created_by: row.text_or_null("created_by")?.map(CredentialId::new),
        created_at: row.timestamp("webhook_created_at")?,
        updated_at: row.timestamp("webhook_updated_at")?,
        failing_since: row.timestamp_or_null("failing_since")?,
    })
}

async fn append<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    kind: EventKind,
    webhook: &Webhook,
    detail: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let event = NewEvent {
        detail: Some(detail),
        ..NewEvent::new(
            kind,
            &webhook.org_id,
            EventTarget::Webhook(webhook.id.clone()),
            actor,
            at,
        )
    };
    events::append(db, event).await
}

fn described(w: &Webhook) -> String {
    format!(
        "{} {} to {} ({}{})",
        w.resource.as_str(),
        w.event.as_str(),
        w.target_url,
        w.status.as_str(),
        w.filter
            .stored()
            .map(|f| format!(", {f}"))
            .unwrap_or_default()
    )
}

async fn create<B: Backend>(db: &mut Db<'_, B>, actor: &Actor, w: &Webhook) -> StoreResult<()> {
    let filter = w.filter.stored();
    let statement = Statement::new(
        "INSERT INTO webhooks (id, org_id, name, target_url, resource, event, filter, secret, \
         status, created_by, created_at, updated_at, failing_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(w.id.as_str())
    .bind(w.org_id.as_str())
    .bind(w.name.as_str())
    .bind(w.target_url.as_str())
    .bind(w.resource.as_str())
    .bind(w.event.as_str())
    .bind(filter.as_deref())
    .bind(w.secret.expose())
    .bind(w.status.as_str())
    .bind(w.created_by.as_ref().map(CredentialId::as_str))
    .bind(w.created_at)
    .bind(w.updated_at)
    .bind(w.failing_since);
    db.execute(statement).await?;
    append(
        db,
        actor,
        EventKind::WebhookCreated,
        w,
        &described(w),
        w.created_at,
    )
    .await
}

async fn update<B: Backend>(db: &mut Db<'_, B>, actor: &Actor, w: &Webhook) -> StoreResult<bool> {
    let filter = w.filter.stored();
    let statement = Statement::new(
        "UPDATE webhooks SET name = $1, target_url = $2, event = $3, filter = $4, secret = $5, \
         status = $6, updated_at = $7, failing_since = $8 WHERE id = $9 AND org_id = $10",
    )
    .bind(w.name.as_str())
    .bind(w.target_url.as_str())
    .bind(w.event.as_str())
    .bind(filter.as_deref())
    .bind(w.secret.expose())
    .bind(w.status.as_str())
    .bind(w.updated_at)
    .bind(w.failing_since)
    .bind(w.id.as_str())
    .bind(w.org_id.as_str());
    if db.execute(statement).await? == 0 {
        return Ok(false);
    }
    append(
        db,
        actor,
        EventKind::WebhookUpdated,
        w,
        &described(w),
        w.updated_at,
    )
    .await?;
    Ok(true)
}

async fn find<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    id: &WebhookId,
) -> StoreResult<Option<Webhook>> {
    let statement = Statement::new(format!(
        "SELECT {WEBHOOK} FROM webhooks w WHERE w.id = $1 AND w.org_id = $2"
    ))
    .bind(id.as_str())
    .bind(org.as_str());
    db.fetch_optional(statement)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

async fn delete<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    id: &WebhookId,
    now: Timestamp,
) -> StoreResult<bool> {
    let Some(w) = find(db, org, id).await? else {
        return Ok(false);
    };
    let statement = Statement::new("DELETE FROM webhooks WHERE id = $1").bind(id.as_str());
    db.execute(statement).await?;
    append(
        db,
        actor,
        EventKind::WebhookDeleted,
        &w,
        &described(&w),
        now,
    )
    .await?;
    Ok(true)
}

impl Dialect {
    /// What makes the leasing `SELECT` pass over deliveries another dispatcher has locked.
    fn skip_locked_deliveries(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        }
    }
}

/// Events turned into deliveries per look at the log.
const MATERIALIZE_BATCH: i64 = 1000;

/// Which webhook event (`created`, `updated`, `deleted`) an event kind is, as SQL over `e.kind`;
/// and the kinds that are one.
fn webhook_event_sql() -> &'static (String, String) {
    static SQL: LazyLock<(String, String)> = LazyLock::new(|| {
        let kinds: Vec<EventKind> = EventKind::ALL
            .into_iter()
            .filter(|k| k.webhook_event().is_some())
            .collect();
        let cases: Vec<String> = kinds
            .iter()
            .filter_map(|k| {
                Some(format!(
                    "WHEN '{}' THEN '{}'",
                    k.as_str(),
                    k.webhook_event()?.as_str()
                ))
            })
            .collect();
        let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
        (
            format!("CASE e.kind {} END", cases.join(" ")),
            names.join(", "),
        )
    });
    &SQL
}

/// Turns the next events of the log into deliveries to the webhooks that want them (active
/// then, registered by the time of the event, of its organization, its event and filter), and
/// moves the cursor past them. On PostgreSQL only events of transactions older than every one
/// still running are taken (the audit log's horizon), so none that commits later is passed
/// over; a dispatcher finding the cursor locked by another leaves the work to it.
async fn materialize<B: Backend>(db: &mut Db<'_, B>, now: Timestamp) -> StoreResult<()> {
    let postgres = B::DIALECT == Dialect::Postgres;
    let lock = if postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let cursor = Statement::new(format!(
        "SELECT tx, event_id FROM outbox_cursor WHERE id = 1{lock}"
    ));
    let Some(row) = db.fetch_optional(cursor).await? else {
        return Ok(());
    };
    let (from_tx, from_id) = (row.int("tx")?, row.int("event_id")?);
    let end = if postgres {
        let horizon = match B::DIALECT.audit_horizon() {
            Some(sql) => db
                .fetch_optional(Statement::new(sql))
                .await?
                .map_or(Ok(0), |r| r.int("horizon"))?,
            None => 0,
        };
        Statement::new(
            "SELECT tx, id FROM (SELECT tx, id FROM events WHERE (tx, id) > ($1, $2) AND tx < $3 \
             ORDER BY tx, id LIMIT $4) AS batch ORDER BY tx DESC, id DESC LIMIT 1",
        )
        .bind(from_tx)
        .bind(from_id)
        .bind(horizon)
        .bind(MATERIALIZE_BATCH)
    } else {
        Statement::new(
            "SELECT 0 AS tx, id FROM (SELECT id FROM events WHERE id > $2 ORDER BY id LIMIT $4) \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(from_tx)
        .bind(from_id)
        .bind(0i64)
        .bind(MATERIALIZE_BATCH)
    };
    let Some(row) = db.fetch_optional(end).await? else {
        return Ok(());
    };
    let (to_tx, to_id) = (row.int("tx")?, row.int("id")?);
    let range = if postgres {
        "(e.tx, e.id) > ($2, $3) AND (e.tx, e.id) <= ($4, $5)"
    } else {
        "e.id > $3 AND e.id <= $5"
    };
    let (event_of, kinds) = webhook_event_sql();
    let deliveries = Statement::new(format!(
        "INSERT INTO deliveries (webhook_id, event_id, created_at, state, next_attempt_at) \
         SELECT w.id, e.id, $1, 'pending', $1 FROM events e JOIN webhooks w \
         ON w.org_id = e.org_id AND w.status = 'active' AND w.resource = 'domains' \
         AND w.created_at <= e.at AND (w.event = 'all' OR w.event = {event_of}) \
         AND (w.filter IS NULL OR w.filter = 'domain=' || e.domain) \
         WHERE e.target_type = 'domain' AND e.kind IN ({kinds}) AND {range} \
         ON CONFLICT (webhook_id, event_id) DO NOTHING"
    ))
    .bind(now)
    .bind(from_tx)
    .bind(from_id)
    .bind(to_tx)
    .bind(to_id);
    db.execute(deliveries).await?;
    let moved = Statement::new("UPDATE outbox_cursor SET tx = $1, event_id = $2 WHERE id = 1")
        .bind(to_tx)
        .bind(to_id);
    db.execute(moved).await?;
    Ok(())
}

async fn take_due<B: Backend>(
    db: &mut Db<'_, B>,
    lease: &Lease,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    materialize(db, now).await?;
    let take = Statement::new(format!(
        "UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (\
         SELECT d.id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.state = 'pending' AND d.next_attempt_at <= $3 AND w.status = 'active' \
         AND (d.lease_until IS NULL OR d.lease_until <= $3) \
         ORDER BY d.next_attempt_at, d.id LIMIT $4{})",
        B::DIALECT.skip_locked_deliveries()
    ))
    .bind(lease.owner.as_str())
    .bind(lease.until)
    .bind(now)
    .bind(i64::from(limit));
    if db.execute(take).await? == 0 {
        return Ok(Vec::new());
    }
    let leased = Statement::new(format!(
        "SELECT d.id AS delivery_id, d.attempts, d.created_at AS delivery_created_at, {WEBHOOK}, \
         e.id, e.at, e.org_id, e.domain, e.kind, e.credential_id, e.tracking_id, e.detail, \
         e.target_type, e.target_id, e.state \
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id \
         WHERE d.lease_owner = $1 AND d.lease_until = $2 ORDER BY d.id"
    ))
    .bind(lease.owner.as_str())
    .bind(lease.until);
    let rows = db.fetch_all(leased).await?;
    rows.iter()
        .map(|row| {
            Ok(DueDelivery {
                id: row.int("delivery_id")?,
                attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
                created_at: row.timestamp("delivery_created_at")?,
                webhook: decode(row)?,
                event: events::decode(row)?,
            })
        })
        .collect()
}

const ATTEMPT_COLUMNS: [&str; 6] = [
    "delivery_id",
    "webhook_id",
    "at",
    "status_code",
    "latency_ms",
    "error",
];

/// Every attempt of `outcomes` into the delivery log, in one statement.
fn log_attempts<'a>(dialect: Dialect, outcomes: &'a [DeliveryOutcome]) -> Statement<'a> {
    let sql = bulk_insert_sql(
        dialect,
        "delivery_attempts",
        &ATTEMPT_COLUMNS,
        outcomes.len(),
    );
    let values = outcomes.iter().flat_map(|o| -> [Value<'a>; 6] {
        [
            o.delivery_id.into(),
            o.webhook_id.as_str().into(),
            o.at.into(),
            o.status_code.map(i64::from).into(),
            i64::try_from(o.latency_ms).unwrap_or(i64::MAX).into(),
            o.error.as_deref().into(),
        ]
    });
    Statement::new(sql).bind_all(values.collect::<Vec<_>>())
}

/// The delivered ones of `outcomes` marked so, each while `owner` still holds its lease, in
/// one statement.
fn mark_delivered<'a>(
    dialect: Dialect,
    owner: &'a str,
    delivered: &[&'a DeliveryOutcome],
) -> Statement<'a> {
    let sql = format!(
        "UPDATE deliveries SET state = 'delivered', next_attempt_at = v.column2, \
         attempts = attempts + 1, delivered_at = v.column2, lease_owner = NULL, lease_until = NULL \
         FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.lease_owner = v.column3",
        dialect.value_rows(3, delivered.len())
    );
    let values = delivered
        .iter()
        .flat_map(|o| -> [Value<'a>; 3] { [o.delivery_id.into(), o.at.into(), owner.into()] });
    Statement::new(sql).bind_all(values.collect::<Vec<_>>())
}

/// Records a batch of attempts; how many deliveries moved (their leases were still `owner`'s).
/// The delivered (nearly all, normally) cost three statements together; each failure is
/// recorded on its own, as it may turn its webhook inactive.
async fn record<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    owner: &str,
    outcomes: &[DeliveryOutcome],
) -> StoreResult<u64> {
    db.execute(log_attempts(B::DIALECT, outcomes)).await?;
    let delivered: Vec<&DeliveryOutcome> = outcomes
        .iter()
        .filter(|o| o.result == DeliveryResult::Delivered)
        .collect();
    let mut moved = 0;
    if !delivered.is_empty() {
        moved += db
            .execute(mark_delivered(B::DIALECT, owner, &delivered))
            .await?;
        let mut fine: Vec<&str> = delivered.iter().map(|o| o.webhook_id.as_str()).collect();
        fine.sort_unstable();
        fine.dedup();
        for id in fine {
            let statement = Statement::new(
                "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(id);
            db.execute(statement).await?;
        }
    }
    for o in outcomes
        .iter()
        .filter(|o| o.result != DeliveryResult::Delivered)
    {
        if record_failure(db, actor, owner, o).await? {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Records a failed attempt (already in the log); true if its delivery moved.
async fn record_failure<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    owner: &str,
    o: &DeliveryOutcome,
) -> StoreResult<bool> {
    let (state, next) = match o.result {
        DeliveryResult::Retry { at } => ("pending", at),
        DeliveryResult::Delivered | DeliveryResult::GaveUp => ("failed", o.at),
    };
    let moved = Statement::new(
        "UPDATE deliveries SET state = $1, next_attempt_at = $2, attempts = attempts + 1, \
         lease_owner = NULL, lease_until = NULL WHERE id = $3 AND lease_owner = $4",
    )
    .bind(state)
    .bind(next)
    .bind(o.delivery_id)
    .bind(owner);
    let moved = db.execute(moved).await? > 0;
    let failing = Statement::new(
        "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
    )
    .bind(o.at)
    .bind(o.webhook_id.as_str());
    db.execute(failing).await?;
    let disable = Statement::new(
        "UPDATE webhooks SET status = 'inactive', updated_at = $1 \
         WHERE id = $2 AND status = 'active' AND failing_since <= $3",
    )
    .bind(o.at)
    .bind(o.webhook_id.as_str())
    .bind(o.disable_if_failing_since);
    if db.execute(disable).await? > 0 {
        let found = Statement::new(format!("SELECT {WEBHOOK} FROM webhooks w WHERE w.id = $1"))
            .bind(o.webhook_id.as_str());
        if let Some(w) = db
            .fetch_optional(found)
            .await?
            .as_ref()
            .map(decode)
            .transpose()?
        {
            let since = w.failing_since.map_or(0, Timestamp::as_millis);
            let detail = format!(
                "turned inactive: every delivery attempt has failed since {since} (ms since the epoch); its undelivered events wait for a replay"
            );
            append(db, actor, EventKind::WebhookUpdated, &w, &detail, o.at).await?;
        }
    }
    Ok(moved)
}

/// The kinds of domain event a webhook subscribed to `event` wants.
fn wanted_kinds(event: WebhookEvent) -> Vec<EventKind> {
    EventKind::ALL
        .into_iter()
        .filter(|k| {
            k.webhook_event()
                .is_some_and(|e| event == WebhookEvent::All || e == event)
        })
        .collect()
}

async fn replay<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    w: &Webhook,
    since: Timestamp,
    now: Timestamp,
) -> StoreResult<u64> {
    let again = Statement::new(
        "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, attempts = 0, \
         lease_owner = NULL, lease_until = NULL, delivered_at = NULL \
         WHERE webhook_id = $2 AND event_id IN \
         (SELECT id FROM events WHERE org_id = $3 AND at >= $4)",
    )
    .bind(now)
    .bind(w.id.as_str())
    .bind(w.org_id.as_str())
    .bind(since);
    let mut queued = db.execute(again).await?;
    let kinds = wanted_kinds(w.event);
    let params: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 6)).collect();
    let filter = w.filter.stored();
    let missing = Statement::new(format!(
        "INSERT INTO deliveries (webhook_id, event_id, created_at, state, next_attempt_at) \
         SELECT $1, e.id, $2, 'pending', $2 FROM events e \
         WHERE e.org_id = $3 AND e.at >= $4 AND e.target_type = 'domain' \
         AND ($5 IS NULL OR 'domain=' || e.domain = $5) AND e.kind IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = $1 AND d.event_id = e.id)",
        params.join(", ")
    ))
    .bind(w.id.as_str())
    .bind(now)
    .bind(w.org_id.as_str())
    .bind(since)
    .bind(filter.as_deref())
    .bind_all(kinds.iter().map(|k| k.as_str().into()));
    queued += db.execute(missing).await?;
    let detail = format!(
        "replay of {queued} deliveries since {} (ms since the epoch)",
        since.as_millis()
    );
    append(db, actor, EventKind::WebhookUpdated, w, &detail, now).await?;
    Ok(queued)
}

#[async_trait]
impl<B: Backend> WebhookStore for B {
    async fn create_webhook(&self, actor: &Actor, webhook: &Webhook) -> StoreResult<()> {
        let (actor, webhook) = (actor.clone(), webhook.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { create(&mut db, &actor, &webhook).await })
        })
        .await
    }

    async fn find_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        let mut conn = self.reader().await?;
        find(&mut Db::<B>::new(&mut conn), org, id).await
    }

    async fn list_webhooks(&self, org: &OrgId) -> StoreResult<Vec<Webhook>> {
        let statement = Statement::new(format!(
            "SELECT {WEBHOOK} FROM webhooks w WHERE w.org_id = $1 ORDER BY w.created_at, w.id"
        ))
        .bind(org.as_str());
        read_all(self, statement)
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn update_webhook(&self, actor: &Actor, webhook: &Webhook) -> StoreResult<bool> {
        let (actor, webhook) = (actor.clone(), webhook.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { update(&mut db, &actor, &webhook).await })
        })
        .await
    }

    async fn delete_webhook(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &WebhookId,
    ) -> StoreResult<bool> {
        let (actor, org, id) = (actor.clone(), org.clone(), id.clone());
        let now = Timestamp::now();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { delete(&mut db, &actor, &org, &id, now).await })
        })
        .await
    }

    async fn lease_due_deliveries(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        let lease = lease.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { take_due(&mut db, &lease, now, limit).await })
        })
        .await
    }

    async fn record_deliveries(
        &self,
        actor: &Actor,
        owner: &str,
        outcomes: Vec<DeliveryOutcome>,
    ) -> StoreResult<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let (actor, owner) = (actor.clone(), owner.to_owned());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let mut moved = 0;
                for batch in outcomes.chunks(500) {
                    moved += record(&mut db, &actor, &owner, batch).await?;
                }
                Ok(moved)
            })
        })
        .await
    }

    async fn release_deliveries(
        &self,
        owner: &str,
        ids: &[i64],
        at: Timestamp,
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let (owner, ids) = (owner.to_owned(), ids.to_vec());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let mut released = 0;
                for id in ids {
                    let release = Statement::new(
                        "UPDATE deliveries SET next_attempt_at = $1, lease_owner = NULL, \
                         lease_until = NULL WHERE id = $2 AND lease_owner = $3 AND state = 'pending'",
                    )
                    .bind(at)
                    .bind(id)
                    .bind(owner.as_str());
                    released += db.execute(release).await?;
                }
                Ok(released)
            })
        })
        .await
    }

    async fn list_delivery_attempts(
        &self,
        org: &OrgId,
        id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        let statement = Statement::new(
            "SELECT a.delivery_id, d.event_id, a.at, a.status_code, a.latency_ms, a.error \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
             JOIN webhooks w ON w.id = a.webhook_id \
             WHERE a.webhook_id = $1 AND w.org_id = $2 ORDER BY a.id DESC LIMIT $3",
        )
        .bind(id.as_str())
        .bind(org.as_str())
        .bind(i64::from(limit));
        let rows = read_all(self, statement).await?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryAttempt {
                    delivery_id: row.int("delivery_id")?,
                    event_id: row.int("event_id")?,
                    at: row.timestamp("at")?,
                    status_code: row
                        .int_or_null("status_code")?
                        .and_then(|c| u16::try_from(c).ok()),
                    latency_ms: u64::try_from(row.int("latency_ms")?).unwrap_or(0),
                    error: row.text_or_null("error")?,
                })
            })
            .collect()
    }

    async fn replay_deliveries(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &WebhookId,
        since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let Some(webhook) = self.find_webhook(org, id).await? else {
            return Ok(0);
        };
        let actor = actor.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { replay(&mut db, &actor, &webhook, since, now).await })
        })
        .await
    }
}
