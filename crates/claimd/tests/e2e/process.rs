//! Running the real `claimd` binary: servers, operator commands, a private PostgreSQL cluster.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_claimd");

pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything claimd logged after it started listening.
    pub log: Arc<Mutex<String>>,
    /// What the first start printed on stdout, if anything.
    pub bootstrap: Vec<String>,
}

impl Server {
    /// The organization and admin token printed on first start.
    pub fn first_admin(&self) -> (String, String) {
        (
            exported(&self.bootstrap, "CLAIMD_ORG").expect("organization printed on first start"),
            exported(&self.bootstrap, "CLAIMD_TOKEN").expect("token printed on first start"),
        )
    }

    pub async fn signal(&mut self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(ok.success());
    }

    pub async fn kill9(&mut self) {
        self.signal("-KILL").await;
        let _ = self.child.wait().await;
    }
}

/// Runs an operator command on the database; (success, stdout, stderr).
pub async fn cli(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("CLAIMD_DATABASE_URL", db_url)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Starts `claimd serve` on a free port and waits until it listens; `dns` is its DNS server
/// unless `extra` names perspectives.
pub async fn start(db_url: &str, dns: SocketAddr, extra: &[&str]) -> Server {
    // A test may choose its own DNS timeout; 3 s otherwise.
    let timeout: &[&str] = if extra.contains(&"--dns-timeout") {
        &[]
    } else {
        &["--dns-timeout", "3s"]
    };
    // The test servers serve unsigned zones without a parent: nothing to validate, unless the
    // test brings its own signed tree and trust anchor.
    let dnssec: &[&str] = if extra.iter().any(|a| a.starts_with("--dnssec")) {
        &[]
    } else {
        &["--dnssec", "off"]
    };
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(timeout)
        .args(dnssec)
        .args(if extra.contains(&"--dns-perspective") {
            vec![]
        } else {
            vec!["--dns-server".to_owned(), dns.to_string()]
        })
        .arg("--database-url")
        .arg(db_url)
        .args(extra)
        .env("CLAIMD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (base, log) = wait_listening(&mut child).await;
    // The bootstrap text is printed before listening starts, so it is complete by now.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut bootstrap = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(200), stdout.next_line()).await
    {
        bootstrap.push(line);
    }
    Server {
        child,
        base,
        log,
        bootstrap,
    }
}

/// Reads a starting claimd's log until it listens; returns its base URL and its whole log, kept
/// up to date.
pub async fn wait_listening(child: &mut Child) -> (String, Arc<Mutex<String>>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            if let Some(rest) = line.split("address=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
            // --log-format json
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && let Some(address) = event["address"].as_str()
            {
                return address.to_owned();
            }
            eprintln!("claimd: {line}");
        }
        panic!("claimd exited before listening");
    })
    .await
    .expect("claimd did not start");
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (format!("http://{addr}"), log)
}

pub fn exported(lines: &[String], var: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("export {var}=")).map(str::to_owned))
}

/// POSTs an action; (status, Retry-After present, JSON body or null).
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    org: &str,
    token: &str,
    action: &str,
    body: &Value,
) -> Result<(u16, bool, Value), reqwest::Error> {
    let r = client
        .post(format!(
            "{base}/v1/identity/organizations/{org}/actions/{action}"
        ))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let text = r.text().await?;
    Ok((
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

pub async fn post(base: &str, org: &str, token: &str, action: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = call(&reqwest::Client::new(), base, org, token, action, &body)
        .await
        .unwrap();
    (status, body)
}
