//! The metadata database: the record of which repositories, blobs, manifests, tags and
//! upload sessions exist. All SQL of the store lives in this module, written to run on SQLite and
//! PostgreSQL alike (`$n` parameters, BIGINT times in Unix milliseconds).
//!
//! Write transactions (`WriteTx`) go through the database's single writer with
//! `BEGIN IMMEDIATE` (see `crate::db`), so a decision made inside one (such as "this
//! blob is absent, store its bytes") cannot be raced.

use crate::db::Database;
pub use crate::db::now_ms;
use sqlx::{Any, AnyPool, Row, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

mod batch;
mod gc;
mod uploads;
mod writes;

pub(crate) use batch::{Arg, Batch, Done};
pub(crate) use uploads::add_delete_upload;
pub(crate) use writes::{
    Linked, ManifestRows, add_link_blob, add_link_manifest, add_set_tag, add_upsert_live_blob, linked_found,
    read_linked_among,
};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// A manifest as stored, with what is needed to serve it.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A manifest about to be recorded.
#[derive(Debug, Clone)]
pub struct NewManifest<'a> {
    pub digest: &'a str,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// JSON object text of the manifest's annotations, if any.
    pub annotations: Option<&'a str>,
    pub content: &'a [u8],
    pub blobs: &'a [String],
    pub children: &'a [String],
}

/// One entry of a referrers listing.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: i64,
    pub annotations: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub repository: String,
    pub size: u64,
    /// Sessions staged in object storage: the chunk objects holding `[0, size)`, in order.
    pub chunks: Vec<String>,
}

#[derive(Clone)]
pub struct MetaStore {
    db: Database,
    /// Repository name -> id, for committed rows only; saves a query per push. Deleting
    /// a repository (rare) clears it, here and, through the change feed, on every
    /// replica: until then another replica's push to that name fails and can be retried.
    repo_ids: Arc<RwLock<HashMap<String, i64>>>,
}

impl MetaStore {
    pub fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            repo_ids: Arc::default(),
        }
    }

    /// The reader pool, for the store's other SQL modules (`versions`).
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.db.read
    }

    /// The writer pool, for single statements outside a `WriteTx`.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.db.write
    }

    /// The database, for modules that start their own serialised transactions.
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Start a serialised write transaction.
    pub async fn begin_write(&self) -> MetaResult<WriteTx> {
        Ok(WriteTx {
            tx: self.db.begin_write().await?,
            engine: self.db.engine(),
            repo_ids: self.repo_ids.clone(),
            created_repos: Vec::new(),
        })
    }

    /// Forget the cached repository ids: a repository was deleted (here or by another
    /// replica), so a name may now have a new id or none.
    pub fn forget_repository_ids(&self) {
        self.repo_ids.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub async fn close(&self) {
        self.db.close().await;
    }

    pub async fn repository_exists(&self, name: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.read)
            .await?;
        Ok(row.is_some())
    }

    /// Whether the blob exists and is live (in any repository).
    pub async fn blob_is_live(&self, digest: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1 AND state = 'live'")
            .bind(digest)
            .fetch_optional(&self.db.read)
            .await?;
        Ok(row.is_some())
    }

    /// Size of a live blob linked into `repo`.
    pub async fn linked_blob_size(&self, repo: &str, digest: &str) -> MetaResult<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest AND b.state = 'live' \
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.db.read)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    pub async fn manifest_by_tag(&self, repo: &str, tag: &str) -> MetaResult<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t \
             JOIN repositories r ON r.id = t.repository_id \
             JOIN manifests m ON m.digest = t.digest \
             WHERE r.name = $1 AND t.name = $2",
        )
        .bind(repo)
        .bind(tag)
        .fetch_optional(&self.db.read)
        .await?;
        Ok(row.map(stored_manifest))
    }

    pub async fn manifest_by_digest(&self, repo: &str, digest: &str) -> MetaResult<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE r.name = $1 AND rm.digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.db.read)
        .await?;
        Ok(row.map(stored_manifest))
    }

    /// Tags of `repo` in lexical order after `last`; `None` when the repository is unknown.
    ///
    /// One query answering one row: the driver hands each row across a channel from its
    /// connection thread, which cost more than the query itself with one row per tag (tag
    /// list throughput was a third of manifest GET's). Tag and repository names cannot
    /// contain a comma, so the names travel joined by commas.
    pub async fn tags(&self, repo: &str, last: Option<&str>, limit: Option<u32>) -> MetaResult<Option<Vec<String>>> {
        let row = sqlx::query(
            "SELECT (SELECT string_agg(name, ',' ORDER BY name) FROM \
                      (SELECT name FROM tags WHERE repository_id = r.id AND name > $2 ORDER BY name LIMIT $3) page) \
             FROM repositories r WHERE r.name = $1",
        )
        .bind(repo)
        .bind(last.unwrap_or(""))
        .bind(limit.map(i64::from).unwrap_or(i64::MAX))
        .fetch_optional(&self.db.read)
        .await?;
        Ok(row.map(|r| split_names(r.get(0))))
    }

    /// Repository names in lexical order after `last` (one row, as for `tags`).
    pub async fn catalog(&self, last: Option<&str>, limit: Option<u32>) -> MetaResult<Vec<String>> {
        let names: Option<String> = sqlx::query_scalar(
            "SELECT string_agg(name, ',' ORDER BY name) FROM \
               (SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2) page",
        )
        .bind(last.unwrap_or(""))
        .bind(limit.map(i64::from).unwrap_or(i64::MAX))
        .fetch_one(&self.db.read)
        .await?;
        Ok(split_names(names))
    }

    /// Manifests in `repo` whose `subject` is `subject`.
    pub async fn referrers(&self, repo: &str, subject: &str) -> MetaResult<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.artifact_type, m.size, m.annotations \
             FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE r.name = $1 AND m.subject = $2 ORDER BY m.digest",
        )
        .bind(repo)
        .bind(subject)
        .fetch_all(&self.db.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Referrer {
                digest: r.get(0),
                media_type: r.get(1),
                artifact_type: r.get(2),
                size: r.get(3),
                annotations: r.get(4),
            })
            .collect())
    }
}

/// Names joined by `string_agg(name, ',')`; NULL when there were none.
fn split_names(joined: Option<String>) -> Vec<String> {
    joined
        .map(|j| j.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn stored_manifest(r: sqlx::any::AnyRow) -> StoredManifest {
    StoredManifest {
        digest: r.get(0),
        media_type: r.get(1),
        content: r.get(2),
    }
}

/// A serialised write transaction. Dropping it without `commit` rolls back.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    engine: crate::db::Engine,
    repo_ids: Arc<RwLock<HashMap<String, i64>>>,
    /// Repositories created in this transaction: cached only once it commits.
    created_repos: Vec<(String, i64)>,
}

impl WriteTx {
    pub async fn commit(self) -> MetaResult<()> {
        self.tx.commit().await?;
        if !self.created_repos.is_empty() {
            let mut ids = self.repo_ids.write().unwrap_or_else(|p| p.into_inner());
            ids.extend(self.created_repos);
        }
        Ok(())
    }

    /// The transaction's connection, for the store's other SQL modules (`versions`).
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub(crate) fn engine(&self) -> crate::db::Engine {
        self.engine
    }

    fn cached_repo_id(&self, name: &str) -> Option<i64> {
        self.repo_ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    pub async fn repository_id(&mut self, name: &str) -> MetaResult<Option<i64>> {
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The repository's id, creating it on first use.
    pub async fn ensure_repository(&mut self, name: &str) -> MetaResult<i64> {
        if let Some(id) = self.cached_repo_id(name) {
            return Ok(id);
        }
        if let Some(id) = self.repository_id(name).await? {
            // A row found inside the write lock is committed.
            self.repo_ids
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned(), id);
            return Ok(id);
        }
        let row = sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now_ms())
            .fetch_one(&mut *self.tx)
            .await?;
        let id = row.get(0);
        self.created_repos.push((name.to_owned(), id));
        Ok(id)
    }

    /// Whether a live row exists for the blob.
    pub async fn blob_is_live(&mut self, digest: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1 AND state = 'live'")
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    /// Size of a live blob linked into the repository.
    pub async fn linked_blob_size(&mut self, repo_id: i64, digest: &str) -> MetaResult<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest AND b.state = 'live' \
             WHERE rb.repository_id = $1 AND rb.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    pub async fn unlink_blob(&mut self, repo_id: i64, digest: &str) -> MetaResult<bool> {
        let r = sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn manifest_is_linked(&mut self, repo_id: i64, digest: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM repository_manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    pub async fn delete_tag(&mut self, repo_id: i64, tag: &str) -> MetaResult<bool> {
        let r = sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(tag)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Remove a manifest from a repository, with every tag that points at it and its
    /// signatures.
    pub async fn unlink_manifest(&mut self, repo_id: i64, digest: &str) -> MetaResult<bool> {
        sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM repository_signatures WHERE repository_id = $1 AND manifest_digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        let r = sqlx::query("DELETE FROM repository_manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

/// How the registry path reports it (the OCI error format).
impl From<MetaError> for crate::error::Error {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Db(db) => db.into(),
        }
    }
}
