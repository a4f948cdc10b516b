//! Throw-away databases on a PostgreSQL server for tests. The server comes from
//! `CLAIMD_TEST_DATABASE_URL` (default: the project machines' local server). A test that cannot
//! reach it fails: PostgreSQL tests never skip.

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server URL tests create their databases on.
pub fn server_url() -> String {
    std::env::var("CLAIMD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned())
}

/// A fresh, empty database, dropped (with its connections) when this value is dropped.
pub struct TestDatabase {
    name: String,
    server: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        Self::create_on(&server_url()).await
    }

    /// A fresh database on the server at `server` (a `postgres://…/dbname` URL to connect with).
    pub async fn create_on(server: &str) -> Self {
        let server = server.to_owned();
        let name = format!("claimd_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {server} is not reachable ({e}); start it (.ci/run does) or set CLAIMD_TEST_DATABASE_URL")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        Self { name, server }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        match self.server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => format!("{}/{}", self.server, self.name),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside a test's runtime; do the async cleanup on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
