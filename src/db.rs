//! The metadata database shared by every domain: the store's records, identities,
//! audit events, jobs. One SQLite file (`<data>/meta.db`) on the embedded defaults, or a
//! PostgreSQL database shared by several replicas (`--database postgres://…`).
//!
//! Every domain writes one set of SQL for both engines through sqlx's `Any` driver:
//! `$n` parameters, BIGINT times in Unix ms, 0/1 BIGINT booleans, `ON CONFLICT`, no
//! engine-specific functions. What differs between the engines lives here:
//! - **Write transactions** (`begin_write`) are serialised. On SQLite they run on the
//!   single writer connection with `BEGIN IMMEDIATE` (also across processes, e.g.
//!   `gatehouse gc` beside a server). On PostgreSQL each takes one transaction-scoped
//!   advisory lock first, so they are serialised across every replica in the same way
//!   and a decision made inside one (such as "this blob is absent, store its bytes")
//!   cannot be raced, whichever replica makes it.
//! - Connection setup (SQLite pragmas; PostgreSQL statement timeout), pools, migrations
//!   (`migrations/sqlite`, `migrations/postgres`, the same versions).

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Which engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Pool settings (`database_max_connections`, `database_acquire_timeout`,
/// `database_statement_timeout`). SQLite keeps its single writer whatever they say.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails (503).
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels a statement running longer than this.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// The advisory lock key every PostgreSQL write transaction takes ("gatehous" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x6761_7465_686f_7573;

/// Register the engines the `Any` driver may open (once per process).
fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

fn migrator(engine: Engine) -> Migrator {
    use sqlx::SqlSafeStr;
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(version, name.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    let files: [(&'static str, &'static str); 11] = match engine {
        Engine::Sqlite => [
            ("store", include_str!("../migrations/sqlite/0001_store.sql")),
            ("identity", include_str!("../migrations/sqlite/0002_identity.sql")),
            ("versions", include_str!("../migrations/sqlite/0003_versions.sql")),
            (
                "distributions",
                include_str!("../migrations/sqlite/0004_distributions.sql"),
            ),
            ("sync", include_str!("../migrations/sqlite/0005_sync.sql")),
            (
                "shared_uploads",
                include_str!("../migrations/sqlite/0006_shared_uploads.sql"),
            ),
            ("signatures", include_str!("../migrations/sqlite/0007_signatures.sql")),
            (
                "signing_keys",
                include_str!("../migrations/sqlite/0008_signing_keys.sql"),
            ),
            (
                "remote_lookaside",
                include_str!("../migrations/sqlite/0009_remote_lookaside.sql"),
            ),
            (
                "console_sessions",
                include_str!("../migrations/sqlite/0010_console_sessions.sql"),
            ),
            (
                "repository_readmes",
                include_str!("../migrations/sqlite/0011_repository_readmes.sql"),
            ),
        ],
        Engine::Postgres => [
            ("store", include_str!("../migrations/postgres/0001_store.sql")),
            ("identity", include_str!("../migrations/postgres/0002_identity.sql")),
            ("versions", include_str!("../migrations/postgres/0003_versions.sql")),
            (
                "distributions",
                include_str!("../migrations/postgres/0004_distributions.sql"),
            ),
            ("sync", include_str!("../migrations/postgres/0005_sync.sql")),
            (
                "shared_uploads",
                include_str!("../migrations/postgres/0006_shared_uploads.sql"),
            ),
            ("signatures", include_str!("../migrations/postgres/0007_signatures.sql")),
            (
                "signing_keys",
                include_str!("../migrations/postgres/0008_signing_keys.sql"),
            ),
            (
                "remote_lookaside",
                include_str!("../migrations/postgres/0009_remote_lookaside.sql"),
            ),
            (
                "console_sessions",
                include_str!("../migrations/postgres/0010_console_sessions.sql"),
            ),
            (
                "repository_readmes",
                include_str!("../migrations/postgres/0011_repository_readmes.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        files
            .into_iter()
            .zip(1i64..)
            .map(|((name, sql), version)| migration(version, name, sql))
            .collect(),
    )
}

/// How often the SQLite write-ahead log is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoint the WAL in the background. PASSIVE never waits for (or blocks) readers
/// and writers; what it cannot copy now it copies next time.
async fn checkpoint_every(pool: AnyPool, every: Duration) {
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

/// A SQLite pool over `path` whose connections run `pragmas` when they open.
async fn sqlite_pool(path: &Path, read_only: bool, max: u32, pragmas: &'static str) -> Result<AnyPool, sqlx::Error> {
    use percent_encoding_path as enc;
    let mode = if read_only { "ro" } else { "rwc" };
    let url = format!("sqlite://{}?mode={mode}", enc::encode(path));
    let opts = AnyConnectOptions::from_str(&url)?;
    AnyPoolOptions::new()
        .max_connections(max)
        // No server can drop a SQLite connection; the default ping before every query is
        // a round trip to the connection's thread that costs as much as a short query.
        .test_before_acquire(false)
        .after_connect(move |conn, _| Box::pin(async move { conn.execute(pragmas).await.map(|_| ()) }))
        .connect_with(opts)
        .await
}

/// Percent-encoding of a file path for a `sqlite://` URL (`?`, `#` and `%` may appear
/// in a data directory's name).
mod percent_encoding_path {
    pub fn encode(path: &std::path::Path) -> String {
        let s = path.to_string_lossy();
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
                _ => out.push(c),
            }
        }
        out
    }
}

/// Readers and the writer; cheap to clone.
#[derive(Clone)]
pub struct Database {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    engine: Engine,
    /// PostgreSQL only: where to listen for other replicas' announcements.
    url: Option<String>,
    /// SQLite only: the connection that checkpoints the WAL.
    checkpointer: Option<AnyPool>,
}

impl Database {
    /// Open the database `url` names (`postgres://…`), or the SQLite file `default_file`
    /// when there is none, and bring its schema up to date.
    pub async fn open(url: Option<&str>, default_file: &Path, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        match url {
            None => Self::open_sqlite(default_file).await,
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Self::open_postgres(u, pool).await
            }
            Some(u) if u.starts_with("sqlite://") => {
                Self::open_sqlite(Path::new(u.trim_start_matches("sqlite://"))).await
            }
            Some(_) => Err(sqlx::Error::Configuration(
                "use postgres://user:password@host[:port]/database or sqlite:///path/meta.db".into(),
            )),
        }
    }

    /// Open (creating if needed) the SQLite database at `path` and apply migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        install_drivers();
        // NORMAL in WAL mode is durable across process crashes (kill -9); only an OS
        // crash can lose the last commits, never corrupt the database.
        const COMMON: &str = "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
        // The writer never checkpoints (a checkpoint fsyncs the database file, which
        // would land on whichever commit crossed the threshold: a latency spike on the
        // write path); a background connection does it instead, without blocking writers.
        const WRITER: &str = "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                              PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;";
        let write = sqlite_pool(path, false, 1, WRITER).await?;
        migrator(Engine::Sqlite)
            .run(&write)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        let checkpointer = sqlite_pool(path, false, 1, COMMON).await?;
        tokio::spawn(checkpoint_every(checkpointer.clone(), CHECKPOINT_INTERVAL));
        let read = sqlite_pool(path, true, 8, COMMON).await?;
        Ok(Self {
            read,
            write,
            engine: Engine::Sqlite,
            url: None,
            checkpointer: Some(checkpointer),
        })
    }

    /// Connect to PostgreSQL at `url` and apply migrations (several replicas starting
    /// at once are fine: the migrator holds an advisory lock while it works).
    pub async fn open_postgres(url: &str, settings: &PoolSettings) -> Result<Self, sqlx::Error> {
        install_drivers();
        let opts = AnyConnectOptions::from_str(url)?;
        // One connection first: a pool reports only that it timed out, this says why
        // (refused, authentication failed, no such database).
        use sqlx::{ConnectOptions, Connection};
        tokio::time::timeout(settings.acquire_timeout, opts.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??
            .close()
            .await?;
        let statement_timeout = format!("SET statement_timeout = {}", settings.statement_timeout.as_millis());
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            // A connection the server dropped (restart, failover) is found out before
            // use, not by the request that gets it.
            .test_before_acquire(true)
            .after_connect(move |conn, _| {
                let sql = statement_timeout.clone();
                Box::pin(async move { conn.execute(sqlx::AssertSqlSafe(sql)).await.map(|_| ()) })
            })
            .connect_with(opts)
            .await?;
        migrator(Engine::Postgres)
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Self {
            read: pool.clone(),
            write: pool,
            engine: Engine::Postgres,
            url: Some(url.to_owned()),
            checkpointer: None,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Start a serialised write transaction (see the module documentation).
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        begin_write(&self.write, self.engine).await
    }

    /// Tell every replica (this one included) that data their caches hold changed:
    /// identities, bindings, pull secrets, products. Nothing to do on SQLite, where
    /// one process serves.
    pub async fn announce_change(&self) -> Result<(), sqlx::Error> {
        if self.engine == Engine::Postgres {
            // pg_notify returns void, which the Any driver cannot decode.
            sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, '')) AS n")
                .bind(CHANGES_CHANNEL)
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Call `on_change` whenever a replica announces a change (`announce_change`), and
    /// whenever the listening connection was lost and is back (announcements may have
    /// been missed meanwhile). Nothing on SQLite.
    pub fn watch_changes(&self, on_change: impl Fn() + Send + Sync + 'static) {
        let Some(url) = self.url.clone() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                match listen(&url).await {
                    Ok(mut listener) => loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => on_change(),
                            // Reconnected by the listener itself.
                            Ok(None) => on_change(),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the database change feed; reconnecting");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot listen for changes of other replicas"),
                }
                on_change();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The writer connection, for maintenance statements outside the domain modules.
    pub fn write_pool(&self) -> AnyPool {
        self.write.clone()
    }

    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
        self.read.close().await;
        self.write.close().await;
    }
}

/// The PostgreSQL channel of `announce_change`.
const CHANGES_CHANNEL: &str = "gatehouse_changes";

async fn listen(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// A serialised write transaction on `pool` (the writer of a database of `engine`).
pub(crate) async fn begin_write(pool: &AnyPool, engine: Engine) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Engine::Postgres => {
            let mut tx = pool.begin().await?;
            // pg_advisory_xact_lock returns void, which the Any driver cannot decode:
            // select a constant beside it.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(WRITE_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

/// Whether `e` means the database cannot be reached or used right now (down,
/// restarting, out of connections, a statement timed out), not a bug or bad data:
/// requests answer 503 and everything heals by itself once the database is back.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // PostgreSQL: connection exceptions (08), operator intervention such as
            // shutdown or a statement timeout (57), too many connections (53300).
            // SQLite: busy or locked past the busy timeout (5, 6).
            c.starts_with("08") || c.starts_with("57") || c == "53300" || c == "5" || c == "6"
        }),
        _ => false,
    }
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => url.to_owned(),
                },
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://gh:s3cret@db:5432/gatehouse"),
            "postgres://gh:***@db:5432/gatehouse"
        );
        assert_eq!(redact_url("postgres://db/gatehouse"), "postgres://db/gatehouse");
        assert_eq!(redact_url("postgres://gh@db/gatehouse"), "postgres://gh@db/gatehouse");
    }
}
