//! The admin console in a real browser: Debian's Chromium, driven by Playwright
//! (`tests/browser/console.mjs`), against the real binary verifying against Knot DNS and
//! signing people in through an OpenID Connect provider on loopback ([`crate::idp`]). The
//! script asks this test to publish the record it copied from the page; everything else it
//! does in the browser. Screenshots land in `target/console-screenshots/`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use claimd_domain::DomainName;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::Command;

use crate::idp::Idp;
use crate::knot::{Knot, ZONE};
use crate::process::{call, cli, start};
use crate::support::{Backend, Database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_in_a_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests' packages are missing: run scripts/ensure-browser.sh (scripts/test.sh does)"
    );
    let knot = Knot::start().await;
    let db = Database::create(Backend::Sqlite).await;
    let idp = Idp::start().await;
    let flags = idp.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = start(&db.url(), knot.addr, &flags).await;
    let (org, token) = server.first_admin();
    // Through the identity provider signs in a read-only administrator of the same organization.
    idp.register(
        format!("{}/console/oidc/callback", server.base),
        serde_json::json!({"org_id": org, "scope": "identity:organizations_read", "roles": ["id_readonly_admin"]}),
    );

    // Another organization with a domain of its own, which the console must not show.
    let (ok, other_org, err) = cli(&db.url(), &["org", "create", "--name", "other-org"]).await;
    assert!(ok, "{err}");
    let other_org = other_org.trim().to_owned();
    let (ok, other_token, err) = cli(&db.url(), &["token", "create", "--org", &other_org]).await;
    assert!(ok, "{err}");
    let other_domain = format!("other-org.{ZONE}");
    let (status, _, body) = call(
        &reqwest::Client::new(),
        &server.base,
        &other_org,
        other_token.trim(),
        "getDomainVerificationToken",
        &serde_json::json!({"domain": other_domain}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let other_id = DomainName::parse(&other_domain).unwrap().resource_id();

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    // This run's screenshots only.
    let _ = std::fs::remove_dir_all(&shots);
    let mut script = Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser_dir)
        .env("CLAIMD_URL", &server.base)
        .env("CLAIMD_TOKEN", &token)
        .env("CLAIMD_ORG", &org)
        .env("CONSOLE_DOMAIN", format!("console.{ZONE}"))
        .env("OTHER_DOMAIN_ID", &other_id)
        .env("SCREENSHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (Debian's nodejs)");
    let mut to_script = script.stdin.take().unwrap();
    let mut from_script = BufReader::new(script.stdout.take().unwrap()).lines();
    let mut published = 0;
    let ran = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(line) = from_script.next_line().await.unwrap() {
            println!("browser: {line}");
            if let Some(request) = line.strip_prefix("publish ") {
                let (name, value) = request.split_once(' ').expect("publish <name> <value>");
                knot.set_txt(name, value).await;
                published += 1;
                to_script.write_all(b"ok\n").await.unwrap();
            }
        }
        script.wait().await.unwrap()
    })
    .await
    .expect("the browser test finishes within 4 minutes");
    assert!(
        ran.success(),
        "the browser test failed (its error is above)"
    );
    assert_eq!(published, 1, "the script published the record once");
    assert_eq!(
        idp.exchanged(),
        1,
        "one sign-in through the provider exchanged its code"
    );
}

/// The value of `name="csrf"` in a page.
fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// `name=value` of the cookie `name` a response sets.
fn cookie_set(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned()
}

/// Two processes on one PostgreSQL database: a session signed in on one is served by the
/// other, and signing out on the other ends it on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_served_by_every_process_of_a_fleet() {
    let knot = Knot::start().await;
    let db = Database::create(Backend::Postgres).await;
    let a = start(&db.url(), knot.addr, &[]).await;
    // Behind an https proxy: its cookies are Secure.
    let b = start(
        &db.url(),
        knot.addr,
        &["--public-url", "https://claimd.example"],
    )
    .await;
    let (_, token) = a.first_admin();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let form = http
        .get(format!("{}/console/login", a.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_set(&form, "claimd_login");
    let attributes = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"),
        "{attributes}"
    );
    assert!(!attributes.contains("Secure"), "{attributes}");
    let csrf = csrf_in(&form.text().await.unwrap());
    // The sign-in form's CSRF token is bound to the browser's cookie: without either, or with
    // another browser's, the post is refused and nobody is signed in.
    for (cookie, presented) in [
        ("claimd_login=another-browsers", csrf.as_str()),
        (login_cookie.as_str(), "guessed"),
        (login_cookie.as_str(), ""),
    ] {
        let refused = http
            .post(format!("{}/console/login", a.base))
            .header("cookie", cookie)
            .form(&[("csrf", presented), ("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused.headers().get("set-cookie").is_none());
    }
    let signed_in = http
        .post(format!("{}/console/login", a.base))
        .header("cookie", &login_cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = cookie_set(&signed_in, "claimd_session");

    let page = |base: String| {
        let (http, session) = (http.clone(), session.clone());
        async move {
            http.get(format!("{base}/console/domains"))
                .header("cookie", session)
                .send()
                .await
                .unwrap()
        }
    };
    let secure = http
        .get(format!("{}/console/login", b.base))
        .send()
        .await
        .unwrap();
    let attributes = secure.headers()["set-cookie"].to_str().unwrap();
    assert!(attributes.contains("Secure"), "{attributes}");

    let on_b = page(b.base.clone()).await;
    assert_eq!(
        on_b.status(),
        200,
        "the other process does not know the session"
    );
    let csrf = csrf_in(&on_b.text().await.unwrap());
    let out = http
        .post(format!("{}/console/logout", b.base))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    for base in [&a.base, &b.base] {
        let after = page(base.clone()).await;
        assert_eq!(
            after.status(),
            303,
            "{base} still serves a signed-out session"
        );
        assert_eq!(after.headers()["location"], "/console/login");
    }
}
