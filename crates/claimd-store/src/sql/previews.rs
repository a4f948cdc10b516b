//! Previews on SQL: the change's own unit of work, run in full, its effect on users counted
//! from the events it appended, and then undone (the unit ends with
//! [`StoreError::Previewed`], which rolls its transaction back).

use async_trait::async_trait;
use claimd_domain::{DomainState, LookupOutcome, LookupSummary, OrgId, RecheckConfig, Timestamp};

use super::backend::{Backend, Db, Lock, unit};
use super::statement::{Dialect, Row, Statement};
use super::{domains, organizations};
use crate::domains::{Proof, Verification};
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, EventKind};
use crate::previews::{Change, Impact, PreviewStore};

/// The newest event before the change (SQLite, whose writes run one at a time: every event
/// after it is the change's).
async fn last_event<B: Backend>(db: &mut Db<'_, B>) -> StoreResult<i64> {
    let row = db
        .fetch_optional(Statement::new(
            "SELECT COALESCE(MAX(id), 0) AS n FROM events",
        ))
        .await?;
    row.map_or(Ok(0), |r| r.int("n"))
}

/// The user status changes among the events this transaction appended (PostgreSQL: by its
/// transaction id; SQLite: after `before`).
async fn impact<B: Backend>(db: &mut Db<'_, B>, org: &OrgId, before: i64) -> StoreResult<Impact> {
    let scope = match B::DIALECT {
        Dialect::Postgres => "tx = pg_current_xact_id()::TEXT::BIGINT",
        Dialect::Sqlite => "id > $4",
    };
    let mut statement = Statement::new(format!(
        "SELECT kind, CAST(CASE WHEN org_id = $1 THEN 1 ELSE 0 END AS BIGINT) AS own, \
         COUNT(*) AS n \
         FROM events WHERE {scope} AND kind IN ($2, $3) GROUP BY kind, own"
    ))
    .bind(org.as_str())
    .bind(EventKind::UserTransient.as_str())
    .bind(EventKind::UserRestored.as_str());
    if B::DIALECT == Dialect::Sqlite {
        statement = statement.bind(before);
    }
    let mut impact = Impact::default();
    for row in db.fetch_all(statement).await? {
        let n = u64::try_from(row.int("n")?).unwrap_or(0);
        let transient = row.text("kind")? == EventKind::UserTransient.as_str();
        let slot = match (row.int("own")? == 1, transient) {
            (true, true) => &mut impact.users_becoming_transient,
            (true, false) => &mut impact.users_becoming_active,
            (false, true) => &mut impact.external_users_marked,
            (false, false) => &mut impact.external_users_restored,
        };
        *slot += n;
    }
    Ok(impact)
}

/// The change's unit of work, as the change itself runs it.
async fn apply<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    change: Change,
    now: Timestamp,
) -> StoreResult<()> {
    match change {
        Change::Verify {
            domain,
            claim,
            reserve_domain,
        } => {
            // As if the lookup found the token the organization holds now.
            let own = domains::find(db, org, &domain).await?;
            let proof = own
                .filter(|r| r.state == DomainState::Pending)
                .map(|r| Proof {
                    token: r.token,
                    lookup: LookupSummary {
                        at: now,
                        outcome: LookupOutcome::Verified,
                        detail: "preview: not looked up".into(),
                        evidence: String::new(),
                    },
                });
            let verification = Verification {
                domain,
                proof,
                claim,
                reserve_domain,
                recheck: RecheckConfig::default(),
            };
            domains::complete_verification(db, actor, org, verification, now).await
        }
        Change::Claim { domains, flags } => {
            domains::claim_all(db, actor, org, &domains, flags, now).await
        }
        Change::Unclaim(domain) => domains::unclaim(db, actor, org, &domain, now).await,
        Change::Unverify {
            domain,
            remove_pending,
        } => domains::unverify(db, actor, org, &domain, remove_pending, now).await,
        Change::Organization(patch) => organizations::update(db, actor, org, &patch, now)
            .await
            .map(drop),
    }
}

/// What the change locks, as the change itself does.
fn lock(change: &Change) -> Lock {
    match change {
        Change::Verify { domain, .. }
        | Change::Unclaim(domain)
        | Change::Unverify { domain, .. } => Lock::families([domain]),
        Change::Claim { domains, .. } => Lock::families(domains),
        Change::Organization(_) => Lock::None,
    }
}

#[async_trait]
impl<B: Backend> PreviewStore for B {
    async fn preview(
        &self,
        actor: &Actor,
        org: &OrgId,
        change: Change,
        now: Timestamp,
    ) -> StoreResult<Impact> {
        let (actor, org) = (actor.clone(), org.clone());
        let done = unit(self, lock(&change), move |mut db| {
            Box::pin(async move {
                let before = match B::DIALECT {
                    Dialect::Sqlite => last_event(&mut db).await?,
                    Dialect::Postgres => 0,
                };
                apply(&mut db, &actor, &org, change, now).await?;
                Err::<(), _>(StoreError::Previewed(impact(&mut db, &org, before).await?))
            })
        })
        .await;
        match done {
            Err(StoreError::Previewed(impact)) => Ok(impact),
            Err(e) => Err(e),
            Ok(()) => Err(StoreError::Internal("a preview was committed".into())),
        }
    }
}
