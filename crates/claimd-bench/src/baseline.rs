//! The bare stack: axum + sqlx on the same database as claimd, doing what one claimd request
//! minimally must — parse the same JSON body and INSERT one row, or SELECT one row by key — with
//! claimd's connection settings (SQLite: WAL, synchronous=FULL, one writer, `BEGIN IMMEDIATE`).

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Clone)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS baseline_kv (id TEXT PRIMARY KEY, body TEXT NOT NULL)";

async fn connect(url: &str) -> Db {
    if url.starts_with("postgres") {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .expect("connect");
        sqlx::query(CREATE)
            .execute(&pool)
            .await
            .expect("create table");
        Db::Postgres(pool)
    } else {
        let options = SqliteConnectOptions::from_str(url)
            .expect("SQLite URL")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        // The same pool settings as claimd's SQLite store.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .expect("connect");
        sqlx::query(CREATE)
            .execute(&writer)
            .await
            .expect("create table");
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .expect("connect");
        Db::Sqlite { writer, reader }
    }
}

async fn write(State(db): State<Db>, Json(body): Json<Value>) -> StatusCode {
    let Some(id) = body.get("domain").and_then(Value::as_str) else {
        return StatusCode::BAD_REQUEST;
    };
    let text = body.to_string();
    let done = match &db {
        Db::Sqlite { writer, .. } => match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(mut tx) => {
                let r = sqlx::query("INSERT INTO baseline_kv (id, body) VALUES ($1, $2)")
                    .bind(id)
                    .bind(&text)
                    .execute(&mut *tx)
                    .await;
                r.is_ok() && tx.commit().await.is_ok()
            }
            Err(_) => false,
        },
        Db::Postgres(pool) => sqlx::query("INSERT INTO baseline_kv (id, body) VALUES ($1, $2)")
            .bind(id)
            .bind(&text)
            .execute(pool)
            .await
            .is_ok(),
    };
    if done {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

async fn read(State(db): State<Db>, Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    let row: Option<(String,)> = match &db {
        Db::Sqlite { reader, .. } => {
            sqlx::query_as("SELECT body FROM baseline_kv WHERE id = $1")
                .bind(&id)
                .fetch_optional(reader)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_as("SELECT body FROM baseline_kv WHERE id = $1")
                .bind(&id)
                .fetch_optional(pool)
                .await
        }
    }
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let (body,) = row.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({"id": id, "body": body})))
}

/// Runs the baseline server on a free port, logging `address=…` like claimd.
pub async fn serve(url: &str) {
    let db = connect(url).await;
    let app = Router::new()
        .route("/write", post(write))
        .route("/read/{id}", get(read))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    eprintln!(
        "baseline listening address={}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}

/// The same keys as claimd's preloaded domains, for the reads.
pub async fn preload(url: &str, count: u64) {
    let db = connect(url).await;
    let mut i = 0;
    while i < count {
        let end = (i + 400).min(count);
        let values: Vec<String> = (i..end)
            .map(|n| format!("('{}', '{{}}')", crate::domain("p", n)))
            .collect();
        let sql = format!(
            "INSERT INTO baseline_kv (id, body) VALUES {}",
            values.join(", ")
        );
        match &db {
            Db::Sqlite { writer, .. } => sqlx::query(&sql).execute(writer).await.map(|_| ()),
            Db::Postgres(pool) => sqlx::query(&sql).execute(pool).await.map(|_| ()),
        }
        .expect("preload the baseline");
        i = end;
    }
}
