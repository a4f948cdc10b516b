//! `claimd-bench`: claimd against the bare stack it is built on, side by side in one run.
//!
//! One run starts an in-process authoritative DNS server, claimd (the release binary next to
//! this one) on a fresh database, and a baseline server (this binary, `baseline` subcommand:
//! axum + sqlx on the same database doing the same JSON parse and one INSERT or one SELECT by
//! key), then drives both with the same closed-loop HTTP client at each concurrency after a
//! warm-up. It also measures the raw TXT query rate of the same DNS server through the same
//! resolver library, read/write latency at several database sizes, and claimd's peak RSS.

mod baseline;
mod load;
mod receiver;
mod report;
mod soak;
mod users;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use claimd_dns::testing::TestDnsServer;
use claimd_domain::{
    ApiSecret, ClaimFlags, DomainName, DomainRecord, DomainState, NewCredential, OrgId,
    Organization, RecheckState, Timestamp, VerificationToken, Webhook, WebhookEvent, WebhookFilter,
    WebhookId, WebhookResource, WebhookSecret, WebhookStatus,
};
use claimd_store::{Actor, Store};
use clap::{Args, Parser, Subcommand};
use http_body_util::Full;
use hyper::Request;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::load::Load;
use crate::receiver::Receiver;
use crate::report::{BoundedSweepRow, DeliveryRow, Machine, Report, Row, ScaleRow, SweepRow};

#[derive(Parser, Debug)]
#[command(
    name = "claimd-bench",
    about = "claimd against the bare axum + sqlx stack, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The baseline server (started by the benchmark itself).
    Baseline {
        #[arg(long)]
        database_url: String,
    },
    /// A long run under faults (`scripts/soak.sh`): claimd processes on one database, one killed
    /// and restarted periodically, the database restarted once, every acknowledged write checked.
    Soak(soak::SoakArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A PostgreSQL server to benchmark on (a fresh database is created there); default SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Measured time per workload and concurrency.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time before each measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Closed-loop clients.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Database sizes (preloaded domains) for the scaling measurement; 10000000 for 10^7.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<usize>,
    /// A quick pass that only proves the harness works (CI): short runs, small sizes.
    #[arg(long)]
    smoke: bool,
    /// Run only these workloads (write, read, verify, cycle, sweep, webhooks, family, dnssec, users), skip the scaling pass and write no
    /// report files: for profiling one path (e.g. `perf record -p <claimd pid>`).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Workload>,
    /// claimd's log filter (`CLAIMD_LOG`). The default keeps the access log on, as in
    /// production; `warn,claimd=info,claimd_http=warn` shows what it costs (the start line,
    /// which the benchmark waits for, comes from `claimd`).
    #[arg(long, default_value = "warn,claimd=info")]
    claimd_log: String,
    /// Verified domains for the re-check sweep (all due at once).
    #[arg(long, default_value_t = 100_000)]
    sweep_size: u64,
    /// Where to write `latest-<database>.md` and `.json`.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Write,
    Read,
    Verify,
    Cycle,
    Sweep,
    Webhooks,
    /// Token requests for many names under one registrable domain.
    Family,
    /// Verification lookups on a signed zone, DNSSEC-validated against not.
    Dnssec,
    /// The user directory: SCIM creates, `userName eq` in a large directory, claims marking
    /// external users.
    Users,
}

impl RunArgs {
    fn runs(&self, w: Workload) -> bool {
        self.only.is_empty() || self.only.contains(&w)
    }

    /// A full report: every workload, real durations, the scaling pass.
    fn complete(&self) -> bool {
        !self.smoke && self.only.is_empty()
    }
}

/// How many organizations the verify workload's domains are spread over.
const VERIFY_ORGS: usize = 128;

/// A name for the i-th domain of a kind. Each is a registrable domain of its own, as the
/// domains of different customers are: on PostgreSQL every unit of work on one registrable
/// domain waits for the previous one (the parent/child rule is per registrable domain), so
/// names all under one parent would measure that lock, not the service.
pub fn domain(kind: &str, i: u64) -> String {
    format!("{kind}{i}-bench.test")
}

/// Deterministic tokens, so the DNS records can be published before claimd is asked.
fn token(i: u64) -> VerificationToken {
    VerificationToken::from_stored(format!("{i:032x}"))
}

/// The `{id}` of a domain resource.
fn resource_id(name: &str) -> String {
    DomainName::parse(name)
        .map(|d| d.resource_id())
        .unwrap_or_default()
}

fn record(org: &OrgId, name: &str, state: DomainState, tok: VerificationToken) -> DomainRecord {
    let now = Timestamp::now();
    DomainRecord {
        org_id: org.clone(),
        domain: DomainName::parse(name).expect("bench names are valid"),
        state,
        token: tok,
        token_expires_at: now.plus(Duration::from_secs(7 * 24 * 3600)),
        reserve_domain: false,
        flags: ClaimFlags::default(),
        created_at: now,
        updated_at: now,
        verified_at: (state != DomainState::Pending).then_some(now),
        claimed_at: None,
        last_lookup: None,
        recheck: RecheckState::default(),
    }
}

/// The database under test: its URL, and what keeps it alive.
enum Database {
    Sqlite(tempfile::TempDir),
    Postgres(claimd_store_postgres::testing::TestDatabase),
}

impl Database {
    async fn create(server: Option<&str>) -> Self {
        match server {
            Some(url) => {
                Self::Postgres(claimd_store_postgres::testing::TestDatabase::create_on(url).await)
            }
            None => Self::Sqlite(tempfile::tempdir().expect("a temporary directory")),
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite:{}", dir.path().join("bench.db").display()),
            Self::Postgres(db) => db.url(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    /// What autovacuum does on a production PostgreSQL while the queue drains: this machine's
    /// runs with autovacuum off. Unanalyzed, the lease sorted every pending delivery (70 ms a
    /// lease); unvacuumed, it walked through the dead rows each delivery leaves (several per
    /// delivery: leased, handed back, recorded), down to a few deliveries a second. The
    /// deliveries table asks autovacuum for a visit after 1 % of it changed (migration
    /// `queue_vacuum`); this does the same every 2 s until the returned sender is dropped.
    fn autovacuum(&self) -> Option<tokio::sync::oneshot::Sender<()>> {
        let Self::Postgres(_) = self else {
            return None;
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let url = self.url();
        tokio::spawn(async move {
            use sqlx::Connection as _;
            let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
                eprintln!("cannot connect to VACUUM the deliveries");
                return;
            };
            loop {
                if let Err(e) = sqlx::query("VACUUM ANALYZE deliveries")
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("VACUUM failed: {e}");
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
        Some(stop)
    }

    async fn open(&self) -> Arc<dyn Store> {
        open_store(&self.url()).await
    }
}

/// The store at `url` (`sqlite:…` or `postgres://…`), opened in this process.
async fn open_store(url: &str) -> Arc<dyn Store> {
    if url.starts_with("sqlite:") {
        Arc::new(
            claimd_store_sqlite::SqliteStore::open(url, &Default::default())
                .await
                .expect("open SQLite"),
        )
    } else {
        Arc::new(
            claimd_store_postgres::PgStore::open(url, &Default::default())
                .await
                .expect("open PostgreSQL"),
        )
    }
}

/// claimd's abuse controls, off: a measurement chooses its own load.
const LIMITS_OFF: [&str; 10] = [
    "--limit-per-credential",
    "0",
    "--limit-per-organization",
    "0",
    "--limit-lookups-per-domain",
    "0",
    "--limit-lookups-per-registrable",
    "0",
    "--max-pending-domains",
    "0",
];

/// Stops a server as an operator would (SIGTERM: claimd finishes and records what its workers
/// started), and kills it if it has not exited within 30 s.
async fn stop_server(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        eprintln!("the server did not stop within 30 s of SIGTERM; killing it");
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Starts a server binary and waits for its `address=` log line.
async fn spawn_server(program: &Path, args: &[String], log: &str) -> (Child, String) {
    let mut child = Command::new(program)
        .args(args)
        .env("CLAIMD_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("address=").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!("{} exited before listening", program.display());
    })
    .await
    .expect("server start");
    // The rest of its log is read (a full pipe would stall it); warnings and errors are shown.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("server: {line}");
            }
        }
    });
    (child, format!("http://{addr}"))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.command {
        Some(Mode::Baseline { database_url }) => {
            baseline::serve(&database_url).await;
            return;
        }
        Some(Mode::Soak(args)) => {
            let claimd = std::env::current_exe()
                .expect("own path")
                .with_file_name("claimd");
            if !soak::run(args, &claimd, &cli.run.claimd_log).await {
                std::process::exit(1);
            }
            return;
        }
        None => {}
    }
    let mut args = cli.run;
    if args.smoke {
        args.duration = Duration::from_millis(700);
        args.warmup = Duration::from_millis(200);
        args.concurrency = vec![1, 16];
        args.sizes = vec![1_000, 5_000];
        args.sweep_size = 2_000;
    }
    let report = run(&args).await;
    let markdown = report.markdown();
    println!("{markdown}");
    if args.complete() {
        std::fs::create_dir_all(&args.out).expect("create the output directory");
        let stem = format!("latest-{}", report.database.to_ascii_lowercase());
        let md = args.out.join(format!("{stem}.md"));
        std::fs::write(&md, &markdown).expect("write the Markdown report");
        std::fs::write(
            args.out.join(format!("{stem}.json")),
            serde_json::to_string_pretty(&report.json()).expect("JSON"),
        )
        .expect("write the JSON report");
        eprintln!("wrote {}", md.display());
    }
}

struct Target {
    org_path: String,
    bearer: String,
}

async fn run(args: &RunArgs) -> Report {
    let me = std::env::current_exe().expect("own path");
    let claimd_bin = me.with_file_name("claimd");
    assert!(
        claimd_bin.exists(),
        "build claimd next to the bench: cargo build --release -p claimd -p claimd-bench"
    );
    let dns = TestDnsServer::start_zone("test.")
        .await
        .expect("DNS server");
    let db = Database::create(args.database_url.as_deref()).await;
    let url = db.url();
    let store = db.open().await;

    // The organization, its credential, and the records the workloads need.
    let (org, secret) = org_with_admin(&*store, "bench").await;
    let actor = Actor::default();
    let per_run = |rate_guess: u64| {
        let runs: u64 = args.concurrency.len() as u64;
        let seconds = (args.duration + args.warmup).as_secs_f64();
        ((rate_guess as f64 * seconds) as u64 * runs).max(1_000)
    };
    // Pending domains with their records published, one per verify request. A verify response
    // lists every verified domain of the organization (Webex's contract), so they are spread
    // over many organizations, as they would be in real use.
    let verify_pool = per_run(if args.smoke { 2_000 } else { 3_000 });
    eprintln!("preparing {verify_pool} domains to verify in {VERIFY_ORGS} organizations");
    let mut verify_orgs = Vec::new();
    for k in 0..VERIFY_ORGS {
        let (o, s) = org_with_admin(&*store, &format!("verify {k}")).await;
        verify_orgs.push((o.id, format!("Bearer {}", s.expose())));
    }
    let mut batch = Vec::new();
    for i in 0..verify_pool {
        let name = domain("v", i);
        let owner = &verify_orgs[(i % VERIFY_ORGS as u64) as usize].0;
        batch.push(record(owner, &name, DomainState::Pending, token(i)));
        dns.set_txt(
            &name,
            &[&format!(
                "cisco-ci-domain-verification={}",
                token(i).as_str()
            )],
        )
        .await;
        if batch.len() == 10_000 {
            store
                .import_domains(&actor, std::mem::take(&mut batch))
                .await
                .expect("import");
        }
    }
    // Verified domains for claim/unclaim cycles, one per client.
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1) as u64;
    for i in 0..max_c {
        batch.push(record(
            &org.id,
            &domain("c", i),
            DomainState::Verified,
            token(i),
        ));
    }
    store.import_domains(&actor, batch).await.expect("import");
    let mut loaded = 0u64;
    let first_size = args.sizes.first().copied().unwrap_or(10_000) as u64;
    preload(&*store, &org.id, &mut loaded, first_size).await;

    // `unbounded`: the re-check worker as fast as it goes, for the sweep's rate.
    let claimd_args = |webhook_workers: &str, unbounded: bool| -> Vec<String> {
        let mut flags: Vec<String> = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--dns-server",
            &dns.addr().to_string(),
            // The test server's zone is unsigned and has no parent: nothing to validate.
            "--dnssec",
            "off",
            // The webhook receiver is this process, on loopback.
            "--webhook-allow-http",
            "--webhook-allow-private",
            "--webhook-workers",
            webhook_workers,
        ]
        .map(str::to_owned)
        .to_vec();
        flags.extend(LIMITS_OFF.map(str::to_owned));
        if unbounded {
            // The re-check sweep is bounded by DNS, not by these.
            flags.extend(
                ["--recheck-rate", "1000000", "--recheck-workers", "64"].map(str::to_owned),
            );
        }
        flags
    };
    // Deliveries queue up during the measurements and are delivered at the end, by a claimd
    // started for that: the write rows show what the outbox costs a write, the delivery row
    // what delivering costs (see `Hooked`).
    let (mut claimd, claimd_base) =
        spawn_server(&claimd_bin, &claimd_args("0", true), &args.claimd_log).await;
    eprintln!("claimd pid {}", claimd.id().unwrap_or_default());
    let (_baseline, baseline_base) = spawn_server(
        &me,
        &["baseline".into(), "--database-url".into(), url.clone()],
        "warn",
    )
    .await;
    baseline::preload(&url, loaded).await;
    let claimd_target = Target {
        org_path: format!("{claimd_base}/v1/identity/organizations/{}", org.id),
        bearer: format!("Bearer {}", secret.expose()),
    };

    let hooked = if args.runs(Workload::Webhooks) {
        Some(Hooked::register(&*store, &claimd_base).await)
    } else {
        None
    };

    let load = Load::new(args.warmup, args.duration);
    let mut rows = Vec::new();
    let fresh = Arc::new(AtomicU64::new(0));
    let next_verify = Arc::new(AtomicU64::new(0));
    let signed = if args.runs(Workload::Dnssec) {
        let pool = per_run(if args.smoke { 1_000 } else { 1_500 });
        Some(SignedLookups::start(&*store, pool).await)
    } else {
        None
    };
    for &c in &args.concurrency {
        if let Some(signed) = &signed {
            // The verifier's lookup of a published token in a signed zone (Knot), validated up
            // to the tree's root key against the same lookups unvalidated, back to back.
            let validated = signed.run(&load, c, true).await;
            let unvalidated = signed.run(&load, c, false).await;
            rows.push(Row::new(
                "verify lookup, signed zone: DNSSEC validated vs not",
                c,
                validated,
                Some(unvalidated),
            ));
        }
        if args.runs(Workload::Write) {
            // Write: a token for a domain never seen before.
            let claimd_write = write_fresh(&load, c, &claimd_target, &fresh).await;
            let baseline_write = bare_write(&load, c, &baseline_base, &fresh).await;
            rows.push(Row::new(
                "write: getDomainVerificationToken, fresh domain",
                c,
                claimd_write,
                Some(baseline_write),
            ));
        }

        if args.runs(Workload::Users) {
            // A user created through SCIM against the bare insert.
            let scim = users::create(&load, c, &claimd_target, &fresh).await;
            let bare = bare_write(&load, c, &baseline_base, &fresh).await;
            rows.push(Row::new(
                "SCIM create user vs bare insert",
                c,
                scim,
                Some(bare),
            ));
        }

        if args.runs(Workload::Family) {
            // A customer adding the names of its one registrable domain, against fresh
            // registrable domains, back to back: what PostgreSQL's per-family lock costs.
            let (f, t, bearer) = (
                fresh.clone(),
                claimd_target.org_path.clone(),
                claimd_target.bearer.clone(),
            );
            let family = load
                .run(c, move |_, _| {
                    let n = f.fetch_add(1, Ordering::Relaxed);
                    post(
                        &format!("{t}/actions/getDomainVerificationToken"),
                        &bearer,
                        format!("{{\"domain\":\"f{n}.family-bench.test\"}}"),
                    )
                })
                .await;
            let plain = write_fresh(&load, c, &claimd_target, &fresh).await;
            rows.push(Row::new(
                "write: names under one registrable domain vs fresh domains",
                c,
                family,
                Some(plain),
            ));
        }

        if let Some(hooked) = &hooked {
            // Write to an organization with webhooks against one without, back to back.
            let plain = write_fresh(&load, c, &claimd_target, &fresh).await;
            let with_hooks = hooked.write(&load, c).await;
            rows.push(Row::new(
                "write with 2 webhooks registered (outbox) vs none",
                c,
                with_hooks,
                Some(plain),
            ));
        }

        if args.runs(Workload::Read) {
            // Read: one preloaded domain by key.
            let claimd_read = read_preloaded(&load, c, &claimd_target, loaded).await;
            let (b, n) = (baseline_base.clone(), loaded);
            let baseline_read = load
                .run(c, move |task, i| {
                    get(&format!("{b}/read/{}", domain("p", spread(task, i, n))), "")
                })
                .await;
            rows.push(Row::new(
                "read: GET domain",
                c,
                claimd_read,
                Some(baseline_read),
            ));
        }

        if args.runs(Workload::Verify) {
            // Verify with the record present (DNS + write), against the raw query rate.
            let claimd_verify = verify_each_once(
                &load,
                c,
                &claimd_base,
                VerifyPool {
                    next: next_verify.clone(),
                    orgs: verify_orgs.clone(),
                    size: verify_pool,
                },
                |n| domain("v", n),
            )
            .await;
            let raw = load::raw_dns(&load, c, dns.addr(), verify_pool, |i| domain("v", i)).await;
            rows.push(Row::new(
                "verify (DNS + write) vs raw TXT queries",
                c,
                claimd_verify,
                Some(raw),
            ));
        }

        if args.runs(Workload::Cycle) {
            // Claim/unclaim cycles, each client on its own verified domain.
            let (t, bearer) = (claimd_target.org_path.clone(), claimd_target.bearer.clone());
            let cycles = load
                .run(c, move |task, i| {
                    let name = domain("c", task as u64);
                    if i % 2 == 0 {
                        post(
                            &format!("{t}/actions/claimDomain"),
                            &bearer,
                            format!("{{\"data\":[{{\"domain\":\"{name}\"}}]}}"),
                        )
                    } else {
                        post(
                            &format!("{t}/actions/unclaimDomain"),
                            &bearer,
                            format!("{{\"domain\":\"{name}\"}}"),
                        )
                    }
                })
                .await;
            rows.push(Row::new("claim/unclaim cycle step", c, cycles, None));
        }
    }
    let users = if args.runs(Workload::Users) {
        // `userName eq` in a directory of a million users (10^4 in a smoke run), against the
        // bare read by key; then claims marking 10^3 and 10^5 users (10^2, 10^3).
        let directory: u64 = if args.smoke { 10_000 } else { 1_000_000 };
        eprintln!("writing {directory} users");
        users::fill(&url, &org.id, "d", "dir-bench.test", 0, directory).await;
        let (plan, index_seek) = users::plan(&url, &org.id).await;
        let c = 16.min(max_c as usize).max(1);
        let search = users::search(&load, c, &claimd_target, directory).await;
        let (b, n) = (baseline_base.clone(), loaded);
        let bare = load
            .run(c, move |task, i| {
                get(&format!("{b}/read/{}", domain("p", spread(task, i, n))), "")
            })
            .await;
        rows.push(Row::new(
            "SCIM userName eq in the directory vs bare read by key",
            c,
            search,
            Some(bare),
        ));
        let mut marks = Vec::new();
        for n in if args.smoke {
            [100, 1_000]
        } else {
            [1_000, 100_000]
        } {
            eprintln!("claiming a domain with {n} users of another organization");
            marks.push(users::marks(&load, &*store, &url, &claimd_target, &org.id, n).await);
        }
        Some(users::UsersReport {
            directory,
            plan,
            index_seek,
            marks,
        })
    } else {
        None
    };
    let sweep = if args.runs(Workload::Sweep) {
        Some(
            sweep(
                &load,
                &*store,
                &dns,
                &org.id,
                &claimd_target,
                &fresh,
                loaded,
                args.sweep_size,
            )
            .await,
        )
    } else {
        None
    };
    let rss = claimd.id().and_then(peak_rss_kib);
    if next_verify.load(Ordering::Relaxed) > verify_pool {
        eprintln!(
            "note: the verify pool was used more than once; later verifies were idempotent (no DNS)"
        );
    }

    // Scaling: read and write latency as the database grows.
    let mut scale = Vec::new();
    let c = 16.min(max_c as usize).max(1);
    for &size in args.sizes.iter().filter(|_| args.only.is_empty()) {
        preload(&*store, &org.id, &mut loaded, size as u64).await;
        let read = read_preloaded(&load, c, &claimd_target, loaded).await;
        let write = write_fresh(&load, c, &claimd_target, &fresh).await;
        scale.push(ScaleRow {
            size,
            concurrency: c,
            read,
            write,
        });
    }
    // Gracefully: a re-check finished but not yet recorded would be due again when its lease
    // runs out, ahead of the bounded sweep's domains.
    stop_server(&mut claimd).await;
    if let Some(signed) = &signed {
        // One claimd at a time on the database (SQLite has one writer process), each started
        // afresh, validated and not back to back at each concurrency.
        for &c in &args.concurrency {
            let mut by_mode = Vec::new();
            for validate in [true, false] {
                let flags = signed.claimd_args(&url, validate);
                let (mut server, base) = spawn_server(&claimd_bin, &flags, &args.claimd_log).await;
                by_mode.push(signed.verify(&load, c, &base, validate).await);
                let _ = server.start_kill();
                let _ = server.wait().await;
            }
            let unvalidated = by_mode.pop();
            let validated = by_mode.pop().expect("two runs");
            rows.push(Row::new(
                "verify (DNS + write), signed zone: DNSSEC validated vs not",
                c,
                validated,
                unvalidated,
            ));
        }
    }
    let bounded_sweep = if args.runs(Workload::Sweep) {
        let (_bounded, base) =
            spawn_server(&claimd_bin, &claimd_args("0", false), &args.claimd_log).await;
        let target = Target {
            org_path: format!("{base}/v1/identity/organizations/{}", org.id),
            bearer: claimd_target.bearer.clone(),
        };
        Some(bounded_sweep(&load, &*store, &dns, &org.id, &target, &fresh, loaded).await)
    } else {
        None
    };
    let deliveries = match &hooked {
        Some(hooked) => {
            let _vacuum = db.autovacuum();
            let started = std::time::Instant::now();
            let (_dispatching, base) =
                spawn_server(&claimd_bin, &claimd_args("16", true), &args.claimd_log).await;
            let plain = Target {
                org_path: format!("{base}/v1/identity/organizations/{}", org.id),
                bearer: claimd_target.bearer.clone(),
            };
            let (row, contention) = hooked.drain(started, &load, &plain, &fresh).await;
            rows.push(contention);
            Some(row)
        }
        None => None,
    };
    Report {
        machine: Machine::read(),
        database: db.kind(),
        duration: args.duration,
        rows,
        scale,
        sweep,
        bounded_sweep,
        deliveries,
        users,
        peak_rss_kib: rss,
        smoke: args.smoke,
    }
}

/// Pending domains to verify, spread over organizations (a verify answer lists every verified
/// domain of its organization): the next one to take, the organizations and their bearer, how
/// many.
struct VerifyPool {
    next: Arc<AtomicU64>,
    orgs: Vec<(OrgId, String)>,
    size: u64,
}

/// verifyDomain through the claimd at `base`, each request the pool's next domain (`name(n)`).
async fn verify_each_once(
    load: &Load,
    c: usize,
    base: &str,
    pool: VerifyPool,
    name: impl Fn(u64) -> String + Send + Sync + 'static,
) -> load::Stats {
    let base = base.to_owned();
    load.run(c, move |_, _| {
        let n = pool.next.fetch_add(1, Ordering::Relaxed) % pool.size;
        let (org, bearer) = &pool.orgs[(n % VERIFY_ORGS as u64) as usize];
        post(
            &format!("{base}/v1/identity/organizations/{org}/actions/verifyDomain"),
            bearer,
            format!("{{\"domain\":\"{}\"}}", name(n)),
        )
    })
    .await
}

/// A new organization and the secret of an admin credential for it.
async fn org_with_admin(store: &dyn Store, name: &str) -> (Organization, ApiSecret) {
    let org = store
        .create_organization(&Actor::default(), name, Timestamp::now())
        .await
        .expect("org");
    let secret = ApiSecret::generate();
    store
        .create_credential(
            &Actor::default(),
            &NewCredential::org_admin(org.id.clone(), "bench"),
            &secret.hash(),
            Timestamp::now(),
        )
        .await
        .expect("credential");
    (org, secret)
}

/// An organization with two webhooks (every domain event; created only) delivering to a
/// receiver in this process. Its writes queue deliveries in the outbox; the claimd measured
/// runs without a dispatcher (`--webhook-workers 0`, as API processes of a fleet may), so
/// they wait until [`drain`](Self::drain) starts a claimd that delivers them.
struct Hooked {
    target: Target,
    webhooks: usize,
    receiver: Receiver,
    issued: Arc<AtomicU64>,
}

impl Hooked {
    async fn register(store: &dyn Store, claimd_base: &str) -> Self {
        let (org, secret) = org_with_admin(store, "hooked").await;
        let (receiver, url) = Receiver::start().await;
        let events = [WebhookEvent::All, WebhookEvent::Created];
        for event in events {
            let now = Timestamp::now();
            let webhook = Webhook {
                id: WebhookId::generate(),
                org_id: org.id.clone(),
                name: format!("bench {}", event.as_str()),
                target_url: url.clone(),
                resource: WebhookResource::Domains,
                event,
                filter: WebhookFilter::any(),
                secret: WebhookSecret::generate(),
                status: WebhookStatus::Active,
                created_by: None,
                created_at: now,
                updated_at: now,
                failing_since: None,
            };
            store
                .create_webhook(&Actor::default(), &webhook)
                .await
                .expect("webhook");
        }
        Self {
            target: Target {
                org_path: format!("{claimd_base}/v1/identity/organizations/{}", org.id),
                bearer: format!("Bearer {}", secret.expose()),
            },
            webhooks: events.len(),
            receiver,
            issued: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Fresh tokens in the organization: each queues a delivery to both webhooks.
    async fn write(&self, load: &Load, c: usize) -> load::Stats {
        let (f, t, bearer) = (
            self.issued.clone(),
            self.target.org_path.clone(),
            self.target.bearer.clone(),
        );
        load.run(c, move |_, _| {
            let n = f.fetch_add(1, Ordering::Relaxed);
            post(
                &format!("{t}/actions/getDomainVerificationToken"),
                &bearer,
                format!("{{\"domain\":\"{}\"}}", domain("h", n)),
            )
        })
        .await
    }

    /// Every queued delivery, delivered by the claimd started at `started` (`plain` is its
    /// API, for an organization without webhooks): the delivery rate with a full queue; and
    /// the API's writes while it delivers against after.
    async fn drain(
        &self,
        started: std::time::Instant,
        load: &Load,
        plain: &Target,
        fresh: &Arc<AtomicU64>,
    ) -> (DeliveryRow, Row) {
        let queued = self.issued.load(Ordering::Relaxed) * self.webhooks as u64;
        eprintln!("delivering {queued} queued webhook deliveries");
        let busy = write_fresh(load, 16, plain, fresh).await;
        let last = self
            .receiver
            .wait_for(queued as usize, Duration::from_secs(30))
            .await;
        let idle = write_fresh(load, 16, plain, fresh).await;
        let row = DeliveryRow {
            queued,
            deliveries: self.receiver.count() as u64,
            seconds: last.map_or(0.0, |l| l.saturating_duration_since(started).as_secs_f64()),
        };
        (
            row,
            Row::new(
                "write while the same claimd delivers webhooks vs after",
                16,
                busy,
                Some(idle),
            ),
        )
    }
}

/// The API's read and write, 8 clients each at once: what a sweep is measured against.
async fn api_under_load(
    load: &Load,
    target: &Target,
    fresh: &Arc<AtomicU64>,
    loaded: u64,
) -> (load::Stats, load::Stats) {
    tokio::join!(
        read_preloaded(load, 8, target, loaded),
        write_fresh(load, 8, target, fresh)
    )
}

/// The re-check sweep: `size` verified domains, all due at once, looked up again by claimd's
/// worker. First alone — the machine shared with the DNS server only, as when the raw TXT query
/// rate (at 64 at once, of the same names on the same server, just before) was measured — for
/// the sweep's rate against that; then another `size` while the API is measured, for the API's
/// p99 during a sweep against idle.
#[allow(clippy::too_many_arguments)]
async fn sweep(
    load: &Load,
    store: &dyn Store,
    dns: &TestDnsServer,
    org: &OrgId,
    target: &Target,
    fresh: &Arc<AtomicU64>,
    loaded: u64,
    size: u64,
) -> SweepRow {
    let mut log = QueryLog::default();
    // Whatever the server was asked before (the verify workloads of a full run) is not counted.
    log.skip(dns);
    publish(dns, SWEEPS[0], size).await;
    let raw = load::raw_dns(load, 64, dns.addr(), size, |i| domain(SWEEPS[0], i)).await;
    // The raw queries asked for the same names: the sweep counts from here. How many reached
    // the server (warm-up included) shows that the reference is the server's rate.
    let raw_served = log.skip(dns) as f64 / load.span().as_secs_f64();
    let started = until_due(import_due(store, org, SWEEPS[0], size).await).await;
    let alone_seconds = log.swept_in(dns, SWEEPS[0], size, started).await;
    let idle = api_under_load(load, target, fresh, loaded).await;
    publish(dns, SWEEPS[1], size).await;
    let started = until_due(import_due(store, org, SWEEPS[1], size).await).await;
    let busy = api_under_load(load, target, fresh, loaded).await;
    let seconds = log.swept_in(dns, SWEEPS[1], size, started).await;
    SweepRow {
        size,
        alone_seconds,
        seconds,
        raw,
        raw_served,
        idle,
        busy,
    }
}

/// The name prefixes of the sweeps' domains: alone, during the API's measurement, bounded.
const SWEEPS: [&str; 3] = ["a", "s", "b"];

/// Sleeps until `due`; the instant it woke.
async fn until_due(due: Timestamp) -> std::time::Instant {
    let wait = due.as_millis() - Timestamp::now().as_millis();
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    std::time::Instant::now()
}

/// Follows the DNS server's log of TXT questions, reading only what is new each time (a sweep
/// of 10^5 leaves a log of that many entries; copying all of it four times a second would take
/// the CPU the sweep is measured on).
#[derive(Default)]
struct QueryLog {
    read: usize,
}

impl QueryLog {
    /// Passes over everything asked so far; how many that was.
    fn skip(&mut self, dns: &TestDnsServer) -> u64 {
        let new = dns.txt_queries_from(self.read).len();
        self.read += new;
        new as u64
    }

    /// Waits until the DNS server has been asked for all `size` domains `{prefix}N`; the
    /// seconds from `started` to the first question for the last of them.
    async fn swept_in(
        &mut self,
        dns: &TestDnsServer,
        prefix: &str,
        size: u64,
        started: std::time::Instant,
    ) -> f64 {
        let mut names = std::collections::HashSet::new();
        let mut last = started;
        loop {
            let new = dns.txt_queries_from(self.read);
            self.read += new.len();
            for (name, at) in new {
                if of_sweep(&name, prefix) && names.insert(name) {
                    last = at;
                }
            }
            if names.len() as u64 >= size {
                return last.saturating_duration_since(started).as_secs_f64();
            }
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "the sweep did not finish"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Publishes the TXT records of `size` domains `{prefix}N`.
async fn publish(dns: &TestDnsServer, prefix: &str, size: u64) {
    eprintln!("publishing {size} verification records for a re-check sweep");
    for i in 0..size {
        let value = format!("cisco-ci-domain-verification={}", token(i).as_str());
        dns.set_txt(&domain(prefix, i), &[&value]).await;
    }
}

/// Imports `size` verified domains `{prefix}N` (their records published), all due for a
/// re-check at once a little after the import ends; when.
async fn import_due(store: &dyn Store, org: &OrgId, prefix: &str, size: u64) -> Timestamp {
    eprintln!("importing {size} verified domains, due for a re-check at once");
    let due = Timestamp::now().plus(Duration::from_secs(3 + size / 10_000));
    let mut batch = Vec::new();
    for i in 0..size {
        let mut r = record(org, &domain(prefix, i), DomainState::Verified, token(i));
        r.recheck = RecheckState {
            due_at: Some(due),
            ..RecheckState::default()
        };
        batch.push(r);
        if batch.len() == 10_000 {
            store
                .import_domains(&Actor::default(), std::mem::take(&mut batch))
                .await
                .expect("import");
        }
    }
    store
        .import_domains(&Actor::default(), batch)
        .await
        .expect("import");
    due
}

/// Is `name` one of the domains `{prefix}N`?
fn of_sweep(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix) && name.ends_with("-bench.test")
}

/// The API (8 + 8 clients) on a claimd with the default re-check bounds, idle and then while
/// more domains are due than it re-checks in the measurement.
async fn bounded_sweep(
    load: &Load,
    store: &dyn Store,
    dns: &TestDnsServer,
    org: &OrgId,
    target: &Target,
    fresh: &Arc<AtomicU64>,
    loaded: u64,
) -> BoundedSweepRow {
    let idle = api_under_load(load, target, fresh, loaded).await;
    // At 20 a second, 10^4 keep the worker busy throughout the measurement.
    publish(dns, SWEEPS[2], 10_000).await;
    until_due(import_due(store, org, SWEEPS[2], 10_000).await).await;
    // Let the worker reach its pace first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let busy = api_under_load(load, target, fresh, loaded).await;
    let elapsed = started.elapsed();
    // Every re-check lookup counts, whichever sweep its domain came from.
    let lookups = dns
        .txt_queries()
        .into_iter()
        .filter(|(n, at)| *at >= started && SWEEPS.iter().any(|p| of_sweep(n, p)))
        .count();
    BoundedSweepRow {
        rate: lookups as f64 / elapsed.as_secs_f64(),
        idle,
        busy,
    }
}

/// getDomainVerificationToken for domains never seen before.
async fn write_fresh(
    load: &Load,
    c: usize,
    target: &Target,
    fresh: &Arc<AtomicU64>,
) -> load::Stats {
    let (f, t, bearer) = (
        fresh.clone(),
        target.org_path.clone(),
        target.bearer.clone(),
    );
    load.run(c, move |_, _| {
        let n = f.fetch_add(1, Ordering::Relaxed);
        post(
            &format!("{t}/actions/getDomainVerificationToken"),
            &bearer,
            format!("{{\"domain\":\"{}\"}}", domain("w", n)),
        )
    })
    .await
}

/// The baseline's insert of a fresh row, as the reference of every write.
async fn bare_write(load: &Load, c: usize, baseline: &str, fresh: &Arc<AtomicU64>) -> load::Stats {
    let (f, b) = (fresh.clone(), baseline.to_owned());
    load.run(c, move |_, _| {
        let n = f.fetch_add(1, Ordering::Relaxed);
        post(
            &format!("{b}/write"),
            "",
            format!("{{\"domain\":\"{}\"}}", domain("w", n)),
        )
    })
    .await
}

/// GET of preloaded domains, spread over all `loaded` of them.
async fn read_preloaded(load: &Load, c: usize, target: &Target, loaded: u64) -> load::Stats {
    let (t, bearer) = (target.org_path.clone(), target.bearer.clone());
    load.run(c, move |task, i| {
        let id = resource_id(&domain("p", spread(task, i, loaded)));
        get(&format!("{t}/domains/{id}"), &bearer)
    })
    .await
}

/// Spreads reads over the preloaded keys without a shared counter.
fn spread(task: usize, i: u64, n: u64) -> u64 {
    (i.wrapping_mul(2_654_435_761)
        .wrapping_add(task as u64 * 40_503))
        % n.max(1)
}

/// Loads pending domains `p{loaded}…p{target-1}` through the store's bulk path.
async fn preload(store: &dyn Store, org: &OrgId, loaded: &mut u64, target: u64) {
    if *loaded >= target {
        return;
    }
    eprintln!("preloading domains {}..{target}", *loaded);
    while *loaded < target {
        let end = (*loaded + 20_000).min(target);
        let batch = (*loaded..end)
            .map(|i| record(org, &domain("p", i), DomainState::Pending, token(i)))
            .collect();
        store
            .import_domains(&Actor::default(), batch)
            .await
            .expect("bulk import");
        *loaded = end;
    }
}

fn post(url: &str, bearer: &str, body: String) -> Request<Full<Bytes>> {
    let mut r = Request::post(url).header("content-type", "application/json");
    if !bearer.is_empty() {
        r = r.header("authorization", bearer);
    }
    r.body(Full::new(Bytes::from(body))).expect("request")
}

fn get(url: &str, bearer: &str) -> Request<Full<Bytes>> {
    let mut r = Request::get(url);
    if !bearer.is_empty() {
        r = r.header("authorization", bearer);
    }
    r.body(Full::new(Bytes::new())).expect("request")
}

/// Verification against a signed zone served by Knot: the verifier's lookups alone (names
/// `s{i}.secure.test.`), and verifyDomain through claimd with and without validation (names
/// `sv{i}` and `su{i}`, pending in organizations of their own, one name per request).
struct SignedLookups {
    tree: claimd_dns::testing::SignedTree,
    validating: Arc<claimd_dns::Verifier>,
    unvalidated: Arc<claimd_dns::Verifier>,
    /// Per mode (validated, not): the organizations and their bearer, the next name, how many.
    orgs: [Vec<(OrgId, String)>; 2],
    next: [Arc<AtomicU64>; 2],
    pool: u64,
}

/// Distinct names the lookup row cycles through (TTL 0: each validated afresh).
const SIGNED_NAMES: u64 = 500;
/// Records per RFC 2136 update (a message holds 64 KB).
const PER_UPDATE: usize = 400;

impl SignedLookups {
    async fn start(store: &dyn Store, pool: u64) -> Self {
        use claimd_dns::{DnssecMode, TrustAnchor, Verifier, VerifierConfig};
        let tree = claimd_dns::testing::SignedTree::start().await;
        let value = |i| format!("cisco-ci-domain-verification={}", token(i).as_str());
        // TTL 0: the validator may keep the proof of an RRset it has seen for the RRset's TTL;
        // with 0 every lookup validates its answer afresh, as a verify of a new domain does
        // (the zones' keys, TTL 5 s, may be kept).
        let lookups: Vec<(String, String)> = (0..SIGNED_NAMES)
            .map(|i| (format!("s{i}.secure.test"), value(0)))
            .collect();
        tree.set_txt_many("secure.test", 0, &lookups).await;
        eprintln!("preparing 2 × {pool} signed domains to verify");
        let mut orgs: [Vec<(OrgId, String)>; 2] = Default::default();
        for (mode, prefix) in ["sv", "su"].iter().enumerate() {
            for k in 0..VERIFY_ORGS {
                let (o, secret) = org_with_admin(store, &format!("signed {prefix} {k}")).await;
                orgs[mode].push((o.id, format!("Bearer {}", secret.expose())));
            }
            let mut batch = Vec::new();
            let mut published = Vec::new();
            for i in 0..pool {
                let name = format!("{prefix}{i}.secure.test");
                let owner = &orgs[mode][(i % VERIFY_ORGS as u64) as usize].0;
                batch.push(record(owner, &name, DomainState::Pending, token(i)));
                published.push((name, value(i)));
                if published.len() == PER_UPDATE {
                    tree.set_txt_many("secure.test", 5, &std::mem::take(&mut published))
                        .await;
                }
            }
            tree.set_txt_many("secure.test", 5, &published).await;
            store
                .import_domains(&Actor::default(), batch)
                .await
                .expect("import");
        }
        let verifier = |dnssec| {
            Arc::new(
                Verifier::new(VerifierConfig {
                    dnssec,
                    ..VerifierConfig::with_servers(vec![tree.addr()])
                })
                .expect("verifier"),
            )
        };
        let anchor = TrustAnchor::from_file(&tree.trust_anchor()).expect("trust anchor");
        Self {
            validating: verifier(DnssecMode::Validate(anchor)),
            unvalidated: verifier(DnssecMode::Off),
            tree,
            orgs,
            next: Default::default(),
            pool,
        }
    }

    /// The verifier's lookups alone, closed loop.
    async fn run(&self, load: &Load, concurrency: usize, validate: bool) -> load::Stats {
        let verifier = if validate {
            self.validating.clone()
        } else {
            self.unvalidated.clone()
        };
        load.closed_loop(concurrency, move |n| {
            let verifier = verifier.clone();
            async move {
                let name =
                    DomainName::parse(&format!("s{}.secure.test", n % SIGNED_NAMES)).expect("name");
                verifier
                    .lookup(&name, &token(0))
                    .await
                    .outcome
                    .is_verified()
            }
        })
        .await
    }

    /// `claimd serve` on `url`, asking the signed tree, validating or not.
    fn claimd_args(&self, url: &str, validate: bool) -> Vec<String> {
        let mut flags: Vec<String> = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--dns-server",
            &self.tree.addr().to_string(),
            "--recheck-workers",
            "0",
            "--webhook-workers",
            "0",
        ]
        .map(str::to_owned)
        .to_vec();
        flags.extend(LIMITS_OFF.map(str::to_owned));
        if validate {
            flags.push("--dnssec-trust-anchor".into());
            flags.push(self.tree.trust_anchor().display().to_string());
        } else {
            flags.extend(["--dnssec".into(), "off".into()]);
        }
        flags
    }

    /// verifyDomain through the claimd at `base`, each request a domain not verified before.
    async fn verify(&self, load: &Load, c: usize, base: &str, validate: bool) -> load::Stats {
        let mode = usize::from(!validate);
        let prefix = ["sv", "su"][mode];
        let pool = VerifyPool {
            next: self.next[mode].clone(),
            orgs: self.orgs[mode].clone(),
            size: self.pool,
        };
        let stats = verify_each_once(load, c, base, pool, move |n| {
            format!("{prefix}{n}.secure.test")
        })
        .await;
        if self.next[mode].load(Ordering::Relaxed) > self.pool {
            eprintln!(
                "note: the signed verify pool was used more than once (later verifies: no DNS)"
            );
        }
        stats
    }
}
