//! Prometheus metrics, `GET /metrics` in the text exposition format (OpenMetrics).
//!
//! Requests are counted as they are answered (by route template, method and status) with a
//! latency histogram; everything else is read when scraped: DNS lookups by perspective and
//! outcome (the verifier counts them), rate-limit refusals, database driver failures, the
//! connections held, and counts over the database (domains by state, re-checks due, webhook
//! deliveries waiting), the last cached for [`GAUGES_MAX_AGE`] because they read every domain
//! row. Every label value comes from a closed set — route templates, methods, statuses,
//! perspective names from the configuration — never a domain or organization name.
//!
//! Access: on the API's listener only with `Authorization: Bearer <--metrics-token>` (404
//! without a token configured, so nothing is exposed by accident); or on a listener of its own
//! (`--metrics-listen`), meant for a private address, without credentials.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claimd_domain::SecretHash;
use claimd_store::{DriverFailure, Gauges};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;

/// How long counts over the database are reused between scrapes.
pub const GAUGES_MAX_AGE: Duration = Duration::from_secs(15);

/// The route label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

// Labels of every request: static strings and a number, so counting allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    perspective: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Upper bounds of the latency buckets: 0.25 ms doubling to ~8 s, then +Inf.
const BUCKETS: usize = 16;

fn bucket_bound(i: usize) -> f64 {
    0.000_25 * f64::from(1u32 << i)
}

/// A latency histogram that every request updates without a lock (the library's takes a write
/// lock per observation, which all requests of a route would queue on).
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BUCKETS + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let i = (0..BUCKETS)
            .find(|&i| seconds <= bucket_bound(i))
            .unwrap_or(BUCKETS);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                // f64::MAX is how the encoder spells +Inf.
                let bound = if i < BUCKETS {
                    bucket_bound(i)
                } else {
                    f64::MAX
                };
                (bound, n.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// What is counted as requests are answered; shared by every clone of the state.
#[derive(Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Latency>,
    gauges: tokio::sync::Mutex<Option<(Instant, Gauges)>>,
}

/// The route template that answered, carried on the response from the route (see
/// [`crate::routes`]) to the wire middleware.
#[derive(Clone, Copy, Debug)]
pub struct RouteTemplate(pub &'static str);

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, response: &Response, method: &Method, took: Duration) {
        let route = response
            .extensions()
            .get::<RouteTemplate>()
            .map_or(UNMATCHED, |r| r.0);
        // An unknown method is not a label value: it would let clients grow the label set.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let status = response.status().as_u16();
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(took);
    }

    /// Counts over the database, at most [`GAUGES_MAX_AGE`] old; `None` if the database cannot
    /// be read now (the other metrics are still served).
    async fn gauges(&self, state: &AppState) -> Option<Gauges> {
        let mut cached = self.gauges.lock().await;
        if let Some((at, gauges)) = cached.as_ref()
            && at.elapsed() < GAUGES_MAX_AGE
        {
            return Some(gauges.clone());
        }
        match state.store.gauges(state.clock.now()).await {
            Ok(gauges) => {
                *cached = Some((Instant::now(), gauges.clone()));
                Some(gauges)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count over the database");
                None
            }
        }
    }
}

/// Everything, in the text exposition format.
pub async fn render(state: &AppState) -> String {
    let metrics = &state.metrics;
    let mut registry = Registry::with_prefix("claimd");
    registry.register(
        "http_requests",
        "HTTP requests answered, by route template, method and status",
        metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by route template and method",
        metrics.latency.clone(),
    );

    let lookups = Family::<LookupLabels, Counter>::default();
    for (perspective, outcome, n) in state.verifier.lookup_counts() {
        lookups
            .get_or_create(&LookupLabels {
                perspective: perspective.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc_by(n);
    }
    registry.register(
        "dns_lookups",
        "DNS lookups of verification tokens (verify, dry run, re-check), by perspective and outcome",
        lookups,
    );

    let refusals = Family::<LimitLabel, Counter>::default();
    for (limit, n) in state.limits.refusals() {
        refusals.get_or_create(&LimitLabel { limit }).inc_by(n);
    }
    registry.register(
        "rate_limit_refusals",
        "Requests refused with 429, by limit",
        refusals,
    );

    let failures = Family::<KindLabel, Counter>::default();
    for failure in DriverFailure::ALL {
        failures
            .get_or_create(&KindLabel {
                kind: failure.as_str(),
            })
            .inc_by(failure.count());
    }
    registry.register(
        "database_errors",
        "Database driver failures in this process (pool_timeout: no connection came free in time)",
        failures,
    );

    let connections = state.store.connections();
    let held = Family::<StateLabel, Gauge>::default();
    held.get_or_create(&StateLabel { state: "idle" })
        .set(i64::from(connections.idle));
    held.get_or_create(&StateLabel { state: "in_use" })
        .set(i64::from(connections.open.saturating_sub(connections.idle)));
    registry.register(
        "database_connections",
        "Connections this process holds to the database",
        held,
    );

    let members = Gauge::<i64>::default();
    members.set(i64::from(state.limits.members()));
    registry.register(
        "fleet_members",
        "Processes serving this database, among which the rate limits are shared",
        members,
    );

    if let Some(gauges) = metrics.gauges(state).await {
        let domains = Family::<StateLabel, Gauge>::default();
        for &(state, n) in &gauges.domains {
            domains
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        registry.register(
            "domains",
            "Domains by lifecycle state, all organizations",
            domains,
        );
        for (name, help, value) in [
            (
                "domains_at_risk",
                "Verified or claimed domains in a re-check grace period",
                gauges.domains_at_risk,
            ),
            (
                "rechecks_due",
                "Verified or claimed domains whose re-check is due",
                gauges.rechecks_due,
            ),
            (
                "webhook_deliveries_pending",
                "Webhook deliveries not yet delivered or given up",
                gauges.deliveries_pending,
            ),
        ] {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, gauge);
        }
    }

    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "metrics: cannot encode");
    }
    text
}

fn exposition(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// `GET /metrics` on the API's listener: only with the metrics token.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.config.metrics_token else {
        return ApiError::not_found("no route for GET /metrics (no --metrics-token is set)")
            .into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if SecretHash::of(token.trim()) == *expected => {
            exposition(render(&state).await)
        }
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "GET /metrics needs Authorization: Bearer with the metrics token",
        )
        .into_response(),
    }
}

/// `GET /metrics` on a listener of its own (`--metrics-listen`): no credential.
pub async fn open_metrics(State(state): State<AppState>) -> Response {
    exposition(render(&state).await)
}

/// The router of a metrics-only listener.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(open_metrics))
        .with_state(state)
}
