//! `claimd domain …`: the domain lifecycle against a running claimd, one command per step, for
//! people and scripts. `add` prints the exact record to publish; `verify --wait` repeats the
//! dry run until the record is visible and verifies then. `--json` prints the server's bodies.
//!
//! Exit codes: 0 done, 1 refused (or not verified in time), 2 usage, 3 server unreachable or
//! unavailable.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{ClientArgs, DomainAction, DomainArgs};

const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;

/// Why a command ends without success: its exit code and what to say.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn refused(message: impl Into<String>) -> Self {
        Self {
            code: REFUSED,
            message: message.into(),
        }
    }
}

type Outcome<T> = Result<T, Failure>;

struct Client {
    http: reqwest::Client,
    args: ClientArgs,
    token: String,
    org: String,
}

/// An answer from the server: status, `Retry-After` and body.
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

impl Client {
    fn org_url(&self) -> String {
        format!(
            "{}/v1/identity/organizations/{}",
            self.args.server.trim_end_matches('/'),
            self.org
        )
    }

    async fn send(&self, method: Method, url: &str, body: Option<Value>) -> Outcome<Reply> {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| Failure {
            code: UNREACHABLE,
            message: format!("cannot reach claimd at {}: {e}", self.args.server),
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let reply = Reply {
            status,
            retry_after,
            body,
        };
        if status.is_success() {
            return Ok(reply);
        }
        let message = reply.body["message"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Err(Failure {
                code: UNREACHABLE,
                message: format!("claimd is unavailable: {message}"),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // `verify --wait` waits; everything else reports it.
            return Ok(reply);
        }
        Err(Failure::refused(message))
    }

    async fn action(&self, action: &str, body: Value) -> Outcome<Reply> {
        let url = format!("{}/actions/{action}", self.org_url());
        self.send(Method::POST, &url, Some(body)).await
    }

    async fn domain(&self, name: &str) -> Outcome<Value> {
        let url = format!("{}/domains/{name}", self.org_url());
        Ok(self.send(Method::GET, &url, None).await?.body)
    }

    async fn dry_run(&self, name: &str) -> Outcome<Reply> {
        let url = format!("{}/domains/{name}/check", self.org_url());
        self.send(Method::POST, &url, None).await
    }
}

/// Runs one `claimd domain` command; its exit code.
pub async fn run(args: DomainArgs) -> ExitCode {
    let (Some(token), Some(org)) = (args.client.token.clone(), args.client.org.clone()) else {
        eprintln!(
            "claimd: give the credential and the organization: --token and --org, or \
             CLAIMD_TOKEN and CLAIMD_ORG (the first start of claimd serve prints both)"
        );
        return ExitCode::from(USAGE);
    };
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
    else {
        eprintln!("claimd: cannot set up an HTTP client");
        return ExitCode::from(UNREACHABLE);
    };
    let client = Client {
        http,
        args: args.client,
        token,
        org,
    };
    match dispatch(&client, args.action).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("claimd: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn dispatch(client: &Client, action: DomainAction) -> Outcome<()> {
    let json = client.args.json;
    match action {
        DomainAction::Add { domain } => {
            let reply = client
                .action("getDomainVerificationToken", json!({ "domain": domain }))
                .await?;
            refused_if_limited(&reply)?;
            let name = reply.body["domain"].as_str().unwrap_or(&domain).to_owned();
            let resource = client.domain(&name).await?;
            if json {
                print_json(&resource);
            } else {
                let value = resource["txtRecordValue"].as_str().unwrap_or_default();
                println!("Publish this TXT record at {name} (at the name itself, no prefix):\n");
                println!("  {name}.  300  IN  TXT  \"{value}\"\n");
                println!("host: {name}    type: TXT    value: {value}");
                println!(
                    "The token expires at {}. Then: claimd domain verify {name} --wait",
                    resource["tokenExpires"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        DomainAction::Verify {
            domain,
            claim,
            wait,
            timeout,
        } => {
            if wait {
                wait_until_visible(client, &domain, timeout).await?;
            }
            let body = json!({ "domain": domain, "claimDomain": claim });
            let reply = client.action("verifyDomain", body).await?;
            refused_if_limited(&reply)?;
            if json {
                print_json(&reply.body);
            } else {
                let claimed = claim && contains(&reply.body["claimedDomains"], &domain);
                println!(
                    "{domain} is verified{}",
                    if claimed { " and claimed" } else { "" }
                );
            }
            Ok(())
        }
        DomainAction::Claim { domain } => {
            let body = json!({ "data": [{ "domain": domain }] });
            step(client, "claimDomain", body, &format!("{domain} is claimed")).await
        }
        DomainAction::Unclaim { domain } => {
            let text = format!("{domain} is no longer claimed");
            step(client, "unclaimDomain", json!({ "domain": domain }), &text).await
        }
        DomainAction::Unverify { domain } => {
            let text = format!("{domain} is no longer verified");
            step(client, "unverifyDomain", json!({ "domain": domain }), &text).await
        }
        DomainAction::Show { domain } => {
            let resource = client.domain(&domain).await?;
            if json {
                print_json(&resource);
            } else {
                show(&resource);
            }
            Ok(())
        }
        DomainAction::Check { domain } => {
            let reply = client.dry_run(&domain).await?;
            refused_if_limited(&reply)?;
            if json {
                print_json(&reply.body);
            } else {
                println!("{}", reply.body["description"].as_str().unwrap_or_default());
            }
            if reply.body["verified"] == true {
                Ok(())
            } else {
                Err(Failure::refused(format!("{domain} would not verify now")))
            }
        }
        DomainAction::List => {
            let mut url = format!("{}/domains?max=100", client.org_url());
            let mut all = Vec::new();
            loop {
                let reply = client.send(Method::GET, &url, None).await?;
                refused_if_limited(&reply)?;
                let items = reply.body["items"].as_array().cloned().unwrap_or_default();
                let full = items.len() == 100;
                let last = items
                    .last()
                    .and_then(|i| i["id"].as_str().map(str::to_owned));
                all.extend(items);
                match last {
                    Some(cursor) if full => {
                        url = format!("{}/domains?max=100&cursor={cursor}", client.org_url());
                    }
                    _ => break,
                }
            }
            if json {
                print_json(&Value::Array(all));
            } else {
                table(&all);
            }
            Ok(())
        }
    }
}

fn contains(list: &Value, domain: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|d| d.as_str() == Some(domain)))
}

/// One action whose answer is printed as `text`, or as the server's JSON with `--json`.
async fn step(client: &Client, action: &str, body: Value, text: &str) -> Outcome<()> {
    let reply = client.action(action, body).await?;
    refused_if_limited(&reply)?;
    if client.args.json {
        print_json(&reply.body);
    } else {
        println!("{text}");
    }
    Ok(())
}

fn refused_if_limited(reply: &Reply) -> Outcome<()> {
    if reply.status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::refused(
            reply.body["message"]
                .as_str()
                .unwrap_or("rate limited")
                .to_owned(),
        ));
    }
    Ok(())
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("-")
}

fn show(d: &Value) {
    for (label, name) in [
        ("domain", "domain"),
        ("status", "status"),
        ("TXT value", "txtRecordValue"),
        ("token expires", "tokenExpires"),
        ("verified", "verified"),
        ("claimed", "claimed"),
        ("created", "created"),
        ("last modified", "lastModified"),
    ] {
        println!("{label:>14}: {}", field(d, name));
    }
    if d["lastCheck"].is_object() {
        println!(
            "{:>14}: {} at {}",
            "last check",
            field(&d["lastCheck"], "outcome"),
            field(&d["lastCheck"], "at")
        );
    }
    if d["recheck"].is_object() {
        println!(
            "{:>14}: {} (next {})",
            "re-check",
            field(&d["recheck"], "status"),
            field(&d["recheck"], "nextCheck")
        );
    }
}

fn table(items: &[Value]) {
    let width = items
        .iter()
        .map(|d| field(d, "domain").len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:width$}  {:9}  {:20}  {:20}  RE-CHECK",
        "DOMAIN", "STATUS", "VERIFIED", "CLAIMED"
    );
    for d in items {
        let recheck = d["recheck"]["status"].as_str().unwrap_or("-");
        println!(
            "{:width$}  {:9}  {:20}  {:20}  {recheck}",
            field(d, "domain"),
            field(d, "status"),
            field(d, "verified"),
            field(d, "claimed"),
        );
    }
}

/// Repeats the dry run, with backoff, until the record is visible (then returns) or `timeout`
/// passes (the last report, and failure). On a terminal one line shows what is seen now.
async fn wait_until_visible(client: &Client, domain: &str, timeout: Duration) -> Outcome<()> {
    let deadline = Instant::now() + timeout;
    let tty = std::io::stderr().is_terminal();
    let mut pause = Duration::from_secs(2);
    let mut shown = String::new();
    loop {
        let reply = client.dry_run(domain).await?;
        let body = &reply.body;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            pause = Duration::from_secs(reply.retry_after.unwrap_or(10).max(1));
        } else if body["verified"] == true {
            if tty {
                eprintln!();
            }
            return Ok(());
        } else if body["tokenExpired"] == true {
            return Err(Failure::refused(format!(
                "the token for {domain} has expired: run `claimd domain add {domain}` again"
            )));
        } else {
            let line = progress(body);
            if tty {
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
            } else if line != shown {
                eprintln!("{line}");
            }
            shown = line;
        }
        if Instant::now() + pause > deadline {
            if tty {
                eprintln!();
            }
            return Err(Failure::refused(format!(
                "{domain} was not verifiable within {}. Last lookup: {}",
                humantime::format_duration(timeout),
                body["description"].as_str().unwrap_or(&shown)
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// One line: what is looked for, and what each resolver sees.
fn progress(body: &Value) -> String {
    let seen: Vec<String> = body["perspectives"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let values: Vec<&str> = p["seen"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let what = if p["dnssec"] == "bogus" {
                        "DNSSEC-bogus answer".to_owned()
                    } else if values.is_empty() {
                        field(p, "outcome").replace('_', " ")
                    } else {
                        values.join(" | ")
                    };
                    format!("{}: {what}", field(p, "name"))
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "waiting for TXT {} = \"{}\"; seen {}",
        field(body, "name"),
        field(body, "expected"),
        seen.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::progress;

    #[test]
    fn progress_names_what_each_resolver_sees() {
        let body = json!({
            "name": "example.com.",
            "expected": "cisco-ci-domain-verification=abc",
            "perspectives": [
                {"name": "east", "outcome": "not_found", "seen": [], "dnssec": "secure"},
                {"name": "west", "outcome": "wrong_value", "seen": ["v=spf1 -all"], "dnssec": "insecure"},
                {"name": "north", "outcome": "dnssec_bogus", "seen": [], "dnssec": "bogus"},
            ]
        });
        assert_eq!(
            progress(&body),
            "waiting for TXT example.com. = \"cisco-ci-domain-verification=abc\"; seen east: not \
             found; west: v=spf1 -all; north: DNSSEC-bogus answer"
        );
    }
}
