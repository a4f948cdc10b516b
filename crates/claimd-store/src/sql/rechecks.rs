//! The re-check schedule on SQL. Due domains are leased with one statement (on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so workers in several processes never take the same domain);
//! results that only move the schedule are recorded many to a statement; transitions load the
//! record, apply the policy's action and append their events, like any other unit of work.

use std::sync::LazyLock;

use async_trait::async_trait;
use claimd_domain::{DomainState, LapseAction, RecheckStep};

use super::backend::{Backend, Db, Lock, unit};
use super::domains::{self, COLUMNS_OF_D};
use super::events::{self, NewEvent};
use super::organizations;
use super::statement::{Dialect, Statement, Value};
use super::users;
use crate::error::StoreResult;
use crate::events::{Actor, EventKind};
use crate::rechecks::{DueRecheck, Lease, RecheckResult, RecheckStore};

/// Results recorded by one statement at most (13 values each).
const ROWS: usize = 256;

impl Dialect {
    /// What makes a `SELECT` in a leasing statement pass over rows another transaction has
    /// locked (SQLite has one writer at a time: nothing to pass over).
    fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// The leasing statement of a dialect, built once: it leases to `$1` until `$2` at most `$4`
/// domains due at `$3` or before whose lease (if any) has run out, and returns them with their
/// organizations' settings, in one statement.
fn lease_statement(dialect: Dialect) -> &'static str {
    fn build(dialect: Dialect) -> String {
        let take = format!(
            "UPDATE domains SET recheck_lease_owner = $1, recheck_lease_until = $2 \
             WHERE (org_id, domain) IN (SELECT org_id, domain FROM domains \
             WHERE recheck_due_at <= $3 AND state <> 'pending' \
             AND (recheck_lease_until IS NULL OR recheck_lease_until <= $3) \
             ORDER BY recheck_due_at LIMIT $4{})",
            dialect.skip_locked()
        );
        match dialect {
            // One round trip and no transaction.
            Dialect::Postgres => format!(
                "WITH d AS ({take} RETURNING *) SELECT {}, {} FROM d \
                 JOIN organizations o ON o.id = d.org_id",
                *COLUMNS_OF_D,
                organizations::SETTINGS
            ),
            // The rows this statement leased and no others (an earlier lease of the same worker
            // may carry the same owner and expiry), with their organizations' settings read by
            // subqueries: SQLite's `RETURNING` cannot join.
            Dialect::Sqlite => {
                let settings: Vec<String> = organizations::SETTINGS
                    .split(", ")
                    .map(|c| {
                        format!(
                            "(SELECT o.{c} FROM organizations o WHERE o.id = domains.org_id) AS {c}"
                        )
                    })
                    .collect();
                format!(
                    "{take} RETURNING {}, {}",
                    domains::COLUMNS.join(", "),
                    settings.join(", ")
                )
            }
        }
    }
    static POSTGRES: LazyLock<String> = LazyLock::new(|| build(Dialect::Postgres));
    static SQLITE: LazyLock<String> = LazyLock::new(|| build(Dialect::Sqlite));
    match dialect {
        Dialect::Postgres => &POSTGRES,
        Dialect::Sqlite => &SQLITE,
    }
}

async fn take_due<B: Backend>(
    db: &mut Db<'_, B>,
    lease: &Lease,
    now: claimd_domain::Timestamp,
    limit: u32,
) -> StoreResult<Vec<DueRecheck>> {
    let statement = Statement::new(lease_statement(B::DIALECT))
        .bind(lease.owner.as_str())
        .bind(lease.until)
        .bind(now)
        .bind(i64::from(limit));
    let mut due = db
        .fetch_all(statement)
        .await?
        .iter()
        .map(|row| {
            Ok(DueRecheck {
                record: domains::decode(row)?,
                settings: organizations::decode_settings(row)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // Soonest due first, on both stores (neither statement returns its rows in order).
    due.sort_by_key(|d| d.record.recheck.due_at);
    Ok(due)
}

/// One statement recording results that move the schedule only, each if its record is still
/// verified with the token looked up and (with an owner) still leased by that owner.
fn schedule_statement<'a>(
    dialect: Dialect,
    owner: Option<&'a str>,
    results: &'a [RecheckResult],
) -> Statement<'a> {
    let sql = format!(
        "UPDATE domains SET recheck_due_at = v.column5, failing_since = v.column6, \
         lapses_at = v.column7, unreachable_since = v.column8, indeterminate_runs = v.column9, \
         lapsed_at = v.column10, last_check_at = v.column11, last_check_outcome = v.column12, \
         last_check_detail = v.column13, recheck_lease_owner = NULL, recheck_lease_until = NULL \
         FROM (VALUES {}) AS v \
         WHERE domains.org_id = v.column1 AND domains.domain = v.column2 \
         AND domains.token = v.column3 AND domains.state <> 'pending' \
         AND (v.column4 IS NULL OR domains.recheck_lease_owner = v.column4)",
        dialect.value_rows(13, results.len())
    );
    let values = results.iter().flat_map(|r| {
        let s = &r.state;
        [
            r.org_id.as_str().into(),
            r.domain.as_str().into(),
            r.token.as_str().into(),
            owner.into(),
            s.due_at.into(),
            s.failing_since.into(),
            s.lapses_at.into(),
            s.unreachable_since.into(),
            i64::from(s.indeterminate_runs).into(),
            s.lapsed_at.into(),
            r.lookup.at.into(),
            r.lookup.outcome.as_str().into(),
            r.lookup.detail.as_str().into(),
        ]
    });
    Statement::new(sql).bind_all(values.collect::<Vec<Value<'a>>>())
}

/// A transition: the record as it is now, the lease released, the step's action, its events.
/// False if the result no longer applies.
async fn apply_transition<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    owner: Option<&str>,
    result: RecheckResult,
    now: claimd_domain::Timestamp,
) -> StoreResult<bool> {
    let Some(mut record) = domains::find(db, &result.org_id, &result.domain).await? else {
        return Ok(false);
    };
    if !record.state.is_verified() || record.token != result.token {
        return Ok(false);
    }
    let release = Statement::new(
        "UPDATE domains SET recheck_lease_owner = NULL, recheck_lease_until = NULL \
         WHERE org_id = $1 AND domain = $2 AND ($3 IS NULL OR recheck_lease_owner = $3)",
    )
    .bind(record.org_id.as_str())
    .bind(record.domain.as_str())
    .bind(owner);
    if db.execute(release).await? == 0 {
        // The lease ran out and another worker took the domain: its result is the one to keep.
        return Ok(false);
    }
    let evidence = result.lookup.evidence_or_detail().to_owned();
    let kind = match result.step {
        RecheckStep::AtRisk { .. } => EventKind::AtRisk,
        RecheckStep::Recovered => EventKind::Recovered,
        _ => EventKind::Lapsed,
    };
    record.record_lookup(result.lookup);
    record.recheck = result.state;
    let mut actions = Vec::new();
    if let RecheckStep::Lapse(action) = result.step {
        let claimed = record.state == DomainState::Claimed;
        if claimed && action != LapseAction::Keep {
            record.mark_unclaimed(now);
            users::restore_external(db, actor, &record.org_id, &record.domain, now).await?;
            actions.push(EventKind::Unclaimed);
        }
        if action == LapseAction::Unverify {
            record.mark_unverified(now);
            actions.push(EventKind::Unverified);
        }
    }
    domains::update(db, &record).await?;
    if actions.contains(&EventKind::Unverified) {
        users::recompute(db, actor, &record.org_id, now).await?;
    }
    let transition = NewEvent {
        detail: Some(&evidence),
        ..domains::event(kind, &record, actor, now)
    };
    events::append(db, transition).await?;
    for kind in actions {
        let action = NewEvent {
            detail: Some(
                "the domain lapsed: its verification record stayed gone past the grace period",
            ),
            ..domains::event(kind, &record, actor, now)
        };
        events::append(db, action).await?;
    }
    Ok(true)
}

async fn record<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    owner: Option<&str>,
    results: Vec<RecheckResult>,
    now: claimd_domain::Timestamp,
) -> StoreResult<u64> {
    let (transitions, schedule): (Vec<_>, Vec<_>) =
        results.into_iter().partition(|r| r.step.is_transition());
    let mut recorded = 0;
    for chunk in schedule.chunks(ROWS) {
        recorded += db
            .execute(schedule_statement(B::DIALECT, owner, chunk))
            .await?;
    }
    for result in transitions {
        if apply_transition(db, actor, owner, result, now).await? {
            recorded += 1;
        }
    }
    Ok(recorded)
}

#[async_trait]
impl<B: Backend> RecheckStore for B {
    async fn lease_due_rechecks(
        &self,
        lease: &Lease,
        now: claimd_domain::Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueRecheck>> {
        let lease = lease.clone();
        // One statement on PostgreSQL, committed on its own; the SQLite writer runs both of
        // its statements in its transaction.
        unit(self, Lock::Optimistic, move |mut db| {
            Box::pin(async move { take_due(&mut db, &lease, now, limit).await })
        })
        .await
    }

    async fn release_rechecks(
        &self,
        owner: &str,
        now: claimd_domain::Timestamp,
    ) -> StoreResult<u64> {
        let owner = owner.to_owned();
        // Leased rows are due (a lease does not move the due time): the due-time index finds
        // them among the backlog rather than the whole table.
        unit(self, Lock::Optimistic, move |mut db| {
            Box::pin(async move {
                let release = Statement::new(
                    "UPDATE domains SET recheck_lease_owner = NULL, recheck_lease_until = NULL \
                     WHERE recheck_lease_owner = $1 AND recheck_due_at <= $2",
                )
                .bind(owner.as_str())
                .bind(now);
                db.execute(release).await
            })
        })
        .await
    }

    async fn record_rechecks(
        &self,
        actor: &Actor,
        owner: Option<&str>,
        results: Vec<RecheckResult>,
        now: claimd_domain::Timestamp,
    ) -> StoreResult<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let lock = Lock::families(results.iter().map(|r| &r.domain));
        let (actor, owner) = (actor.clone(), owner.map(str::to_owned));
        unit(self, lock, move |mut db| {
            Box::pin(async move { record(&mut db, &actor, owner.as_deref(), results, now).await })
        })
        .await
    }
}
