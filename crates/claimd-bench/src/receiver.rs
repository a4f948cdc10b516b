//! A webhook receiver for the benchmark: answers 204 at once and counts the distinct
//! deliveries (by `webhook-id`) and when the last one arrived.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    last: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<Seen>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        let mut seen = r.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.ids.insert(id.to_owned());
        seen.last = Some(Instant::now());
    }
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Listens on loopback; returns the receiver and its URL.
    pub async fn start() -> (Self, String) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    pub fn count(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ids
            .len()
    }

    /// Waits until `n` distinct deliveries arrived; the time of the last, or `None` if they
    /// stopped coming for `patience` first.
    pub async fn wait_for(&self, n: usize, patience: Duration) -> Option<Instant> {
        let mut last_count = 0;
        let mut quiet_since = Instant::now();
        loop {
            let (count, last) = {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                (seen.ids.len(), seen.last)
            };
            if count >= n {
                return last;
            }
            if count != last_count {
                last_count = count;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > patience {
                eprintln!("webhook receiver: {count} of {n} deliveries, then nothing");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
