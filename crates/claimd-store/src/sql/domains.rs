//! Domains on SQL: the statements, how a row becomes a [`DomainRecord`], the units of work of
//! the lifecycle, and [`DomainStore`] for every backend.
//!
//! A record is written back whole, by named columns ([`COLUMNS`] and [`values`]): a new column
//! is added there, in [`decode`], and in the migrations.

use std::sync::{LazyLock, OnceLock};

use async_trait::async_trait;
use claimd_domain::{
    Acceptance, ClaimFlags, ClaimPlan, DomainName, DomainRecord, DomainState, HeldElsewhere,
    LifecycleError, LookupOutcome, LookupSummary, OrgId, PendingCap, RecheckSettings, RecheckState,
    Timestamp, TokenPlan, UnverifyPlan, VerificationToken, VerifiedElsewhere, accept_verification,
    check_reservation, jitter, plan_claim, plan_token, plan_unclaim, plan_unverify,
};

use super::backend::{Backend, Db, Lock, read_all, unit};
use super::events::{self, NewEvent};
use super::organizations;
use super::statement::{
    Dialect, Row, Statement, Value, bulk_insert_sql, corrupt, insert_sql, update_sql,
};
use super::users;
use crate::domains::{DomainStore, DomainSummary, TokenRequest, Verification};
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, EventKind, EventTarget};

/// The columns of a domain record, in the order of [`values`].
pub(super) const COLUMNS: [&str; 22] = [
    "org_id",
    "domain",
    "registrable",
    "state",
    "token",
    "token_expires_at",
    "reserve_domain",
    "force_domain_claim",
    "claim_domain_only",
    "created_at",
    "updated_at",
    "verified_at",
    "claimed_at",
    "last_check_at",
    "last_check_outcome",
    "last_check_detail",
    "recheck_due_at",
    "failing_since",
    "lapses_at",
    "unreachable_since",
    "indeterminate_runs",
    "lapsed_at",
];

/// The columns fixed when a record is created.
const IDENTITY: [&str; 4] = ["org_id", "domain", "registrable", "created_at"];

/// The record's values, in the order of [`COLUMNS`].
fn values(r: &DomainRecord) -> [Value<'_>; 22] {
    let lookup = r.last_lookup.as_ref();
    let recheck = &r.recheck;
    [
        r.org_id.as_str().into(),
        r.domain.as_str().into(),
        r.domain.registrable().into(),
        r.state.as_str().into(),
        r.token.as_str().into(),
        r.token_expires_at.into(),
        r.reserve_domain.into(),
        r.flags.force_domain_claim.into(),
        r.flags.claim_domain_only.into(),
        r.created_at.into(),
        r.updated_at.into(),
        r.verified_at.into(),
        r.claimed_at.into(),
        lookup.map(|l| l.at).into(),
        lookup.map(|l| l.outcome.as_str()).into(),
        lookup.map(|l| l.detail.as_str()).into(),
        recheck.due_at.into(),
        recheck.failing_since.into(),
        recheck.lapses_at.into(),
        recheck.unreachable_since.into(),
        i64::from(recheck.indeterminate_runs).into(),
        recheck.lapsed_at.into(),
    ]
}

/// A record from a row of [`COLUMNS`].
pub(super) fn decode(row: &impl Row) -> StoreResult<DomainRecord> {
    let domain = row.text("domain")?;
    let state = row.text("state")?;
    let last_lookup = match row.timestamp_or_null("last_check_at")? {
        None => None,
        Some(at) => Some(LookupSummary {
            at,
            outcome: decode_outcome(row.text_or_null("last_check_outcome")?.as_deref())?,
            detail: row.text_or_null("last_check_detail")?.unwrap_or_default(),
            // The evidence lives in the event log, not on the record.
            evidence: String::new(),
        }),
    };
    Ok(DomainRecord {
        org_id: OrgId::new(row.text("org_id")?),
        domain: DomainName::parse(&domain).map_err(|_| corrupt("domain"))?,
        state: DomainState::parse(&state).ok_or_else(|| corrupt("state"))?,
        token: VerificationToken::from_stored(row.text("token")?),
        token_expires_at: row.timestamp("token_expires_at")?,
        reserve_domain: row.flag("reserve_domain")?,
        flags: ClaimFlags {
            force_domain_claim: row.flag("force_domain_claim")?,
            claim_domain_only: row.flag("claim_domain_only")?,
        },
        created_at: row.timestamp("created_at")?,
        updated_at: row.timestamp("updated_at")?,
        verified_at: row.timestamp_or_null("verified_at")?,
        claimed_at: row.timestamp_or_null("claimed_at")?,
        last_lookup,
        recheck: RecheckState {
            due_at: row.timestamp_or_null("recheck_due_at")?,
            failing_since: row.timestamp_or_null("failing_since")?,
            lapses_at: row.timestamp_or_null("lapses_at")?,
            unreachable_since: row.timestamp_or_null("unreachable_since")?,
            indeterminate_runs: u32::try_from(row.int("indeterminate_runs")?).unwrap_or(u32::MAX),
            lapsed_at: row.timestamp_or_null("lapsed_at")?,
        },
    })
}

fn decode_outcome(stored: Option<&str>) -> StoreResult<LookupOutcome> {
    match stored {
        // Written by releases before outcomes were typed, when a verified record was verified
        // again without a lookup.
        Some("already_verified") => Ok(LookupOutcome::Verified),
        Some(s) => LookupOutcome::parse(s).ok_or_else(|| corrupt("last_check_outcome")),
        None => Err(corrupt("last_check_outcome")),
    }
}

static SELECT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM domains", COLUMNS.join(", ")));

/// The record's columns as `d.column, …`, for queries that join another table to `domains d`.
pub(super) static COLUMNS_OF_D: LazyLock<String> = LazyLock::new(|| {
    let qualified: Vec<String> = COLUMNS.iter().map(|c| format!("d.{c}")).collect();
    qualified.join(", ")
});

static UPDATE: LazyLock<String> = LazyLock::new(|| {
    let set: Vec<&str> = COLUMNS
        .into_iter()
        .filter(|column| !IDENTITY.contains(column))
        .collect();
    update_sql("domains", &set, &["org_id", "domain"])
});

/// [`UPDATE`] of a record only while its token is still the one read (`Lock::SharedFamilies`).
static UPDATE_IF_TOKEN: LazyLock<String> = LazyLock::new(|| {
    let set = COLUMNS
        .into_iter()
        .filter(|column| !IDENTITY.contains(column))
        .count();
    format!("{} AND token = ${}", *UPDATE, set + 3)
});

/// The columns a unit of work may change, with the record's values.
fn changeable(r: &DomainRecord) -> impl Iterator<Item = (&'static str, Value<'_>)> {
    COLUMNS
        .into_iter()
        .zip(values(r))
        .filter(|(column, _)| !IDENTITY.contains(column))
}

// ---- reads ----

pub(super) async fn find<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<Option<DomainRecord>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("{} WHERE org_id = $1 AND domain = $2", *SELECT));
    let statement = Statement::new(SQL.as_str())
        .bind(org.as_str())
        .bind(domain.as_str());
    db.fetch_optional(statement)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// The organization's record for `domain` with the organization's re-check choices, in one
/// query.
async fn find_with_settings<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<Option<(DomainRecord, RecheckSettings)>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {}, {} FROM domains d JOIN organizations o ON o.id = d.org_id \
             WHERE d.org_id = $1 AND d.domain = $2",
            *COLUMNS_OF_D,
            organizations::SETTINGS
        )
    });
    let statement = Statement::new(SQL.as_str())
        .bind(org.as_str())
        .bind(domain.as_str());
    let row = db.fetch_optional(statement).await?;
    row.map(|row| Ok((decode(&row)?, organizations::decode_settings(&row)?)))
        .transpose()
}

/// The organization's own record for `domain`, and what other organizations hold on it (a
/// claim, a reservation), in one query.
async fn find_with_claim<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<(Option<DomainRecord>, HeldElsewhere)> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} WHERE (org_id = $1 AND domain = $2) OR (domain = $2 AND state = 'claimed') \
             OR (domain = $2 AND {RESERVED})",
            *SELECT
        )
    });
    let statement = Statement::new(SQL.as_str())
        .bind(org.as_str())
        .bind(domain.as_str());
    let mut own = None;
    let mut elsewhere = HeldElsewhere::Nothing;
    for row in db.fetch_all(statement).await? {
        let record = decode(&row)?;
        if &record.org_id == org {
            own = Some(record);
        } else if record.state == DomainState::Claimed {
            elsewhere = HeldElsewhere::Claim;
        } else if elsewhere == HeldElsewhere::Nothing {
            elsewhere = HeldElsewhere::Reservation;
        }
    }
    Ok((own, elsewhere))
}

/// A row that reserves its name: the condition of the partial index `domains_one_reservation`,
/// word for word (SQLite uses a partial index only for a query that repeats its condition).
const RESERVED: &str = "reserve_domain AND state <> 'pending'";

/// Other organizations' verified records of `domain`, for the reservation rule.
async fn verified_elsewhere<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &DomainName,
) -> StoreResult<VerifiedElsewhere> {
    let statement = Statement::new(
        "SELECT reserve_domain FROM domains \
         WHERE domain = $1 AND state <> 'pending' AND org_id <> $2",
    )
    .bind(domain.as_str())
    .bind(org.as_str());
    let mut elsewhere = VerifiedElsewhere::default();
    for row in db.fetch_all(statement).await? {
        elsewhere.verified = true;
        elsewhere.reserved |= row.flag("reserve_domain")?;
    }
    Ok(elsewhere)
}

async fn count_pending<B: Backend>(db: &mut Db<'_, B>, org: &OrgId) -> StoreResult<u64> {
    let statement =
        Statement::new("SELECT count(*) AS n FROM domains WHERE org_id = $1 AND state = 'pending'")
            .bind(org.as_str());
    let rows = db.fetch_all(statement).await?;
    let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Current claims under the registrable domain of `domain`, for the hierarchy rule.
pub(super) async fn claims_in_family<B: Backend>(
    db: &mut Db<'_, B>,
    domain: &DomainName,
) -> StoreResult<Vec<(OrgId, DomainName)>> {
    let statement = Statement::new(
        "SELECT org_id, domain FROM domains WHERE registrable = $1 AND state = 'claimed'",
    )
    .bind(domain.registrable());
    let rows = db.fetch_all(statement).await?;
    rows.iter()
        .map(|row| {
            let name = row.text("domain")?;
            let name = DomainName::parse(&name).map_err(|_| corrupt("domain"))?;
            Ok((OrgId::new(row.text("org_id")?), name))
        })
        .collect()
}

fn summary(rows: &[impl Row]) -> StoreResult<DomainSummary> {
    let mut summary = DomainSummary::default();
    for row in rows {
        let name = row.text("domain")?;
        let name = DomainName::parse(&name).map_err(|_| corrupt("domain"))?;
        if row.text("state")? == DomainState::Claimed.as_str() {
            summary.claimed.push(name.clone());
        }
        summary.verified.push(name);
    }
    Ok(summary)
}

// ---- writes ----

/// Writes back every column a unit of work may change. The only unique constraint such an
/// update can violate is the one claim per domain.
pub(super) async fn update<B: Backend>(
    db: &mut Db<'_, B>,
    record: &DomainRecord,
) -> StoreResult<()> {
    let statement = Statement::new(UPDATE.as_str())
        .bind_all(changeable(record).map(|(_, value)| value))
        .bind(record.org_id.as_str())
        .bind(record.domain.as_str())
        .on_unique_violation(LifecycleError::ClaimedByOther(record.domain.clone()));
    db.execute(statement).await?;
    Ok(())
}

/// Writes `record` back if its token is still `read` (another token request may have renewed it
/// meanwhile: [`StoreError::Raced`]).
async fn update_if_token<B: Backend>(
    db: &mut Db<'_, B>,
    record: &DomainRecord,
    read: &VerificationToken,
) -> StoreResult<()> {
    let statement = Statement::new(UPDATE_IF_TOKEN.as_str())
        .bind_all(changeable(record).map(|(_, value)| value))
        .bind(record.org_id.as_str())
        .bind(record.domain.as_str())
        .bind(read.as_str());
    match db.execute(statement).await? {
        0 => Err(StoreError::Raced),
        _ => Ok(()),
    }
}

/// A new record and its event, in one round trip.
async fn insert_with_event<B: Backend>(
    db: &mut Db<'_, B>,
    record: &DomainRecord,
    event: NewEvent<'_>,
) -> StoreResult<()> {
    fn sql(dialect: Dialect) -> String {
        let domain = insert_sql("domains", &COLUMNS, 1);
        dialect.in_one_trip(&domain, &events::append_sql(COLUMNS.len() + 1))
    }
    static SQLITE: LazyLock<String> = LazyLock::new(|| sql(Dialect::Sqlite));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| sql(Dialect::Postgres));
    let text = match B::DIALECT {
        Dialect::Sqlite => SQLITE.as_str(),
        Dialect::Postgres => POSTGRES.as_str(),
    };
    let statement = Statement::new(text)
        .bind_all(values(record))
        .bind_all(event.values())
        // Another token request for the same name inserted it meanwhile.
        .on_unique_violation(StoreError::Raced)
        .on_foreign_key_violation(StoreError::UnknownOrganization(record.org_id.clone()));
    db.execute(statement).await?;
    Ok(())
}

/// A token request's new record, planned for the common case: the organization has no record
/// for the name, no other organization claims it, and the organization is under its cap of
/// pending records. [`insert_new_records`] writes it, with its event, only while that holds.
pub struct NewRecord {
    record: DomainRecord,
    actor: Actor,
    /// The organization's cap of pending records (0: none).
    max_pending: u64,
}

/// The most new records [`insert_new_records`] writes in one statement.
pub const MAX_NEW_RECORDS: usize = 64;

/// Writes each new record with its `token_issued` event if the case it was planned for still
/// holds (see [`NewRecord`]), outside any transaction and lock: each record is one statement
/// on SQLite; on PostgreSQL all of them are one statement, however many (at most
/// [`MAX_NEW_RECORDS`]). Whether each was written.
pub async fn insert_new_records<B: Backend>(
    db: &mut Db<'_, B>,
    new: &[NewRecord],
) -> StoreResult<Vec<bool>> {
    // One record (on PostgreSQL, a request alone; SQLite's writer takes each in turn): the
    // leaner statement, without the list that ties several records to their events.
    if new.len() > 1 && B::DIALECT == Dialect::Postgres {
        return insert_all_if_new(db, new).await;
    }
    let mut written = Vec::with_capacity(new.len());
    for one in new {
        written.push(insert_if_new(db, one).await?);
    }
    Ok(written)
}

/// The organization's pending records (`org` the parameter or column with its id), the count
/// the condition of [`PendingCap`] is on.
fn pending_of(org: &str) -> String {
    format!("(SELECT count(*) FROM domains p WHERE p.org_id = {org} AND p.state = 'pending')")
}

/// One new record: the record if its case holds, then its event if the record was written;
/// the count of events written answers.
async fn insert_if_new<B: Backend>(db: &mut Db<'_, B>, new: &NewRecord) -> StoreResult<bool> {
    /// Without a cap the statement has no count in it at all.
    fn sql(dialect: Dialect, capped: bool) -> String {
        let params = |first: usize, n: usize| -> Vec<String> {
            (first..first + n).map(|i| format!("${i}")).collect()
        };
        let events = COLUMNS.len() + 1;
        let cap = if capped {
            let max = events + events::COLUMNS.len();
            format!(" AND {} < ${max}", pending_of("$1"))
        } else {
            String::new()
        };
        let record = format!(
            "INSERT INTO domains ({}) SELECT {} \
             WHERE NOT EXISTS (SELECT 1 FROM domains WHERE domain = $2 AND state = 'claimed') \
             AND NOT EXISTS (SELECT 1 FROM domains WHERE domain = $2 AND {RESERVED})\
             {cap} ON CONFLICT DO NOTHING",
            COLUMNS.join(", "),
            params(1, COLUMNS.len()).join(", "),
        );
        let event = format!(
            "INSERT INTO events ({}) SELECT {}",
            events::COLUMNS.join(", "),
            params(events, events::COLUMNS.len()).join(", "),
        );
        match dialect {
            Dialect::Sqlite => format!("{record}; {event} WHERE changes() > 0"),
            Dialect::Postgres => {
                format!("WITH written AS ({record} RETURNING 1) {event} FROM written")
            }
        }
    }
    // Each dialect's pair (uncapped, capped), built once, as `lease_statement` does.
    static SQLITE: LazyLock<[String; 2]> =
        LazyLock::new(|| [sql(Dialect::Sqlite, false), sql(Dialect::Sqlite, true)]);
    static POSTGRES: LazyLock<[String; 2]> =
        LazyLock::new(|| [sql(Dialect::Postgres, false), sql(Dialect::Postgres, true)]);
    let sql = match B::DIALECT {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    let record = &new.record;
    let issued = event(
        EventKind::TokenIssued,
        record,
        &new.actor,
        record.created_at,
    );
    let mut statement = Statement::new(sql[usize::from(new.max_pending > 0)].as_str())
        .bind_all(values(record))
        .bind_all(issued.values());
    if new.max_pending > 0 {
        statement = statement.bind(i64::try_from(new.max_pending).unwrap_or(i64::MAX));
    }
    let statement =
        statement.on_foreign_key_violation(StoreError::UnknownOrganization(record.org_id.clone()));
    Ok(db.execute(statement).await? > 0)
}

/// Several new records on PostgreSQL, all in one statement: the rows go in as one `VALUES` list, each
/// numbered; the records whose case holds are inserted, their events after them, and the
/// statement answers the numbers of those written. Two requests for one name in one list: the
/// primary key lets one in, and each event goes with its own record, matched by token. A cap
/// counts the organization's rows earlier in the list as pending (one not written after all
/// only sends a later one to read and ask the rule). A list none of whose records has a cap
/// goes in a statement without the counts: PostgreSQL sets up every node of a plan on each
/// execution, counts it skips included.
async fn insert_all_if_new<B: Backend>(
    db: &mut Db<'_, B>,
    new: &[NewRecord],
) -> StoreResult<Vec<bool>> {
    fn sql(rows: usize, capped: bool) -> String {
        let event_columns: Vec<String> = events::COLUMNS.iter().map(|c| format!("e_{c}")).collect();
        let of_input = |columns: &[&str]| -> String {
            columns
                .iter()
                .map(|c| format!("i.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let event_of_input: Vec<&str> = event_columns.iter().map(String::as_str).collect();
        format!(
            "WITH input (n, max_pending, {columns}, {event_columns}) AS (VALUES {values}), \
             first AS (INSERT INTO domains ({columns}) SELECT {domain} FROM input i \
               WHERE NOT EXISTS (SELECT 1 FROM domains d \
                 WHERE d.domain = i.domain AND d.state = 'claimed') \
               AND NOT EXISTS (SELECT 1 FROM domains d \
                 WHERE d.domain = i.domain AND {RESERVED}) \
               {cap} ON CONFLICT DO NOTHING RETURNING org_id, domain, token), \
             second AS (INSERT INTO events ({events}) SELECT {event} \
               FROM input i JOIN first USING (org_id, domain, token)) \
             SELECT i.n FROM input i JOIN first USING (org_id, domain, token)",
            columns = COLUMNS.join(", "),
            event_columns = event_columns.join(", "),
            values = Dialect::Postgres.value_rows(2 + COLUMNS.len() + events::COLUMNS.len(), rows),
            domain = of_input(&COLUMNS),
            cap = if capped {
                format!(
                    "AND (i.max_pending = 0 OR {} + (SELECT count(*) FROM input j \
                     WHERE j.org_id = i.org_id AND j.n < i.n) < i.max_pending)",
                    pending_of("i.org_id")
                )
            } else {
                String::new()
            },
            events = events::COLUMNS.join(", "),
            event = of_input(&event_of_input),
        )
    }
    static SQL: [[OnceLock<String>; MAX_NEW_RECORDS]; 2] =
        [const { [const { OnceLock::new() }; MAX_NEW_RECORDS] }; 2];
    let capped = new.iter().any(|one| one.max_pending > 0);
    let statement = new
        .len()
        .checked_sub(1)
        .and_then(|i| SQL[usize::from(capped)].get(i));
    let (Some(text), Some(first)) = (statement, new.first()) else {
        return Err(StoreError::Internal(format!(
            "{} new records in one statement",
            new.len()
        )));
    };
    let text = text.get_or_init(|| sql(new.len(), capped));
    let issued: Vec<NewEvent<'_>> = new
        .iter()
        .map(|one| {
            event(
                EventKind::TokenIssued,
                &one.record,
                &one.actor,
                one.record.created_at,
            )
        })
        .collect();
    let mut statement = Statement::new(text.as_str());
    for (n, (one, issued)) in new.iter().zip(&issued).enumerate() {
        statement = statement
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(i64::try_from(one.max_pending).unwrap_or(i64::MAX))
            .bind_all(values(&one.record))
            .bind_all(issued.values());
    }
    // The error cannot say which record's organization is unknown: one that gathered several
    // records runs each alone to find out.
    let unknown = StoreError::UnknownOrganization(first.record.org_id.clone());
    let statement = statement.on_foreign_key_violation(unknown);
    let mut written = vec![false; new.len()];
    for row in db.fetch_all(statement).await? {
        let n = usize::try_from(row.int("n")?).map_err(|_| corrupt("n"))?;
        *written.get_mut(n).ok_or_else(|| corrupt("n"))? = true;
    }
    Ok(written)
}

async fn delete<B: Backend>(db: &mut Db<'_, B>, record: &DomainRecord) -> StoreResult<()> {
    let statement = Statement::new("DELETE FROM domains WHERE org_id = $1 AND domain = $2")
        .bind(record.org_id.as_str())
        .bind(record.domain.as_str());
    db.execute(statement).await?;
    Ok(())
}

/// An event about `record`, carrying its state after the change.
pub(super) fn event<'a>(
    kind: EventKind,
    record: &'a DomainRecord,
    actor: &'a Actor,
    at: Timestamp,
) -> NewEvent<'a> {
    NewEvent {
        state: Some(record.state.as_str()),
        ..NewEvent::new(
            kind,
            &record.org_id,
            EventTarget::Domain(record.domain.clone()),
            actor,
            at,
        )
    }
}

/// A record a rule allowed a change to; the rules refuse changes to records that do not exist.
fn allowed(own: Option<DomainRecord>) -> StoreResult<DomainRecord> {
    own.ok_or_else(|| StoreError::Internal("a rule allowed a change to a missing record".into()))
}

// ---- units of work ----

/// A token request. Without the family's lock (`locked` false, [`Lock::Optimistic`]) it answers
/// what it read or writes a new record in one statement, and leaves a renewal (a write to a row
/// other units may be changing) to a run under the lock: `None`.
async fn issue_token<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    request: TokenRequest,
    now: Timestamp,
    locked: bool,
) -> StoreResult<Option<DomainRecord>> {
    // One read for the organization's own record and another's claim; an unknown organization
    // is caught by the foreign key on insert.
    let (own, elsewhere) = find_with_claim(db, org, domain).await?;
    let pending = if own.is_none() && request.max_pending > 0 {
        count_pending(db, org).await?
    } else {
        0
    };
    let cap = PendingCap {
        pending,
        max: request.max_pending,
    };
    let plan = plan_token(
        domain,
        own.as_ref(),
        elsewhere,
        cap,
        now,
        request.ttl,
        request.fresh,
    )?;
    match plan {
        TokenPlan::Existing => allowed(own).map(Some),
        TokenPlan::New { token, expires_at } => {
            // The primary key refuses the insert if another request wrote the record meanwhile.
            let record = DomainRecord::pending(org.clone(), domain.clone(), token, expires_at, now);
            let issued = event(EventKind::TokenIssued, &record, actor, now);
            insert_with_event(db, &record, issued).await?;
            Ok(Some(record))
        }
        TokenPlan::Renew { .. } if !locked => Ok(None),
        TokenPlan::Renew { token, expires_at } => {
            let mut record = allowed(own)?;
            let read = record.token.clone();
            record.renew_token(token, expires_at, now);
            update_if_token(db, &record, &read).await?;
            events::append(db, event(EventKind::TokenRenewed, &record, actor, now)).await?;
            Ok(Some(record))
        }
    }
}

async fn record_failed_lookup<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    lookup: LookupSummary,
) -> StoreResult<()> {
    let Some(mut record) = find(db, org, domain).await? else {
        // Removed while the lookup ran: nothing to record it on.
        return Ok(());
    };
    let at = lookup.at;
    record.record_lookup(lookup);
    update(db, &record).await?;
    let evidence = record
        .last_lookup
        .as_ref()
        .map(LookupSummary::evidence_or_detail);
    let failed = NewEvent {
        detail: evidence,
        ..event(EventKind::LookupFailed, &record, actor, at)
    };
    events::append(db, failed).await
}

pub(super) async fn complete_verification<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    v: Verification,
    now: Timestamp,
) -> StoreResult<()> {
    let found = find_with_settings(db, org, &v.domain).await?;
    let (own, settings) = match found {
        Some((record, settings)) => (Some(record), settings),
        None => (None, RecheckSettings::default()),
    };
    let token = v.proof.as_ref().map(|p| &p.token);
    let acceptance = accept_verification(&v.domain, own.as_ref(), token)?;
    // Only a new verification or a new reservation has anything to check against others.
    if acceptance == Acceptance::MarkVerified
        || (v.reserve_domain && !own.as_ref().is_some_and(|r| r.reserve_domain))
    {
        let elsewhere = verified_elsewhere(db, org, &v.domain).await?;
        check_reservation(&v.domain, elsewhere, v.reserve_domain)?;
    }
    let mut record = allowed(own)?;
    let marked = match (acceptance, v.proof) {
        (Acceptance::MarkVerified, Some(proof)) => {
            let policy = v.recheck.policy(&settings);
            let jitter = jitter(&record.domain, policy.interval);
            let schedule = RecheckState::scheduled(now, &policy, jitter);
            record.mark_verified(proof.lookup, now, schedule);
            true
        }
        _ => false,
    };
    let reserved = v.reserve_domain && !record.reserve_domain;
    record.reserve_domain |= v.reserve_domain;
    if marked || reserved {
        update(db, &record).await?;
    }
    if marked {
        // A verified domain can start or widen the organization's enforcement.
        users::recompute(db, actor, org, now).await?;
    }
    if marked {
        let evidence = record
            .last_lookup
            .as_ref()
            .map(LookupSummary::evidence_or_detail);
        let verified = NewEvent {
            detail: evidence,
            ..event(EventKind::Verified, &record, actor, now)
        };
        events::append(db, verified).await?;
    }
    if v.claim {
        claim(
            db,
            actor,
            org,
            &v.domain,
            Some(record),
            ClaimFlags::default(),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Claims one domain inside the open transaction, if the rules allow it. `own` is the
/// organization's record of it, read in this transaction.
async fn claim<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    own: Option<DomainRecord>,
    flags: ClaimFlags,
    now: Timestamp,
) -> StoreResult<()> {
    let family = claims_in_family(db, domain).await?;
    match plan_claim(org, domain, own.as_ref(), &family)? {
        ClaimPlan::AlreadyClaimed => Ok(()),
        ClaimPlan::Claim => {
            let mut record = allowed(own)?;
            record.mark_claimed(flags, now);
            // The unique index catches a claim the rule could not see.
            update(db, &record).await?;
            if !flags.claim_domain_only {
                users::mark_external(db, actor, org, domain, flags.force_domain_claim, now).await?;
            }
            events::append(db, event(EventKind::Claimed, &record, actor, now)).await
        }
    }
}

pub(super) async fn claim_all<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domains: &[DomainName],
    flags: ClaimFlags,
    now: Timestamp,
) -> StoreResult<()> {
    for domain in domains {
        let own = find(db, org, domain).await?;
        claim(db, actor, org, domain, own, flags, now).await?;
    }
    Ok(())
}

pub(super) async fn unclaim<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    now: Timestamp,
) -> StoreResult<()> {
    let own = find(db, org, domain).await?;
    plan_unclaim(domain, own.as_ref())?;
    let mut record = allowed(own)?;
    record.mark_unclaimed(now);
    update(db, &record).await?;
    users::restore_external(db, actor, org, domain, now).await?;
    events::append(db, event(EventKind::Unclaimed, &record, actor, now)).await
}

pub(super) async fn unverify<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    remove_pending: bool,
    now: Timestamp,
) -> StoreResult<()> {
    let own = find(db, org, domain).await?;
    match plan_unverify(domain, own.as_ref(), remove_pending)? {
        UnverifyPlan::AlreadyPending => Ok(()),
        UnverifyPlan::Delete => {
            let record = allowed(own)?;
            delete(db, &record).await?;
            users::recompute(db, actor, org, now).await?;
            let removed = NewEvent {
                state: Some("removed"),
                ..event(EventKind::Removed, &record, actor, now)
            };
            events::append(db, removed).await
        }
        UnverifyPlan::BackToPending => {
            let mut record = allowed(own)?;
            record.mark_unverified(now);
            update(db, &record).await?;
            users::recompute(db, actor, org, now).await?;
            events::append(db, event(EventKind::Unverified, &record, actor, now)).await
        }
    }
}

async fn import<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    records: &[DomainRecord],
) -> StoreResult<u64> {
    // Multi-row statements keep a large import to a few round trips.
    const ROWS: usize = 400;
    let mut imported = 0;
    for chunk in records.chunks(ROWS) {
        let sql = bulk_insert_sql(B::DIALECT, "domains", &COLUMNS, chunk.len());
        let statement = Statement::new(sql).bind_all(chunk.iter().flat_map(values));
        imported += db.execute(statement).await?;
        // Imports are not pushed to webhooks: their events are appended without deliveries.
        let sql = bulk_insert_sql(B::DIALECT, "events", &events::COLUMNS, chunk.len());
        let imported: Vec<NewEvent<'_>> = chunk
            .iter()
            .map(|r| event(EventKind::Imported, r, actor, r.updated_at))
            .collect();
        let values = imported.iter().flat_map(NewEvent::values);
        db.execute(Statement::new(sql).bind_all(values)).await?;
    }
    // What the imported claims and verifications do to users, as if made here: a claim marks
    // the users of other organizations in its domain, and each organization's enforcement is
    // recomputed once.
    for r in records {
        if r.state == DomainState::Claimed && !r.flags.claim_domain_only {
            users::mark_external(db, actor, &r.org_id, &r.domain, true, r.updated_at).await?;
        }
    }
    let mut orgs: Vec<(&OrgId, Timestamp)> = records
        .iter()
        .filter(|r| r.state.is_verified())
        .map(|r| (&r.org_id, r.updated_at))
        .collect();
    orgs.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()).then(y.1.cmp(&x.1)));
    orgs.dedup_by(|x, y| x.0 == y.0);
    for (org, at) in orgs {
        users::recompute(db, actor, org, at).await?;
    }
    Ok(imported)
}

// ---- the contract ----

#[async_trait]
impl<B: Backend> DomainStore for B {
    async fn find_domain(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<Option<DomainRecord>> {
        let mut conn = self.reader().await?;
        find(&mut Db::<B>::new(&mut conn), org, domain).await
    }

    async fn list_domains(
        &self,
        org: &OrgId,
        after: Option<&DomainName>,
        limit: u32,
    ) -> StoreResult<Vec<DomainRecord>> {
        let statement = Statement::new(format!(
            "{} WHERE org_id = $1 AND domain > $2 ORDER BY domain LIMIT $3",
            *SELECT
        ))
        .bind(org.as_str())
        .bind(after.map_or("", DomainName::as_str))
        .bind(i64::from(limit));
        read_all(self, statement)
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn summarize_domains(&self, org: &OrgId) -> StoreResult<DomainSummary> {
        let statement = Statement::new(
            "SELECT domain, state FROM domains WHERE org_id = $1 AND state <> 'pending' \
             ORDER BY domain",
        )
        .bind(org.as_str());
        summary(&read_all(self, statement).await?)
    }

    async fn find_domain_and_claim(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<(Option<DomainRecord>, HeldElsewhere)> {
        let mut conn = self.reader().await?;
        find_with_claim(&mut Db::<B>::new(&mut conn), org, domain).await
    }

    async fn issue_token(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        request: TokenRequest,
        now: Timestamp,
    ) -> StoreResult<DomainRecord> {
        // Token requests run beside each other and beside the units that take their family
        // whole. The common case first, in one statement outside any transaction: a name new to
        // the organization, claimed by nobody else, under the cap. What it gets is the rule's
        // answer for that case, written only if the case still holds; otherwise the request
        // reads the record and asks the rule again (a new record is then one insert). A
        // renewal rewrites a row other units may be changing, so it runs in a transaction
        // under the family's lock, shared with the other token requests. A request raced by
        // another for the same name runs again and finds what the other wrote.
        let cap = PendingCap {
            pending: 0,
            max: request.max_pending,
        };
        let fresh = request.fresh.clone();
        if let TokenPlan::New { token, expires_at } = plan_token(
            domain,
            None,
            HeldElsewhere::Nothing,
            cap,
            now,
            request.ttl,
            fresh,
        )? {
            let record = DomainRecord::pending(org.clone(), domain.clone(), token, expires_at, now);
            let new = NewRecord {
                record: record.clone(),
                actor: actor.clone(),
                max_pending: request.max_pending,
            };
            if self.insert_new(new).await? {
                return Ok(record);
            }
        }
        let mut races = 0;
        let mut locked = false;
        loop {
            let (actor, org, domain) = (actor.clone(), org.clone(), domain.clone());
            let request = request.clone();
            let lock = if locked {
                Lock::shared_families([&domain])
            } else {
                Lock::Optimistic
            };
            let done = unit(self, lock, move |mut db| {
                Box::pin(async move {
                    issue_token(&mut db, &actor, &org, &domain, request, now, locked).await
                })
            })
            .await;
            match done {
                Ok(Some(record)) => return Ok(record),
                Ok(None) => locked = true,
                Err(StoreError::Raced) if races < 2 => races += 1,
                Err(e) => return Err(e),
            }
        }
    }

    async fn record_failed_lookup(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        lookup: &LookupSummary,
    ) -> StoreResult<()> {
        let (actor, org, domain, lookup) =
            (actor.clone(), org.clone(), domain.clone(), lookup.clone());
        unit(self, Lock::families([&domain]), move |mut db| {
            Box::pin(
                async move { record_failed_lookup(&mut db, &actor, &org, &domain, lookup).await },
            )
        })
        .await
    }

    async fn complete_verification(
        &self,
        actor: &Actor,
        org: &OrgId,
        verification: &Verification,
        now: Timestamp,
    ) -> StoreResult<DomainSummary> {
        let (actor, org_id, v) = (actor.clone(), org.clone(), verification.clone());
        unit(self, Lock::families([&v.domain]), move |mut db| {
            Box::pin(async move { complete_verification(&mut db, &actor, &org_id, v, now).await })
        })
        .await?;
        // The listing is read after the commit, off the write path: it sees the change, and an
        // organization's long list never holds the writer.
        self.summarize_domains(org).await
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
        unit(self, Lock::families(&domains), move |mut db| {
            Box::pin(async move { claim_all(&mut db, &actor, &org, &domains, flags, now).await })
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
        unit(self, Lock::families([&domain]), move |mut db| {
            Box::pin(async move { unclaim(&mut db, &actor, &org, &domain, now).await })
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
        let (actor, org_id, domain) = (actor.clone(), org.clone(), domain.clone());
        unit(self, Lock::families([&domain]), move |mut db| {
            Box::pin(async move {
                unverify(&mut db, &actor, &org_id, &domain, remove_pending, now).await
            })
        })
        .await?;
        self.summarize_domains(org).await
    }

    async fn import_domains(&self, actor: &Actor, records: Vec<DomainRecord>) -> StoreResult<u64> {
        let actor = actor.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { import(&mut db, &actor, &records).await })
        })
        .await
    }
}
