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
    let (ok, _, stderr) = cli(&db, &["token", "revoke", "no-such-id"]).await;
    assert!(!ok && stderr.contains("no credential"));
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
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
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
