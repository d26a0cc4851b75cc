//! The data layer's platform: connections for both backends, typed access
//! (reader, writer, transactions), tenant scope, typed ids, text enums, the
//! shared list-query kit and storage errors.
//!
//! The data layer uses `sqlx::Any`, so every query is written once. The SQL
//! is the common subset of SQLite and PostgreSQL: `$N` placeholders, TEXT and
//! BIGINT columns (timestamps are epoch milliseconds), `RETURNING`,
//! `ON CONFLICT`. Migrations live in `migrations/<backend>/`, named
//! `NNNN_<domain>_<change>.sql`.

pub mod access;
pub mod error;
pub mod ids;
pub mod list;
pub mod scope;
pub mod text_enum;
pub mod time;

pub use access::{Read, Reader, Tx, Write, Writer};
pub use error::{StoreError, StoreResult};
pub use scope::TenantScope;
pub use time::{ms_to_rfc3339, new_id, now_ms};

/// Bind this for a NULL double. sqlx 0.8's `Any` driver sends a
/// `None::<f64>` to PostgreSQL as a FLOAT4 NULL (its Real/Double mapping is
/// swapped); a DOUBLE PRECISION parameter refuses that, and worse, a
/// statement first prepared with it keeps FLOAT4 for that parameter, so the
/// next execution that binds a real `f64` fails ("incorrect binary data
/// format"). `None::<f32>` arrives as FLOAT8 there and as NULL on SQLite.
pub const NULL_DOUBLE: Option<f32> = None;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The reader and writer pools plus the backend they talk to.
#[derive(Clone, Debug)]
pub struct Db {
    reader: Reader,
    /// SQLite: a separate one-connection pool all writes go through, so
    /// writers queue in-process instead of sleeping in SQLite's busy handler.
    /// PostgreSQL: the same pool as the reader.
    writer: Writer,
    backend: Backend,
}

/// Pool sizes, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub connections: u32,
    pub idle: usize,
}

impl Db {
    /// Connect (creating the SQLite file and its directory if needed).
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or(DbError::UnsupportedUrl)?;
        if backend == Backend::Sqlite {
            if let Some(file) = sqlite_path(url) {
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::fsutil::create_private_dir(parent)
                        .map_err(|e| DbError::DataDir(parent.display().to_string(), e))?;
                }
                // The database holds password and token hashes: owner-only,
                // whatever the directory's mode. SQLite gives its -wal and
                // -shm files the database file's permissions.
                crate::fsutil::ensure_private_file(&file)
                    .map_err(|e| DbError::DataDir(file.display().to_string(), e))?;
            }
        }
        let options = AnyConnectOptions::from_str(url)
            .map_err(|source| DbError::Connect {
                backend: backend.as_str(),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        // SQLite allows one writer at a time; several connections competing
        // for the lock fall into SQLite's sleeping busy handler (1–100 ms per
        // retry) under load. Reads use a pool (WAL readers never block the
        // writer); writes go through one connection and queue in-process.
        // Other processes (the admin CLI) still rely on busy_timeout.
        // The SQLite writer first: it refreshes the table statistics the
        // readers load when they connect.
        let sqlite_writer = match backend {
            Backend::Sqlite => Some(Self::open_pool(backend, options.clone(), 1, true).await?),
            Backend::Postgres => None,
        };
        let pool = Self::open_pool(
            backend,
            options,
            if backend == Backend::Sqlite { 8 } else { 20 },
            false,
        )
        .await?;
        let writer = sqlite_writer.unwrap_or_else(|| pool.clone());
        Ok(Db {
            reader: Reader(pool),
            writer: Writer(writer),
            backend,
        })
    }

    async fn open_pool(
        backend: Backend,
        options: AnyConnectOptions,
        size: u32,
        writer: bool,
    ) -> Result<AnyPool, DbError> {
        AnyPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        if writer {
                            // Table statistics let the planner choose between
                            // an index that serves a list's filter and one that
                            // serves its order. This analyses the tables whose
                            // size changed much since their last analysis
                            // (sampled: milliseconds); pooled connections are
                            // recycled (30 minutes), so it repeats as the data
                            // grows. On the writer only: ANALYZE writes.
                            conn.execute("PRAGMA analysis_limit = 400").await?;
                            conn.execute("PRAGMA optimize = 0x10002").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                backend: backend.as_str(),
                source,
            })
    }

    /// Apply pending migrations for this backend.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.writer.0).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.writer.0).await?,
        }
        Ok(())
    }

    /// The pool for queries.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The pool every write goes through.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Start a transaction on the writer.
    pub async fn begin(&self) -> StoreResult<Tx> {
        self.writer.begin().await
    }

    /// The reader pool's size and idle connections.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            connections: self.reader.0.size(),
            idle: self.reader.0.num_idle(),
        }
    }

    /// The raw reader pool, for the PostgreSQL notifier's `pg_notify` calls
    /// and for tests that inspect the schema. Domain code uses the typed
    /// [`Reader`]/[`Writer`]/[`Tx`].
    pub fn raw_pool(&self) -> &AnyPool {
        &self.reader.0
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip for readiness probes.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.reader.0)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.reader.0.close().await;
        self.writer.0.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(std::path::PathBuf::from(path))
    }
}
