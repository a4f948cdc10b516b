//! The real `claimd` binary: first start, the operator commands, the README walk, graceful
//! shutdown, restart on the same database.

use std::time::Duration;

use claimd_dns::testing::{Fault, FaultyDnsServer, TestDnsServer};
use serde_json::json;

use crate::process::{cli, exported, post, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_walk_operator_commands_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let mut server = start(&db, dns.addr(), &[]).await;

    // First start: one organization and one admin token, with a curl line to paste.
    let org = exported(&server.bootstrap, "CLAIMD_ORG").expect("org printed");
    let token = exported(&server.bootstrap, "CLAIMD_TOKEN").expect("token printed");
    assert!(
        server
            .bootstrap
            .iter()
            .any(|l| l.contains("curl") && l.contains(&server.base)),
        "{:?}",
        server.bootstrap
    );

    // The README walk.
    let base = server.base.clone();
    let (s, body) = post(
        &base,
        &org,
        &token,
        "getDomainVerificationToken",
        json!({"domain": "walk.test"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let txt = format!(
        "cisco-ci-domain-verification={}",
        body["token"].as_str().unwrap()
    );
    dns.set_txt("walk.test", &[&txt]).await;
    let (s, body) = post(
        &base,
        &org,
        &token,
        "verifyDomain",
        json!({"domain": "walk.test"}),
    )
    .await;
    assert_eq!(
        (s, &body["verifiedDomains"]),
        (200, &json!(["walk.test"])),
        "{body}"
    );
    let (s, body) = post(
        &base,
        &org,
        &token,
        "claimDomain",
        json!({"data": [{"domain": "walk.test"}]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = post(
        &base,
        &org,
        &token,
        "unclaimDomain",
        json!({"domain": "walk.test"}),
    )
    .await;
    assert_eq!(s, 204);
    let (s, body) = post(
        &base,
        &org,
        &token,
        "unverifyDomain",
        json!({"domain": "walk.test"}),
    )
    .await;
    assert_eq!((s, &body["verifiedDomains"]), (200, &json!([])), "{body}");

    // Operator commands work on the same database while the server runs.
    let (ok, stdout, _) = cli(&db, &["org", "create", "--name", "Second"]).await;
    assert!(ok);
    let second = stdout.trim().to_owned();
    assert_eq!(stdout.lines().count(), 1, "the id alone: {stdout:?}");
    let (ok, stdout, _) = cli(&db, &["org", "list"]).await;
    assert!(ok && stdout.contains(&second) && stdout.contains(&org));
    let (ok, stdout, stderr) =
        cli(&db, &["token", "create", "--org", &second, "--label", "ci"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "the secret alone: {stdout:?}");
    let secret = stdout.trim().to_owned();
    let credential_id = stderr.trim().rsplit(' ').next().unwrap().to_owned();
    let second_token_request = || {
        post(
            &base,
            &second,
            &secret,
            "getDomainVerificationToken",
            json!({"domain": "second.test"}),
        )
    };
    let (s, body) = second_token_request().await;
    assert_eq!(s, 200, "{body}");
    // A credential of the second organization is refused on the first.
    let (s, _) = post(
        &base,
        &org,
        &secret,
        "getDomainVerificationToken",
        json!({"domain": "x.test"}),
    )
    .await;
    assert_eq!(s, 403);
    let (ok, stdout, _) = cli(&db, &["token", "list", "--org", &second]).await;
    assert!(
        ok && stdout.contains(&credential_id) && stdout.contains("active"),
        "{stdout}"
    );
    assert!(!stdout.contains(&secret), "secrets are never listed");
    let (ok, _, _) = cli(&db, &["token", "revoke", &credential_id]).await;
    assert!(ok);
    // The server holds credentials in memory and polls for changes (every 250 ms by default):
    // a revocation made by another process takes effect within that.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = second_token_request().await;
        if s == 401 {
            break;
        }
        assert_eq!(s, 200, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "a credential revoked by another process still works after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, _, stderr) = cli(&db, &["token", "revoke", &credential_id]).await;
    assert!(ok && stderr.contains("already revoked"), "{stderr}");
    let (ok, stdout, _) = cli(&db, &["token", "list", "--org", &second]).await;
    assert!(
        ok && stdout.contains("revoked") && stdout.contains("never"),
        "{stdout}"
    );
    let (ok, _, stderr) = cli(&db, &["token", "revoke", "no-such-id"]).await;
    assert!(!ok && stderr.contains("no credential"));
    // Operator credentials are listed on their own.
    let (ok, _, stderr) = cli(&db, &["token", "create", "--operator", "--label", "ops"]).await;
    assert!(ok, "{stderr}");
    let operator_id = stderr.trim().rsplit(' ').next().unwrap().to_owned();
    let (ok, stdout, _) = cli(&db, &["token", "list", "--operator"]).await;
    assert!(
        ok && stdout.contains(&operator_id) && stdout.contains("ops"),
        "{stdout}"
    );
    assert!(!stdout.contains(&credential_id), "{stdout}");
    let (ok, _, stderr) = cli(&db, &["token", "list", "--org", ""]).await;
    assert!(!ok && stderr.contains("--org"), "{stderr}");
    let (ok, _, _) = cli(
        &db,
        &["token", "create", "--org", &second, "--scope", "made:up"],
    )
    .await;
    assert!(!ok, "unknown scopes are refused");

    // SIGTERM: a graceful stop with a success status.
    server.signal("-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    // Secrets never reach the log, not even from refused requests. The log is written in
    // batches and the rest on exit: it is complete once the shutdown line has been read.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log.lock().unwrap().clone();
        if log.contains("shutting down") {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shutdown line in the log: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        log.contains("request") && log.contains("status=401"),
        "the access log was captured, refusals included: {log}"
    );
    for secret in [&token, &secret] {
        assert!(!log.contains(secret.as_str()), "a secret was logged");
    }

    // A restart on the same database creates nothing new and keeps the data.
    let server = start(&db, dns.addr(), &[]).await;
    assert!(
        exported(&server.bootstrap, "CLAIMD_TOKEN").is_none(),
        "{:?}",
        server.bootstrap
    );
    let (s, body) = post(
        &server.base,
        &org,
        &token,
        "getDomainVerificationToken",
        json!({"domain": "walk.test"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        format!(
            "cisco-ci-domain-verification={}",
            body["token"].as_str().unwrap()
        ),
        txt,
        "token kept"
    );
}

/// A request in flight when SIGTERM arrives still gets its answer before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    // Verification against a server that never answers takes the whole 3 s DNS deadline.
    let hole = FaultyDnsServer::start(Fault::BlackHole).await.unwrap();
    let mut server = start(&db, hole.addr(), &[]).await;
    let org = exported(&server.bootstrap, "CLAIMD_ORG").unwrap();
    let token = exported(&server.bootstrap, "CLAIMD_TOKEN").unwrap();
    let (s, _) = post(
        &server.base,
        &org,
        &token,
        "getDomainVerificationToken",
        json!({"domain": "slow.test"}),
    )
    .await;
    assert_eq!(s, 200);

    let base = server.base.clone();
    let in_flight = tokio::spawn(async move {
        post(
            &base,
            &org,
            &token,
            "verifyDomain",
            json!({"domain": "slow.test"}),
        )
        .await
    });
    // Give the request time to reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("-TERM").await;

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 504, "the in-flight verify was answered: {body}");
    let exit = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Verification corroborated from three perspectives (one may miss), and `claimd check` for a
/// person at the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perspectives_and_the_check_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let views = [
        TestDnsServer::start().await.unwrap(),
        TestDnsServer::start().await.unwrap(),
        TestDnsServer::start().await.unwrap(),
    ];
    let flags: Vec<String> = ["east", "west", "north"]
        .iter()
        .zip(&views)
        .flat_map(|(name, v)| {
            [
                "--dns-perspective".to_owned(),
                format!("{name}={}", v.addr()),
            ]
        })
        .collect();
    let mut flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Unsigned test zones without a parent: nothing to validate.
    flag_refs.extend(["--dnssec", "off"]);
    // Commands other than serve and init create no database: they say which one they missed.
    let file = dir.path().join("claimd.db");
    let (ok, _, stderr) = cli(&db, &["org", "list"]).await;
    assert!(!ok && stderr.contains("no database at"), "{stderr}");
    assert!(!file.exists(), "org list created {}", file.display());
    let (ok, _, stderr) = cli(&db, &["init"]).await;
    assert!(ok && file.exists(), "{stderr}");
    let (org, token) = {
        let (ok, org, _) = cli(&db, &["org", "create", "--name", "p"]).await;
        assert!(ok);
        let org = org.trim().to_owned();
        let (ok, token, _) = cli(&db, &["token", "create", "--org", &org]).await;
        assert!(ok);
        (org, token.trim().to_owned())
    };
    let mut child = tokio::process::Command::new(crate::process::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .args(&flag_refs)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (base, _log) = crate::process::wait_listening(&mut child).await;

    let (s, body) = post(
        &base,
        &org,
        &token,
        "getDomainVerificationToken",
        json!({"domain": "q.test"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let value = format!(
        "cisco-ci-domain-verification={}",
        body["token"].as_str().unwrap()
    );
    views[0].set_txt("q.test", &[&value]).await;
    views[1].set_txt("q.test", &[&value]).await;
    views[2]
        .set_txt("q.test", &["cisco-ci-domain-verification=stale"])
        .await;

    // The command: two of three see it, which is enough.
    let mut args = vec!["check", "q.test", "--org", &org];
    args.extend(&flag_refs);
    let (ok, stdout, stderr) = cli(&db, &args).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("north")
            && stdout.contains("wrong_value")
            && stdout.contains("result: verified"),
        "{stdout}"
    );

    // One of three is not enough.
    views[1].remove_txt("q.test").await;
    let (ok, stdout, _) = cli(&db, &args).await;
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("hint:"), "{stdout}");
    let (s, body) = post(
        &base,
        &org,
        &token,
        "verifyDomain",
        json!({"domain": "q.test"}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let text = body["errors"][0]["description"].as_str().unwrap();
    assert!(
        text.contains("[west via") && text.contains("[north via"),
        "{text}"
    );

    views[1].set_txt("q.test", &[&value]).await;
    let (s, body) = post(
        &base,
        &org,
        &token,
        "verifyDomain",
        json!({"domain": "q.test"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_credential_cache_a_revocation_is_seen_by_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let server = start(&db, dns.addr(), &["--credential-recheck", "0"]).await;
    let (org, _) = server.first_admin();
    let (ok, stdout, stderr) = cli(&db, &["token", "create", "--org", &org]).await;
    assert!(ok, "{stderr}");
    let secret = stdout.trim().to_owned();
    let credential_id = stderr.trim().rsplit(' ').next().unwrap().to_owned();
    let body = json!({"domain": "recheck.test"});
    let (s, reply) = post(
        &server.base,
        &org,
        &secret,
        "getDomainVerificationToken",
        body.clone(),
    )
    .await;
    assert_eq!(s, 200, "{reply}");
    let (ok, _, _) = cli(&db, &["token", "revoke", &credential_id]).await;
    assert!(ok);
    let (s, _) = post(
        &server.base,
        &org,
        &secret,
        "getDomainVerificationToken",
        body,
    )
    .await;
    assert_eq!(
        s, 401,
        "with --credential-recheck 0 every request reads the database"
    );
}

/// `--log-format json`: every line one JSON object; the access log's carry the tracking id the
/// client saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_tracking_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let server = start(&db, dns.addr(), &["--log-format", "json"]).await;
    let (org, token) = server.first_admin();
    let reply = reqwest::Client::new()
        .post(format!(
            "{}/v1/identity/organizations/{org}/actions/getDomainVerificationToken",
            server.base
        ))
        .bearer_auth(&token)
        .json(&json!({"domain": "logs.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let tracking = reply.headers()["trackingid"].to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log.lock().unwrap().clone();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if let Some(line) = lines.iter().find(|l| l["tracking_id"] == tracking.as_str()) {
            assert_eq!(line["status"], 200, "{line}");
            assert_eq!(line["level"], "INFO", "{line}");
            assert!(line["timestamp"].is_string(), "{line}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line for {tracking}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sample of a scrape: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Scrapes `url` and parses the exposition with an OpenMetrics / Prometheus text-format parser.
async fn scrape(url: &str, token: Option<&str>) -> (u16, Vec<Sample>) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap();
    if status != 200 {
        return (status, Vec::new());
    }
    let (rest, families) = nom_openmetrics::parser::openmetrics(&text)
        .unwrap_or_else(|e| panic!("not OpenMetrics text ({e}):\n{text}"));
    assert!(rest.is_empty(), "unparsed: {rest}");
    let samples = families
        .iter()
        .flat_map(|f| &f.samples)
        .map(|s| {
            let labels = s
                .labels()
                .iter()
                .map(|l| (l.name.to_owned(), l.value.clone()))
                .collect();
            (s.name().to_owned(), labels, s.number())
        })
        .collect();
    (status, samples)
}

/// The value of the one sample `name` whose labels include every one of `labels`.
fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, have, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
        })
        .map(|(_, _, value)| *value)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {samples:?}");
    found[0]
}

/// `GET /metrics`: refused without the metrics token on the API's address, open on its own
/// address, parseable, and its counters move with the requests made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_lookups_and_domains() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let server = start(
        &db,
        dns.addr(),
        &[
            "--metrics-token",
            "scrape-me",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .await;
    let (org, token) = server.first_admin();
    let api_metrics = format!("{}/metrics", server.base);
    assert_eq!(scrape(&api_metrics, None).await.0, 401);
    assert_eq!(
        scrape(&api_metrics, Some(&token)).await.0,
        401,
        "an API token is not it"
    );
    // The metrics listener's address, logged after the API's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let own = loop {
        let log = server.log.lock().unwrap().clone();
        if let Some(rest) = log.split("metrics=").nth(1) {
            break format!("http://{}/metrics", rest.split_whitespace().next().unwrap());
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let act = |action: &'static str| {
        let body = json!({"domain": "metered.test"});
        post(&server.base, &org, &token, action, body)
    };
    assert_eq!(act("getDomainVerificationToken").await.0, 200);
    // Not published yet: one lookup that finds nothing.
    assert_eq!(act("verifyDomain").await.0, 400);

    let (s, first) = scrape(&api_metrics, Some("scrape-me")).await;
    assert_eq!(s, 200);
    let token_route = [
        (
            "route",
            "/v1/identity/organizations/{orgId}/actions/getDomainVerificationToken",
        ),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&first, "claimd_http_requests_total", &token_route),
        1.0
    );
    // The name is not in the zone: NXDOMAIN.
    assert_eq!(
        sample(
            &first,
            "claimd_dns_lookups_total",
            &[("outcome", "nxdomain")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &first,
            "claimd_dns_lookups_total",
            &[("outcome", "verified")]
        ),
        0.0
    );
    assert_eq!(
        sample(&first, "claimd_domains", &[("state", "pending")]),
        1.0
    );
    assert_eq!(
        sample(&first, "claimd_domains", &[("state", "claimed")]),
        0.0
    );

    // Counters move; the open listener serves the same.
    assert_eq!(act("getDomainVerificationToken").await.0, 200);
    let (s, second) = scrape(&own, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        sample(&second, "claimd_http_requests_total", &token_route),
        2.0
    );
    assert!(
        sample(
            &second,
            "claimd_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ) >= 2.0
    );
}

/// `--config FILE`: a flag wins over the environment, which wins over the file, which wins
/// over the default; `config show` says so with secrets masked; an unknown key is refused with
/// its line; `serve` runs with the file's settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_precedence_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claimd.toml");
    std::fs::write(
        &file,
        "# claimd\n\
         dns-timeout = \"7s\"\n\
         limit-per-credential = 5\n\
         max-claim-batch = 9\n\
         metrics-token = \"from-the-file\"\n\
         dns-server = [\"127.0.0.1:5353\", \"127.0.0.1:5354\"]\n\
         webhook-allow-http = true\n",
    )
    .unwrap();
    let show = tokio::process::Command::new(crate::process::BIN)
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--dns-timeout", "8s"])
        .env("CLAIMD_LIMIT_PER_CREDENTIAL", "6")
        .env_remove("CLAIMD_MAX_CLAIM_BATCH")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8(show.stdout).unwrap();
    assert!(show.status.success(), "{out}");
    for line in [
        "dns-timeout = \"8s\"  # flag",
        "limit-per-credential = \"6\"  # env",
        "max-claim-batch = \"9\"  # file",
        "metrics-token = \"****\"  # file",
        "dns-server = [\"127.0.0.1:5353\", \"127.0.0.1:5354\"]  # file",
        "webhook-allow-http = true  # file",
        "limit-per-organization = \"1200\"  # default",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    assert!(
        !out.contains("from-the-file"),
        "a secret was printed:\n{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\n\ndns-timout = \"3s\"\n").unwrap();
    let refused = tokio::process::Command::new(crate::process::BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8(refused.stderr).unwrap();
    assert!(!refused.status.success());
    assert!(
        err.contains("line 3") && err.contains("'dns-timout'"),
        "{err}"
    );

    // serve takes the file's settings: the metrics token.
    let served = dir.path().join("served.toml");
    std::fs::write(&served, "metrics-token = \"from-the-file\"\n").unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let config = served.display().to_string();
    let server = start(&db, dns.addr(), &["--config", &config]).await;
    let metrics = format!("{}/metrics", server.base);
    assert_eq!(scrape(&metrics, Some("from-the-file")).await.0, 200);
    assert_eq!(scrape(&metrics, Some("another")).await.0, 401);
}

/// Runs `claimd domain …` against `server` as `org`; (exit code, stdout, stderr).
async fn domain_cli(server: &crate::process::Server, args: &[&str]) -> (i32, String, String) {
    let (org, token) = server.first_admin();
    let out = domain_command(server, &org, &token, args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn domain_command(
    server: &crate::process::Server,
    org: &str,
    token: &str,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(crate::process::BIN);
    command
        .arg("domain")
        .args(args)
        .env("CLAIMD_SERVER", &server.base)
        .env("CLAIMD_ORG", org)
        .env("CLAIMD_TOKEN", token)
        .kill_on_drop(true);
    command
}

/// The client CLI: `add` prints the record; `verify --wait` verifies as soon as the record
/// appears (published a few seconds after it starts) and gives up at its timeout with the last
/// report when it never does; the other steps, `list`, `show`, `check`, `--json`, exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cli_walks_the_lifecycle_and_waits_for_dns() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let server = start(&db, dns.addr(), &[]).await;

    let (code, out, err) = domain_cli(&server, &["add", "waited.test"]).await;
    assert_eq!(code, 0, "{err}");
    let value = out
        .lines()
        .find_map(|l| l.split("value: ").nth(1))
        .unwrap_or_else(|| panic!("no value in: {out}"))
        .trim()
        .to_owned();
    assert!(value.starts_with("cisco-ci-domain-verification="), "{out}");
    assert!(
        out.contains(&format!("waited.test.  300  IN  TXT  \"{value}\"")),
        "{out}"
    );

    // Not published yet: check says so and exits 1.
    let (code, out, _) = domain_cli(&server, &["check", "waited.test"]).await;
    assert_eq!(code, 1, "{out}");

    // verify --wait, with the record published two seconds later.
    let (org, token) = server.first_admin();
    let waiting = domain_command(
        &server,
        &org,
        &token,
        &[
            "verify",
            "waited.test",
            "--wait",
            "--timeout",
            "60s",
            "--claim",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    dns.set_txt("waited.test", &[&value]).await;
    let done = tokio::time::timeout(Duration::from_secs(60), waiting.wait_with_output())
        .await
        .expect("verify --wait returned")
        .unwrap();
    let (out, err) = (
        String::from_utf8(done.stdout).unwrap(),
        String::from_utf8(done.stderr).unwrap(),
    );
    assert_eq!(done.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("waited.test is verified and claimed"), "{out}");
    assert!(
        err.contains("waiting for TXT waited.test."),
        "progress: {err}"
    );

    // A record that never appears: exit 1 at the timeout, with the last report.
    let (code, _, _) = domain_cli(&server, &["add", "never.test"]).await;
    assert_eq!(code, 0);
    let (code, _, err) = domain_cli(
        &server,
        &["verify", "never.test", "--wait", "--timeout", "3s"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not verifiable within 3s") && err.contains("Looked up TXT never.test."),
        "{err}"
    );

    // The table, one domain, JSON for scripts, and the other steps.
    let (code, out, _) = domain_cli(&server, &["list"]).await;
    assert_eq!(code, 0);
    let waited = out.lines().find(|l| l.starts_with("waited.test")).unwrap();
    assert!(waited.contains("claimed"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("never.test") && l.contains("pending"))
    );
    let (code, out, _) = domain_cli(&server, &["show", "waited.test", "--json"]).await;
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["status"], "claimed");
    assert_eq!(domain_cli(&server, &["unclaim", "waited.test"]).await.0, 0);
    assert_eq!(domain_cli(&server, &["claim", "waited.test"]).await.0, 0);
    // A claimed domain is unclaimed before it can be unverified.
    let (code, _, err) = domain_cli(&server, &["unverify", "waited.test"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(domain_cli(&server, &["unclaim", "waited.test"]).await.0, 0);
    assert_eq!(domain_cli(&server, &["unverify", "waited.test"]).await.0, 0);

    // Refused: 1, with the server's message; usage: 2; unreachable: 3.
    let (code, _, err) = domain_cli(&server, &["claim", "never.test"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("never.test"), "{err}");
    let out = tokio::process::Command::new(crate::process::BIN)
        .args(["domain", "list"])
        .env_remove("CLAIMD_TOKEN")
        .env_remove("CLAIMD_ORG")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let mut gone = domain_command(&server, &org, &token, &["list"]);
    gone.env("CLAIMD_SERVER", "http://127.0.0.1:9");
    let out = gone.output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

/// Under systemd (`Type=notify`): `READY=1` once claimd listens, `STOPPING=1` when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let dns = TestDnsServer::start().await.unwrap();
    let mut child = tokio::process::Command::new(crate::process::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .arg("--dns-server")
        .arg(dns.addr().to_string())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (base, _log) = crate::process::wait_listening(&mut child).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("READY=1 within 10 s")
        .unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "ready means it answers");
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("STOPPING=1 within 10 s")
        .unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// The systemd unit in `packaging/` passes `systemd-analyze verify` without a warning (with
/// ExecStart pointed at the binary under test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/claimd.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/claimd serve"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claimd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/claimd", crate::process::BIN),
    )
    .unwrap();
    let out = tokio::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .await
        .expect("systemd-analyze (Debian: apt install systemd) to check packaging/claimd.service");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

/// Shell completions and the manual page come from the same clap definitions as the commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_manual_page() {
    let run = |args: &'static [&'static str]| async move {
        let out = tokio::process::Command::new(crate::process::BIN)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]).await;
    assert!(
        bash.contains("_claimd()") && bash.contains("dry-run"),
        "{bash}"
    );
    let zsh = run(&["completions", "zsh"]).await;
    assert!(
        zsh.contains("#compdef claimd") && zsh.contains("domain"),
        "{zsh}"
    );
    let fish = run(&["completions", "fish"]).await;
    assert!(
        fish.contains("complete -c claimd") && fish.contains("serve"),
        "{fish}"
    );
    let man = run(&["man"]).await;
    assert!(man.contains(".TH claimd"), "{man}");
    assert!(man.contains("serve") && man.contains("domain"), "{man}");
}
