//! End to end against a real authoritative server, Knot DNS, changed at run time through
//! RFC 2136 updates (knsupdate), exactly as an operator's DNS would be.

use std::net::SocketAddr;

use serde_json::json;
use tokio::process::Child;

use claimd_dns::testing::signed_tree as knotd;

use crate::process::{call, start};

pub const ZONE: &str = "knot.test";

/// A knotd serving `knot.test.` on a free loopback port, from a scratch directory.
pub struct Knot {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Knot {
    pub async fn start() -> Self {
        // The free port is found before knotd binds it; if another process takes it meanwhile,
        // knotd exits, and it is started again on another.
        for _ in 0..5 {
            if let Some(knot) = Self::try_start().await {
                return knot;
            }
        }
        panic!("knotd did not start");
    }

    async fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["zones", "db", "run"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let port = knotd::free_port();
        let conf = format!(
            "server:\n    rundir: \"{root}/run\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{root}/db\"\n\
             acl:\n  - id: local_update\n    address: 127.0.0.1\n    action: update\n\
             template:\n  - id: default\n    storage: \"{root}/zones\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n  - domain: {ZONE}\n    acl: local_update\n",
            root = root.display()
        );
        std::fs::write(root.join("knot.conf"), conf).unwrap();
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 60\n@ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 5\n@ NS ns\nns A 127.0.0.1\n"
        );
        std::fs::write(root.join("zones").join(format!("{ZONE}.zone")), zone).unwrap();
        let mut knot = Self {
            child: knotd::spawn_knotd(&root.join("knot.conf")),
            _dir: dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let answers = |soa: &str| !soa.is_empty();
        knotd::wait_for(
            &mut knot.child,
            knot.addr,
            &["SOA", &format!("{ZONE}.")],
            answers,
        )
        .await
        .then_some(knot)
    }

    /// Stops the server: from now on nothing answers at its address.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Publishes `value` as the only TXT record at `name` (under the zone).
    pub async fn set_txt(&self, name: &str, value: &str) {
        self.update(&[
            format!("update delete {name}. TXT"),
            format!("update add {name}. 5 TXT \"{value}\""),
        ])
        .await;
    }

    pub async fn remove_txt(&self, name: &str) {
        self.update(&[format!("update delete {name}. TXT")]).await;
    }

    /// Sends one RFC 2136 update with the given `update …` lines.
    pub async fn update(&self, lines: &[String]) {
        claimd_dns::testing::signed_tree::knsupdate(self.addr, ZONE, lines).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_verify_delete_against_knot() {
    let knot = Knot::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("claimd.db").display());
    let server = start(&db, knot.addr, &[]).await;
    let (org, token) = server.first_admin();
    let client = reqwest::Client::new();
    let act = |action: &'static str, body: serde_json::Value| {
        let (client, base, org, token) = (
            client.clone(),
            server.base.clone(),
            org.clone(),
            token.clone(),
        );
        async move {
            call(&client, &base, &org, &token, action, &body)
                .await
                .unwrap()
        }
    };
    let domain = format!("walk.{ZONE}");

    let (status, _, body) = act("getDomainVerificationToken", json!({"domain": domain})).await;
    assert_eq!(status, 200, "{body}");
    let value = format!(
        "cisco-ci-domain-verification={}",
        body["token"].as_str().unwrap()
    );
    // Before publishing: not found, with what was asked.
    let (status, _, body) = act("verifyDomain", json!({"domain": domain})).await;
    assert_eq!(status, 400, "{body}");

    knot.update(&[format!("update add {domain}. 5 TXT \"{value}\"")])
        .await;
    let (status, _, body) = act("verifyDomain", json!({"domain": domain})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verifiedDomains"], json!([domain]));

    // Deleted: an immediate dry run reports it gone.
    knot.update(&[format!("update delete {domain}. TXT")]).await;
    let id = "d2Fsay5rbm90LnRlc3Q"; // base64url("walk.knot.test")
    let r = client
        .post(format!(
            "{}/v1/identity/organizations/{org}/domains/{id}/check",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["status"], "verified", "the dry run changed nothing");

    // Knot answers an oversized RRset over UDP with TC=1 and no records: TCP must finish it.
    let big = format!("big.{ZONE}");
    let (status, _, body) = act("getDomainVerificationToken", json!({"domain": big})).await;
    assert_eq!(status, 200, "{body}");
    let value = format!(
        "cisco-ci-domain-verification={}",
        body["token"].as_str().unwrap()
    );
    let mut lines: Vec<String> = (0..70)
        .map(|i| {
            format!(
                "update add {big}. 5 TXT \"vendor{i:02}-site-verification={}\"",
                "z".repeat(40)
            )
        })
        .collect();
    lines.push(format!("update add {big}. 5 TXT \"{value}\""));
    knot.update(&lines).await;
    let (status, _, body) = act("verifyDomain", json!({"domain": big})).await;
    assert_eq!(status, 200, "{body}");
}
