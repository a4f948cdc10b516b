//! A signed DNS tree served by one Knot (`knotd`) on loopback, for DNSSEC tests and the
//! benchmark: a root zone of its own (its KSK is the trust anchor), `test.` under it, and zones
//! under `test.` in every state a validator must tell apart:
//!
//! | zone            | signing                           | parent's DS              | answers are |
//! |-----------------|-----------------------------------|--------------------------|-------------|
//! | `secure.test.`  | Knot, NSEC                        | matches                  | secure      |
//! | `nsec3.test.`   | Knot, NSEC3                       | matches                  | secure      |
//! | `plain.test.`   | none                              | none (opt-out NSEC3)     | insecure    |
//! | `rekeyed.test.` | Knot                              | for another key          | bogus       |
//! | `expired.test.` | dnssec-signzone, valid in 2020    | matches                  | bogus       |
//!
//! `test.` itself is signed with NSEC3 opt-out. Records change at run time through RFC 2136
//! updates (`knsupdate`); Knot signs them at once. `expired.test.` is fixed: its one TXT record
//! is [`EXPIRED_TXT`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

/// The TXT record `expired.test.` serves, under signatures that expired in 2020.
pub const EXPIRED_TXT: &str = "cisco-ci-domain-verification=expired";

const KNOT_SIGNED: [(&str, &str); 4] = [
    ("test", "optout"),
    ("secure.test", "nsec"),
    ("nsec3.test", "nsec3"),
    ("rekeyed.test", "nsec"),
];

pub struct SignedTree {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl SignedTree {
    /// Signs and serves the tree; panics when Knot or BIND's signer is missing (the project's
    /// scripts install them).
    pub async fn start() -> Self {
        for _ in 0..5 {
            if let Some(tree) = Self::try_start().await {
                return tree;
            }
        }
        panic!("knotd did not start");
    }

    /// Where the tree answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A file with the test root's key-signing key, in the form `--dnssec-trust-anchor` reads.
    pub fn trust_anchor(&self) -> PathBuf {
        self.dir.path().join("anchor")
    }

    /// The same trust anchor as the DS record of the test root's key-signing key.
    pub fn trust_anchor_ds(&self) -> PathBuf {
        self.dir.path().join("anchor-ds")
    }

    /// Publishes `values` as the TXT records at `name` (under one of the updatable zones).
    pub async fn set_txt(&self, name: &str, values: &[&str]) {
        let mut lines = vec![format!("update delete {name}. TXT")];
        for v in values {
            lines.push(format!("update add {name}. 5 TXT \"{v}\""));
        }
        self.update(zone_of(name), &lines).await;
    }

    /// Publishes one TXT record at each name with `ttl` (seconds), in one update of `zone`.
    pub async fn set_txt_many(&self, zone: &str, ttl: u32, records: &[(String, String)]) {
        let lines: Vec<String> = records
            .iter()
            .map(|(name, value)| format!("update add {name}. {ttl} TXT \"{value}\""))
            .collect();
        self.update(zone, &lines).await;
    }

    pub async fn remove_txt(&self, name: &str) {
        self.update(zone_of(name), &[format!("update delete {name}. TXT")])
            .await;
    }

    async fn update(&self, zone: &str, lines: &[String]) {
        knsupdate(self.addr, zone, lines).await;
    }

    async fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["zones", "db", "run", "keys", "bind"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let port = free_port();
        write_zones(root);
        let expired_ds = sign_expired(root).await;
        std::fs::write(root.join("knot.conf"), knot_conf(root, port)).unwrap();
        let child = spawn_knotd(&root.join("knot.conf"));
        let mut tree = Self {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Knot signs each zone as it loads it.
        for zone in [".", "test.", "secure.test.", "nsec3.test.", "rekeyed.test."] {
            let signed = |keys: &str| keys.contains("257 3 13");
            if !wait_for(&mut tree.child, tree.addr, &["DNSKEY", zone], signed).await {
                return None;
            }
        }
        let anchor: Vec<String> = tree
            .dig(&["DNSKEY", "."])
            .await
            .lines()
            .filter(|l| l.starts_with("257 "))
            .map(|l| format!(". 5 IN DNSKEY {l}"))
            .collect();
        std::fs::write(tree.trust_anchor(), anchor.join("\n") + "\n").unwrap();
        let root_ds = tree.ds("").await.replacen(" 5 DS ", " IN DS ", 1);
        std::fs::write(tree.trust_anchor_ds(), root_ds + "\n").unwrap();
        // The chain: the root holds test.'s DS, test. its children's (rekeyed.test. gets the
        // DS of another zone's key: re-keyed without telling the parent).
        let test_ds = tree.ds("test").await;
        tree.update(".", &[format!("update add {test_ds}")]).await;
        let secure_ds = tree.ds("secure.test").await;
        let nsec3_ds = tree.ds("nsec3.test").await;
        let stale_ds = secure_ds.replacen("secure.test.", "rekeyed.test.", 1);
        tree.update(
            "test",
            &[
                format!("update add {secure_ds}"),
                format!("update add {nsec3_ds}"),
                format!("update add {stale_ds}"),
                format!("update add {expired_ds}"),
            ],
        )
        .await;
        for _ in 0..100 {
            if !tree.dig(&["DS", "secure.test."]).await.is_empty() {
                return Some(tree);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// `kdig +short` through the tree.
    async fn dig(&self, args: &[&str]) -> String {
        kdig(self.addr, args).await
    }

    /// The SHA-256 DS record of a Knot-signed zone's KSK, as an update line's record part.
    async fn ds(&self, zone: &str) -> String {
        let out = Command::new("keymgr")
            .arg("-c")
            .arg(self.dir.path().join("knot.conf"))
            .args([&format!("{}.", zone.trim_end_matches('.')), "ds"])
            .output()
            .await
            .expect("keymgr (Debian package knot)");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("2"))
            .unwrap_or_else(|| panic!("no SHA-256 DS for {zone}: {text}"));
        // `<name> DS <tag> 13 2 <hex>` → `<name> 5 DS <tag> 13 2 <hex>`
        line.replacen(" DS ", " 5 DS ", 1)
    }
}

/// The zone a name is updated in.
fn zone_of(name: &str) -> &'static str {
    let name = name.trim_end_matches('.');
    for zone in ["secure.test", "nsec3.test", "rekeyed.test", "plain.test"] {
        if name == zone || name.ends_with(&format!(".{zone}")) {
            return zone;
        }
    }
    panic!("{name} is not under an updatable zone of the signed tree")
}

fn soa(origin: &str) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 5\n@ SOA ns.test. hostmaster.test. 1 3600 600 86400 5\n@ NS ns.test.\n"
    )
}

fn write_zones(root: &Path) {
    let zones = root.join("zones");
    let write = |zone: &str, text: String| std::fs::write(zones.join(format!("{zone}.zone")), text);
    write("", soa(".") + "test. NS ns.test.\nns.test. A 127.0.0.1\n").unwrap();
    let mut test = soa("test.") + "ns A 127.0.0.1\n";
    for child in ["secure", "nsec3", "plain", "rekeyed", "expired"] {
        test += &format!("{child} NS ns.test.\n");
    }
    write("test", test).unwrap();
    for zone in ["secure.test", "nsec3.test", "plain.test", "rekeyed.test"] {
        write(zone, soa(&format!("{zone}."))).unwrap();
    }
}

/// Signs `expired.test.` with BIND's signer, valid only in January 2020; returns its DS as an
/// update line's record part.
async fn sign_expired(root: &Path) -> String {
    let bind = root.join("bind");
    let unsigned = bind.join("expired.test.zone");
    std::fs::write(
        &unsigned,
        soa("expired.test.") + &format!("@ TXT \"{EXPIRED_TXT}\"\n"),
    )
    .unwrap();
    for extra in [&["-f", "KSK"][..], &[]] {
        let ok = Command::new("dnssec-keygen")
            .current_dir(&bind)
            .args(["-q", "-a", "ECDSAP256SHA256"])
            .args(extra)
            .arg("expired.test")
            .stdout(Stdio::null())
            .status()
            .await
            .expect(
                "dnssec-keygen (Debian package bind9-utils; scripts/ensure-knot.sh installs it)",
            );
        assert!(ok.success());
    }
    let signed = root.join("zones").join("expired.test.zone");
    let ok = Command::new("dnssec-signzone")
        .current_dir(&bind)
        .args(["-q", "-P", "-S", "-K", "."])
        .args(["-s", "20200101000000", "-e", "20200201000000"])
        .args(["-o", "expired.test", "-f"])
        .arg(&signed)
        .arg(&unsigned)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("dnssec-signzone");
    assert!(ok.success());
    // `expired.test.  IN DS 57967 13 2 EC5F… 1802…` (the digest split in two)
    let dsset = std::fs::read_to_string(bind.join("dsset-expired.test.")).unwrap();
    let fields: Vec<&str> = dsset.split_whitespace().collect();
    assert!(fields.len() >= 7 && fields[2] == "DS", "{dsset}");
    format!(
        "expired.test. 5 DS {} {} {} {}",
        fields[3],
        fields[4],
        fields[5],
        fields[6..].concat()
    )
}

fn knot_conf(root: &Path, port: u16) -> String {
    let root = root.display();
    let mut conf = format!(
        "server:\n    rundir: \"{root}/run\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{root}/db\"\n\
         acl:\n  - id: local_update\n    address: 127.0.0.1\n    action: update\n\
         keystore:\n  - id: default\n    config: \"{root}/keys\"\n\
         policy:\n  - id: nsec\n    algorithm: ecdsap256sha256\n\
         \x20 - id: nsec3\n    algorithm: ecdsap256sha256\n    nsec3: on\n\
         \x20 - id: optout\n    algorithm: ecdsap256sha256\n    nsec3: on\n    nsec3-opt-out: on\n\
         template:\n  - id: default\n    storage: \"{root}/zones\"\n    file: \"%s.zone\"\n\
         \x20   zonefile-sync: -1\n    journal-content: changes\n    dnssec-signing: on\n\
         \x20   dnssec-policy: nsec\n    acl: local_update\n\
         zone:\n  - domain: .\n"
    );
    for (zone, policy) in KNOT_SIGNED {
        conf += &format!("  - domain: {zone}\n    dnssec-policy: {policy}\n");
    }
    for zone in ["plain.test", "expired.test"] {
        conf += &format!("  - domain: {zone}\n    dnssec-signing: off\n");
    }
    conf
}

/// A loopback port free now (knotd binds it later: if another process takes it meanwhile,
/// knotd exits and the caller starts again on another).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `knotd` with the configuration at `conf`; it dies with the returned handle.
pub fn spawn_knotd(conf: &Path) -> Child {
    Command::new("knotd")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("knotd (Debian package knot; scripts/ensure-knot.sh installs it)")
}

/// `kdig +short` to the server at `server`.
pub async fn kdig(server: SocketAddr, args: &[&str]) -> String {
    let port = server.port().to_string();
    let out = Command::new("kdig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &port,
            "+short",
            "+timeout=1",
            "+retry=0",
        ])
        .args(args)
        .output()
        .await
        .expect("kdig (Debian package knot-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks `kdig args` every 100 ms, for 10 s at most, until its answer satisfies `ready`; false if
/// `knotd` exited or never got there.
pub async fn wait_for(
    knotd: &mut Child,
    server: SocketAddr,
    args: &[&str],
    ready: impl Fn(&str) -> bool,
) -> bool {
    for _ in 0..100 {
        if knotd.try_wait().unwrap().is_some() {
            return false;
        }
        if ready(&kdig(server, args).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Sends one RFC 2136 update of `zone` to the server at `server` with `knsupdate`: `lines`
/// are its `update …` lines.
pub async fn knsupdate(server: SocketAddr, zone: &str, lines: &[String]) {
    let zone = format!("{}.", zone.trim_end_matches('.'));
    let mut script = format!("server {} {}\nzone {zone}\n", server.ip(), server.port());
    for line in lines {
        script += line;
        script += "\n";
    }
    script += "send\n";
    let mut child = Command::new("knsupdate")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knsupdate (Debian package knot-dnsutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "knsupdate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An attacker on the path: a UDP relay to `upstream` that rewrites `from` into `to` (same
/// length) in every answer, leaving the message well-formed — so only the signatures can tell.
pub struct TamperingProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TamperingProxy {
    pub async fn start(upstream: SocketAddr, from: &str, to: &str) -> Self {
        assert_eq!(from.len(), to.len(), "the rewrite must keep the length");
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let (from, to) = (from.as_bytes().to_vec(), to.as_bytes().to_vec());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, client)) = socket.recv_from(&mut buf).await {
                let query = buf[..n].to_vec();
                let (socket, from, to) = (socket.clone(), from.clone(), to.clone());
                tokio::spawn(async move {
                    let Ok(relay) = UdpSocket::bind("127.0.0.1:0").await else {
                        return;
                    };
                    if relay.send_to(&query, upstream).await.is_err() {
                        return;
                    }
                    let mut answer = vec![0u8; 65535];
                    let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), relay.recv(&mut answer)).await
                    else {
                        return;
                    };
                    let mut answer = answer[..n].to_vec();
                    let mut i = 0;
                    while i + from.len() <= answer.len() {
                        if answer[i..i + from.len()] == from[..] {
                            answer[i..i + from.len()].copy_from_slice(&to);
                            i += from.len();
                        } else {
                            i += 1;
                        }
                    }
                    let _ = socket.send_to(&answer, client).await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TamperingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
