//! Every request body type through the real router (real SQLite store, authenticated): no input
//! may produce a 500. The first byte picks the endpoint, the rest is the body. DNS outcomes
//! (502/504, from the unreachable resolver configured here) are answers, not crashes.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use claimd_dns::{Verifier, VerifierConfig};
use claimd_domain::{ApiSecret, NewCredential, Timestamp};
use claimd_http::{AppState, HttpConfig};
use claimd_store::prelude::*;
use claimd_store_sqlite::{SqliteSettings, SqliteStore};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
    base: String,
    bearer: String,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (router, base, bearer) = runtime.block_on(async {
            let path = std::env::temp_dir().join(format!("claimd-fuzz-{}.db", std::process::id()));
            let store = SqliteStore::open(path.to_str().unwrap(), &SqliteSettings::default()).await.unwrap();
            let org = store.create_organization(&claimd_store::Actor::default(), "fuzz", Timestamp::now()).await.unwrap();
            let secret = ApiSecret::generate();
            store
                .create_credential(&claimd_store::Actor::default(), &NewCredential::org_admin(org.id.clone(), "fuzz"), &secret.hash(), Timestamp::now())
                .await
                .unwrap();
            // Nothing listens on port 9: lookups fail fast, locally.
            let verifier = Verifier::new(VerifierConfig {
                timeout: Duration::from_millis(200),
                ..VerifierConfig::with_servers(vec!["127.0.0.1:9".parse().unwrap()])
            })
            .unwrap();
            let state = AppState::new(Arc::new(store), Arc::new(verifier), HttpConfig::default());
            let base = format!("/v1/identity/organizations/{}", org.id);
            (claimd_http::router(state), base, format!("Bearer {}", secret.expose()))
        });
        Target { runtime, router, base, bearer }
    })
}

const ACTIONS: &[&str] = &[
    "getDomainVerificationToken",
    "verifyDomain",
    "claimDomain",
    "unclaimDomain",
    "unverifyDomain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let t = target();
    let action = ACTIONS[usize::from(pick) % ACTIONS.len()];
    let request = Request::post(format!("{}/actions/{action}", t.base))
        .header("authorization", &t.bearer)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = t.runtime.block_on(t.router.clone().oneshot(request)).unwrap();
    let status = response.status();
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR && status != StatusCode::SERVICE_UNAVAILABLE,
        "{action} answered {status} to {:?}",
        String::from_utf8_lossy(body)
    );
});
