//! The audit log: who (which credential) did what, to what, when, from where, and with
//! what outcome. Pushes, tag and manifest deletions, admin changes, failed logins and
//! denied requests are recorded; pulls are not (they would swamp it).
//!
//! Events go through a bounded queue to one writer task that inserts them in batches, so
//! the request path never waits on the database for them; a flood of denied requests
//! that fills the queue drops events (counted, and logged) rather than memory. The
//! table is bounded by age (`audit_retention`) and by count (`audit_max_events`).

use crate::db::{Database, now_ms};
use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Username or pull-secret username; empty for anonymous.
    pub actor: String,
    /// `user`, `pull_secret` or `anonymous`.
    pub actor_kind: String,
    /// e.g. `push`, `delete_manifest`, `create_pull_secret`, `login_failed`, `denied`.
    pub action: String,
    pub org: Option<String>,
    /// What was acted on: `acme/web/app:1.0`, `acme/web/app@sha256:…`, `user bob`.
    pub target: String,
    /// `success` or `denied`/`failed`.
    pub outcome: String,
    pub remote: Option<String>,
    pub detail: Option<String>,
}

impl Event {
    pub fn new(actor: &str, actor_kind: &str, action: &str, target: impl Into<String>) -> Self {
        Self {
            id: 0,
            at: now_ms(),
            actor: actor.to_owned(),
            actor_kind: actor_kind.to_owned(),
            action: action.to_owned(),
            org: None,
            target: target.into(),
            outcome: "success".to_owned(),
            remote: None,
            detail: None,
        }
    }

    pub fn org(mut self, org: &str) -> Self {
        self.org = Some(org.to_owned());
        self
    }

    pub fn outcome(mut self, outcome: &str) -> Self {
        self.outcome = outcome.to_owned();
        self
    }

    pub fn remote(mut self, remote: Option<std::net::SocketAddr>) -> Self {
        self.remote = remote.map(|r| r.ip().to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

enum Msg {
    Event(Box<Event>),
    Flush(oneshot::Sender<()>),
}

const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    db: Database,
    dropped: Arc<AtomicU64>,
}

/// How long events are kept, and how many at most.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_events: u64,
}

impl AuditLog {
    /// Start the writer task (and the periodic retention purge) on the current runtime.
    pub fn start(db: &Database, retention: Retention) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Self {
            tx,
            db: db.clone(),
            dropped: Arc::default(),
        };
        tokio::spawn(write_events(db.clone(), rx));
        tokio::spawn(purge_every(db.clone(), retention, Duration::from_secs(600)));
        log
    }

    pub fn record(&self, event: Event) {
        if self.tx.try_send(Msg::Event(Box::new(event))).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit queue full: events dropped");
            }
        }
    }

    /// Wait until every event recorded before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events newest first, with ids below `before`, that `filter` selects.
    pub async fn page(&self, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Event>, sqlx::Error> {
        self.flush().await;
        let target = filter.target.as_deref().map(|t| {
            let literal = t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("{literal}%")
        });
        let rows = sqlx::query(
            "SELECT id, at, actor, actor_kind, action, org, target, outcome, remote, detail FROM audit_events \
             WHERE ($1 IS NULL OR org = $1) AND id < $2 AND ($4 IS NULL OR actor = $4) \
             AND ($5 IS NULL OR action = $5) AND ($6 IS NULL OR target LIKE $6 ESCAPE '\\') \
             AND ($7 IS NULL OR at >= $7) AND ($8 IS NULL OR at < $8) ORDER BY id DESC LIMIT $3",
        )
        .bind(filter.org.as_deref())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(target)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(&self.db.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                actor_kind: r.get(3),
                action: r.get(4),
                org: r.get(5),
                target: r.get(6),
                outcome: r.get(7),
                remote: r.get(8),
                detail: r.get(9),
            })
            .collect())
    }
}

async fn write_events(db: Database, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(done) => waiting.push(done),
            }
            next = if batch.len() < BATCH { rx.try_recv().ok() } else { None };
        }
        if !batch.is_empty() {
            if let Err(e) = insert(&db, &batch).await {
                tracing::error!(error = %e, events = batch.len(), "writing audit events failed");
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn insert(db: &Database, events: &[Event]) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    for e in events {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, actor_kind, action, org, target, outcome, remote, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.actor_kind)
        .bind(&e.action)
        .bind(&e.org)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(&e.remote)
        .bind(&e.detail)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Which events a page shows: all of them when every field is `None`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub org: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Targets starting with this (a repository's events: `acme/web/app`, and its
    /// `acme/web/app:tag` and `acme/web/app@digest` ones).
    pub target: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub until: Option<i64>,
}

/// Apply the retention once; returns how many events were removed.
pub async fn purge(db: &Database, retention: Retention) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - retention.max_age.as_millis() as i64;
    let old = sqlx::query("DELETE FROM audit_events WHERE at < $1")
        .bind(cutoff)
        .execute(&db.write)
        .await?
        .rows_affected();
    let excess = sqlx::query("DELETE FROM audit_events WHERE id <= (SELECT MAX(id) FROM audit_events) - $1")
        .bind(retention.max_events as i64)
        .execute(&db.write)
        .await?
        .rows_affected();
    Ok(old + excess)
}

async fn purge_every(db: Database, retention: Retention, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge(&db, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "audit retention applied"),
            Err(e) => tracing::warn!(error = %e, "applying audit retention failed"),
        }
    }
}
