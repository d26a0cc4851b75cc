//! Database connection for both backends behind one pool type.
//!
//! The data layer uses `sqlx::Any`, so every query is written once. The SQL
//! is the common subset of SQLite and PostgreSQL: `$N` placeholders, TEXT and
//! BIGINT columns (timestamps are epoch milliseconds), `RETURNING`,
//! `ON CONFLICT`. Migrations live in `migrations/<backend>/`.

use std::path::Path;
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

/// The shared pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite: a separate one-connection pool all writes go through, so
    /// writers queue in-process instead of sleeping in SQLite's busy handler.
    /// PostgreSQL: the same pool as `pool`.
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect (creating the SQLite file and its directory if needed).
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or(DbError::UnsupportedUrl)?;
        if backend == Backend::Sqlite {
            if let Some(parent) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf)) {
                if !parent.as_os_str().is_empty() {
                    crate::fsutil::create_private_dir(&parent)
                        .map_err(|e| DbError::DataDir(parent.display().to_string(), e))?;
                }
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
        let pool = Self::open_pool(
            backend,
            options.clone(),
            if backend == Backend::Sqlite { 8 } else { 20 },
        )
        .await?;
        let writer = match backend {
            Backend::Sqlite => Self::open_pool(backend, options, 1).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Db {
            pool,
            writer,
            backend,
        })
    }

    async fn open_pool(
        backend: Backend,
        options: AnyConnectOptions,
        size: u32,
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
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.writer).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool for reads (and for writes on PostgreSQL).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool every write must use.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip for readiness probes.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
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
