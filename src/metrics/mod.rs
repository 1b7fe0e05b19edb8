//! The process's Prometheus instruments: what every layer records into (requests,
//! pushes and pulls, tokens, denials, logins, jobs, syncs), kept in one registry per
//! server so that each server (and each test's server) counts only its own work.
//!
//! Names follow Prometheus conventions (`gatehouse_…_total` counters, `_seconds` and
//! `_bytes` in base units). Labels stay bounded: route classes rather than paths, error
//! codes rather than messages; organisations, remotes and edges are configuration, not
//! traffic, so they may be labels.
//!
//! Values that live in the database (jobs waiting, an edge's lag, storage per org) are
//! read when scraped, by `ops`; `process` reads the process's own figures.

pub mod process;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    pub action: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobKindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStateLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabels {
    pub remote: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeLabels {
    pub edge: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every instrument, cheap to clone (each is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub requests_in_flight: Gauge,
    pub received_bytes: Family<RouteOnly, Counter>,
    pub sent_bytes: Family<RouteOnly, Counter>,
    pub manifest_pushes: Family<OrgLabels, Counter>,
    pub manifest_pulls: Family<OrgLabels, Counter>,
    pub tokens_issued: Family<KindLabels, Counter>,
    pub tokens_refused: Family<ReasonLabels, Counter>,
    pub policy_denials: Family<DenialLabels, Counter>,
    pub login_failures: Family<KindLabels, Counter>,
    pub job_seconds: Family<JobKindLabels, Histogram>,
    pub jobs_failed: Family<JobKindLabels, Counter>,
    pub sync_bytes: Family<RemoteLabels, Counter>,
    pub sync_errors: Family<RemoteLabels, Counter>,
    // Read from the database when scraped.
    pub jobs: Family<JobStateLabels, Gauge>,
    pub edge_lag_events: Family<EdgeLabels, Gauge>,
    pub edge_lag_seconds: Family<EdgeLabels, Gauge>,
    pub edge_last_sync_seconds: Family<EdgeLabels, FloatGauge>,
    pub storage_bytes: Family<OrgLabels, Gauge>,
    pub gc_runs: Counter<u64, AtomicU64>,
    pub gc_seconds: FloatGauge,
    pub gc_freed_bytes: Counter<u64, AtomicU64>,
}

/// Request latencies: half a millisecond (a cached manifest) to a minute (a large blob).
fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// Job durations: a post-push copy takes milliseconds, a sync minutes.
fn job_buckets() -> Histogram {
    Histogram::new([0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self {
            // Ours under `gatehouse_`; the standard `process_*` figures at the root.
            registry: Arc::new(Mutex::new(Registry::default())),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_buckets as fn() -> Histogram),
            requests_in_flight: Gauge::default(),
            received_bytes: Family::default(),
            sent_bytes: Family::default(),
            manifest_pushes: Family::default(),
            manifest_pulls: Family::default(),
            tokens_issued: Family::default(),
            tokens_refused: Family::default(),
            policy_denials: Family::default(),
            login_failures: Family::default(),
            job_seconds: Family::new_with_constructor(job_buckets as fn() -> Histogram),
            jobs_failed: Family::default(),
            sync_bytes: Family::default(),
            sync_errors: Family::default(),
            jobs: Family::default(),
            edge_lag_events: Family::default(),
            edge_lag_seconds: Family::default(),
            edge_last_sync_seconds: Family::default(),
            storage_bytes: Family::default(),
            gc_runs: Counter::default(),
            gc_seconds: FloatGauge::default(),
            gc_freed_bytes: Counter::default(),
        };
        {
            let mut root = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            let r = root.sub_registry_with_prefix("gatehouse");
            r.register(
                "http_requests",
                "HTTP requests answered, by route class, method and status",
                m.requests.clone(),
            );
            r.register(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head), by route class and method",
                m.request_seconds.clone(),
            );
            r.register(
                "http_requests_in_flight",
                "HTTP requests being answered",
                m.requests_in_flight.clone(),
            );
            r.register(
                "http_received_bytes",
                "Request body bytes received, by route class",
                m.received_bytes.clone(),
            );
            r.register(
                "http_sent_bytes",
                "Response body bytes sent, by route class",
                m.sent_bytes.clone(),
            );
            r.register(
                "manifest_pushes",
                "Manifests pushed, by organisation",
                m.manifest_pushes.clone(),
            );
            r.register(
                "manifest_pulls",
                "Manifests pulled (GET answered 200), by organisation",
                m.manifest_pulls.clone(),
            );
            r.register(
                "tokens_issued",
                "Registry tokens issued, by kind (access, refresh)",
                m.tokens_issued.clone(),
            );
            r.register(
                "token_requests_refused",
                "Token requests refused, by error code",
                m.tokens_refused.clone(),
            );
            r.register(
                "policy_denials",
                "Registry requests refused by the token's scope, the policies or a signature requirement",
                m.policy_denials.clone(),
            );
            r.register(
                "login_failures",
                "Failed logins (wrong username or password), by where (token, console, api)",
                m.login_failures.clone(),
            );
            r.register(
                "job_duration_seconds",
                "Time a job took to run (each attempt that succeeded), by kind",
                m.job_seconds.clone(),
            );
            r.register(
                "jobs_failed",
                "Job attempts that failed, by kind",
                m.jobs_failed.clone(),
            );
            r.register(
                "jobs",
                "Jobs by kind and state (queued, running, failed) in the database",
                m.jobs.clone(),
            );
            r.register(
                "sync_received_bytes",
                "Blob bytes fetched by syncs, by remote (org/product/name)",
                m.sync_bytes.clone(),
            );
            r.register("sync_errors", "Syncs that failed, by remote", m.sync_errors.clone());
            r.register(
                "edge_lag_events",
                "Content changes an edge site has not synced yet",
                m.edge_lag_events.clone(),
            );
            r.register(
                "edge_lag_seconds",
                "Age of the oldest content change an edge site has not synced (0: in sync)",
                m.edge_lag_seconds.clone(),
            );
            r.register(
                "edge_last_sync_timestamp_seconds",
                "When an edge site last reported a sync (Unix time)",
                m.edge_last_sync_seconds.clone(),
            );
            r.register(
                "storage_bytes",
                "Bytes of the distinct blobs an organisation's repositories hold (read at most once a minute)",
                m.storage_bytes.clone(),
            );
            r.register("gc_runs", "Garbage collections run", m.gc_runs.clone());
            r.register(
                "gc_last_duration_seconds",
                "How long the last garbage collection took",
                m.gc_seconds.clone(),
            );
            r.register(
                "gc_freed_bytes",
                "Blob bytes garbage collection deleted",
                m.gc_freed_bytes.clone(),
            );
        }
        m
    }

    /// Add a collector that reads its values when scraped (process figures).
    pub fn register_collector(&self, c: Box<dyn prometheus_client::collector::Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(c);
    }

    /// The exposition (OpenMetrics text, which Prometheus scrapes natively).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }

    pub fn token_issued(&self, kind: &'static str) {
        self.tokens_issued.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn token_refused(&self, code: &str) {
        self.tokens_refused
            .get_or_create(&ReasonLabels {
                reason: code.to_owned(),
            })
            .inc();
    }

    pub fn login_failed(&self, via: &'static str) {
        self.login_failures.get_or_create(&KindLabels { kind: via }).inc();
    }

    pub fn denied(&self, action: &'static str, reason: &'static str) {
        self.policy_denials
            .get_or_create(&DenialLabels { action, reason })
            .inc();
    }

    pub fn job_finished(&self, kind: &str, seconds: f64, failed: bool) {
        let labels = JobKindLabels { kind: kind.to_owned() };
        if failed {
            self.jobs_failed.get_or_create(&labels).inc();
        } else {
            self.job_seconds.get_or_create(&labels).observe(seconds);
        }
    }
}

/// The route class of a request path: a bounded label.
pub fn route_class(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2/") {
        return if rest.is_empty() {
            "base"
        } else if rest == "token" {
            "token"
        } else if rest == "_catalog" {
            "catalog"
        } else if rest.ends_with("/tags/list") {
            "tags"
        } else if rest.contains("/manifests/") {
            "manifest"
        } else if rest.contains("/blobs/uploads") {
            "upload"
        } else if rest.contains("/blobs/") {
            "blob"
        } else if rest.contains("/referrers/") {
            "referrers"
        } else {
            "other"
        };
    }
    match path {
        "/v2" => "base",
        "/metrics" => "metrics",
        "/healthz" | "/readyz" => "health",
        "/.well-known/jwks.json" => "jwks",
        _ if path.starts_with("/extensions/v2/") => "signatures",
        _ if path.starts_with("/api/") => "api",
        _ if path == "/" || path.starts_with("/ui") => "console",
        _ => "other",
    }
}

/// A bounded method label.
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classed_without_names() {
        for (path, class) in [
            ("/v2/", "base"),
            ("/v2/token", "token"),
            ("/v2/_catalog", "catalog"),
            ("/v2/acme/web/app/tags/list", "tags"),
            ("/v2/acme/web/app/manifests/1.0", "manifest"),
            ("/v2/acme/web/app/blobs/uploads/", "upload"),
            ("/v2/acme/web/app/blobs/uploads/abc", "upload"),
            ("/v2/acme/web/app/blobs/sha256:00", "blob"),
            ("/v2/acme/web/app/referrers/sha256:00", "referrers"),
            ("/extensions/v2/acme/web/app/signatures/sha256:00", "signatures"),
            ("/api/v1/orgs", "api"),
            ("/ui/orgs/acme", "console"),
            ("/", "console"),
            ("/metrics", "metrics"),
            ("/readyz", "health"),
            ("/favicon.ico", "other"),
        ] {
            assert_eq!(route_class(path), class, "{path}");
        }
    }

    #[test]
    fn the_exposition_names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "manifest",
                method: "GET",
                status: 200,
            })
            .inc();
        m.token_issued("access");
        let text = m.encode();
        assert!(
            text.contains("gatehouse_http_requests_total{route=\"manifest\",method=\"GET\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_tokens_issued_total{kind=\"access\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    /// The example Grafana dashboard in docs/ asks only for series gatehouse exposes.
    #[test]
    fn the_dashboard_asks_only_for_exposed_series() {
        let m = Metrics::new();
        m.register_collector(Box::new(process::ProcessCollector));
        // Families without samples are not written: give each one.
        let org = OrgLabels { org: "o".into() };
        let (edge, remote) = (EdgeLabels { edge: "e".into() }, RemoteLabels { remote: "r".into() });
        let job = JobKindLabels { kind: "k".into() };
        m.requests
            .get_or_create(&RequestLabels {
                route: "r",
                method: "GET",
                status: 200,
            })
            .inc();
        m.request_seconds
            .get_or_create(&RouteLabels {
                route: "r",
                method: "GET",
            })
            .observe(0.1);
        m.received_bytes.get_or_create(&RouteOnly { route: "r" }).inc();
        m.sent_bytes.get_or_create(&RouteOnly { route: "r" }).inc();
        m.manifest_pushes.get_or_create(&org).inc();
        m.manifest_pulls.get_or_create(&org).inc();
        m.storage_bytes.get_or_create(&org).set(1);
        m.token_issued("access");
        m.token_refused("DENIED");
        m.denied("pull", "policy");
        m.login_failed("token");
        m.job_finished("k", 1.0, false);
        m.jobs_failed.get_or_create(&job).inc();
        m.jobs
            .get_or_create(&JobStateLabels {
                kind: "k".into(),
                state: "queued".into(),
            })
            .set(1);
        m.sync_bytes.get_or_create(&remote).inc();
        m.sync_errors.get_or_create(&remote).inc();
        m.edge_lag_events.get_or_create(&edge).set(1);
        m.edge_lag_seconds.get_or_create(&edge).set(1);
        m.edge_last_sync_seconds.get_or_create(&edge).set(1.0);
        let text = m.encode();
        let dashboard = include_str!("../../docs/grafana-dashboard.json");
        let mut asked = 0;
        for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !(word.starts_with("gatehouse_") || word.starts_with("process_")) {
                continue;
            }
            let family = word
                .strip_suffix("_bucket")
                .or_else(|| word.strip_suffix("_total"))
                .unwrap_or(word);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "the dashboard asks for {word}, which is not exposed"
            );
            asked += 1;
        }
        assert!(asked >= 16, "{asked}");
    }
}
