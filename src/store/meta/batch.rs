//! Several statements of one write transaction sent to the database together.
//!
//! Every statement through sqlx's SQLite driver is a round trip to the connection's own
//! thread (two thread wake-ups), which costs more than running a short statement. A
//! `Batch` on SQLite is one multi-statement string, so one round trip runs them all, in
//! order; on PostgreSQL each statement still goes on its own (the extended protocol takes
//! one statement at a time). Each statement keeps its own `$1…$n` parameters; results
//! come back per statement, in the order they were added.

use super::{MetaResult, WriteTx};
use crate::db::Engine;
use futures_util::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Either, Executor};

/// A parameter value of a batched statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_owned))
    }
}

/// What one statement of a batch did.
#[derive(Default)]
pub(crate) struct Done {
    /// What it answered (a `SELECT`, a `RETURNING`).
    pub rows: Vec<AnyRow>,
}

#[derive(Debug, Default)]
pub(crate) struct Batch {
    statements: Vec<(String, Vec<Arg>)>,
}

impl Batch {
    /// Add a statement (its parameters numbered from `$1`); returns its index in the
    /// results of `run`.
    pub fn add(&mut self, sql: impl Into<String>, args: Vec<Arg>) -> usize {
        self.statements.push((sql.into(), args));
        self.statements.len() - 1
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Run every statement, in order, inside `tx`.
    pub async fn run(self, tx: &mut WriteTx) -> MetaResult<Vec<Done>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        if tx.engine() == Engine::Sqlite && self.statements.len() > 1 {
            let n = self.statements.len();
            let (sql, args) = join(self.statements);
            let done = fetch(tx.conn(), bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args)).await?;
            if done.len() != n {
                return Err(sqlx::Error::Protocol(format!("a batch of {n} statements answered {}", done.len())).into());
            }
            return Ok(done);
        }
        let mut out = Vec::with_capacity(self.statements.len());
        for (sql, args) in self.statements {
            let mut done = fetch(tx.conn(), bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args)).await?;
            out.push(done.pop().unwrap_or_default());
        }
        Ok(out)
    }
}

fn bind<'q>(mut q: Query<'q, Any, AnyArguments>, args: Vec<Arg>) -> Query<'q, Any, AnyArguments> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Run `q` and split what it answers by statement: rows, then the statement's result.
async fn fetch(conn: &mut sqlx::AnyConnection, q: Query<'_, Any, AnyArguments>) -> MetaResult<Vec<Done>> {
    let mut stream = conn.fetch_many(q);
    let mut out = Vec::new();
    let mut current = Done::default();
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Right(row) => current.rows.push(row),
            // The end of one statement.
            Either::Left(_) => out.push(std::mem::take(&mut current)),
        }
    }
    Ok(out)
}

/// The statements as one string, each one's `$k` renumbered past the parameters of
/// those before it, and all the parameters in order.
fn join(statements: Vec<(String, Vec<Arg>)>) -> (String, Vec<Arg>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    for (text, mut own) in statements {
        renumber(&text, args.len(), &mut sql);
        sql.push_str(";\n");
        args.append(&mut own);
    }
    (sql, args)
}

fn renumber(text: &str, offset: usize, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let n: usize = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(n + offset).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_past_earlier_statements() {
        let (sql, args) = join(vec![
            ("SELECT $1, $2".to_owned(), vec![Arg::Int(1), Arg::Int(2)]),
            (
                "UPDATE t SET a = $2, j = '$.x' WHERE b = $1 AND c = $10".to_owned(),
                vec![Arg::Int(3); 10],
            ),
        ]);
        assert_eq!(
            sql,
            "SELECT $1, $2;\nUPDATE t SET a = $4, j = '$.x' WHERE b = $3 AND c = $12;\n"
        );
        assert_eq!(args.len(), 12);
    }
}
