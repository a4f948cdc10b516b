//! The admin console: the whole domain lifecycle in a browser, under `/console/`.
//!
//! The console is a client of the API that runs in the same process: every page and every
//! button is one or more requests to the API router, carrying the signed-in session's
//! [`SessionIdentity`](crate::auth::SessionIdentity) instead of an `Authorization` header. So the console has exactly the
//! rights of the credential it was signed in with (the same route table, the same policy, the
//! same rate limits), records the same events, and shows the API's own wording for every
//! refusal. Pages are rendered on the server ([`pages`]) and work without JavaScript.
//!
//! Sessions are held on the server ([`session`]); every form carries the session's CSRF
//! token (the sign-in form a token of its own, bound to a cookie), and every answer forbids
//! framing and caching.

mod oidc;
mod pages;
mod session;

pub use oidc::OidcConfig;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use claimd_domain::{DomainName, OrgId};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{self, Access};
use crate::error::ApiError;
use crate::routes::paths;
use crate::state::AppState;
use crate::wire::segment;
use oidc::Oidc;
use pages::Frame;
use session::{Flash, Session, Sessions};

const SESSION_COOKIE: &str = "claimd_session";
/// Binds the sign-in form to the browser that loaded it (login CSRF).
const LOGIN_COOKIE: &str = "claimd_login";
/// Binds a sign-in through the identity provider to the browser that started it. `Lax`: the
/// provider sends the browser back from another site.
const OIDC_COOKIE: &str = "claimd_oidc";
/// Largest form the console accepts.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Domains on one page of the list.
const PAGE: u32 = 100;

#[derive(Clone)]
struct Console(Arc<Inner>);

struct Inner {
    state: AppState,
    /// The API the console calls.
    api: Router,
    sessions: Sessions,
    /// Sign-in through the identity provider, when configured.
    oidc: Option<Oidc>,
    /// Cookies are `Secure` when claimd is served over https.
    secure: bool,
}

/// The console's routes, calling `api` (the API router) for everything they show or change.
pub fn router(state: AppState, api: Router) -> Router {
    let secure = state.config.public_url.starts_with("https://");
    let timeout = state.config.request_timeout;
    let oidc = state
        .config
        .oidc
        .clone()
        .map(|config| Oidc::new(config, &state.config.public_url));
    let sessions = Sessions::new(state.store.clone());
    let console = Console(Arc::new(Inner {
        state,
        api,
        sessions,
        oidc,
        secure,
    }));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/oidc/start", get(oidc_start))
        .route("/console/oidc/callback", get(oidc_callback))
        .route("/console/domains", get(domains).post(add_domain))
        .route("/console/domains/{id}", get(domain))
        .route("/console/domains/{id}/{action}", get(confirm).post(act))
        .route("/console/assets/{file}", get(asset))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(protect))
        .with_state(console)
}

/// Headers on every console answer: no framing, no sniffing, no caching, scripts and styles
/// from the console only.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn api_path(template: &str, org: &OrgId, domain_id: Option<&str>) -> String {
    let path = template.replace("{orgId}", &segment(org.as_str()));
    match domain_id {
        Some(id) => path.replace("{domainId}", &segment(id)),
        None => path,
    }
}

/// The API's answer to one request.
struct Answer {
    status: StatusCode,
    body: Value,
    /// The cursor of the next page, from a `Link: rel="next"` header.
    next: Option<String>,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's own description of a refusal.
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("The request failed ({})", self.status))
    }
}

fn cursor_of(link: &str) -> Option<String> {
    let next = link.split(',').find(|l| l.contains("rel=\"next\""))?;
    let start = next.find("cursor=")? + "cursor=".len();
    let rest = &next[start..];
    let end = rest.find(['&', '>']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// A signed-in request: its session id, the session, and the message left for this page.
struct SignedIn {
    id: String,
    session: Session,
    flash: Option<Flash>,
}

impl Console {
    async fn call(
        &self,
        session: &Session,
        method: Method,
        uri: String,
        body: Option<Value>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => return failed(ApiError::internal(format!("console request: {e}"))),
        };
        request.extensions_mut().insert(session.identity.clone());
        let Ok(response) = self.0.api.clone().oneshot(request).await;
        let status = response.status();
        let next = response
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(cursor_of);
        let body = match axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        Answer { status, body, next }
    }

    /// The live session of this request, or why there is none.
    async fn signed_in(&self, headers: &HeaderMap) -> Result<SignedIn, Unsigned> {
        let id = cookie_value(headers, SESSION_COOKIE).ok_or(Unsigned::SignIn)?;
        let now = self.0.state.clock.now();
        match self.0.sessions.touch(&id, now).await {
            Ok(Some((session, flash))) => Ok(SignedIn { id, session, flash }),
            Ok(None) => Err(Unsigned::SignIn),
            Err(e) => Err(Unsigned::Unavailable(ApiError::from(e))),
        }
    }

    /// Leaves a message for the session's next page; losing it loses nothing else.
    async fn say(&self, s: &SignedIn, flash: Flash) {
        if let Err(e) = self.0.sessions.flash(&s.id, &flash).await {
            tracing::warn!(error = %e, "console: a message for the next page was lost");
        }
    }

    fn cookie<'c>(&self, name: &'c str, value: String, path: &'c str) -> Cookie<'c> {
        Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .secure(self.0.secure)
            .same_site(SameSite::Strict)
            .build()
    }

    /// The organization's users with addresses in `domain` or below it (SCIM's answer), or
    /// `None` when this session may not read users.
    async fn covered_users(&self, session: &Session, domain: &str) -> Option<Value> {
        // Domain names hold letters, digits, dots and hyphens only: nothing to quote.
        let filter = format!(r#"userName ew "@{domain}" or userName ew ".{domain}""#);
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", &filter)
            .append_pair("sortBy", "userName")
            .append_pair("count", "100")
            .finish();
        let uri = format!(
            "{}?{query}",
            api_path(paths::SCIM_USERS, &session.org, None)
        );
        let answer = self.call(session, Method::GET, uri, None).await;
        answer.ok().then_some(answer.body)
    }

    async fn organization_name(&self, session: &Session) -> String {
        let answer = self
            .call(
                session,
                Method::GET,
                api_path(paths::ORGANIZATION, &session.org, None),
                None,
            )
            .await;
        answer
            .body
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(session.org.as_str())
            .to_owned()
    }

    /// The domain `id` as the API shows it to this session, or the page that says why not.
    async fn domain(&self, s: &SignedIn, id: &str) -> Result<Value, Response> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        {
            return Err(self
                .problem(
                    s,
                    StatusCode::NOT_FOUND,
                    "No such domain in this organization",
                )
                .await);
        }
        let answer = self
            .call(
                &s.session,
                Method::GET,
                api_path(paths::DOMAIN, &s.session.org, Some(id)),
                None,
            )
            .await;
        if answer.ok() {
            Ok(answer.body)
        } else {
            Err(self.problem(s, answer.status, &answer.message()).await)
        }
    }

    /// The page for a refusal of the API; a session whose credential no longer works (revoked,
    /// expired) is over.
    async fn problem(&self, s: &SignedIn, status: StatusCode, message: &str) -> Response {
        if status == StatusCode::UNAUTHORIZED {
            let _ = self.0.sessions.end(&s.id).await;
            return to_login();
        }
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            s if s.is_server_error() => "Something went wrong",
            _ => "Refused",
        };
        let name = self.organization_name(&s.session).await;
        let frame = frame(s, &name);
        (
            status,
            Html(pages::problem(Some(&frame), title, message).into_string()),
        )
            .into_response()
    }
}

fn failed(error: ApiError) -> Answer {
    tracing::error!(detail = error.internal.as_deref().unwrap_or("-"), "console");
    Answer {
        status: error.status,
        body: json!({"message": error.descriptions.first()}),
        next: None,
    }
}

fn frame<'a>(s: &'a SignedIn, org_name: &'a str) -> Frame<'a> {
    Frame {
        org_name,
        org_id: s.session.org.as_str(),
        label: &s.session.label,
        csrf: &s.session.csrf,
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn with_cookies(mut response: Response, cookies: &[Cookie<'_>]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form post without this session's CSRF token: refused, nothing done.
fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            pages::problem(
                None,
                "Form refused",
                "This form did not come from your console session (its CSRF token is missing \
                 or wrong). Reload the page and try again.",
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// The page for a failure of the console itself (its sessions unreadable).
fn unavailable(e: &ApiError) -> Response {
    if let Some(detail) = &e.internal {
        tracing::error!(detail = %detail, "console");
    }
    let message = e.descriptions.first().map(String::as_str).unwrap_or("");
    let page = pages::problem(None, "Something went wrong", message);
    (e.status, Html(page.into_string())).into_response()
}

/// The signed-in session of a [`Console::signed_in`] or [`checked_post`], or the answer that
/// refuses the request (returned from the handler).
macro_rules! or_refuse {
    ($session:expr) => {
        match $session {
            Ok(s) => s,
            Err(refused) => return refused.into_response(),
        }
    };
}

/// Why a request has no session to act for.
enum Unsigned {
    /// No live session: sign in (again).
    SignIn,
    /// The session's CSRF token is missing or wrong.
    Forged,
    /// The sessions cannot be read now.
    Unavailable(ApiError),
}

impl IntoResponse for Unsigned {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => to_login(),
            Self::Forged => forged(),
            Self::Unavailable(e) => unavailable(&e),
        }
    }
}

/// The signed-in session of a form post whose CSRF token matches.
async fn checked_post(
    console: &Console,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<SignedIn, Unsigned> {
    let s = console.signed_in(headers).await?;
    match csrf {
        Some(t) if session::same(t, &s.session.csrf) => Ok(s),
        _ => Err(Unsigned::Forged),
    }
}

async fn index(State(console): State<Console>, headers: HeaderMap) -> Response {
    match console.signed_in(&headers).await {
        Ok(_) => see_other("/console/domains"),
        Err(_) => to_login(),
    }
}

async fn login_page(State(console): State<Console>, headers: HeaderMap) -> Response {
    if console.signed_in(&headers).await.is_ok() {
        return see_other("/console/domains");
    }
    login_form(&console, StatusCode::OK, None)
}

fn login_form(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = session::random_token();
    let oidc = console.0.oidc.is_some();
    let page = (status, Html(pages::login(&csrf, error, oidc).into_string())).into_response();
    with_cookies(
        page,
        &[console.cookie(LOGIN_COOKIE, csrf, "/console/login")],
    )
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    token: Option<String>,
    org: Option<String>,
}

async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let bound = cookie_value(&headers, LOGIN_COOKIE);
    match (form.csrf.as_deref(), bound.as_deref()) {
        (Some(presented), Some(expected)) if session::same(presented, expected) => {}
        _ => return forged(),
    }
    let token = form.token.as_deref().map(str::trim).unwrap_or("");
    if token.is_empty() {
        return login_form(
            &console,
            StatusCode::BAD_REQUEST,
            Some("API credential: required"),
        );
    }
    match sign_in(&console, token, form.org.as_deref().map(str::trim)).await {
        Ok(session) => {
            let mut spent = console.cookie(LOGIN_COOKIE, String::new(), "/console/login");
            spent.make_removal();
            with_cookies(
                started(&console, session, see_other("/console/domains")).await,
                &[spent],
            )
        }
        Err(e) => login_form(
            &console,
            e.status,
            e.descriptions.first().map(String::as_str),
        ),
    }
}

/// A session for `token` on the organization it is for (or `org`, for an operator credential),
/// if the credential may at least read that organization's domains.
async fn sign_in(console: &Console, token: &str, org: Option<&str>) -> Result<Session, ApiError> {
    let state = &console.0.state;
    let (credential, identity) = auth::authenticate_presented(state, token).await?;
    let org = match (org.filter(|o| !o.is_empty()), &credential.org_id) {
        (Some(asked), _) => OrgId::new(asked),
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "Organization ID: required with an operator credential, which is valid for every organization",
            ));
        }
    };
    auth::allow(state, &credential, &org, Access::Read).await?;
    state.limits.allow_request(credential.id.as_str(), &org)?;
    // A person from the identity provider by its subject; a credential by its label.
    let label = match &identity {
        auth::SessionIdentity::Token(_) => credential.id.as_str().trim_start_matches("jwt:"),
        auth::SessionIdentity::Secret(_) if credential.label.is_empty() => credential.id.as_str(),
        auth::SessionIdentity::Secret(_) => &credential.label,
    }
    .to_owned();
    Ok(Session::new(identity, org, label))
}

/// Starts the session and sends the browser to its domains; `then` is the answer that does.
async fn started(console: &Console, session: Session, then: Response) -> Response {
    let now = console.0.state.clock.now();
    match console.0.sessions.start(&session, now).await {
        Ok(id) => with_cookies(then, &[console.cookie(SESSION_COOKIE, id, "/console")]),
        Err(e) => unavailable(&ApiError::from(e)),
    }
}

/// `GET /console/oidc/start`: off to the identity provider.
async fn oidc_start(State(console): State<Console>) -> Response {
    let Some(oidc) = &console.0.oidc else {
        return no_oidc();
    };
    match oidc.start().await {
        Ok((state, to)) => {
            let mut bound = console.cookie(OIDC_COOKIE, state, "/console/oidc");
            bound.set_same_site(SameSite::Lax);
            bound.set_max_age(cookie::time::Duration::seconds(
                oidc::PENDING_FOR.as_secs() as i64
            ));
            with_cookies(see_other(&to), &[bound])
        }
        Err(e) => login_form(&console, StatusCode::BAD_GATEWAY, Some(&e.to_string())),
    }
}

fn no_oidc() -> Response {
    let page = pages::problem(
        None,
        "Not found",
        "Sign-in through an identity provider is not configured",
    );
    (StatusCode::NOT_FOUND, Html(page.into_string())).into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/oidc/callback`: the provider sends the browser back with a code (or a refusal).
async fn oidc_callback(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let Some(oidc) = &console.0.oidc else {
        return no_oidc();
    };
    let bound = cookie_value(&headers, OIDC_COOKIE);
    let state = back.state.as_deref().unwrap_or("");
    if !bound.as_deref().is_some_and(|b| session::same(state, b)) {
        return forged();
    }
    let mut spent = console.cookie(OIDC_COOKIE, String::new(), "/console/oidc");
    spent.make_removal();
    let refused = |status, message: &str| {
        with_cookies(
            login_form(&console, status, Some(message)),
            &[spent.clone()],
        )
    };
    if let Some(error) = back.error {
        let description = back.error_description.unwrap_or_default();
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!("The identity provider refused the sign-in ({error}): {description}"),
        );
    }
    let Some(code) = back.code.filter(|c| !c.is_empty()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code",
        );
    };
    let token = match oidc.finish(state, &code).await {
        Ok(token) => token,
        Err(e) => return refused(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    if console.0.state.jwt.is_none() || token.split('.').count() != 3 {
        return refused(
            StatusCode::BAD_GATEWAY,
            "The identity provider's access token is not a JWT claimd can check; configure it to issue JWT access tokens for the audience of --jwt-audience",
        );
    }
    match sign_in(&console, &token, None).await {
        // A page, not a redirect: the session cookie is SameSite=Strict, and a browser sends it
        // on a navigation that started on this site, not on the end of the provider's redirect.
        Ok(session) => with_cookies(
            started(
                &console,
                session,
                Html(pages::signed_in().into_string()).into_response(),
            )
            .await,
            &[spent],
        ),
        Err(e) => refused(
            e.status,
            e.descriptions
                .first()
                .map(String::as_str)
                .unwrap_or("refused"),
        ),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = or_refuse!(checked_post(&console, &headers, form.csrf.as_deref()).await);
    if let Err(e) = console.0.sessions.end(&s.id).await {
        return unavailable(&ApiError::from(e));
    }
    let mut gone = console.cookie(SESSION_COOKIE, String::new(), "/console");
    gone.make_removal();
    with_cookies(to_login(), &[gone])
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
}

async fn domains(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let s = or_refuse!(console.signed_in(&headers).await);
    let mut uri = format!(
        "{}?max={PAGE}",
        api_path(paths::DOMAINS, &s.session.org, None)
    );
    if let Some(cursor) = q.cursor.filter(|c| !c.is_empty()) {
        uri.push_str("&cursor=");
        uri.push_str(&segment(&cursor));
    }
    let answer = console.call(&s.session, Method::GET, uri, None).await;
    if !answer.ok() {
        return console.problem(&s, answer.status, &answer.message()).await;
    }
    let items = answer
        .body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let name = console.organization_name(&s.session).await;
    let page = pages::domains(
        &frame(&s, &name),
        s.flash.as_ref(),
        &items,
        answer.next.as_deref(),
    );
    Html(page.into_string()).into_response()
}

#[derive(Deserialize)]
struct AddForm {
    csrf: Option<String>,
    domain: Option<String>,
}

async fn add_domain(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let s = or_refuse!(checked_post(&console, &headers, form.csrf.as_deref()).await);
    let domain = form.domain.unwrap_or_default();
    let answer = console
        .call(
            &s.session,
            Method::POST,
            api_path(paths::GET_TOKEN, &s.session.org, None),
            Some(json!({"domain": domain.trim()})),
        )
        .await;
    let issued = answer
        .body
        .get("domain")
        .and_then(Value::as_str)
        .and_then(|d| DomainName::parse(d).ok());
    match issued {
        Some(name) if answer.ok() => {
            let added = format!("{name} added: publish the record below, then check it.");
            console.say(&s, Flash::Done(added)).await;
            see_other(&format!("/console/domains/{}", name.resource_id()))
        }
        _ => {
            console.say(&s, Flash::Refused(answer.message())).await;
            see_other("/console/domains")
        }
    }
}

async fn domain(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = or_refuse!(console.signed_in(&headers).await);
    let d = match console.domain(&s, &id).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    let history = console
        .call(
            &s.session,
            Method::GET,
            api_path(paths::DOMAIN_EVENTS, &s.session.org, Some(&id)),
            None,
        )
        .await;
    let history = history
        .body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let users = console
        .covered_users(
            &s.session,
            d.get("domain").and_then(Value::as_str).unwrap_or(""),
        )
        .await;
    let name = console.organization_name(&s.session).await;
    let page = pages::domain(
        &frame(&s, &name),
        s.flash.as_ref(),
        &d,
        &history,
        users.as_ref(),
    );
    Html(page.into_string()).into_response()
}

/// What each action is called, and what it will do to `domain`.
fn consequence(action: &str, domain: &str) -> Option<(&'static str, String)> {
    Some(match action {
        "verify" => (
            "Verify",
            format!(
                "claimd looks up the TXT record at {domain} through its resolvers. If the token \
                 is published, {domain} becomes verified for this organization; if not, nothing \
                 changes and you see what the resolvers saw."
            ),
        ),
        "claim" => (
            "Claim",
            format!(
                "No other organization can verify or claim {domain}, or any name below it, \
                 until this organization unclaims it."
            ),
        ),
        "unclaim" => (
            "Unclaim",
            format!(
                "{domain} stays verified for this organization, but other organizations can \
                 verify and claim it again."
            ),
        ),
        "unverify" => (
            "Unverify",
            format!(
                "{domain} is no longer verified for this organization. To verify it again you \
                 request a new token and publish it."
            ),
        ),
        "remove" => (
            "Remove",
            format!("claimd forgets the pending domain {domain} and its token."),
        ),
        "renew" => (
            "Request a new token",
            format!(
                "The expired token of {domain} is replaced by a new one, which you publish \
                 instead."
            ),
        ),
        _ => return None,
    })
}

async fn confirm(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let s = or_refuse!(console.signed_in(&headers).await);
    let d = match console.domain(&s, &id).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    let name = d.get("domain").and_then(Value::as_str).unwrap_or_default();
    let Some((title, text)) = consequence(&action, name) else {
        return console
            .problem(&s, StatusCode::NOT_FOUND, "No such action")
            .await;
    };
    let org_name = console.organization_name(&s.session).await;
    Html(pages::confirm(&frame(&s, &org_name), &d, &action, title, &text).into_string())
        .into_response()
}

#[derive(Deserialize)]
struct ActForm {
    csrf: Option<String>,
    claim: Option<String>,
}

async fn act(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    let s = or_refuse!(checked_post(&console, &headers, form.csrf.as_deref()).await);
    let d = match console.domain(&s, &id).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    let name = d
        .get("domain")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let org = &s.session.org;
    let here = format!("/console/domains/{id}");
    let claim = form.claim.as_deref() == Some("true");
    let (path, body, done, after) = match action.as_str() {
        "check" => {
            let answer = console
                .call(
                    &s.session,
                    Method::POST,
                    api_path(paths::DRY_RUN, org, Some(&id)),
                    Some(json!({})),
                )
                .await;
            let flash = if answer.ok() {
                Flash::Checked(answer.body)
            } else {
                Flash::Refused(answer.message())
            };
            console.say(&s, flash).await;
            return see_other(&format!("{here}#check-result"));
        }
        "verify" => (
            paths::VERIFY,
            json!({"domain": name, "claimDomain": claim}),
            if claim {
                format!("{name} is verified and claimed.")
            } else {
                format!("{name} is verified.")
            },
            here.clone(),
        ),
        "claim" => (
            paths::CLAIM,
            json!({"data": [{"domain": name}]}),
            format!("{name} is claimed."),
            here.clone(),
        ),
        "unclaim" => (
            paths::UNCLAIM,
            json!({"domain": name}),
            format!("{name} is no longer claimed."),
            here.clone(),
        ),
        "unverify" => (
            paths::UNVERIFY,
            json!({"domain": name}),
            format!("{name} is no longer verified."),
            "/console/domains".to_owned(),
        ),
        "remove" => (
            paths::UNVERIFY,
            json!({"domain": name, "removePending": true}),
            format!("{name} is removed."),
            "/console/domains".to_owned(),
        ),
        "renew" => (
            paths::GET_TOKEN,
            json!({"domain": name}),
            format!("{name} has a new token: publish the record below."),
            here.clone(),
        ),
        _ => {
            return console
                .problem(&s, StatusCode::NOT_FOUND, "No such action")
                .await;
        }
    };
    let answer = console
        .call(
            &s.session,
            Method::POST,
            api_path(path, org, None),
            Some(body),
        )
        .await;
    if answer.ok() {
        console.say(&s, Flash::Done(done)).await;
        see_other(&after)
    } else {
        console.say(&s, Flash::Refused(answer.message())).await;
        see_other(&here)
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (pages::CSS, "text/css; charset=utf-8"),
        "console.js" => (pages::JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (pages::ICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_browser_stay_in_their_path_segment() {
        assert_eq!(segment("ZXhhbXBsZS5jb20"), "ZXhhbXBsZS5jb20");
        assert_eq!(segment("a/../b?c#d"), "a%2F..%2Fb%3Fc%23d");
        let org = OrgId::new("o/x");
        assert_eq!(
            api_path(paths::DOMAIN, &org, Some("id/check")),
            "/v1/identity/organizations/o%2Fx/domains/id%2Fcheck"
        );
    }

    #[test]
    fn the_next_page_cursor_comes_from_the_link_header() {
        let link = "<https://c.example/v1/identity/organizations/o/domains?max=100&cursor=abc_1>; rel=\"next\"";
        assert_eq!(cursor_of(link).as_deref(), Some("abc_1"));
        assert_eq!(cursor_of("<https://x/?cursor=z>; rel=\"prev\""), None);
    }

    #[test]
    fn every_offered_action_says_what_it_does() {
        for action in ["verify", "claim", "unclaim", "unverify", "remove", "renew"] {
            let (_, text) = consequence(action, "example.com").unwrap();
            assert!(text.contains("example.com"), "{action}");
        }
        assert!(consequence("delete-everything", "example.com").is_none());
    }
}
