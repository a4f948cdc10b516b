//! The command line: every subcommand and flag (each flag also `CLAIMD_…` in the environment),
//! and how the flags become the library crates' configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use claimd_dns::{DnssecMode, PerspectiveConfig, TrustAnchor, Verifier, VerifierConfig};
use claimd_domain::{
    KNOWN_ROLES, KNOWN_SCOPES, LapseAction, RecheckConfig, RecheckPolicy, TXT_PREFIX,
};
use claimd_http::jwt::{JwtConfig, JwtVerifier, KeySource};
use claimd_recheck::WorkerConfig;
use claimd_webhooks::DispatcherConfig;
use claimd_webhooks::target::TargetPolicy;
use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "claimd",
    version,
    about = "Domain ownership verification and claims, speaking the Webex Domain Management API"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,

    /// How log lines are written to standard error: `text` for people, `json` for collectors
    /// (one object per line; the access log's carry `tracking_id`). `CLAIMD_LOG` filters them.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives; shared by every subcommand (listed apart in each one's help).
#[derive(Args, Debug)]
#[command(next_help_heading = "Database")]
pub struct DbArgs {
    /// A SQLite file (`sqlite:claimd.db`; only `serve` and `init` create it) or
    /// `postgres://USER@HOST:PORT/DATABASE`.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_DATABASE_URL",
        default_value = "sqlite:claimd.db"
    )]
    pub database_url: String,

    /// PostgreSQL: connections per process.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,

    /// The longest wait for a database connection (or SQLite's write lock); the API then
    /// answers 503, a command fails.
    #[arg(long, global = true, env = "CLAIMD_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// PostgreSQL: server-side limit on one statement and on waiting for a lock.
    #[arg(long, global = true, env = "CLAIMD_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API (creates the SQLite database if it is missing).
    Serve(Box<ServeArgs>),
    /// Create the database if it is missing and bring its schema up to date, nothing else
    /// (`serve` does this by itself; the other commands need an existing database).
    Init,
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API credentials.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Dry-run a verification: look the domain's token up exactly as verifyDomain would and
    /// explain what was seen, changing nothing. Exits 0 when it would verify, 1 when not.
    #[command(name = "dry-run", visible_alias = "check")]
    DryRun(DryRunArgs),
    /// An organization's event log (the audit log), oldest first.
    Events(EventsArgs),
    /// Webhooks: list them, deliver again.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// The settings of `claimd serve`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Shell completions for bash, zsh, fish, elvish or PowerShell, on stdout (e.g.
    /// `claimd completions bash > /etc/bash_completion.d/claimd`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page (roff) on stdout: `claimd man > claimd.1; man ./claimd.1`.
    Man,
    /// The OpenAPI 3.1 document of the API on stdout, as `GET /openapi.json` serves it (for
    /// generating a client without a running server).
    Openapi {
        /// The address clients reach claimd at (the document's server URL).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        public_url: String,
    },
    /// A domain's lifecycle against a running claimd (--server, --token, --org): add, verify
    /// (--wait until the record is visible), claim, unclaim, unverify, list, show, check.
    /// Exit codes: 0 done, 1 refused or not verified in time, 2 usage, 3 server unreachable.
    Domain(DomainArgs),
}

/// Where the running claimd is, and who is asking.
#[derive(Args, Debug)]
#[command(next_help_heading = "Server")]
pub struct ClientArgs {
    /// The claimd to talk to.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// An API credential (the first start prints one as CLAIMD_TOKEN); required.
    #[arg(long, global = true, env = "CLAIMD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The organization (the first start prints it as CLAIMD_ORG); required.
    #[arg(long, global = true, env = "CLAIMD_ORG", value_parser = NonEmptyStringValueParser::new())]
    pub org: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DomainArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: DomainAction,
}

#[derive(Subcommand, Debug)]
pub enum DomainAction {
    /// Ask for a verification token; prints the exact TXT record to publish.
    Add {
        /// The domain, e.g. example.com.
        domain: String,
    },
    /// Verify the domain (its TXT record must be published).
    Verify {
        domain: String,
        /// Claim it too, in the same step.
        #[arg(long)]
        claim: bool,
        /// Repeat the dry run (with backoff) until the record is visible, then verify.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Claim a verified domain: no other organization can verify or claim it.
    Claim { domain: String },
    /// Release the claim; the domain stays verified.
    Unclaim { domain: String },
    /// Unverify the domain (and release its claim).
    Unverify { domain: String },
    /// The organization's domains, as a table.
    List,
    /// One domain: state, TXT value, times, last check, re-check.
    Show { domain: String },
    /// The dry run: what DNS shows now, what is missing, and hints. Exits 0 if it would verify.
    Check { domain: String },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Prints every setting `claimd serve` would run with, as TOML for a --config file, with
    /// where each comes from (flag, env, file, default); secrets masked. Takes serve's flags.
    Show(Box<ServeArgs>),
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The organization.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub org: String,
    /// Only this domain's history, with the DNS evidence of each lookup.
    #[arg(long)]
    pub domain: Option<String>,
    /// From this time: RFC 3339 (`2026-12-01T00:00:00Z`) or a duration ago (`2h`, `7days`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<claimd_domain::Timestamp>,
    /// At most this many events.
    #[arg(long, default_value_t = 200)]
    pub max: u32,
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// An organization's webhooks (never their secrets).
    List {
        /// The organization.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        org: String,
    },
    /// Delivers again every event since a time that the webhook wants.
    Replay {
        /// The webhook's id.
        id: String,
        /// Its organization.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        org: String,
        /// From this time: RFC 3339 or a duration ago.
        #[arg(long, value_parser = parse_since)]
        since: claimd_domain::Timestamp,
    },
}

/// RFC 3339, or a duration before now.
pub fn parse_since(s: &str) -> Result<claimd_domain::Timestamp, String> {
    let now = claimd_domain::Timestamp::now();
    if let Ok(ago) = humantime::parse_duration(s) {
        let ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(claimd_domain::Timestamp::from_millis(
            now.as_millis().saturating_sub(ms),
        ));
    }
    let at = humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time nor a duration such as 2h"))?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("'{s}' is before 1970"))?
        .as_millis();
    Ok(claimd_domain::Timestamp::from_millis(
        i64::try_from(ms).unwrap_or(i64::MAX),
    ))
}

#[derive(Args, Debug)]
pub struct DryRunArgs {
    /// The domain, as given to getDomainVerificationToken.
    pub domain: String,
    /// The organization that requested the token.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub org: String,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML file of serve's settings under the flags' names (`dns-timeout = "3s"`); a flag or
    /// `CLAIMD_…` variable wins over it.
    #[arg(long, env = "CLAIMD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CLAIMD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Base URL of every `url` field in responses (default: derived from --listen).
    #[arg(long, env = "CLAIMD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long an unused verification token stays valid.
    #[arg(long, env = "CLAIMD_TOKEN_TTL", default_value = "7days", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub oidc: OidcArgs,
    #[command(flatten)]
    pub recheck: RecheckArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// Serve `GET /metrics` (Prometheus) on this address of its own, without credentials: keep
    /// it private (e.g. 127.0.0.1:9464).
    #[arg(long, env = "CLAIMD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve `GET /metrics` on the API's address too, to requests bearing this token
    /// (`Authorization: Bearer …`); unset: not served there.
    #[arg(long, env = "CLAIMD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// Webhook deliveries, and how long the event log is kept.
#[derive(Args, Debug)]
pub struct WebhookArgs {
    /// Webhook deliveries in flight at once in this process; 0 turns delivering off here.
    #[arg(long, env = "CLAIMD_WEBHOOK_WORKERS", default_value_t = 16)]
    pub webhook_workers: usize,
    /// The longest one delivery attempt may take.
    #[arg(long, env = "CLAIMD_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    /// The first wait after a failed attempt; it doubles with each attempt (up to an hour),
    /// with jitter.
    #[arg(long, env = "CLAIMD_WEBHOOK_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub webhook_backoff: Duration,
    /// How long a delivery is tried before it is given up (a replay sends it again).
    #[arg(long, env = "CLAIMD_WEBHOOK_RETRY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_retry_window: Duration,
    /// A webhook whose every attempt has failed for this long turns inactive.
    #[arg(long, env = "CLAIMD_WEBHOOK_DISABLE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_disable_after: Duration,
    /// Allow webhook targets over plain http (default: https only).
    #[arg(long, env = "CLAIMD_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,
    /// Allow webhook targets at loopback, private, link-local and other non-public addresses.
    #[arg(long, env = "CLAIMD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Delete events older than this (checked hourly); unset: keep every event. The database
    /// refuses to delete younger ones.
    #[arg(long, env = "CLAIMD_AUDIT_RETENTION", value_parser = humantime::parse_duration)]
    pub audit_retention: Option<Duration>,
}

impl WebhookArgs {
    pub fn targets(&self) -> TargetPolicy {
        TargetPolicy {
            allow_http: self.webhook_allow_http,
            allow_private: self.webhook_allow_private,
        }
    }

    pub fn dispatcher(&self) -> DispatcherConfig {
        DispatcherConfig {
            workers: self.webhook_workers,
            timeout: self.webhook_timeout,
            backoff: self.webhook_backoff,
            retry_window: self.webhook_retry_window,
            disable_after: self.webhook_disable_after,
            targets: self.targets(),
            ..DispatcherConfig::default()
        }
    }
}

/// Continuous re-verification of verified domains.
#[derive(Args, Debug)]
pub struct RecheckArgs {
    /// Between two re-checks of a verified domain that is fine (seconds allowed, e.g. `2s`);
    /// organizations may choose their own within --recheck-min-interval and
    /// --recheck-max-interval.
    #[arg(long, env = "CLAIMD_RECHECK_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub recheck_interval: Duration,
    /// From a re-check finding a domain's record gone to the domain's lapse; a re-check that
    /// finds it back before then ends the grace.
    #[arg(long, env = "CLAIMD_RECHECK_GRACE", default_value = "7days", value_parser = humantime::parse_duration)]
    pub recheck_grace: Duration,
    /// What a lapse does unless the organization chose: `unverify` (which also drops a claim),
    /// `unclaim`, or `keep` (flagged only).
    #[arg(long, env = "CLAIMD_RECHECK_LAPSE_ACTION", default_value = "unverify", value_parser = parse_lapse_action)]
    pub recheck_lapse_action: LapseAction,
    /// The shortest re-check interval an organization may choose.
    #[arg(long, env = "CLAIMD_RECHECK_MIN_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub recheck_min_interval: Duration,
    /// The longest re-check interval an organization may choose.
    #[arg(long, env = "CLAIMD_RECHECK_MAX_INTERVAL", default_value = "30days", value_parser = humantime::parse_duration)]
    pub recheck_max_interval: Duration,
    /// The longest grace an organization may choose.
    #[arg(long, env = "CLAIMD_RECHECK_MAX_GRACE", default_value = "90days", value_parser = humantime::parse_duration)]
    pub recheck_max_grace: Duration,
    /// Re-check lookups started per second at most, by this process.
    #[arg(long, env = "CLAIMD_RECHECK_RATE", default_value_t = 20)]
    pub recheck_rate: u32,
    /// Re-check lookups in flight at once in this process; 0 turns re-checking off here (for
    /// API-only processes: the others share the schedule).
    #[arg(long, env = "CLAIMD_RECHECK_WORKERS", default_value_t = 8)]
    pub recheck_workers: usize,
}

impl RecheckArgs {
    pub fn config(&self) -> RecheckConfig {
        RecheckConfig {
            default: RecheckPolicy {
                interval: self.recheck_interval,
                grace: self.recheck_grace,
                lapse_action: self.recheck_lapse_action,
            },
            min_interval: self.recheck_min_interval,
            max_interval: self.recheck_max_interval,
            max_grace: self.recheck_max_grace,
        }
    }

    /// The worker's settings; a lease outlasts several DNS lookups.
    pub fn worker(&self, dns_timeout: Duration) -> WorkerConfig {
        let shortest = self.recheck_interval.min(self.recheck_min_interval);
        WorkerConfig {
            workers: self.recheck_workers,
            rate: self.recheck_rate,
            lease: (dns_timeout * 4).max(Duration::from_secs(5)),
            tick: (shortest / 4).clamp(Duration::from_millis(100), Duration::from_millis(500)),
            ..WorkerConfig::default()
        }
    }
}

fn parse_lapse_action(s: &str) -> Result<LapseAction, String> {
    LapseAction::parse(s).ok_or_else(|| format!("'{s}' is not one of unverify, unclaim, keep"))
}

/// JWT credentials from an identity provider, beside the opaque tokens.
#[derive(Args, Debug)]
pub struct JwtArgs {
    /// Accept JWTs from this issuer (`iss`); needs --jwt-audience and a key source.
    #[arg(long, env = "CLAIMD_JWT_ISSUER", requires_all = ["jwt_audience"])]
    pub jwt_issuer: Option<String>,
    /// The audience (`aud`) JWTs must be for.
    #[arg(long, env = "CLAIMD_JWT_AUDIENCE", requires = "jwt_issuer")]
    pub jwt_audience: Option<String>,
    /// The issuer's signing keys, a JWKS file.
    #[arg(
        long,
        env = "CLAIMD_JWT_JWKS_FILE",
        requires = "jwt_issuer",
        conflicts_with = "jwt_jwks_url"
    )]
    pub jwt_jwks_file: Option<std::path::PathBuf>,
    /// The issuer's signing keys, fetched from this URL (again for an unknown `kid`, at most
    /// once a minute).
    #[arg(long, env = "CLAIMD_JWT_JWKS_URL", requires = "jwt_issuer")]
    pub jwt_jwks_url: Option<String>,
    /// The claim holding the organization id.
    #[arg(long, env = "CLAIMD_JWT_ORG_CLAIM", default_value = "org_id")]
    pub jwt_org_claim: String,
    /// The claim holding the scopes (`scope` string, or `scp` array).
    #[arg(long, env = "CLAIMD_JWT_SCOPE_CLAIM", default_value = "scope")]
    pub jwt_scope_claim: String,
    /// The claim holding the roles.
    #[arg(long, env = "CLAIMD_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,
    /// The role that makes a JWT valid for every organization.
    #[arg(
        long,
        env = "CLAIMD_JWT_OPERATOR_ROLE",
        default_value = "claimd_operator"
    )]
    pub jwt_operator_role: String,
    /// Tolerance on `exp` and `nbf`.
    #[arg(long, env = "CLAIMD_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,
}

impl JwtArgs {
    pub async fn verifier(&self) -> anyhow::Result<Option<JwtVerifier>> {
        let (Some(issuer), Some(audience)) = (&self.jwt_issuer, &self.jwt_audience) else {
            return Ok(None);
        };
        let keys = match (&self.jwt_jwks_file, &self.jwt_jwks_url) {
            (Some(path), _) => KeySource::File(path.clone()),
            (None, Some(url)) => KeySource::Url(url.clone()),
            (None, None) => anyhow::bail!("--jwt-issuer needs --jwt-jwks-file or --jwt-jwks-url"),
        };
        let config = JwtConfig {
            org_claim: self.jwt_org_claim.clone(),
            scope_claim: self.jwt_scope_claim.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
            operator_role: self.jwt_operator_role.clone(),
            leeway: self.jwt_leeway,
            ..JwtConfig::new(issuer, audience, keys)
        };
        let verifier = JwtVerifier::new(config)
            .await
            .map_err(anyhow::Error::msg)
            .context("cannot set up JWT validation")?;
        Ok(Some(verifier))
    }
}

/// Console sign-in through the identity provider of --jwt-issuer (OpenID Connect,
/// authorization code with PKCE).
#[derive(Args, Debug)]
pub struct OidcArgs {
    /// The console's client id at the identity provider; set, the sign-in page offers the
    /// provider. Register `{public URL}/console/oidc/callback` as its redirect URI.
    #[arg(long, env = "CLAIMD_OIDC_CLIENT_ID", requires = "jwt_issuer")]
    pub oidc_client_id: Option<String>,
    /// The client's secret, for a confidential client (a public client needs none: PKCE).
    #[arg(long, env = "CLAIMD_OIDC_CLIENT_SECRET", requires = "oidc_client_id")]
    pub oidc_client_secret: Option<String>,
    /// The scopes the console asks for (space-separated; `openid` is always asked for).
    #[arg(long, env = "CLAIMD_OIDC_SCOPES", default_value = "openid")]
    pub oidc_scopes: String,
}

impl OidcArgs {
    pub fn config(&self, jwt: &JwtArgs) -> Option<claimd_http::OidcConfig> {
        Some(claimd_http::OidcConfig {
            issuer: jwt.jwt_issuer.clone()?,
            client_id: self.oidc_client_id.clone()?,
            client_secret: self.oidc_client_secret.clone(),
            scopes: self.oidc_scopes.clone(),
        })
    }
}

/// Abuse controls: rate limits (requests per minute, 0 = off), caps, the consumer denylist.
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Requests per minute with one credential.
    #[arg(long, env = "CLAIMD_LIMIT_PER_CREDENTIAL", default_value_t = 600)]
    pub limit_per_credential: u32,
    /// Requests per minute for one organization.
    #[arg(long, env = "CLAIMD_LIMIT_PER_ORGANIZATION", default_value_t = 1200)]
    pub limit_per_organization: u32,
    /// DNS checks per minute (verify and dry run) of one domain by one organization.
    #[arg(long, env = "CLAIMD_LIMIT_LOOKUPS_PER_DOMAIN", default_value_t = 12)]
    pub limit_lookups_per_domain: u32,
    /// DNS checks per minute aimed at one registrable domain, all organizations together.
    #[arg(
        long,
        env = "CLAIMD_LIMIT_LOOKUPS_PER_REGISTRABLE",
        default_value_t = 60
    )]
    pub limit_lookups_per_registrable: u32,
    /// Most pending domains per organization (0 = no limit).
    #[arg(long, env = "CLAIMD_MAX_PENDING_DOMAINS", default_value_t = 1000)]
    pub max_pending_domains: u64,
    /// Most domains in one claimDomain request.
    #[arg(long, env = "CLAIMD_MAX_CLAIM_BATCH", default_value_t = 100)]
    pub max_claim_batch: usize,
    /// Replaces the built-in list of consumer mail domains no organization may verify: one
    /// pattern per line (`example.com`, or `name.*` for any suffix); an empty file allows all.
    #[arg(long, env = "CLAIMD_DENIED_DOMAINS_FILE")]
    pub denied_domains_file: Option<std::path::PathBuf>,
    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "CLAIMD_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How often to check whether any credential changed (was revoked) anywhere: the longest a
    /// credential revoked by another process keeps working. Between checks, opaque credentials
    /// are answered from memory; 0 reads the database on every request.
    #[arg(long, env = "CLAIMD_CREDENTIAL_RECHECK", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub credential_recheck: Duration,
}

/// How verifications look at DNS; shared by `serve` and `check`.
#[derive(Args, Debug)]
pub struct DnsArgs {
    /// DNS server to ask, ADDR[:PORT]; repeatable (default: the system's resolvers).
    #[arg(long = "dns-server", env = "CLAIMD_DNS_SERVER", value_delimiter = ',', value_parser = parse_dns_server)]
    pub dns_servers: Vec<SocketAddr>,
    /// A named group of resolvers, NAME=ADDR[:PORT][,ADDR…]; repeatable (`;` between groups in
    /// the environment). With several, a verification must be seen by all but at most one
    /// (two from six groups on).
    #[arg(long = "dns-perspective", env = "CLAIMD_DNS_PERSPECTIVE", value_delimiter = ';', value_parser = parse_perspective, conflicts_with = "dns_servers")]
    pub dns_perspectives: Vec<PerspectiveConfig>,
    /// Deadline for one whole DNS check.
    #[arg(long, env = "CLAIMD_DNS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub dns_timeout: Duration,
    /// The TXT key users publish (`<prefix>=<token>`).
    #[arg(long, env = "CLAIMD_TXT_PREFIX", default_value = TXT_PREFIX)]
    pub txt_prefix: String,
    /// Most DNS checks in flight at once.
    #[arg(long, env = "CLAIMD_DNS_MAX_CONCURRENT", default_value_t = 256)]
    pub dns_max_concurrent: usize,
    /// DNSSEC on every lookup that proves control: `validate` (a signed answer must validate up
    /// to the trust anchor; a bogus one never verifies), or `off` for closed networks whose
    /// resolvers cannot pass DNSSEC records (every report and /readyz then say so).
    #[arg(long, env = "CLAIMD_DNSSEC", value_enum, default_value_t = DnssecArg::Validate)]
    pub dnssec: DnssecArg,
    /// The trust anchor instead of the IANA root's built-in keys (a private root): the root's
    /// DNSKEY records in zone-file form, one per line (`. 3600 IN DNSKEY 257 3 13 <base64>`).
    #[arg(long, env = "CLAIMD_DNSSEC_TRUST_ANCHOR", value_name = "FILE")]
    pub dnssec_trust_anchor: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnssecArg {
    Validate,
    Off,
}

impl DnsArgs {
    pub fn verifier(&self) -> anyhow::Result<Verifier> {
        let base = if self.dns_perspectives.is_empty() {
            VerifierConfig::with_servers(self.dns_servers.clone())
        } else {
            VerifierConfig {
                perspectives: self.dns_perspectives.clone(),
                ..VerifierConfig::default()
            }
        };
        let dnssec = match (self.dnssec, &self.dnssec_trust_anchor) {
            (DnssecArg::Off, Some(_)) => {
                anyhow::bail!("--dnssec-trust-anchor has no use with --dnssec off")
            }
            (DnssecArg::Off, None) => DnssecMode::Off,
            (DnssecArg::Validate, None) => DnssecMode::Validate(TrustAnchor::iana_root()),
            (DnssecArg::Validate, Some(path)) => {
                DnssecMode::Validate(TrustAnchor::from_file(path)?)
            }
        };
        Verifier::new(VerifierConfig {
            timeout: self.dns_timeout,
            txt_prefix: self.txt_prefix.clone(),
            max_concurrent_lookups: self.dns_max_concurrent,
            dnssec,
            ..base
        })
        .context("cannot set up DNS lookups")
    }
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization; prints its id alone on stdout.
    Create {
        /// Its display name.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// List organizations.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a credential; prints its secret alone on stdout, once.
    Create(TokenCreateArgs),
    /// List credentials, never their secrets: id, state, created, expires, scopes, roles,
    /// label.
    #[command(group = clap::ArgGroup::new("whose").required(true).args(["org", "operator"]))]
    List {
        /// The organization whose credentials to list.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        org: Option<String>,
        /// The operator credentials (valid for every organization) instead.
        #[arg(long)]
        operator: bool,
    },
    /// Revoke a credential: running servers refuse it within --credential-recheck.
    Revoke {
        /// The credential's id (as `token create` and `token list` print it).
        id: String,
    },
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("whose").required(true).args(["org", "operator"]))]
pub struct TokenCreateArgs {
    /// The organization the credential is for (or --operator).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub org: Option<String>,
    /// An operator credential, valid for every organization.
    #[arg(long)]
    pub operator: bool,
    /// Scope granted; repeatable (default: identity:organizations_rw).
    #[arg(long = "scope", value_parser = clap::builder::PossibleValuesParser::new(KNOWN_SCOPES))]
    pub scopes: Vec<String>,
    /// Role granted; repeatable (default: id_full_admin).
    #[arg(long = "role", value_parser = clap::builder::PossibleValuesParser::new(KNOWN_ROLES))]
    pub roles: Vec<String>,
    /// Lifetime, e.g. `90days` (default: no expiry).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
    /// A note for `token list`.
    #[arg(long, default_value = "")]
    pub label: String,
}

pub fn parse_perspective(s: &str) -> Result<PerspectiveConfig, String> {
    let (name, servers) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=ADDR[:PORT][,ADDR…]"))?;
    let servers = servers
        .split(',')
        .map(|a| parse_dns_server(a.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if name.trim().is_empty() || servers.is_empty() {
        return Err(format!("'{s}' is not NAME=ADDR[:PORT][,ADDR…]"));
    }
    Ok(PerspectiveConfig {
        name: name.trim().to_owned(),
        servers,
    })
}

pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("'{s}' is not ADDR or ADDR:PORT (e.g. 192.0.2.53 or 127.0.0.1:5353)"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn perspective_forms() {
        let p = parse_perspective("east=127.0.0.1:5353, 192.0.2.1").unwrap();
        assert_eq!(p.name, "east");
        assert_eq!(
            p.servers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "192.0.2.1:53".parse().unwrap()
            ]
        );
        assert!(parse_perspective("=127.0.0.1").is_err());
        assert!(parse_perspective("east").is_err());
        assert!(parse_perspective("east=not-an-ip").is_err());
    }

    #[test]
    fn dns_server_forms() {
        assert_eq!(
            parse_dns_server("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert!(parse_dns_server("dns.example").is_err());
    }
}
