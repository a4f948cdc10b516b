//! A closed-loop load generator on hyper: each client sends its next request as soon as the
//! previous one is answered, for a warm-up and then a measured period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What one workload at one concurrency measured.
#[derive(Clone, Debug)]
pub struct Stats {
    pub requests: u64,
    /// Answers other than 2xx (or failed exchanges) during the measured period.
    pub errors: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// The first failure seen, to explain a non-zero error count.
    pub first_error: Option<String>,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn from(
        mut latencies: Vec<u64>,
        errors: u64,
        seconds: f64,
        first_error: Option<String>,
    ) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| {
            if latencies.is_empty() {
                0
            } else {
                latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
            }
        };
        Self {
            requests: latencies.len() as u64,
            errors,
            seconds,
            p50_us: at(0.50),
            p99_us: at(0.99),
            first_error,
        }
    }
}

pub struct Load {
    warmup: Duration,
    duration: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Load {
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build_http();
        Self {
            warmup,
            duration,
            client,
        }
    }

    /// How long one measurement runs, warm-up included.
    pub fn span(&self) -> Duration {
        self.warmup + self.duration
    }

    /// Sends one request alone: its status and how long it took.
    pub async fn once(&self, request: Request<Full<Bytes>>) -> (u16, Duration) {
        let sent = Instant::now();
        let response = self.client.request(request).await.expect("request");
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        (status, sent.elapsed())
    }

    /// Runs `concurrency` clients; `make(client, n)` builds client's n-th request.
    pub async fn run<F>(&self, concurrency: usize, make: F) -> Stats
    where
        F: Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let (client, make) = (self.client.clone(), make.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut first_error = None;
                let mut n = 0u64;
                while Instant::now() < end {
                    let request = make(task, n);
                    n += 1;
                    let sent = Instant::now();
                    let ok = match client.request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            let body = response.into_body().collect().await.map(|b| b.to_bytes());
                            if !status.is_success() && first_error.is_none() {
                                let text = body
                                    .as_ref()
                                    .map(|b| String::from_utf8_lossy(b).into_owned())
                                    .unwrap_or_default();
                                first_error = Some(format!(
                                    "{status}: {}",
                                    text.chars().take(200).collect::<String>()
                                ));
                            }
                            status.is_success() && body.is_ok()
                        }
                        Err(e) => {
                            first_error.get_or_insert_with(|| e.to_string());
                            false
                        }
                    };
                    let done = Instant::now();
                    if sent >= measure_from && done <= end {
                        latencies.push(done.duration_since(sent).as_micros() as u64);
                        if !ok {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors, first_error)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for t in tasks {
            if let Ok((l, e, f)) = t.await {
                latencies.extend(l);
                errors += e;
                first_error = first_error.or(f);
            }
        }
        Stats::from(latencies, errors, self.duration.as_secs_f64(), first_error)
    }

    /// Runs `concurrency` loops of `op(n)` (n counts up across all loops), each answering
    /// whether it succeeded: for work measured without HTTP.
    pub async fn closed_loop<F, Fut>(&self, concurrency: usize, op: F) -> Stats
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let op = Arc::new(op);
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let op = op.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = task as u64;
                while Instant::now() < end {
                    let sent = Instant::now();
                    let ok = op(n).await;
                    n += concurrency as u64;
                    let done = Instant::now();
                    if sent >= measure_from && done <= end {
                        latencies.push(done.duration_since(sent).as_micros() as u64);
                        if !ok {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                latencies.extend(l);
                errors += e;
            }
        }
        Stats::from(latencies, errors, self.duration.as_secs_f64(), None)
    }
}

/// The ceiling for verify and re-checks: TXT queries to the same server through the same
/// resolver library, configured as the verifier's, closed loop at the same concurrency, each of
/// one of the names `name(0)`…`name(names - 1)`, picked by a hash of the query's number.
///
/// Picked by a hash, not in turn: hickory shares one query among identical ones in flight, and
/// loops that step through the names in turn fall into lockstep — two that once asked for the
/// same name at once ask for the same next name too. With 1,000 names taken in turn, four
/// lookups in five were answered by another loop's query (the server saw a fifth of them), and
/// the "raw rate" was that of a resolver answering itself.
pub async fn raw_dns(
    load: &Load,
    concurrency: usize,
    server: SocketAddr,
    names: u64,
    name: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Stats {
    let resolver = claimd_dns::build_resolver(&[server], Duration::from_secs(5)).expect("resolver");
    let name = Arc::new(name);
    load.closed_loop(concurrency, move |n| {
        let resolver = resolver.clone();
        let name = name(scatter(n) % names.max(1));
        async move {
            let name = format!("{name}.");
            resolver
                .lookup(name.as_str(), hickory_proto::rr::RecordType::TXT)
                .await
                .is_ok()
        }
    })
    .await
}

/// A well-mixed hash of `n` (splitmix64's finalizer).
fn scatter(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
