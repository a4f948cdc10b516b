//! The `claimd` binary: `serve` runs the API; `org` and `token` manage organizations and
//! credentials directly in the database. Wiring only — the behaviour lives in the library crates.

mod log;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use claimd_dns::{PerspectiveConfig, Verifier, VerifierConfig};
use claimd_domain::{
    ApiSecret, CredentialId, DomainName, DomainPolicy, KNOWN_ROLES, KNOWN_SCOPES, NewCredential,
    OrgId, ROLE_FULL_ADMIN, SCOPE_ORGANIZATIONS_RW, TXT_PREFIX, Timestamp,
};
use claimd_http::jwt::{JwtConfig, JwtVerifier, KeySource};
use claimd_http::limits::LimitConfig;
use claimd_http::serve::ConnectionLimits;
use claimd_http::{AppState, HttpConfig};
use claimd_store::Store;
use claimd_store_postgres::{PgSettings, PgStore};
use claimd_store_sqlite::{SqliteSettings, SqliteStore};
use clap::{Args, Parser, Subcommand};

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// across threads, and glibc's malloc was a tenth of a read's profile (docs/performance.md).
/// Built without transparent huge pages (`no_thp`), which had taken peak RSS from 37 to 58 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "claimd",
    version,
    about = "Domain ownership verification and claims, speaking the Webex Domain Management API"
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,

    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every subcommand.
#[derive(Args, Debug)]
struct DbArgs {
    /// Database: a SQLite file (`sqlite:claimd.db`, created if missing) or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_DATABASE_URL",
        default_value = "sqlite:claimd.db"
    )]
    database_url: String,

    /// PostgreSQL: connections per process.
    #[arg(
        long,
        global = true,
        env = "CLAIMD_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    db_max_connections: u32,

    /// How long a request waits for the database before failing with 503.
    #[arg(long, global = true, env = "CLAIMD_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    db_acquire_timeout: Duration,

    /// PostgreSQL: server-side limit on one statement and on waiting for a lock.
    #[arg(long, global = true, env = "CLAIMD_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    db_statement_timeout: Duration,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API credentials.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Dry-run a verification: look the domain's token up exactly as verifyDomain would and
    /// explain what was seen, changing nothing. Exits 0 when it would verify, 1 when not.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The domain, as given to getDomainVerificationToken.
    domain: String,
    /// The organization that requested the token.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    dns: DnsArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CLAIMD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Base URL of every `url` field in responses (default: derived from --listen).
    #[arg(long, env = "CLAIMD_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long an unused verification token stays valid.
    #[arg(long, env = "CLAIMD_TOKEN_TTL", default_value = "7days", value_parser = humantime::parse_duration)]
    token_ttl: Duration,
    #[command(flatten)]
    dns: DnsArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    jwt: JwtArgs,
}

/// JWT credentials from an identity provider, beside the opaque tokens.
#[derive(Args, Debug)]
struct JwtArgs {
    /// Accept JWTs from this issuer (`iss`); needs --jwt-audience and a key source.
    #[arg(long, env = "CLAIMD_JWT_ISSUER", requires_all = ["jwt_audience"])]
    jwt_issuer: Option<String>,
    /// The audience (`aud`) JWTs must be for.
    #[arg(long, env = "CLAIMD_JWT_AUDIENCE", requires = "jwt_issuer")]
    jwt_audience: Option<String>,
    /// The issuer's signing keys, a JWKS file.
    #[arg(
        long,
        env = "CLAIMD_JWT_JWKS_FILE",
        requires = "jwt_issuer",
        conflicts_with = "jwt_jwks_url"
    )]
    jwt_jwks_file: Option<std::path::PathBuf>,
    /// The issuer's signing keys, fetched from this URL (again for an unknown `kid`, at most
    /// once a minute).
    #[arg(long, env = "CLAIMD_JWT_JWKS_URL", requires = "jwt_issuer")]
    jwt_jwks_url: Option<String>,
    /// The claim holding the organization id.
    #[arg(long, env = "CLAIMD_JWT_ORG_CLAIM", default_value = "org_id")]
    jwt_org_claim: String,
    /// The claim holding the scopes (`scope` string, or `scp` array).
    #[arg(long, env = "CLAIMD_JWT_SCOPE_CLAIM", default_value = "scope")]
    jwt_scope_claim: String,
    /// The claim holding the roles.
    #[arg(long, env = "CLAIMD_JWT_ROLES_CLAIM", default_value = "roles")]
    jwt_roles_claim: String,
    /// The role that makes a JWT valid for every organization.
    #[arg(
        long,
        env = "CLAIMD_JWT_OPERATOR_ROLE",
        default_value = "claimd_operator"
    )]
    jwt_operator_role: String,
    /// Tolerance on `exp` and `nbf`.
    #[arg(long, env = "CLAIMD_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    jwt_leeway: Duration,
}

impl JwtArgs {
    async fn verifier(&self) -> Result<Option<JwtVerifier>, String> {
        let (Some(issuer), Some(audience)) = (&self.jwt_issuer, &self.jwt_audience) else {
            return Ok(None);
        };
        let keys = match (&self.jwt_jwks_file, &self.jwt_jwks_url) {
            (Some(path), _) => KeySource::File(path.clone()),
            (None, Some(url)) => KeySource::Url(url.clone()),
            (None, None) => {
                return Err("--jwt-issuer needs --jwt-jwks-file or --jwt-jwks-url".into());
            }
        };
        let config = JwtConfig {
            org_claim: self.jwt_org_claim.clone(),
            scope_claim: self.jwt_scope_claim.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
            operator_role: self.jwt_operator_role.clone(),
            leeway: self.jwt_leeway,
            ..JwtConfig::new(issuer, audience, keys)
        };
        JwtVerifier::new(config).await.map(Some)
    }
}

/// Abuse controls: rate limits (requests per minute, 0 = off), caps, the consumer denylist.
#[derive(Args, Debug)]
struct LimitArgs {
    /// Requests per minute with one credential.
    #[arg(long, env = "CLAIMD_LIMIT_PER_CREDENTIAL", default_value_t = 600)]
    limit_per_credential: u32,
    /// Requests per minute for one organization.
    #[arg(long, env = "CLAIMD_LIMIT_PER_ORGANIZATION", default_value_t = 1200)]
    limit_per_organization: u32,
    /// DNS checks per minute (verify and dry run) of one domain by one organization.
    #[arg(long, env = "CLAIMD_LIMIT_LOOKUPS_PER_DOMAIN", default_value_t = 12)]
    limit_lookups_per_domain: u32,
    /// DNS checks per minute aimed at one registrable domain, all organizations together.
    #[arg(
        long,
        env = "CLAIMD_LIMIT_LOOKUPS_PER_REGISTRABLE",
        default_value_t = 60
    )]
    limit_lookups_per_registrable: u32,
    /// Most pending domains per organization (0 = no limit).
    #[arg(long, env = "CLAIMD_MAX_PENDING_DOMAINS", default_value_t = 1000)]
    max_pending_domains: u64,
    /// Most domains in one claimDomain request.
    #[arg(long, env = "CLAIMD_MAX_CLAIM_BATCH", default_value_t = 100)]
    max_claim_batch: usize,
    /// Replaces the built-in list of consumer mail domains no organization may verify: one
    /// pattern per line (`example.com`, or `name.*` for any suffix); an empty file allows all.
    #[arg(long, env = "CLAIMD_DENIED_DOMAINS_FILE")]
    denied_domains_file: Option<std::path::PathBuf>,
    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "CLAIMD_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// How often to check whether any credential changed (was revoked) anywhere: the longest a
    /// credential revoked by another process keeps working. Between checks, opaque credentials
    /// are answered from memory; 0 reads the database on every request.
    #[arg(long, env = "CLAIMD_CREDENTIAL_RECHECK", default_value = "250ms", value_parser = humantime::parse_duration)]
    credential_recheck: Duration,
}

/// How verifications look at DNS; shared by `serve` and `check`.
#[derive(Args, Debug)]
struct DnsArgs {
    /// DNS server to ask, ADDR[:PORT]; repeatable (default: the system's resolvers).
    #[arg(long = "dns-server", env = "CLAIMD_DNS_SERVER", value_delimiter = ',', value_parser = parse_dns_server)]
    dns_servers: Vec<SocketAddr>,
    /// A named group of resolvers, NAME=ADDR[:PORT][,ADDR…]; repeatable (`;` between groups in
    /// the environment). With several, a verification must be seen by all but at most one
    /// (two from six groups on).
    #[arg(long = "dns-perspective", env = "CLAIMD_DNS_PERSPECTIVE", value_delimiter = ';', value_parser = parse_perspective, conflicts_with = "dns_servers")]
    dns_perspectives: Vec<PerspectiveConfig>,
    /// Deadline for one whole DNS check.
    #[arg(long, env = "CLAIMD_DNS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    dns_timeout: Duration,
    /// The TXT key users publish (`<prefix>=<token>`).
    #[arg(long, env = "CLAIMD_TXT_PREFIX", default_value = TXT_PREFIX)]
    txt_prefix: String,
    /// Most DNS checks in flight at once.
    #[arg(long, env = "CLAIMD_DNS_MAX_CONCURRENT", default_value_t = 256)]
    dns_max_concurrent: usize,
}

impl DnsArgs {
    fn verifier(&self) -> Result<Verifier, String> {
        let base = if self.dns_perspectives.is_empty() {
            VerifierConfig::with_servers(self.dns_servers.clone())
        } else {
            VerifierConfig {
                perspectives: self.dns_perspectives.clone(),
                ..VerifierConfig::default()
            }
        };
        Verifier::new(VerifierConfig {
            timeout: self.dns_timeout,
            txt_prefix: self.txt_prefix.clone(),
            max_concurrent_lookups: self.dns_max_concurrent,
            ..base
        })
        .map_err(|e| e.to_string())
    }
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    /// Create an organization; prints its id alone on stdout.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List organizations.
    List,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a credential; prints its secret alone on stdout, once.
    Create(TokenCreateArgs),
    /// List an organization's credentials (never the secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a credential by id.
    Revoke { id: String },
}

#[derive(Args, Debug)]
struct TokenCreateArgs {
    /// The organization the credential is for.
    #[arg(
        long,
        required_unless_present = "operator",
        conflicts_with = "operator"
    )]
    org: Option<String>,
    /// An operator credential, valid for every organization.
    #[arg(long)]
    operator: bool,
    /// Scope granted; repeatable (default: identity:organizations_rw).
    #[arg(long = "scope", value_parser = clap::builder::PossibleValuesParser::new(KNOWN_SCOPES))]
    scopes: Vec<String>,
    /// Role granted; repeatable (default: id_full_admin).
    #[arg(long = "role", value_parser = clap::builder::PossibleValuesParser::new(KNOWN_ROLES))]
    roles: Vec<String>,
    /// Lifetime, e.g. `90days` (default: no expiry).
    #[arg(long, value_parser = humantime::parse_duration)]
    expires_in: Option<Duration>,
    /// A note for `token list`.
    #[arg(long, default_value = "")]
    label: String,
}

fn parse_perspective(s: &str) -> Result<PerspectiveConfig, String> {
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

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("'{s}' is not ADDR or ADDR:PORT (e.g. 192.0.2.53 or 127.0.0.1:5353)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines are written to stderr in batches (see `log`); `_flush` writes the rest on exit.
    let (writer, _flush) = log::batched_stderr();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLAIMD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("claimd: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Only here is the concrete store chosen.
async fn open_store(cli: &DbArgs) -> Result<Arc<dyn Store>, String> {
    let url = cli.database_url.as_str();
    let failed = |e: claimd_store::StoreError| format!("cannot open the database: {e}");
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let settings = PgSettings {
            max_connections: cli.db_max_connections,
            acquire_timeout: cli.db_acquire_timeout,
            statement_timeout: cli.db_statement_timeout,
        };
        Ok(Arc::new(
            PgStore::open(url, &settings).await.map_err(failed)?,
        ))
    } else {
        let settings = SqliteSettings {
            busy_timeout: cli.db_acquire_timeout,
            ..SqliteSettings::default()
        };
        Ok(Arc::new(
            SqliteStore::open(url, &settings).await.map_err(failed)?,
        ))
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let store = open_store(&cli.db).await?;
    let now = Timestamp::now();
    match cli.command {
        Command::Serve(args) => serve(store, *args).await,
        Command::Org(OrgCommand::Create { name }) => {
            let org = store
                .create_organization(&name, now)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", org.id);
            Ok(())
        }
        Command::Org(OrgCommand::List) => {
            for org in store
                .list_organizations()
                .await
                .map_err(|e| e.to_string())?
            {
                println!("{}\t{}", org.id, org.name);
            }
            Ok(())
        }
        Command::Token(TokenCommand::Create(args)) => {
            let new = NewCredential {
                org_id: args.org.map(OrgId::new),
                label: args.label,
                scopes: if args.scopes.is_empty() {
                    vec![SCOPE_ORGANIZATIONS_RW.to_owned()]
                } else {
                    args.scopes
                },
                roles: if args.roles.is_empty() {
                    vec![ROLE_FULL_ADMIN.to_owned()]
                } else {
                    args.roles
                },
                expires_at: args.expires_in.map(|d| now.plus(d)),
            };
            let secret = ApiSecret::generate();
            let credential = store
                .create_credential(&new, &secret.hash(), now)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("created credential {}", credential.id);
            println!("{}", secret.expose());
            Ok(())
        }
        Command::Token(TokenCommand::List { org }) => {
            let org = OrgId::new(org);
            if store
                .find_organization(&org)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("organization {org} does not exist"));
            }
            for c in store
                .list_credentials(&org)
                .await
                .map_err(|e| e.to_string())?
            {
                let state = if c.revoked_at.is_some() {
                    "revoked"
                } else if !c.is_active(now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{state}\tscopes={}\troles={}\t{}",
                    c.id,
                    c.scopes.join(","),
                    c.roles.join(","),
                    c.label
                );
            }
            Ok(())
        }
        Command::Check(args) => check(&*store, args).await,
        Command::Token(TokenCommand::Revoke { id }) => {
            let id = CredentialId::new(id);
            if store
                .revoke_credential(&id, now)
                .await
                .map_err(|e| e.to_string())?
            {
                eprintln!("revoked credential {id}");
                Ok(())
            } else {
                Err(format!("no credential with id {id}"))
            }
        }
    }
}

async fn check(store: &dyn Store, args: CheckArgs) -> Result<(), String> {
    let domain = DomainName::parse(&args.domain).map_err(|e| e.to_string())?;
    let org = OrgId::new(args.org);
    let record = store
        .find_domain(&org, &domain)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("organization {org} has requested no token for {domain}"))?;
    let report = args.dns.verifier()?.check(&domain, &record.token).await;
    println!("{domain}: {} in organization {org}", record.state.as_str());
    println!("expected: TXT {} \"{}\"", report.name, report.expected);
    for p in &report.perspectives {
        let servers: Vec<String> = p.servers.iter().map(ToString::to_string).collect();
        println!(
            "  {} ({}): {}{}",
            p.name,
            servers.join(", "),
            p.outcome.kind(),
            p.rcode
                .as_deref()
                .map(|r| format!(" [{r}]"))
                .unwrap_or_default()
        );
        for value in &p.seen {
            println!("      seen \"{value}\"");
        }
    }
    for hint in &report.hints {
        println!("hint: {hint}");
    }
    println!("result: {}", report.outcome.kind());
    println!("{}", report.explain());
    if report.outcome.is_verified() {
        Ok(())
    } else {
        Err(format!(
            "{domain} would not verify now ({})",
            report.outcome.kind()
        ))
    }
}

async fn serve(store: Arc<dyn Store>, args: ServeArgs) -> Result<(), String> {
    let verifier = args.dns.verifier()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = args.public_url.unwrap_or_else(|| {
        let host = if local.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local.port())
        } else {
            local
        };
        format!("http://{host}")
    });
    bootstrap(&*store, &public_url).await?;
    let l = &args.limits;
    let domain_policy = match &l.denied_domains_file {
        Some(path) => DomainPolicy::parse_list(
            &std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => DomainPolicy::default(),
    };
    let config = HttpConfig {
        public_url,
        token_ttl: args.token_ttl,
        max_claim_batch: l.max_claim_batch.max(1),
        max_pending_domains: l.max_pending_domains,
        domain_policy,
        limits: LimitConfig {
            per_credential: l.limit_per_credential,
            per_organization: l.limit_per_organization,
            lookups_per_domain: l.limit_lookups_per_domain,
            lookups_per_registrable: l.limit_lookups_per_registrable,
        },
        request_timeout: l
            .request_timeout
            .max(args.dns.dns_timeout + Duration::from_secs(5)),
        credential_recheck: l.credential_recheck,
        ..HttpConfig::default()
    };
    let mut state = AppState::new(store, Arc::new(verifier), config);
    if let Some(jwt) = args.jwt.verifier().await? {
        state = state.with_jwt(jwt);
    }
    let app = claimd_http::router(state);
    tracing::info!(address = %local, "claimd listening");
    claimd_http::serve::serve(
        listener,
        app,
        ConnectionLimits::default(),
        shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!("claimd stopped");
    Ok(())
}

/// On first start against an empty database: one organization and one admin credential,
/// printed once with a ready-to-paste curl line.
async fn bootstrap(store: &dyn Store, public_url: &str) -> Result<(), String> {
    let secret = ApiSecret::generate();
    let created = store
        .create_first_organization("Default organization", &secret.hash(), Timestamp::now())
        .await
        .map_err(|e| e.to_string())?;
    if let Some((org, _)) = created {
        println!(
            "claimd: first start. Created organization {org_id} and an admin token.\n\
             The token is shown only this once; keep it now:\n\n\
             export CLAIMD_ORG={org_id}\n\
             export CLAIMD_TOKEN={token}\n\n\
             Try it:\n  curl -s -X POST {public_url}/v1/identity/organizations/$CLAIMD_ORG/actions/getDomainVerificationToken \\\n    \
             -H \"Authorization: Bearer $CLAIMD_TOKEN\" -H 'Content-Type: application/json' -d '{{\"domain\":\"example.com\"}}'\n",
            org_id = org.id,
            token = secret.expose(),
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

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
