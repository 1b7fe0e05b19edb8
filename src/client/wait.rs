//! Following a job to its end, with a progress bar on a terminal (manifests, blobs and
//! bytes of a sync), or quietly when the output is JSON or not a terminal.

use super::output::Format;
use super::session::{Exit, Failure, Outcome, Session};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal as _;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(500);

fn bar(format: Format) -> ProgressBar {
    let shown = format == Format::Table && std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Poll job `id` until it is done (its record) or failed (exit 1 with its error).
pub async fn job(s: &Session, id: i64, format: Format) -> Outcome {
    let bar = bar(format);
    loop {
        let job = s.get(&format!("/api/v1/jobs/{id}")).await?;
        let p = &job["progress"];
        let n = |k: &str, f: &str| p[k][f].as_u64().unwrap_or(0);
        bar.set_length(n("bytes", "total").max(n("bytes", "done")));
        bar.set_position(n("bytes", "done"));
        bar.set_message(format!(
            "{} · manifests {}/{} · blobs {}/{}",
            p["phase"].as_str().unwrap_or(job["state"].as_str().unwrap_or("queued")),
            n("manifests", "done"),
            n("manifests", "total"),
            n("blobs", "done"),
            n("blobs", "total"),
        ));
        match job["state"].as_str() {
            Some("done") => {
                bar.finish_and_clear();
                return Ok(job);
            }
            Some("failed") => {
                bar.finish_and_clear();
                let why = job["last_error"].as_str().unwrap_or("failed").to_owned();
                return Err(Failure::new(Exit::Refused, format!("job {id} failed: {why}")));
            }
            // A retried job (an edge notification) says why it is waiting.
            Some("queued") if job["last_error"].is_string() && job["attempts"].as_i64().unwrap_or(0) >= 3 => {
                bar.finish_and_clear();
                let why = job["last_error"].as_str().unwrap_or_default();
                return Err(Failure::new(
                    Exit::Unavailable,
                    format!("job {id} keeps failing and will be retried: {why}"),
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// After asking edge `name` to sync: wait for the notification to be delivered, then
/// until the edge reports a sync that caught up (or an error).
pub async fn edge(s: &Session, name: &str, notify_job: i64, format: Format) -> Outcome {
    let since = crate::db::now_ms();
    job(s, notify_job, format).await?;
    let bar = bar(format);
    let path = format!("/api/v1/smart-proxies/{}", super::seg(name));
    loop {
        let p: Value = s.get(&path).await?;
        let behind = p["behind_by_events"].as_i64().unwrap_or(0);
        bar.set_message(format!("edge {name}: {behind} changes behind"));
        let reported = p["last_sync_at"].as_i64().is_some_and(|t| t >= since);
        if reported {
            bar.finish_and_clear();
            if let Some(e) = p["last_error"].as_str() {
                return Err(Failure::new(Exit::Refused, format!("edge {name} failed to sync: {e}")));
            }
            if behind == 0 {
                return Ok(p);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stream `file` to `path` with a progress bar of the bytes sent.
pub async fn upload(s: &Session, path: &str, file: &std::path::Path, format: Format) -> Outcome {
    use futures_util::StreamExt as _;
    let opened = tokio::fs::File::open(file)
        .await
        .map_err(|e| Failure::new(Exit::Refused, format!("{}: {e}", file.display())))?;
    let len = opened
        .metadata()
        .await
        .map_err(|e| Failure::new(Exit::Refused, format!("{}: {e}", file.display())))?
        .len();
    let bar = bar(format);
    bar.set_length(len);
    bar.set_message(format!("uploading {}", file.display()));
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(opened).inspect(move |chunk| {
        if let Ok(c) = chunk {
            counted.inc(c.len() as u64);
        }
    });
    let answer = s.upload(path, reqwest::Body::wrap_stream(stream), len).await;
    bar.finish_and_clear();
    answer
}
