//! The one place the concrete store is chosen, by the scheme of `--database-url`.

use std::sync::Arc;

use anyhow::Context as _;
use claimd_store::Store;
use claimd_store_postgres::{PgSettings, PgStore};
use claimd_store_sqlite::{SqliteSettings, SqliteStore};

use crate::cli::DbArgs;

pub async fn open(db: &DbArgs) -> anyhow::Result<Arc<dyn Store>> {
    let url = db.database_url.as_str();
    let store: Arc<dyn Store> = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let settings = PgSettings {
            max_connections: db.db_max_connections,
            acquire_timeout: db.db_acquire_timeout,
            statement_timeout: db.db_statement_timeout,
        };
        Arc::new(
            PgStore::open(url, &settings)
                .await
                .context("cannot open the database")?,
        )
    } else {
        let settings = SqliteSettings {
            busy_timeout: db.db_acquire_timeout,
            ..SqliteSettings::default()
        };
        Arc::new(
            SqliteStore::open(url, &settings)
                .await
                .context("cannot open the database")?,
        )
    };
    Ok(store)
}
