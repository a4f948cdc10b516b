//! Several real claimd processes on one database, a database outage under traffic, and
//! `kill -9` in the middle of a stream of writes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use claimd_dns::testing::TestDnsServer;
use claimd_store_postgres::testing::{PrivateCluster, TestDatabase};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::process::{Server, call, cli, post, start};

/// An organization and an admin token made with the operator commands.
async fn operator_org(db_url: &str, name: &str) -> (String, String) {
    let (ok, org, err) = cli(db_url, &["org", "create", "--name", name]).await;
    assert!(ok, "{err}");
    let org = org.trim().to_owned();
    let (ok, token, err) = cli(db_url, &["token", "create", "--org", &org]).await;
    assert!(ok, "{err}");
    (org, token.trim().to_owned())
}

/// Gets a token through `server`, adds it to the TXT records at `domain`, verifies.
async fn verify_through(
    server: &Server,
    dns: &TestDnsServer,
    published: &mut Vec<String>,
    org: &(String, String),
    domain: &str,
) {
    let (s, body) = post(
        &server.base,
        &org.0,
        &org.1,
        "getDomainVerificationToken",
        json!({"domain": domain}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    published.push(format!(
        "cisco-ci-domain-verification={}",
        body["token"].as_str().unwrap()
    ));
    let values: Vec<&str> = published.iter().map(String::as_str).collect();
    dns.set_txt(domain, &values).await;
    let (s, body) = post(
        &server.base,
        &org.0,
        &org.1,
        "verifyDomain",
        json!({"domain": domain}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

/// Sends 50 claims at once, one `(process, organization, domain)` case after another, and checks
/// that exactly one organization wins: every request of the winner 200, every other one 409.
async fn claim_race(cases: &[(&Server, &(String, String), &str)]) {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let who = i % cases.len();
        let (server, org, domain) = cases[who];
        let (base, org, client) = (server.base.clone(), org.clone(), client.clone());
        let body = json!({"data": [{"domain": domain}]});
        tasks.push(tokio::spawn(async move {
            let (status, _, _) = call(&client, &base, &org.0, &org.1, "claimDomain", &body)
                .await
                .unwrap();
            (org.0, status)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: HashSet<&String> = results
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one organization holds the claim: {results:?}"
    );
    for (org, status) in &results {
        let expected = if winners.contains(org) { 200 } else { 409 };
        assert_eq!(*status, expected, "{results:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_claim_exactly_once() {
    let db = TestDatabase::create().await;
    let url = db.url();
    let dns = TestDnsServer::start().await.unwrap();
    let (one, two) = tokio::join!(start(&url, dns.addr(), &[]), start(&url, dns.addr(), &[]));
    let a = operator_org(&url, "a").await;
    let b = operator_org(&url, "b").await;

    // The same domain, verified by both organizations, one through each process.
    let mut published = Vec::new();
    verify_through(&one, &dns, &mut published, &a, "race.test").await;
    verify_through(&two, &dns, &mut published, &b, "race.test").await;
    // Both organizations on both processes.
    claim_race(&[
        (&one, &a, "race.test"),
        (&two, &b, "race.test"),
        (&two, &a, "race.test"),
        (&one, &b, "race.test"),
    ])
    .await;

    // A parent and a child, each verified by a different organization.
    let mut published = Vec::new();
    verify_through(&one, &dns, &mut published, &a, "family.test").await;
    let mut published = Vec::new();
    verify_through(&two, &dns, &mut published, &b, "x.family.test").await;
    claim_race(&[
        (&one, &a, "family.test"),
        (&two, &b, "x.family.test"),
        (&two, &a, "family.test"),
        (&one, &b, "x.family.test"),
    ])
    .await;
}

/// How many processes `server` shares its rate limits with, from its metrics.
async fn fleet_members(server: &Server) -> Option<u32> {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .bearer_auth("scrape")
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("claimd_fleet_members "))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until every one of `servers` counts `n` processes; how long that took.
async fn until_members(servers: &[&Server], n: u32) -> Duration {
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        let mut all = true;
        for s in servers {
            all &= fleet_members(s).await == Some(n);
        }
        if all {
            return started.elapsed();
        }
        assert!(std::time::Instant::now() < deadline, "never {n} members");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `count` authenticated reads round-robin over `servers` with `token`; how many were
/// admitted (200) and how long it took. Every other answer must be a 429.
async fn admitted(servers: &[&Server], org: &str, token: &str, count: usize) -> (u32, Duration) {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut ok = 0;
    for i in 0..count {
        let base = &servers[i % servers.len()].base;
        let r = client
            .get(format!("{base}/v1/identity/organizations/{org}/domains"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => assert!(r.headers().contains_key("retry-after")),
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
    (ok, started.elapsed())
}

/// Three processes on one database together admit a per-credential limit of L a minute, not
/// 3 L; one killed with -9 gives its share back to the others once its heartbeat is stale, and
/// one that stops gracefully gives it back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_rate_limits() {
    const L: u32 = 60;
    let db = TestDatabase::create().await;
    let url = db.url();
    let dns = TestDnsServer::start().await.unwrap();
    let flags = [
        "--limit-per-credential",
        "60",
        "--limit-per-organization",
        "0",
        "--metrics-token",
        "scrape",
    ];
    let (mut one, two, mut three) = tokio::join!(
        start(&url, dns.addr(), &flags),
        start(&url, dns.addr(), &flags),
        start(&url, dns.addr(), &flags)
    );
    let (org, token) = operator_org(&url, "fleet").await;
    until_members(&[&one, &two, &three], 3).await;

    // Each process admits a third of the burst; the quota refills at L a minute for the whole
    // fleet, i.e. one request a second, which is the only slack while the fleet is stable.
    let (ok, took) = admitted(&[&one, &two, &three], &org, &token, 3 * L as usize).await;
    let refilled = took.as_secs() as u32 + 1;
    eprintln!(
        "three processes admitted {ok} of {} requests in {took:?}",
        3 * L
    );
    assert!(
        (L - 3..=L + refilled).contains(&ok),
        "three processes admitted {ok} of a limit of {L} in {took:?}"
    );

    one.kill9().await;
    let back = until_members(&[&two, &three], 2).await;
    eprintln!("a killed process's share came back after {back:?} (heartbeat 2 s, ttl 10 s)");
    // A fresh credential: the two left admit half each, the whole limit between them.
    let (ok, token2, err) = cli(&url, &["token", "create", "--org", &org]).await;
    assert!(ok, "{err}");
    let (ok, took) = admitted(&[&two, &three], &org, token2.trim(), 2 * L as usize).await;
    let refilled = took.as_secs() as u32 + 1;
    eprintln!(
        "two processes admitted {ok} of {} requests in {took:?}",
        2 * L
    );
    assert!(
        (L - 2..=L + refilled).contains(&ok),
        "two processes admitted {ok} of a limit of {L} in {took:?}"
    );

    // A graceful stop leaves the fleet at once.
    three.signal("-TERM").await;
    let status = three.child.wait().await.unwrap();
    assert!(status.success(), "{status}");
    let (ok, _, err) = cli(&url, &["token", "create", "--org", &org]).await;
    assert!(ok, "{err}");
    until_members(&[&two], 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_recovers_without_restart() {
    let cluster = PrivateCluster::start().await;
    let dns = TestDnsServer::start().await.unwrap();
    let server = start(
        &cluster.url(),
        dns.addr(),
        &["--db-acquire-timeout", "1s", "--db-statement-timeout", "2s"],
    )
    .await;
    let (org, token) = server.first_admin();
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let statuses: Arc<Mutex<Vec<u16>>> = Arc::default();

    // Traffic that keeps running while the database goes away.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, base, org, token) = (
            client.clone(),
            server.base.clone(),
            org.clone(),
            token.clone(),
        );
        let (acked, statuses, stop) = (acked.clone(), statuses.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 2000 {
                let domain = format!("d{i}.outage.test");
                let r = call(
                    &client,
                    &base,
                    &org,
                    &token,
                    "getDomainVerificationToken",
                    &json!({"domain": domain}),
                )
                .await;
                if let Ok((status, retry_after, body)) = r {
                    if status == 200 {
                        acked
                            .lock()
                            .await
                            .insert(domain, body["token"].as_str().unwrap().to_owned());
                    } else {
                        assert!(status != 503 || retry_after, "503 without Retry-After");
                    }
                    statuses.lock().await.push(status);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // While it is down: 503 with Retry-After in the Webex shape; readyz not ready; healthz up.
    let (status, retry_after, body) = call(
        &client,
        &server.base,
        &org,
        &token,
        "getDomainVerificationToken",
        &json!({"domain": "down.test"}),
    )
    .await
    .unwrap();
    assert_eq!((status, retry_after), (503, true), "{body}");
    assert!(
        body["trackingId"].is_string() && body["errors"][0]["description"].is_string(),
        "{body}"
    );
    assert!(
        !body.to_string().contains("Connection refused"),
        "nothing internal leaks: {body}"
    );
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    cluster.resume().await;
    // Without restarting claimd, requests succeed again.
    let mut recovered = false;
    for _ in 0..50 {
        let (status, _, _) = call(
            &client,
            &server.base,
            &org,
            &token,
            "getDomainVerificationToken",
            &json!({"domain": "back.test"}),
        )
        .await
        .unwrap();
        if status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "claimd did not recover when the database returned"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.unwrap();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let statuses = statuses.lock().await.clone();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "never a 500: {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the outage was seen by the traffic"
    );
    // Every request acknowledged with 200 is still there.
    let acked = acked.lock().await.clone();
    assert!(!acked.is_empty());
    for (domain, expected) in &acked {
        let (status, body) = post(
            &server.base,
            &org,
            &token,
            "getDomainVerificationToken",
            json!({"domain": domain}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["token"].as_str(),
            Some(expected.as_str()),
            "{domain} kept its token"
        );
    }
    drop(server);
}

/// `kill -9` while claimd serves a stream of getToken and claim requests: after a restart,
/// every 2xx is in the database and no record is half-applied.
async fn kill9_loses_nothing_acknowledged(db_url: &str) {
    let dns = TestDnsServer::start().await.unwrap();
    let mut server = start(db_url, dns.addr(), &[]).await;
    let admin = server.first_admin();
    let (org, token) = admin.clone();
    // Domains ready to be claimed.
    for i in 0..40 {
        let mut published = Vec::new();
        verify_through(
            &server,
            &dns,
            &mut published,
            &admin,
            &format!("c{i}.crash.test"),
        )
        .await;
    }
    let client = reqwest::Client::new();
    let acked_tokens: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let acked_claims: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, org, token) = (
            client.clone(),
            server.base.clone(),
            org.clone(),
            token.clone(),
        );
        let (acked_tokens, acked_claims) = (acked_tokens.clone(), acked_claims.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..200 {
                let n = w * 200 + i;
                let (action, body): (&str, Value) = if n % 2 == 0 {
                    (
                        "getDomainVerificationToken",
                        json!({"domain": format!("g{n}.crash.test")}),
                    )
                } else {
                    (
                        "claimDomain",
                        json!({"data": [{"domain": format!("c{}.crash.test", n % 40)}]}),
                    )
                };
                match call(&client, &base, &org, &token, action, &body).await {
                    Ok((200, _, reply)) if n % 2 == 0 => {
                        acked_tokens.lock().await.insert(
                            reply["domain"].as_str().unwrap().to_owned(),
                            reply["token"].as_str().unwrap().to_owned(),
                        );
                    }
                    Ok((200, _, reply)) => {
                        acked_claims
                            .lock()
                            .await
                            .insert(reply["data"][0]["domain"].as_str().unwrap().to_owned());
                    }
                    Ok((status, _, reply)) => {
                        panic!("unexpected {status} before the crash: {reply}")
                    }
                    Err(_) => return, // the process is gone
                }
            }
        }));
    }
    // Let the stream run, then kill the process in the middle of it.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if acked_tokens.lock().await.len() + acked_claims.lock().await.len() >= 150 {
            break;
        }
    }
    server.kill9().await;
    for w in workers {
        w.await.unwrap();
    }

    let server = start(db_url, dns.addr(), &[]).await;
    assert!(
        server.bootstrap.is_empty(),
        "no second bootstrap: {:?}",
        server.bootstrap
    );
    let base = format!("{}/v1/identity/organizations/{org}", server.base);
    let mut states = HashMap::new();
    let mut url = format!("{base}/domains?max=1000");
    loop {
        let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Value = r.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            let d = item["domain"].as_str().unwrap().to_owned();
            states.insert(
                d,
                (
                    item["status"].as_str().unwrap().to_owned(),
                    item["token"].as_str().unwrap().to_owned(),
                    item["claimed"].clone(),
                ),
            );
        }
        match link {
            Some(l) => url = l[1..l.find('>').unwrap()].to_owned(),
            None => break,
        }
    }
    for (domain, token) in acked_tokens.lock().await.iter() {
        let (status, stored, _) = states
            .get(domain)
            .unwrap_or_else(|| panic!("acknowledged {domain} lost"));
        assert_eq!((status.as_str(), stored), ("pending", token), "{domain}");
    }
    for domain in acked_claims.lock().await.iter() {
        assert_eq!(
            states[domain].0, "claimed",
            "acknowledged claim of {domain} lost"
        );
    }
    for (domain, (status, _, claimed_at)) in &states {
        // A claim carries its timestamp (the schema's CHECK), and nothing is in between states.
        assert!(
            ["pending", "verified", "claimed"].contains(&status.as_str()),
            "{domain}: {status}"
        );
        assert_eq!(
            status == "claimed",
            claimed_at.is_string(),
            "{domain} half-applied"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    kill9_loses_nothing_acknowledged(&format!(
        "sqlite:{}",
        dir.path().join("claimd.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_on_postgres_loses_nothing_acknowledged() {
    let db = TestDatabase::create().await;
    kill9_loses_nothing_acknowledged(&db.url()).await;
}
