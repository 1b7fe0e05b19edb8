//! The metadata database shared by every domain: the store's records, identities,
//! audit events. One SQLite file (`<data>/meta.db`) on the embedded defaults.
//!
//! SQLite runs in WAL mode with a pool of readers and a single writer connection; write
//! transactions start with `BEGIN IMMEDIATE`, so they are serialised in-process and
//! across processes (e.g. `gatehouse gc` beside a running server), and a decision made
//! inside one (such as "this blob is absent, store its bytes") cannot be raced.
//! SQL is kept portable to PostgreSQL (`$n` parameters, BIGINT times in Unix ms).

use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn migrator() -> Migrator {
    use sqlx::SqlSafeStr;
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(version, name.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        migration(1, "store", include_str!("../migrations/sqlite/0001_store.sql")),
        migration(2, "identity", include_str!("../migrations/sqlite/0002_identity.sql")),
        migration(3, "versions", include_str!("../migrations/sqlite/0003_versions.sql")),
        migration(
            4,
            "distributions",
            include_str!("../migrations/sqlite/0004_distributions.sql"),
        ),
        migration(5, "sync", include_str!("../migrations/sqlite/0005_sync.sql")),
    ])
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoint the WAL in the background. PASSIVE never waits for (or blocks) readers
/// and writers; what it cannot copy now it copies next time.
async fn checkpoint_every(pool: SqlitePool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// Reader pool and the single writer; cheap to clone.
#[derive(Clone)]
pub struct Database {
    pub(crate) read: SqlitePool,
    pub(crate) write: SqlitePool,
    checkpointer: SqlitePool,
}

impl Database {
    /// Open (creating if needed) the SQLite database at `path` and apply migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode is durable across process crashes (kill -9); only an OS
            // crash can lose the last commits, never corrupt the database.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // The writer never checkpoints (a checkpoint fsyncs the database file, which
        // would land on whichever commit crossed the threshold: a latency spike on the
        // write path); a background connection does it instead, without blocking writers.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        migrator()
            .run(&write)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        tokio::spawn(checkpoint_every(checkpointer.clone(), CHECKPOINT_INTERVAL));
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self {
            read,
            write,
            checkpointer,
        })
    }

    /// The writer connection, for maintenance statements outside the domain modules.
    pub fn write_pool(&self) -> SqlitePool {
        self.write.clone()
    }

    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.read.close().await;
        self.write.close().await;
    }
}
