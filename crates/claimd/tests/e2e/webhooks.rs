//! Webhooks end to end: registered over HTTP, delivered by the dispatcher to a real HTTP
//! receiver on loopback, signed both ways; receivers down, failing and slow; safe targets.
//! The binary's part (kill -9 with deliveries pending, two processes on one PostgreSQL) is at
//! the end.

use std::collections::HashSet;
use std::time::Duration;

use claimd_webhooks::target::TargetPolicy;
use claimd_webhooks::{Dispatcher, DispatcherConfig};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::process::{cli, start};
use crate::receiver::{Mode, Received, Receiver};
use crate::support::{Backend, Database, Org, Reply, Setup, TestApp};

const LOOPBACK: TargetPolicy = TargetPolicy {
    allow_http: true,
    allow_private: true,
};

/// A dispatcher that tries again quickly, so a test sees several attempts.
fn dispatching() -> DispatcherConfig {
    DispatcherConfig {
        workers: 8,
        per_webhook: 2,
        timeout: Duration::from_millis(500),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
        retry_window: Duration::from_secs(600),
        disable_after: Duration::from_secs(600),
        targets: LOOPBACK,
        tick: Duration::from_millis(20),
    }
}

/// An app that lets webhooks point at loopback over http (as `--webhook-allow-http
/// --webhook-allow-private` do).
async fn app(backend: Backend) -> TestApp {
    let mut setup = Setup::default();
    setup.config.webhook_targets = LOOPBACK;
    TestApp::start_setup(backend, setup).await
}

fn spawn(app: &TestApp, config: DispatcherConfig) -> Dispatcher {
    Dispatcher::spawn(app.store.clone(), config)
        .unwrap()
        .expect("workers > 0")
}

async fn register(app: &TestApp, org: &Org, body: Value) -> Reply {
    app.send(
        app.client
            .post(format!("{}/v1/webhooks", app.base))
            .bearer_auth(&org.token)
            .json(&body),
    )
    .await
}

/// Registers a webhook for every domain event to `url`; returns its id and secret.
async fn hook(app: &TestApp, org: &Org, url: &str) -> (String, String) {
    let r = register(
        app,
        org,
        json!({"name": "all", "targetUrl": url, "resource": "domains", "event": "all"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn webhook(app: &TestApp, org: &Org, id: &str) -> Reply {
    app.get(org, &format!("{}/v1/webhooks/{id}", app.base))
        .await
}

/// Cisco's signature: hex HMAC-SHA1 of the raw body, keyed with the secret as registered.
fn spark_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_signed(received: &Received, secret: &str) {
    assert_eq!(
        received.headers["x-spark-signature"].to_str().unwrap(),
        spark_signature(secret, &received.body),
        "X-Spark-Signature"
    );
    // The Standard Webhooks reference library, with the secret as registered.
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&received.body, &received.headers)
        .expect("the Standard Webhooks signature verifies");
}

pub async fn deliveries_are_signed_both_ways_and_carry_the_new_state(backend: Backend) {
    let app = app(backend).await;
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    // A secret of the receiver's choosing, in the Standard Webhooks form.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = register(
        &app,
        &app.a,
        json!({"name": "claims", "targetUrl": receiver.url, "resource": "domains",
               "event": "updated", "filter": "domain=signed.test", "secret": secret}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["secret"], secret, "the secret is shown when created");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["filter"], "domain=signed.test");
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Another organization's webhook hears nothing of a's domains.
    hook(&app, &app.b, &other.url).await;
    let dispatcher = spawn(&app, dispatching());

    app.claimed(&app.a, "signed.test").await;
    app.claimed(&app.a, "unfiltered.test").await;
    // Updated (not created): verified, then claimed; of signed.test only.
    let got = receiver.wait_for(2).await;
    let mut states = Vec::new();
    for received in &got {
        assert_signed(received, secret);
        let body = received.json();
        assert_eq!(body["id"], id);
        assert_eq!(body["resource"], "domains");
        assert_eq!(body["event"], "updated");
        assert_eq!(body["orgId"], app.a.id.as_str());
        assert_eq!(body["data"]["domain"], "signed.test");
        assert!(body["actorId"].is_string() && body["created"].is_string());
        states.push(body["data"]["status"].as_str().unwrap().to_owned());
    }
    states.sort();
    assert_eq!(states, ["claimed", "verified"]);
    // A body signed with another secret does not verify.
    assert_ne!(
        spark_signature("whsec_AAAAAAAAAAAAAAAAAAAAAA==", &got[0].body),
        got[0].headers["x-spark-signature"].to_str().unwrap()
    );
    assert!(other.accepted().is_empty());

    // The secret is never shown again; the delivery log has each attempt (recorded in batches:
    // stopping the dispatcher records what is still in hand).
    dispatcher.stop().await;
    let r = webhook(&app, &app.a, &id).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    let log = app
        .get(&app.a, &format!("{}/v1/webhooks/{id}/deliveries", app.base))
        .await;
    assert_eq!(log.status, 200);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", log.body);
    for item in items {
        assert_eq!(item["statusCode"], 200);
        assert!(item["error"].is_null());
    }
    // Another organization's webhook is not found through a's credential, and vice versa.
    assert_eq!(webhook(&app, &app.b, &id).await.status, 404);
}

pub async fn a_receiver_down_for_a_while_gets_every_event(backend: Backend) {
    let app = app(backend).await;
    let receiver = Receiver::down();
    let (id, secret) = hook(&app, &app.a, &receiver.url).await;
    let dispatcher = spawn(&app, dispatching());
    let domains: Vec<String> = (0..12).map(|i| format!("d{i}.down.test")).collect();
    for d in &domains {
        app.token_for(&app.a, d).await;
    }
    // Attempts time out while it is down...
    let log_url = format!("{}/v1/webhooks/{id}/deliveries", app.base);
    for _ in 0..600 {
        let log = app.get(&app.a, &log_url).await;
        if log.body["items"].as_array().unwrap().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = app.get(&app.a, &log_url).await;
    let failures = log.body["items"].as_array().unwrap();
    assert!(failures.len() >= 6, "{}", log.body);
    for f in failures {
        assert!(f["statusCode"].is_null(), "{f}");
        assert!(f["error"].as_str().unwrap().contains("timed out"), "{f}");
    }
    // ...more events while it is down...
    app.verified(&app.a, "late.down.test").await;
    // ...and once it is up, every one arrives: 12 + 2 (token, verified) for late.down.test.
    receiver.listen().await;
    let got = receiver.wait_for(14).await;
    let ids: HashSet<&str> = got.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 14);
    let by_event = receiver.ids_by_event();
    assert_eq!(by_event.len(), 14, "one delivery per event");
    let mut created: Vec<String> = got
        .iter()
        .map(Received::json)
        .filter(|b| b["event"] == "created")
        .map(|b| b["data"]["domain"].as_str().unwrap().to_owned())
        .collect();
    created.sort();
    created.dedup();
    let mut expected = domains.clone();
    expected.push("late.down.test".into());
    expected.sort();
    assert_eq!(created, expected);
    for received in &got {
        assert_signed(received, &secret);
    }
    // The log shows each delivered once claimd has seen it answered: an attempt that timed out
    // on claimd's side while the receiver was coming back may have reached the receiver all the
    // same, and is then sent again (at least once, under the same webhook-id).
    let delivered = || async {
        let view = app.get(&app.a, &log_url).await;
        let ok: HashSet<String> = view.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["statusCode"] == 200)
            .map(|i| i["deliveryId"].as_str().unwrap().to_owned())
            .collect();
        (ok.len(), view.body)
    };
    let mut seen = delivered().await;
    for _ in 0..600 {
        if seen.0 == 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = delivered().await;
    }
    assert_eq!(seen.0, 14, "{}", seen.1);
    // Nothing more comes: each was delivered, and stays delivered.
    dispatcher.stop().await;
    assert_eq!(receiver.ids().len(), 14);
}

pub async fn a_slow_receiver_times_out_and_is_retried_without_pile_up(backend: Backend) {
    let app = app(backend).await;
    let slow = Receiver::start().await;
    slow.set(Mode::Slow(Duration::from_secs(3)));
    let fast = Receiver::start().await;
    let (slow_id, _) = hook(&app, &app.a, &slow.url).await;
    hook(&app, &app.b, &fast.url).await;
    let config = dispatching();
    let per_webhook = config.per_webhook;
    let dispatcher = spawn(&app, config);
    for i in 0..20 {
        app.token_for(&app.a, &format!("s{i}.slow.test")).await;
        app.token_for(&app.b, &format!("f{i}.fast.test")).await;
    }
    // The slow receiver holds its webhook's turns, never the whole dispatcher: the other
    // organization's receiver gets all of its deliveries while the slow one has none.
    fast.wait_for(20).await;
    assert!(slow.accepted().is_empty());
    slow.wait_refused(4).await;
    assert!(
        slow.most_in_flight() <= per_webhook,
        "{} requests at once to one webhook (turns: {per_webhook})",
        slow.most_in_flight()
    );
    // Attempts are recorded in batches: wait for the first to show.
    let slow_log = format!("{}/v1/webhooks/{slow_id}/deliveries", app.base);
    let mut log = app.get(&app.a, &slow_log).await;
    for _ in 0..600 {
        if log.body["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = app.get(&app.a, &slow_log).await;
    }
    let items = log.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i["error"].as_str().unwrap().contains("timed out")),
        "{}",
        log.body
    );
    // Quick again: the retries deliver everything, still a few at a time.
    slow.set(Mode::Up);
    slow.wait_for(20).await;
    assert!(slow.most_in_flight() <= per_webhook);
    assert_eq!(slow.ids_by_event().len(), 20);
    dispatcher.stop().await;
}

pub async fn a_failing_webhook_turns_inactive_and_a_replay_delivers_what_it_missed(
    backend: Backend,
) {
    let app = app(backend).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Refusing);
    // The app's clock stands still (events carry its time).
    let since = claimd_http::Clock::now(&*app.clock).rfc3339();
    let (id, secret) = hook(&app, &app.a, &receiver.url).await;
    let dispatcher = spawn(
        &app,
        DispatcherConfig {
            disable_after: Duration::from_millis(300),
            ..dispatching()
        },
    );
    app.token_for(&app.a, "one.inactive.test").await;
    let mut status = Value::Null;
    for _ in 0..600 {
        status = webhook(&app, &app.a, &id).await.body;
        if status["status"] == "inactive" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "inactive", "{status}");
    assert!(status["failingSince"].is_string());
    let refused = receiver.refused();
    assert!(refused >= 2, "{refused}");
    // Inactive: nothing is sent; new events are kept for a replay, not queued.
    app.token_for(&app.a, "two.inactive.test").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.refused(), refused, "nothing sent while inactive");
    // The audit log says why it turned inactive.
    let audit = app
        .get(
            &app.a,
            &format!(
                "{}/v1/adminAudit/events?orgId={}&eventCategories=WEBHOOKS",
                app.base, app.a.id
            ),
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let changes: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["data"]["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["webhook_created", "webhook_updated"],
        "{}",
        audit.body
    );

    // Fixed and turned on again; a replay delivers both events.
    receiver.set(Mode::Up);
    let r = app
        .send(
            app.client
                .put(format!("{}/v1/webhooks/{id}", app.base))
                .bearer_auth(&app.a.token)
                .json(&json!({"name": "all", "targetUrl": receiver.url, "status": "active"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    let replay = |since: &str| {
        app.send(
            app.client
                .post(format!("{}/v1/webhooks/{id}/replay", app.base))
                .query(&[("since", since)])
                .bearer_auth(&app.a.token),
        )
    };
    let r = replay(&since).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["queued"], 2, "{}", r.body);
    let got = receiver.wait_for(2).await;
    // The first event's delivery was still pending when the webhook came back, so it may
    // arrive twice (once retried, once replayed): at least once, under one webhook-id.
    let by_id: std::collections::BTreeMap<&str, String> = got
        .iter()
        .map(|r| {
            let domain = r.json()["data"]["domain"].as_str().unwrap().to_owned();
            (r.id(), domain)
        })
        .collect();
    let mut domains: Vec<&String> = by_id.values().collect();
    domains.sort();
    assert_eq!(
        domains,
        ["one.inactive.test", "two.inactive.test"],
        "{by_id:?}"
    );
    assert!(got.len() <= 3, "{} deliveries", got.len());
    for received in &got {
        assert_signed(received, &secret);
    }
    // A replay with a bad time says so; another organization cannot replay it.
    let r = replay("yesterday").await;
    r.assert_error(400);
    assert!(r.description().contains("since"), "{}", r.body);
    let r = app
        .send(
            app.client
                .post(format!("{}/v1/webhooks/{id}/replay", app.base))
                .query(&[("since", since.as_str())])
                .bearer_auth(&app.b.token),
        )
        .await;
    r.assert_error(404);
    dispatcher.stop().await;
}

pub async fn registration_refuses_bad_input_and_unsafe_targets(backend: Backend) {
    // The defaults of `claimd serve`: https only, public addresses only.
    let app = TestApp::start_setup(backend, Setup::default()).await;
    let base = json!({"name": "n", "targetUrl": "https://93.184.215.14/x", "resource": "domains",
                      "event": "all"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let refusals = [
        (
            with("targetUrl", json!("http://127.0.0.1:9/hook")),
            "targetUrl",
        ),
        (
            with("targetUrl", json!("https://127.0.0.1/hook")),
            "targetUrl",
        ),
        (
            with("targetUrl", json!("https://10.1.2.3/hook")),
            "targetUrl",
        ),
        (
            with("targetUrl", json!("https://169.254.169.254/latest")),
            "targetUrl",
        ),
        (with("targetUrl", json!("https://[::1]/hook")), "targetUrl"),
        (
            with("targetUrl", json!("https://localhost/hook")),
            "targetUrl",
        ),
        (
            with("targetUrl", json!("https://user:pw@example.com/")),
            "targetUrl",
        ),
        (with("targetUrl", json!("not a url")), "targetUrl"),
        (with("secret", json!("not base64!")), "secret"),
        (with("secret", json!("whsec_c2hvcnQ=")), "secret"),
        (with("resource", json!("meetings")), "resource"),
        (with("event", json!("exploded")), "event"),
        (with("filter", json!("color=blue")), "filter"),
        (with("name", json!("")), "name"),
    ];
    for (body, field) in &refusals {
        let r = register(&app, &app.a, body.clone()).await;
        r.assert_error(400);
        assert!(
            r.description().starts_with(&format!("{field}:")),
            "{body}: {}",
            r.body
        );
    }
    let list = app.get(&app.a, &format!("{}/v1/webhooks", app.base)).await;
    assert_eq!(list.body["items"], json!([]), "nothing was registered");
    // A public address over https is fine; the generated secret is valid Standard Webhooks.
    let r = register(&app, &app.a, base.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    standardwebhooks::Webhook::new(secret).unwrap();
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Changing it to a private address is refused alike, and changes nothing.
    let r = app
        .send(
            app.client
                .put(format!("{}/v1/webhooks/{id}", app.base))
                .bearer_auth(&app.a.token)
                .json(&json!({"name": "n", "targetUrl": "https://192.168.1.1/"})),
        )
        .await;
    r.assert_error(400);
    assert_eq!(
        webhook(&app, &app.a, &id).await.body["targetUrl"],
        "https://93.184.215.14/x"
    );
    // Deleted, it is gone.
    let r = app
        .send(
            app.client
                .delete(format!("{}/v1/webhooks/{id}", app.base))
                .bearer_auth(&app.a.token),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(webhook(&app, &app.a, &id).await.status, 404);
}

/// With a private target allowed at registration but not at delivery (the operator changed
/// the flags), the dispatcher refuses to send: the check is made again at every attempt.
pub async fn the_dispatcher_checks_the_target_again(backend: Backend) {
    let app = app(backend).await;
    let receiver = Receiver::start().await;
    let (id, _) = hook(&app, &app.a, &receiver.url).await;
    let dispatcher = spawn(
        &app,
        DispatcherConfig {
            targets: TargetPolicy::default(),
            ..dispatching()
        },
    );
    app.token_for(&app.a, "recheck.target.test").await;
    let log_url = format!("{}/v1/webhooks/{id}/deliveries", app.base);
    let mut items = Vec::new();
    for _ in 0..600 {
        items = app.get(&app.a, &log_url).await.body["items"]
            .as_array()
            .unwrap()
            .clone();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = items[0]["error"].as_str().unwrap();
    assert!(error.contains("scheme must be https"), "{error}");
    assert!(receiver.accepted().is_empty() && receiver.refused() == 0);
    dispatcher.stop().await;
}

// The real binary.

const FLAGS: &[&str] = &[
    "--webhook-allow-http",
    "--webhook-allow-private",
    "--webhook-backoff",
    "50ms",
    "--webhook-timeout",
    "500ms",
];

async fn operator_org(db_url: &str) -> (String, String) {
    let (ok, _, err) = cli(db_url, &["init"]).await;
    assert!(ok, "{err}");
    let (ok, org, err) = cli(db_url, &["org", "create", "--name", "hooks"]).await;
    assert!(ok, "{err}");
    let org = org.trim().to_owned();
    let (ok, token, err) = cli(db_url, &["token", "create", "--org", &org]).await;
    assert!(ok, "{err}");
    (org, token.trim().to_owned())
}

async fn register_at(base: &str, token: &str, url: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(token)
        .json(&json!({"name": "all", "targetUrl": url, "resource": "domains", "event": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tokens(base: &str, org: &(String, String), names: impl Iterator<Item = String>) {
    for name in names {
        let (status, body) = crate::process::post(
            base,
            &org.0,
            &org.1,
            "getDomainVerificationToken",
            json!({ "domain": name }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_deliveries_pending_delivers_them_after_a_restart() {
    let db = Database::create(Backend::Sqlite).await;
    let dns = claimd_dns::testing::TestDnsServer::start().await.unwrap();
    let org = operator_org(&db.url()).await;
    let receiver = Receiver::down();
    let mut server = start(&db.url(), dns.addr(), FLAGS).await;
    let id = register_at(&server.base, &org.1, &receiver.url).await;
    tokens(
        &server.base,
        &org,
        (0..30).map(|i| format!("k{i}.kill.test")),
    )
    .await;
    // Attempts have failed (the receiver is down); then claimd dies mid-flight.
    for _ in 0..600 {
        let (_, out, _) = cli(&db.url(), &["webhook", "list", "--org", &org.0]).await;
        if out.contains("failing since") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9().await;
    receiver.listen().await;
    let _server = start(&db.url(), dns.addr(), FLAGS).await;
    let got = receiver.wait_for(30).await;
    assert_eq!(receiver.ids_by_event().len(), 30);
    assert!(got.iter().all(|r| r.json()["id"] == id.as_str()));

    // The operator's view: the log, one domain's history, a replay from the command line.
    let (ok, out, err) = cli(&db.url(), &["events", "--org", &org.0, "--since", "1h"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("\ttoken_issued\t"))
            .count(),
        30,
        "{out}"
    );
    assert!(out.contains("webhook_created"), "{out}");
    let (ok, out, err) = cli(
        &db.url(),
        &["events", "--org", &org.0, "--domain", "k7.kill.test"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("domain k7.kill.test"), "{out}");
    let before = receiver.accepted().len();
    let (ok, _, err) = cli(
        &db.url(),
        &["webhook", "replay", &id, "--org", &org.0, "--since", "1h"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("queued 30 deliveries"), "{err}");
    // Sent again with the same message ids: a receiver that deduplicates sees nothing new.
    for _ in 0..1200 {
        if receiver.accepted().len() >= before + 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.accepted().len() >= before + 30);
    assert_eq!(receiver.ids().len(), 30);
    let (ok, _, err) = cli(
        &db.url(),
        &[
            "webhook", "replay", "nope", "--org", &org.0, "--since", "1h",
        ],
    )
    .await;
    assert!(!ok && err.contains("no webhook nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_deliver_each_event() {
    let db = Database::create(Backend::Postgres).await;
    let dns = claimd_dns::testing::TestDnsServer::start().await.unwrap();
    let org = operator_org(&db.url()).await;
    let receiver = Receiver::start().await;
    let one = start(&db.url(), dns.addr(), FLAGS).await;
    let two = start(&db.url(), dns.addr(), FLAGS).await;
    register_at(&one.base, &org.1, &receiver.url).await;
    let per = 100;
    let (a, b) = tokio::join!(
        tokens(
            &one.base,
            &org,
            (0..per).map(|i| format!("a{i}.fleet.test"))
        ),
        tokens(
            &two.base,
            &org,
            (0..per).map(|i| format!("b{i}.fleet.test"))
        ),
    );
    let ((), ()) = (a, b);
    receiver.wait_for(2 * per).await;
    // Each event arrived; a duplicate (if any) carries the same webhook-id as the original.
    let by_event = receiver.ids_by_event();
    assert_eq!(by_event.len(), 2 * per);
    for (event, ids) in &by_event {
        assert_eq!(ids.len(), 1, "event {event} came with several ids: {ids:?}");
    }
    let duplicates = receiver.accepted().len() - 2 * per;
    eprintln!(
        "two processes: {} deliveries, {duplicates} duplicates",
        2 * per
    );
}
