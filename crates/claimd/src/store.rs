//! The one place the concrete store is chosen, by the scheme of `--database-url`.

use std::sync::Arc;

use anyhow::Context as _;
use claimd_store::Store;
use claimd_store_postgres::{PgSettings, PgStore};
use claimd_store_sqlite::{SqliteSettings, SqliteStore};

use crate::cli::DbArgs;

/// Whether opening may create a SQLite file that is not there (`claimd serve` and `claimd
/// init` do; the other commands read or change an existing database).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    IfMissing,
    Never,
}

/// The file a SQLite URL names (`sqlite:claimd.db`, `sqlite://dir/x.db?mode=rwc`, `x.db`), or
/// `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

pub async fn open(db: &DbArgs, create: Create) -> anyhow::Result<Arc<dyn Store>> {
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
        if create == Create::Never
            && let Some(file) = sqlite_file(url)
            && !std::path::Path::new(file).exists()
        {
            anyhow::bail!(
                "there is no database at {file} (from --database-url or CLAIMD_DATABASE_URL: \
                 {url}); `claimd serve` or `claimd init` creates one, or point \
                 --database-url at the one claimd serve uses"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn finds_the_file_a_sqlite_url_names() {
        assert_eq!(sqlite_file("sqlite:claimd.db"), Some("claimd.db"));
        assert_eq!(
            sqlite_file("sqlite://data/x.db?mode=rwc"),
            Some("data/x.db")
        );
        assert_eq!(
            sqlite_file("/var/lib/claimd/claimd.db"),
            Some("/var/lib/claimd/claimd.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
