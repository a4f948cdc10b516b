//! The user directory on SQL. Case-insensitive attributes are kept beside a search key (their
//! lowercase, made in Rust so both databases compare alike); userName's key is unique across
//! all organizations; every email's key is a row of `user_emails`, and the primary email's
//! domain a column with an index, for the set-based rules over a domain's users. A SCIM filter
//! becomes a WHERE clause of bound parameters, never of the filter's text.

use std::sync::LazyLock;

use async_trait::async_trait;
use claimd_domain::{
    AccountStatus, DomainName, Email, Enterprise, Filter, FilterAttribute, FilterOp, FilterValue,
    LifecycleError, OrgId, Timestamp, User, UserFields, UserId, search_key,
};

use super::backend::{Backend, Db, Lock, read_all, read_optional, unit};
use super::events::{self, NewEvent};
use super::statement::{Dialect, Row, Statement, Value, corrupt, insert_sql, update_sql};
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, EventKind, EventTarget};
use crate::users::{ExternalUser, UserPage, UserQuery, UserStore};

const COLUMNS: &str = "id, org_id, user_name, display_name, given_name, family_name, \
                       external_id, active, account_status, emails, roles, enterprise, \
                       created_at, last_modified, version";

fn emails_json(emails: &[Email]) -> String {
    let list: Vec<serde_json::Value> = emails
        .iter()
        .map(|e| {
            serde_json::json!({"value": e.value, "type": e.kind, "primary": e.primary,
                               "display": e.display})
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn emails_of(text: &str) -> StoreResult<Vec<Email>> {
    let list: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|_| corrupt("emails"))?;
    list.iter()
        .map(|e| {
            let text = |k: &str| {
                e.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            Ok(Email {
                value: text("value").ok_or_else(|| corrupt("emails"))?,
                kind: text("type"),
                primary: e
                    .get("primary")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                display: text("display"),
            })
        })
        .collect()
}

/// The enterprise extension as stored: its present attributes, by SCIM name.
fn enterprise_json(e: &Enterprise) -> String {
    let object: serde_json::Map<String, serde_json::Value> = e
        .attributes()
        .into_iter()
        .filter_map(|(name, v)| Some((name.to_owned(), v.clone()?.into())))
        .collect();
    serde_json::Value::Object(object).to_string()
}

fn enterprise_of(text: &str) -> StoreResult<Enterprise> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|_| corrupt("enterprise"))?;
    let mut e = Enterprise::default();
    for (name, value) in e.attributes_mut() {
        *value = object
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
    }
    Ok(e)
}

fn decode(row: &impl Row) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(row.text("id")?),
        org_id: OrgId::new(row.text("org_id")?),
        fields: UserFields {
            user_name: row.text("user_name")?,
            display_name: row.text_or_null("display_name")?,
            given_name: row.text_or_null("given_name")?,
            family_name: row.text_or_null("family_name")?,
            external_id: row.text_or_null("external_id")?,
            active: row.flag("active")?,
            emails: emails_of(&row.text("emails")?)?,
            roles: serde_json::from_str(&row.text("roles")?).map_err(|_| corrupt("roles"))?,
            enterprise: enterprise_of(&row.text("enterprise")?)?,
        },
        account_status: AccountStatus::parse(&row.text("account_status")?)
            .ok_or_else(|| corrupt("account_status"))?,
        created_at: row.timestamp("created_at")?,
        last_modified: row.timestamp("last_modified")?,
        version: row.int("version")?,
    })
}

/// The columns a user's fields are written to, in order, and their values.
struct Written {
    user_name_key: String,
    email_domain: String,
    email_domain_rev: String,
    display_name_key: Option<String>,
    given_name_key: Option<String>,
    family_name_key: Option<String>,
    emails: String,
    email_keys: Vec<String>,
    roles: String,
    enterprise: String,
}

impl Written {
    fn of(fields: &UserFields) -> StoreResult<Self> {
        let domain = fields.domain().ok_or_else(|| {
            StoreError::Internal(format!("userName '{}' has no domain", fields.user_name))
        })?;
        let mut email_keys: Vec<String> =
            fields.emails.iter().map(|e| search_key(&e.value)).collect();
        email_keys.sort();
        email_keys.dedup();
        Ok(Self {
            user_name_key: search_key(&fields.user_name),
            email_domain: domain.as_str().to_owned(),
            email_domain_rev: reversed(domain.as_str()),
            display_name_key: fields.display_name.as_deref().map(search_key),
            given_name_key: fields.given_name.as_deref().map(search_key),
            family_name_key: fields.family_name.as_deref().map(search_key),
            emails: emails_json(&fields.emails),
            email_keys,
            roles: serde_json::Value::from(fields.roles.clone()).to_string(),
            enterprise: enterprise_json(&fields.enterprise),
        })
    }
}

/// The columns a user's fields are written to, in the order [`Written::bind`] binds them.
const FIELD_COLUMNS: [&str; 16] = [
    "user_name",
    "user_name_key",
    "email_domain",
    "email_domain_rev",
    "display_name",
    "display_name_key",
    "given_name",
    "given_name_key",
    "family_name",
    "family_name_key",
    "external_id",
    "active",
    "emails",
    "roles",
    "full_admin",
    "enterprise",
];

/// Then, on insert and update alike: the status and the claim that made it transient.
const STATUS_COLUMNS: [&str; 5] = [
    "account_status",
    "transient_claim",
    "last_modified",
    "version",
    "created_at",
];

impl Written {
    /// Binds the values of [`FIELD_COLUMNS`], in order.
    fn bind<'a>(&'a self, statement: Statement<'a>, f: &'a UserFields) -> Statement<'a> {
        statement
            .bind(f.user_name.as_str())
            .bind(self.user_name_key.as_str())
            .bind(self.email_domain.as_str())
            .bind(self.email_domain_rev.as_str())
            .bind(f.display_name.as_deref())
            .bind(self.display_name_key.as_deref())
            .bind(f.given_name.as_deref())
            .bind(self.given_name_key.as_deref())
            .bind(f.family_name.as_deref())
            .bind(self.family_name_key.as_deref())
            .bind(f.external_id.as_deref())
            .bind(f.active)
            .bind(self.emails.as_str())
            .bind(self.roles.as_str())
            .bind(f.is_full_admin())
            .bind(self.enterprise.as_str())
    }
}

fn taken(fields: &UserFields) -> StoreError {
    StoreError::Conflict(format!(
        "userName '{}' is already taken (userNames are unique, ignoring case)",
        fields.user_name
    ))
}

async fn write_email_keys<B: Backend>(
    db: &mut Db<'_, B>,
    id: &UserId,
    keys: &[String],
) -> StoreResult<()> {
    db.execute(Statement::new("DELETE FROM user_emails WHERE user_id = $1").bind(id.as_str()))
        .await?;
    for key in keys {
        db.execute(
            Statement::new("INSERT INTO user_emails (user_id, value_key) VALUES ($1, $2)")
                .bind(id.as_str())
                .bind(key.as_str()),
        )
        .await?;
    }
    Ok(())
}

/// Appends the event of a change to one user (`state`: its account status after it).
async fn user_event<B: Backend>(
    db: &mut Db<'_, B>,
    kind: EventKind,
    user: (&OrgId, &UserId),
    state: Option<AccountStatus>,
    actor: &Actor,
    now: Timestamp,
) -> StoreResult<()> {
    let (org, id) = user;
    let event = NewEvent {
        state: state.map(AccountStatus::as_str),
        ..NewEvent::new(kind, org, EventTarget::User(id.clone()), actor, now)
    };
    events::append(db, event).await
}

/// One event per user of other organizations that `rule` selects (`$1`… as in `bind`), in
/// one statement: the users a claim marks, or those an unclaim restores. These events are in
/// the other organizations' logs, so they name the claimed domain and carry the request's
/// tracking id, but neither the organization nor the credential that claimed it.
fn events_for_users<'a>(
    kind: EventKind,
    state: &'static str,
    rule: &str,
    first: usize,
    actor: &'a Actor,
    detail: &'a str,
    now: Timestamp,
) -> (String, Vec<Value<'a>>) {
    let p = |i: usize| format!("${}", first + i);
    let sql = format!(
        "INSERT INTO events (at, org_id, domain, kind, credential_id, tracking_id, detail, \
         target_type, target_id, state) SELECT {}, org_id, '', {}, {}, {}, {}, 'user', id, {} \
         FROM users WHERE {rule}",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    );
    let values = vec![
        Value::from(now),
        Value::from(kind.as_str()),
        Value::Text(None),
        Value::from(actor.tracking_id.as_deref()),
        Value::from(detail),
        Value::from(state),
    ];
    (sql, values)
}

/// The stored version of `id` in `org`, if the user exists; refuses a stale `expected`.
async fn current_version<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    id: &UserId,
    expected: Option<i64>,
) -> StoreResult<Option<i64>> {
    let row = db
        .fetch_optional(
            Statement::new("SELECT version FROM users WHERE id = $1 AND org_id = $2")
                .bind(id.as_str())
                .bind(org.as_str()),
        )
        .await?;
    let Some(version) = row.map(|r| r.int("version")).transpose()? else {
        return Ok(None);
    };
    match expected {
        Some(e) if e != version => Err(StoreError::VersionMismatch),
        _ => Ok(Some(version)),
    }
}

/// `sales.example.com` as `com.example.sales.`: a domain and every name below it are then the
/// keys from `com.example.` up to (not including) `com.example/`.
fn reversed(domain: &str) -> String {
    let mut labels: Vec<&str> = domain.split('.').collect();
    labels.reverse();
    let mut key = labels.join(".");
    key.push('.');
    key
}

/// Binary order for text on both databases.
fn collate(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " COLLATE \"C\"",
        Dialect::Sqlite => "",
    }
}

/// Users of other organizations than `org` whose primary email is in `domain` or below it,
/// not yet marked by a claim: `$1`, `$2` the key range, `$3` the organization.
fn external_in<B: Backend>() -> String {
    let c = collate(B::DIALECT);
    // Nearly every user has no `transient_claim`: SQLite, without statistics, would take
    // `IS NULL` for the selective term and walk that index over the whole directory; the
    // unary `+` keeps it to the domain's range (PostgreSQL's planner knows better).
    let unmarked = match B::DIALECT {
        Dialect::Sqlite => "+transient_claim IS NULL",
        Dialect::Postgres => "transient_claim IS NULL",
    };
    format!(
        "email_domain_rev{c} >= $1 AND email_domain_rev{c} < $2 AND org_id <> $3 \
         AND {unmarked}"
    )
}

/// An active user holding `id_full_admin` (`u`: the alias of `users`); the admin lock-out
/// guard keeps at least one per organization that has one.
fn active_admin(u: &str) -> String {
    format!("{u}.full_admin AND {u}.active AND {u}.account_status = 'active'")
}

/// The admin lock-out guard's count before a change to `org`'s users by `actor`: its active
/// full administrators (0 when the actor is not held by the guard: nothing to keep).
async fn admins_before<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
) -> StoreResult<i64> {
    if !actor.guarded {
        return Ok(0);
    }
    if B::DIALECT == Dialect::Postgres {
        // Two changes to one organization's users run one after the other here, so that two
        // removals of its last two administrators cannot each count the other (SQLite runs
        // every write alone anyway). `NO KEY UPDATE`: the rows that merely refer to the
        // organization (their foreign keys take `KEY SHARE`) are not held up by it.
        db.execute(
            Statement::new("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(org.as_str()),
        )
        .await?;
    }
    active_admins(db, org).await
}

async fn active_admins<B: Backend>(db: &mut Db<'_, B>, org: &OrgId) -> StoreResult<i64> {
    let row = db
        .fetch_optional(
            Statement::new(format!(
                "SELECT COUNT(*) AS n FROM users u WHERE u.org_id = $1 AND {}",
                active_admin("u")
            ))
            .bind(org.as_str()),
        )
        .await?;
    row.map_or(Ok(0), |r| r.int("n"))
}

/// The guard after the change: an organization that had an active full administrator still
/// has one.
async fn keep_an_admin<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    before: i64,
    refusal: LifecycleError,
) -> StoreResult<()> {
    if before > 0 && active_admins(db, org).await? == 0 {
        return Err(refusal.into());
    }
    Ok(())
}

/// A claim of `domain` by `org`: the users of other organizations in it become transient (one
/// statement, over the index of their domains), or, without `force`, the claim is refused
/// with how many there are. Answers how many were marked.
pub(super) async fn mark_external<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    force: bool,
    now: Timestamp,
) -> StoreResult<u64> {
    let low = reversed(domain.as_str());
    let high = format!("{}/", &low[..low.len() - 1]);
    if !force {
        let row = db
            .fetch_optional(
                Statement::new(format!(
                    "SELECT COUNT(*) AS n FROM users WHERE {}",
                    external_in::<B>()
                ))
                .bind(low.as_str())
                .bind(high.as_str())
                .bind(org.as_str()),
            )
            .await?;
        let count = match row {
            Some(row) => u64::try_from(row.int("n")?).unwrap_or(0),
            None => 0,
        };
        if count > 0 {
            return Err(LifecycleError::ExternalUsers {
                domain: domain.clone(),
                count,
            }
            .into());
        }
        return Ok(0);
    }
    if actor.guarded {
        // Organizations whose every active full administrator the claim would mark.
        let c = collate(B::DIALECT);
        let row = db
            .fetch_optional(
                Statement::new(format!(
                    "SELECT COUNT(DISTINCT u.org_id) AS n FROM users u WHERE {} AND {} \
                     AND NOT EXISTS (SELECT 1 FROM users v WHERE v.org_id = u.org_id AND {} \
                     AND NOT (v.email_domain_rev{c} >= $1 AND v.email_domain_rev{c} < $2 \
                     AND v.transient_claim IS NULL))",
                    external_in::<B>(),
                    active_admin("u"),
                    active_admin("v"),
                ))
                .bind(low.as_str())
                .bind(high.as_str())
                .bind(org.as_str()),
            )
            .await?;
        let count = row.map_or(Ok(0), |r| r.int("n"))?;
        if count > 0 {
            return Err(LifecycleError::AdminLockoutElsewhere {
                domain: domain.clone(),
                count: u64::try_from(count).unwrap_or(0),
            }
            .into());
        }
    }
    let detail = format!("claim of {domain}");
    let becoming = format!("{} AND account_status = 'active'", external_in::<B>());
    let (sql, values) = events_for_users(
        EventKind::UserTransient,
        "transient",
        &becoming,
        4,
        actor,
        &detail,
        now,
    );
    db.execute(
        Statement::new(sql)
            .bind(low.as_str())
            .bind(high.as_str())
            .bind(org.as_str())
            .bind_all(values),
    )
    .await?;
    db.execute(
        Statement::new(format!(
            "UPDATE users SET account_status = 'transient', transient_claim = $4, \
             last_modified = $5, version = version + 1 WHERE {}",
            external_in::<B>()
        ))
        .bind(low.as_str())
        .bind(high.as_str())
        .bind(org.as_str())
        .bind(domain.as_str())
        .bind(now),
    )
    .await
}

/// The claim, by an organization other than `org`, of the user's domain or a name above it
/// (one that marks users: not `claimDomainOnly`), if there is one.
async fn claimed_elsewhere<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &str,
) -> StoreResult<Option<String>> {
    let names = names_above(domain);
    let placeholders: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 3)).collect();
    let mut statement = Statement::new(format!(
        "SELECT domain FROM domains WHERE state = 'claimed' AND claim_domain_only = $1 \
         AND org_id <> $2 AND domain IN ({}) ORDER BY domain",
        placeholders.join(", ")
    ))
    .bind(false)
    .bind(org.as_str());
    for name in &names {
        statement = statement.bind(name.as_str());
    }
    let row = db.fetch_optional(statement).await?;
    row.map(|r| r.text("domain")).transpose()
}

/// The names a domain is in: itself and every name above it.
fn names_above(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').collect();
    (0..labels.len()).map(|i| labels[i..].join(".")).collect()
}

/// Does `org` enforce its verified domains now (it asks to, and has at least one)?
async fn enforces<B: Backend>(db: &mut Db<'_, B>, org: &OrgId) -> StoreResult<bool> {
    let row = db
        .fetch_optional(
            Statement::new(
                "SELECT 1 AS one FROM organizations o WHERE o.id = $1 AND o.enforce_verified_domains \
                 AND EXISTS (SELECT 1 FROM domains d WHERE d.org_id = o.id AND d.state <> 'pending')",
            )
            .bind(org.as_str()),
        )
        .await?;
    Ok(row.is_some())
}

/// Is `domain` one of `org`'s verified (or claimed) domains, or below one?
async fn verified_by<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    domain: &str,
) -> StoreResult<bool> {
    let names = names_above(domain);
    let placeholders: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 2)).collect();
    let mut statement = Statement::new(format!(
        "SELECT 1 AS one FROM domains WHERE org_id = $1 AND state <> 'pending' \
         AND domain IN ({}) LIMIT 1",
        placeholders.join(", ")
    ))
    .bind(org.as_str());
    for name in &names {
        statement = statement.bind(name.as_str());
    }
    Ok(db.fetch_optional(statement).await?.is_some())
}

/// Refuses a user of `org` whose domain its enforcement leaves out.
async fn check_enforcement<B: Backend>(
    db: &mut Db<'_, B>,
    org: &OrgId,
    fields: &UserFields,
    domain: &str,
) -> StoreResult<()> {
    if enforces(db, org).await? && !verified_by(db, org, domain).await? {
        let domain = fields.domain().ok_or_else(|| corrupt("email_domain"))?;
        return Err(LifecycleError::OutsideVerifiedDomains(domain).into());
    }
    Ok(())
}

/// Does `org` have users its enforcement left outside (partial index `users_outside`)?
async fn has_outside<B: Backend>(db: &mut Db<'_, B>, org: &OrgId) -> StoreResult<bool> {
    let row = db
        .fetch_optional(
            Statement::new(
                "SELECT 1 AS one FROM users WHERE org_id = $1 AND outside_verified LIMIT 1",
            )
            .bind(org.as_str()),
        )
        .await?;
    Ok(row.is_some())
}

/// Puts every user of `org` where its enforcement says now (after the enforcement switch, a
/// verification or its loss): set-based, one event per user whose status changes.
pub(super) async fn recompute<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    now: Timestamp,
) -> StoreResult<u64> {
    let on = enforces(db, org).await?;
    if !on && !has_outside(db, org).await? {
        // Without enforcement only the users it left outside can change, and there are none:
        // nothing to look at (an organization of a million users verifying one more domain).
        return Ok(0);
    }
    let admins = admins_before(db, actor, org).await?;
    // Outside: enforcement on, and no verified domain of the organization at or above the
    // user's domain ($2: on).
    let outside = "($2 AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.org_id = users.org_id \
                   AND d.state <> 'pending' AND (d.domain = users.email_domain OR \
                   substr(users.email_domain, length(users.email_domain) - length(d.domain)) \
                   = '.' || d.domain)))";
    let status = format!(
        "(CASE WHEN transient_claim IS NOT NULL OR {outside} THEN 'transient' ELSE 'active' END)"
    );
    db.execute(
        Statement::new(format!(
            "INSERT INTO events (at, org_id, domain, kind, credential_id, tracking_id, detail, \
             target_type, target_id, state) SELECT $3, org_id, '', CASE WHEN {status} = \
             'transient' THEN 'user_transient' ELSE 'user_restored' END, $4, $5, $6, 'user', id, \
             {status} FROM users WHERE org_id = $1 AND account_status <> {status}"
        ))
        .bind(org.as_str())
        .bind(on)
        .bind(now)
        .bind(actor.credential_id.as_ref().map(|c| c.as_str()))
        .bind(actor.tracking_id.as_deref())
        .bind("the organization's verified domains or their enforcement changed"),
    )
    .await?;
    let changed = db
        .execute(
            Statement::new(format!(
                "UPDATE users SET outside_verified = {outside}, account_status = {status}, \
                 last_modified = $3, version = version + 1 \
                 WHERE org_id = $1 AND (outside_verified <> {outside} OR account_status <> {status})"
            ))
            .bind(org.as_str())
            .bind(on)
            .bind(now),
        )
        .await?;
    keep_an_admin(db, org, admins, LifecycleError::AdminLockout).await?;
    Ok(changed)
}

/// The claim of `domain` by `org` ends: the users only it made transient are active again.
pub(super) async fn restore_external<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    domain: &DomainName,
    now: Timestamp,
) -> StoreResult<u64> {
    let detail = format!("claim of {domain} ended");
    let (sql, values) = events_for_users(
        EventKind::UserRestored,
        "active",
        "transient_claim = $1 AND org_id <> $2 AND NOT outside_verified",
        3,
        actor,
        &detail,
        now,
    );
    db.execute(
        Statement::new(sql)
            .bind(domain.as_str())
            .bind(org.as_str())
            .bind_all(values),
    )
    .await?;
    db.execute(
        Statement::new(
            "UPDATE users SET transient_claim = NULL, last_modified = $3, \
             version = version + 1, account_status = CASE WHEN outside_verified \
             THEN 'transient' ELSE 'active' END WHERE transient_claim = $1 AND org_id <> $2",
        )
        .bind(domain.as_str())
        .bind(org.as_str())
        .bind(now),
    )
    .await
}

/// The external users of the organization `$1`: in other organizations, transient because of
/// one of its claims (a claimed name is claimed by one organization only).
const EXTERNAL_OF: &str = "org_id <> $1 AND transient_claim IN \
     (SELECT domain FROM domains WHERE org_id = $1 AND state = 'claimed')";

fn decode_external(row: &impl Row) -> StoreResult<ExternalUser> {
    let claim = row.text("transient_claim")?;
    Ok(ExternalUser {
        user: decode(row)?,
        claimed_domain: DomainName::parse(&claim).map_err(|_| corrupt("transient_claim"))?,
    })
}

/// Converts the external user `id` into `org`: one guarded update (it finds nothing if the
/// claim ended or another conversion took the user meanwhile), an event in each log. The
/// user's domain is under a claimed, so verified, domain of `org`: active there.
async fn convert<B: Backend>(
    db: &mut Db<'_, B>,
    actor: &Actor,
    org: &OrgId,
    id: &UserId,
    now: Timestamp,
) -> StoreResult<Option<User>> {
    let found = db
        .fetch_optional(
            Statement::new(format!(
                "SELECT {COLUMNS}, transient_claim FROM users WHERE {EXTERNAL_OF} AND id = $2"
            ))
            .bind(org.as_str())
            .bind(id.as_str()),
        )
        .await?;
    let Some(external) = found.as_ref().map(decode_external).transpose()? else {
        return Ok(None);
    };
    let left = external.user.org_id.clone();
    let admins = admins_before(db, actor, &left).await?;
    let moved = db
        .execute(
            Statement::new(
                "UPDATE users SET org_id = $1, transient_claim = NULL, outside_verified = $2, \
                 account_status = 'active', last_modified = $3, version = version + 1 \
                 WHERE id = $4 AND org_id = $5 AND transient_claim = $6",
            )
            .bind(org.as_str())
            .bind(false)
            .bind(now)
            .bind(id.as_str())
            .bind(left.as_str())
            .bind(external.claimed_domain.as_str()),
        )
        .await?;
    if moved == 0 {
        return Ok(None);
    }
    let elsewhere = LifecycleError::AdminLockoutElsewhere {
        domain: external.claimed_domain.clone(),
        count: 1,
    };
    keep_an_admin(db, &left, admins, elsewhere).await?;
    let detail = format!("claim of {}", external.claimed_domain);
    let joined = NewEvent {
        state: Some(AccountStatus::Active.as_str()),
        detail: Some(&detail),
        ..NewEvent::new(
            EventKind::UserJoined,
            org,
            EventTarget::User(id.clone()),
            actor,
            now,
        )
    };
    events::append(db, joined).await?;
    // The organization the user left learns of the claim, not who holds it.
    let quiet = Actor {
        credential_id: None,
        tracking_id: actor.tracking_id.clone(),
        guarded: false,
    };
    let gone = NewEvent {
        detail: Some(&detail),
        ..NewEvent::new(
            EventKind::UserLeft,
            &left,
            EventTarget::User(id.clone()),
            &quiet,
            now,
        )
    };
    events::append(db, gone).await?;
    Ok(Some(User {
        org_id: org.clone(),
        account_status: AccountStatus::Active,
        last_modified: now,
        version: external.user.version + 1,
        ..external.user
    }))
}

/// A filter as SQL over `users`, its values appended to `values` (placeholders numbered on).
struct Compiler<'a> {
    dialect: Dialect,
    values: Vec<Value<'a>>,
}

impl<'a> Compiler<'a> {
    fn param(&mut self, value: Value<'a>) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn column(attr: FilterAttribute) -> &'static str {
        match attr {
            FilterAttribute::Id => "id",
            FilterAttribute::UserName | FilterAttribute::EmailsValue => "user_name_key",
            FilterAttribute::DisplayName => "display_name_key",
            FilterAttribute::GivenName => "given_name_key",
            FilterAttribute::FamilyName => "family_name_key",
            FilterAttribute::ExternalId => "external_id",
            FilterAttribute::Active => "active",
            FilterAttribute::Created => "created_at",
            FilterAttribute::LastModified => "last_modified",
        }
    }

    fn collate(&self) -> &'static str {
        collate(self.dialect)
    }

    /// `col op p` for text, false (never NULL) where the column has no value, so that `not`
    /// keeps the users who lack the attribute.
    fn text(&mut self, col: &str, op: FilterOp, v: &'a str) -> String {
        let p = self.param(Value::from(v));
        let c = self.collate();
        match op {
            FilterOp::Eq => format!("({col} IS NOT NULL AND {col} = {p})"),
            FilterOp::Ne => format!("({col} IS NULL OR {col} <> {p})"),
            FilterOp::Sw => format!("({col} IS NOT NULL AND substr({col}, 1, length({p})) = {p})"),
            FilterOp::Ew => format!(
                "({col} IS NOT NULL AND substr({col}, length({col}) - length({p}) + 1) = {p})"
            ),
            FilterOp::Co => match self.dialect {
                Dialect::Postgres => format!("({col} IS NOT NULL AND strpos({col}, {p}) > 0)"),
                Dialect::Sqlite => format!("({col} IS NOT NULL AND instr({col}, {p}) > 0)"),
            },
            FilterOp::Gt => format!("({col} IS NOT NULL AND {col}{c} > {p}{c})"),
            FilterOp::Ge => format!("({col} IS NOT NULL AND {col}{c} >= {p}{c})"),
            FilterOp::Lt => format!("({col} IS NOT NULL AND {col}{c} < {p}{c})"),
            FilterOp::Le => format!("({col} IS NOT NULL AND {col}{c} <= {p}{c})"),
        }
    }

    fn ordered(op: FilterOp) -> &'static str {
        match op {
            FilterOp::Ne => "<>",
            FilterOp::Gt => ">",
            FilterOp::Ge => ">=",
            FilterOp::Lt => "<",
            FilterOp::Le => "<=",
            _ => "=",
        }
    }

    fn emails(&mut self, op: FilterOp, v: &'a str) -> String {
        const ANY: &str = "SELECT 1 FROM user_emails e WHERE e.user_id = users.id AND";
        if op == FilterOp::Ne {
            let p = self.param(Value::from(v));
            return format!("NOT EXISTS ({ANY} e.value_key = {p})");
        }
        format!("EXISTS ({ANY} {})", self.text("e.value_key", op, v))
    }

    fn present(attr: FilterAttribute) -> String {
        match attr {
            FilterAttribute::EmailsValue => {
                "EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = users.id)".to_owned()
            }
            FilterAttribute::Id
            | FilterAttribute::UserName
            | FilterAttribute::Active
            | FilterAttribute::Created
            | FilterAttribute::LastModified => "(1 = 1)".to_owned(),
            other => {
                let col = Self::column(other);
                format!("({col} IS NOT NULL AND {col} <> '')")
            }
        }
    }

    fn filter(&mut self, f: &'a Filter) -> String {
        match f {
            Filter::Present(attr) => Self::present(*attr),
            Filter::Absent(attr) => format!("NOT {}", Self::present(*attr)),
            Filter::And(l, r) => format!("({} AND {})", self.filter(l), self.filter(r)),
            Filter::Or(l, r) => format!("({} OR {})", self.filter(l), self.filter(r)),
            Filter::Not(inner) => format!("NOT {}", self.filter(inner)),
            Filter::Compare(attr, op, value) => match (attr, value) {
                (FilterAttribute::EmailsValue, FilterValue::Text(v)) => self.emails(*op, v),
                (attr, FilterValue::Text(v)) => self.text(Self::column(*attr), *op, v),
                (attr, FilterValue::Boolean(b)) => {
                    let p = self.param(Value::from(*b));
                    format!("{} {} {p}", Self::column(*attr), Self::ordered(*op))
                }
                (attr, FilterValue::Time(t)) => {
                    let p = self.param(Value::from(t.as_millis()));
                    format!("{} {} {p}", Self::column(*attr), Self::ordered(*op))
                }
            },
        }
    }
}

#[async_trait]
impl<B: Backend> UserStore for B {
    async fn create_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        fields: &UserFields,
        status: AccountStatus,
        now: Timestamp,
    ) -> StoreResult<User> {
        let mut stored = User {
            id: UserId::generate(),
            org_id: org.clone(),
            fields: fields.clone(),
            account_status: status,
            created_at: now,
            last_modified: now,
            version: 1,
        };
        let written = Written::of(fields)?;
        let actor = actor.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                check_enforcement(
                    &mut db,
                    &stored.org_id,
                    &stored.fields,
                    &written.email_domain,
                )
                .await?;
                // In a domain another organization has claimed: transient from the start.
                let claim =
                    claimed_elsewhere(&mut db, &stored.org_id, &written.email_domain).await?;
                if claim.is_some() {
                    stored.account_status = AccountStatus::Transient;
                }
                let f = &stored.fields;
                static INSERT: LazyLock<String> = LazyLock::new(|| {
                    let mut columns = vec!["id", "org_id"];
                    columns.extend(FIELD_COLUMNS);
                    columns.extend(STATUS_COLUMNS);
                    insert_sql("users", &columns, 1)
                });
                let statement = Statement::new(INSERT.as_str())
                    .bind(stored.id.as_str())
                    .bind(stored.org_id.as_str());
                let statement = written
                    .bind(statement, f)
                    .bind(stored.account_status.as_str())
                    .bind(claim.as_deref())
                    .bind(stored.last_modified)
                    .bind(stored.version)
                    .bind(stored.created_at)
                    .on_unique_violation(taken(f))
                    .on_foreign_key_violation(StoreError::UnknownOrganization(
                        stored.org_id.clone(),
                    ));
                db.execute(statement).await?;
                write_email_keys(&mut db, &stored.id, &written.email_keys).await?;
                let user = (&stored.org_id, &stored.id);
                let status = Some(stored.account_status);
                user_event(&mut db, EventKind::UserCreated, user, status, &actor, now).await?;
                Ok(stored)
            })
        })
        .await
    }

    async fn find_user(&self, org: &OrgId, id: &UserId) -> StoreResult<Option<User>> {
        let row = read_optional(
            self,
            Statement::new(format!(
                "SELECT {COLUMNS} FROM users WHERE id = $1 AND org_id = $2"
            ))
            .bind(id.as_str())
            .bind(org.as_str()),
        )
        .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list_users(&self, org: &OrgId, query: &UserQuery) -> StoreResult<UserPage> {
        let mut c = Compiler {
            dialect: B::DIALECT,
            values: Vec::new(),
        };
        let org_param = c.param(Value::from(org.as_str()));
        let mut condition = format!("org_id = {org_param}");
        if let Some(filter) = &query.filter {
            condition = format!("{condition} AND {}", c.filter(filter));
        }
        let values = c.values.clone();
        let count = read_optional(
            self,
            Statement::new(format!("SELECT COUNT(*) AS n FROM users WHERE {condition}"))
                .bind_all(values),
        )
        .await?;
        let total = match count {
            Some(row) => u64::try_from(row.int("n")?).unwrap_or(0),
            None => 0,
        };
        let col = Compiler::column(query.sort_by.unwrap_or(FilterAttribute::UserName));
        let direction = if query.descending { "DESC" } else { "ASC" };
        let collate = c.collate();
        let limit = c.param(Value::from(i64::from(query.count)));
        let offset = c.param(Value::from(
            i64::try_from(query.start_index.saturating_sub(1)).unwrap_or(i64::MAX),
        ));
        let rows = read_all(
            self,
            Statement::new(format!(
                "SELECT {COLUMNS} FROM users WHERE {condition} \
                 ORDER BY ({col} IS NULL), {col}{collate} {direction}, id{collate} ASC \
                 LIMIT {limit} OFFSET {offset}"
            ))
            .bind_all(c.values),
        )
        .await?;
        Ok(UserPage {
            total,
            users: rows.iter().map(decode).collect::<StoreResult<_>>()?,
        })
    }

    async fn replace_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        fields: &UserFields,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<Option<User>> {
        let written = Written::of(fields)?;
        let (owner, user, fields) = (org.clone(), id.clone(), fields.clone());
        let actor = actor.clone();
        let changed = unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let (org, id) = (&owner, &user);
                let Some(version) = current_version(&mut db, org, id, expected_version).await?
                else {
                    return Ok(false);
                };
                let f = &fields;
                let admins = admins_before(&mut db, &actor, org).await?;
                check_enforcement(&mut db, org, f, &written.email_domain).await?;
                let claim = claimed_elsewhere(&mut db, org, &written.email_domain).await?;
                let status = if claim.is_some() {
                    AccountStatus::Transient
                } else {
                    AccountStatus::Active
                };
                // Every column but `created_at`, then the key.
                static UPDATE: LazyLock<String> = LazyLock::new(|| {
                    let mut set = FIELD_COLUMNS.to_vec();
                    set.extend(&STATUS_COLUMNS[..4]);
                    update_sql("users", &set, &["id", "org_id"])
                });
                let statement = written
                    .bind(Statement::new(UPDATE.as_str()), f)
                    .bind(status.as_str())
                    .bind(claim.as_deref())
                    .bind(now)
                    .bind(version + 1)
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .on_unique_violation(taken(f));
                db.execute(statement).await?;
                write_email_keys(&mut db, id, &written.email_keys).await?;
                keep_an_admin(&mut db, org, admins, LifecycleError::AdminLockout).await?;
                let kind = EventKind::UserUpdated;
                user_event(&mut db, kind, (org, id), Some(status), &actor, now).await?;
                Ok(true)
            })
        })
        .await?;
        if !changed {
            return Ok(None);
        }
        self.find_user(org, id).await
    }

    async fn list_external_users(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ExternalUser>> {
        let after = after.map(search_key).unwrap_or_default();
        let rows = read_all(
            self,
            Statement::new(format!(
                "SELECT {COLUMNS}, transient_claim FROM users WHERE {EXTERNAL_OF} \
                 AND user_name_key > $2 ORDER BY user_name_key LIMIT $3"
            ))
            .bind(org.as_str())
            .bind(after.as_str())
            .bind(i64::from(limit)),
        )
        .await?;
        rows.iter().map(decode_external).collect()
    }

    async fn convert_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        now: Timestamp,
    ) -> StoreResult<Option<User>> {
        let (org, id, actor) = (org.clone(), id.clone(), actor.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { convert(&mut db, &actor, &org, &id, now).await })
        })
        .await
    }

    async fn delete_user(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &UserId,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (org, id, actor) = (org.clone(), id.clone(), actor.clone());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                if current_version(&mut db, &org, &id, expected_version)
                    .await?
                    .is_none()
                {
                    return Ok(false);
                }
                let admins = admins_before(&mut db, &actor, &org).await?;
                db.execute(
                    Statement::new("DELETE FROM user_emails WHERE user_id = $1").bind(id.as_str()),
                )
                .await?;
                db.execute(
                    Statement::new("DELETE FROM users WHERE id = $1 AND org_id = $2")
                        .bind(id.as_str())
                        .bind(org.as_str()),
                )
                .await?;
                keep_an_admin(&mut db, &org, admins, LifecycleError::AdminLockout).await?;
                let kind = EventKind::UserDeleted;
                user_event(&mut db, kind, (&org, &id), None, &actor, now).await?;
                Ok(true)
            })
        })
        .await
    }
}
