//! A webhook receiver on loopback: a real HTTP server that keeps what it accepts, and can be
//! told to refuse (503) or to answer only after the sender has given up. It may also start
//! out down: its port is held but nothing answers, so every attempt times out.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Up,
    /// Answers 503.
    Refusing,
    /// Answers 503 after this long (longer than the sender waits).
    Slow(Duration),
}

/// One delivery the receiver accepted (answered 200).
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The Standard Webhooks message id: the same at every attempt of one delivery.
    pub fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    mode: Mutex<Mode>,
    accepted: Mutex<Vec<Received>>,
    /// Requests answered (or to be answered) with anything but 200.
    refused: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Counts a request in flight for as long as it is (also when the sender hangs up).
struct InFlight(Arc<Inner>);

impl InFlight {
    fn enter(inner: &Arc<Inner>) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(inner.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn hook(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _counted = InFlight::enter(&inner);
    let mode = *inner.mode.lock().unwrap();
    match mode {
        Mode::Up => {
            inner
                .accepted
                .lock()
                .unwrap()
                .push(Received { headers, body });
            StatusCode::OK
        }
        Mode::Refusing => {
            inner.refused.fetch_add(1, Ordering::SeqCst);
            StatusCode::SERVICE_UNAVAILABLE
        }
        Mode::Slow(delay) => {
            // Counted now: the server drops this future when the sender hangs up.
            inner.refused.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    /// Held, not served, while the receiver is down (so no one else takes the port).
    held: Mutex<Option<std::net::TcpListener>>,
}

impl Receiver {
    /// A receiver listening on a free loopback port.
    pub async fn start() -> Self {
        let receiver = Self::down();
        receiver.listen().await;
        receiver
    }

    /// A receiver that does not answer yet: attempts time out until [`listen`](Self::listen).
    pub fn down() -> Self {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            url: format!("http://{}/hook", held.local_addr().unwrap()),
            inner: Arc::default(),
            held: Mutex::new(Some(held)),
        }
    }

    pub async fn listen(&self) {
        let held = self.held.lock().unwrap().take().expect("not listening yet");
        held.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(held).unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self.inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    pub fn set(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.inner.accepted.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// The most requests it ever had in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.inner.most_in_flight.load(Ordering::SeqCst)
    }

    /// The distinct message ids accepted.
    pub fn ids(&self) -> HashSet<String> {
        self.accepted().iter().map(|r| r.id().to_owned()).collect()
    }

    /// The message ids accepted, by the event each carried (`data.eventId`).
    pub fn ids_by_event(&self) -> HashMap<i64, HashSet<String>> {
        let mut by_event: HashMap<i64, HashSet<String>> = HashMap::new();
        for r in self.accepted() {
            let event = r.json()["data"]["eventId"].as_i64().unwrap();
            by_event.entry(event).or_default().insert(r.id().to_owned());
        }
        by_event
    }

    /// Waits until `n` distinct deliveries were accepted; fails the test after a minute.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1200 {
            if self.ids().len() >= n {
                return self.accepted();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} of {n} deliveries arrived ({} refused)",
            self.ids().len(),
            self.refused()
        );
    }

    /// Waits until at least `n` requests were refused; fails the test after a minute.
    pub async fn wait_refused(&self, n: usize) {
        for _ in 0..1200 {
            if self.refused() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} of {n} refusals", self.refused());
    }
}
