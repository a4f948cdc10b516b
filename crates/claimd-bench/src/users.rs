//! The user directory at scale: SCIM user creation against the bare insert, `userName eq`
//! searches with a million users in the directory (and the plan the database picks for them),
//! and how long a claim takes that marks 10^3 and 10^5 users of another organization
//! transient, with the unclaim that restores them.
//!
//! Directories that large are written straight into the database, in the store's own table
//! layout, a hundred thousand rows per statement: what is measured is the API over them, not
//! how they got there.

use std::str::FromStr;
use std::time::Duration;

use claimd_domain::{DomainState, OrgId};
use claimd_store::{Actor, Store};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::load::{Load, Stats};
use crate::{Target, get, org_with_admin, post, record, token};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// What the user directory measured beyond the rows of the main table.
pub struct UsersReport {
    /// Users in the directory when `userName eq` was measured.
    pub directory: u64,
    /// The database's plan for the search, and whether it seeks an index.
    pub plan: String,
    pub index_seek: bool,
    pub marks: Vec<MarkRow>,
}

/// One claim marking `users` external users, and its unclaim.
pub struct MarkRow {
    pub users: u64,
    pub claim: Duration,
    pub unclaim: Duration,
}

impl UsersReport {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "\nUser directory: `userName eq` with {} users: the database {} (plan: `{}`).\n\n",
            self.directory,
            if self.index_seek {
                "seeks an index"
            } else {
                "**scans**"
            },
            self.plan
        );
        out += "| external users marked | claim ms | unclaim (restore) ms |\n|---:|---:|---:|\n";
        for m in &self.marks {
            out += &format!(
                "| {} | {:.1} | {:.1} |\n",
                m.users,
                m.claim.as_secs_f64() * 1000.0,
                m.unclaim.as_secs_f64() * 1000.0
            );
        }
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "directory": self.directory,
            "plan": self.plan,
            "index_seek": self.index_seek,
            "marks": self.marks.iter().map(|m| json!({
                "users": m.users,
                "claim_ms": m.claim.as_secs_f64() * 1000.0,
                "unclaim_ms": m.unclaim.as_secs_f64() * 1000.0,
            })).collect::<Vec<_>>(),
        })
    }
}

/// `users@…` paths of the SCIM API for `target`'s organization.
fn users_url(target: &Target) -> String {
    // `…/v1/identity/organizations/{org}` → `…/identity/scim/{org}/v2/Users`.
    let (base, org) = target
        .org_path
        .split_once("/v1/identity/organizations/")
        .expect("an organization path");
    format!("{base}/identity/scim/{org}/v2/Users")
}

/// SCIM creates of fresh users, `n` counting up across runs.
pub async fn create(
    load: &Load,
    c: usize,
    target: &Target,
    fresh: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Stats {
    let (url, bearer, f) = (users_url(target), target.bearer.clone(), fresh.clone());
    load.run(c, move |_, _| {
        let n = f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        post(
            &url,
            &bearer,
            json!({"schemas": [USER_SCHEMA], "userName": format!("n{n}@create-bench.test")})
                .to_string(),
        )
    })
    .await
}

/// `userName eq` searches for users spread over the `n` of [`fill`]`(…, "d", "dir-bench.test")`.
pub async fn search(load: &Load, c: usize, target: &Target, n: u64) -> Stats {
    let (url, bearer) = (users_url(target), target.bearer.clone());
    load.run(c, move |task, i| {
        let k = crate::spread(task, i, n);
        get(
            &format!("{url}?filter=userName%20eq%20%22d{k}%40dir-bench.test%22"),
            &bearer,
        )
    })
    .await
}

/// `a.b.c` as `c.b.a.`, as the store keys a domain and the names below it.
fn reversed(domain: &str) -> String {
    let mut labels: Vec<&str> = domain.split('.').collect();
    labels.reverse();
    format!("{}.", labels.join("."))
}

/// A connection straight to the database under test, beside claimd's.
enum Direct {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Direct {
    async fn connect(url: &str) -> Self {
        if url.starts_with("postgres") {
            let pool = PgPoolOptions::new().max_connections(1).connect(url);
            Self::Postgres(pool.await.expect("connect"))
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .expect("SQLite URL")
                .busy_timeout(Duration::from_secs(60));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options);
            Self::Sqlite(pool.await.expect("connect"))
        }
    }

    /// `sql` with its `{p}N` placeholders in this database's spelling.
    fn sql(&self, sql: &str) -> String {
        match self {
            Self::Postgres(_) => sql.replace("{p}", "$"),
            Self::Sqlite(_) => sql.replace("{p}", "?"),
        }
    }

    /// Runs each statement with the same text arguments, in one transaction.
    async fn execute(&self, statements: &[String], args: &[&str]) {
        macro_rules! run {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.expect("begin");
                for sql in statements {
                    let mut query = sqlx::query(sql);
                    for a in args {
                        query = query.bind(*a);
                    }
                    query.execute(&mut *tx).await.expect("statement");
                }
                tx.commit().await.expect("commit");
            }};
        }
        match self {
            Self::Postgres(pool) => run!(pool),
            Self::Sqlite(pool) => run!(pool),
        }
    }

    /// The first text column of every row of `sql` (text arguments).
    async fn texts(&self, sql: &str, args: &[&str]) -> Vec<String> {
        macro_rules! run {
            ($pool:expr) => {{
                let mut query = sqlx::query(sql);
                for a in args {
                    query = query.bind(*a);
                }
                let rows = query.fetch_all($pool).await.expect("query");
                rows.iter()
                    .map(|r| {
                        use sqlx::Row;
                        r.try_get::<String, _>(r.columns().len() - 1)
                            .unwrap_or_default()
                    })
                    .collect()
            }};
        }
        match self {
            Self::Postgres(pool) => run!(pool),
            Self::Sqlite(pool) => run!(pool),
        }
    }
}

/// Writes users `{prefix}{from}` … `{prefix}{to - 1}` `@domain` into `org`, active, in the
/// store's table layout.
pub async fn fill(url: &str, org: &OrgId, prefix: &str, domain: &str, from: u64, to: u64) {
    const CHUNK: u64 = 100_000;
    let db = Direct::connect(url).await;
    // The numbers, as a series each database can make (arguments 5 and 6, as text).
    let (with, series) = match db {
        Direct::Postgres(_) => (
            "",
            "generate_series(CAST($5 AS BIGINT), CAST($6 AS BIGINT)) AS s(i)",
        ),
        Direct::Sqlite(_) => (
            "WITH RECURSIVE seq(i) AS (SELECT CAST(?5 AS INTEGER) UNION ALL SELECT i + 1 \
             FROM seq WHERE i < CAST(?6 AS INTEGER)) ",
            "seq",
        ),
    };
    let now = claimd_domain::Timestamp::now().as_millis().to_string();
    let users = db.sql(&format!(
        "{with}INSERT INTO users (id, org_id, user_name, user_name_key, email_domain, \
         email_domain_rev, active, account_status, emails, created_at, last_modified, version) \
         SELECT {{p}}1 || i, {{p}}2, {{p}}1 || i || '@' || {{p}}3, {{p}}1 || i || '@' || {{p}}3, \
         {{p}}3, {{p}}4, TRUE, 'active', '[{{\"value\":\"' || {{p}}1 || i || '@' || {{p}}3 || \
         '\",\"type\":\"work\",\"primary\":true}}]', CAST({now} AS BIGINT), \
         CAST({now} AS BIGINT), 1 FROM {series}"
    ));
    let emails = db.sql(&format!(
        "{with}INSERT INTO user_emails (user_id, value_key) \
         SELECT {{p}}1 || i, {{p}}1 || i || '@' || {{p}}3 FROM {series}"
    ));
    let statements = [users, emails];
    let rev = reversed(domain);
    let mut start = from;
    while start < to {
        let end = (start + CHUNK).min(to);
        let (first, last) = (start.to_string(), (end - 1).to_string());
        let args = [prefix, org.as_str(), domain, rev.as_str(), &first, &last];
        db.execute(&statements, &args).await;
        start = end;
    }
    if let Direct::Sqlite(pool) = &db {
        // Fold the rows into the database file now, so that the measured request does not
        // pay for checkpointing the write-ahead log these statements grew.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .expect("checkpoint");
    }
}

/// The database's plan for the search a `userName eq` filter becomes (the store's condition
/// and order, as `UserStore::list_users` writes them), and whether it seeks an index.
pub async fn plan(url: &str, org: &OrgId) -> (String, bool) {
    let db = Direct::connect(url).await;
    let query = "SELECT id FROM users WHERE org_id = {p}1 AND (user_name_key IS NOT NULL AND \
                 user_name_key = {p}2) ORDER BY (user_name_key IS NULL), user_name_key, id \
                 LIMIT 100";
    let (explain, seek, scan) = match db {
        Direct::Postgres(_) => ("EXPLAIN", "Index", "Seq Scan"),
        Direct::Sqlite(_) => ("EXPLAIN QUERY PLAN", "USING INDEX", "SCAN users"),
    };
    let sql = db.sql(&format!("{explain} {query}"));
    let plan = db
        .texts(&sql, &[org.as_str(), "d1@dir-bench.test"])
        .await
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" / ");
    let seeks = plan.contains(seek) && !plan.contains(scan);
    (plan, seeks)
}

/// How many of `org`'s users are transient.
async fn transient(url: &str, org: &OrgId) -> u64 {
    let db = Direct::connect(url).await;
    let sql = db.sql(
        "SELECT CAST(count(*) AS TEXT) FROM users WHERE org_id = {p}1 \
         AND account_status = 'transient'",
    );
    let n = db.texts(&sql, &[org.as_str()]).await;
    n.first().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A claim by `target`'s organization of a domain with `n` users of another organization, and
/// its unclaim: each one request, timed, the marks and restores checked in the database.
pub async fn marks(
    load: &Load,
    store: &dyn Store,
    url: &str,
    target: &Target,
    claimant: &OrgId,
    n: u64,
) -> MarkRow {
    let domain = format!("m{n}-mark-bench.test");
    let (owner, _) = org_with_admin(store, &format!("marked {n}")).await;
    fill(url, &owner.id, &format!("m{n}u"), &domain, 0, n).await;
    store
        .import_domains(
            &Actor::default(),
            vec![record(claimant, &domain, DomainState::Verified, token(n))],
        )
        .await
        .expect("import");
    let claim = post(
        &format!("{}/actions/claimDomain", target.org_path),
        &target.bearer,
        json!({"data": [{"domain": domain}]}).to_string(),
    );
    let (status, claim) = load.once(claim).await;
    assert_eq!(status, 200, "the claim of {domain}");
    assert_eq!(transient(url, &owner.id).await, n, "every user marked");
    let unclaim = post(
        &format!("{}/actions/unclaimDomain", target.org_path),
        &target.bearer,
        json!({"domain": domain}).to_string(),
    );
    let (status, unclaim) = load.once(unclaim).await;
    assert_eq!(status, 204, "the unclaim of {domain}");
    assert_eq!(transient(url, &owner.id).await, 0, "every user restored");
    MarkRow {
        users: n,
        claim,
        unclaim,
    }
}
