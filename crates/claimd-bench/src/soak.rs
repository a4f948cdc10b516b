//! `claimd-bench soak`: claimd processes on one database under a steady mixed load for a long
//! time, with faults — one process killed with `kill -9` and restarted at a fixed period, the
//! PostgreSQL server restarted once — and at the end every acknowledged write checked against
//! the database.
//!
//! The load is open-loop at a fraction of the capacity measured first (closed loop, 16 at once,
//! same mix). Writes walk domains through their whole lifecycle, one request per domain at a
//! time: token → (record published) → verify → claim → unclaim → unverify with
//! `removePending` (the domain is gone) — so the state every acknowledged write left is known.
//! A write that got no answer (its process was killed, the database was down) may or may not
//! have happened: its domain is set aside and must be in one of the two states at the end.
//! Reads: a domain, the listing, the dry run. Figures: requests and failures per minute with
//! p50 / p99, failures by cause (and whether a fault explains each), RSS of each process at start
//! and end, acknowledged writes lost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use claimd_dns::testing::TestDnsServer;
use claimd_domain::{DomainName, DomainRecord, DomainState, OrgId};
use claimd_store::Actor;
use claimd_store_postgres::testing::PrivateCluster;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::process::Child;

use crate::{
    LIMITS_OFF, open_store, org_with_admin, peak_rss_kib, record, spawn_server, stop_server, token,
};

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// `postgres` (a PostgreSQL cluster of the soak's own, so it can restart it) or `sqlite`.
    #[arg(long, default_value = "postgres")]
    store: String,
    /// claimd processes on the database (SQLite: 1).
    #[arg(long, default_value_t = 3)]
    processes: usize,
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// One process is killed with -9 and restarted this often.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    kill_every: Duration,
    /// When the PostgreSQL server is restarted (once); not with SQLite.
    #[arg(long, default_value = "17m", value_parser = humantime::parse_duration)]
    restart_database_at: Duration,
    /// The load, as a fraction of the capacity measured first.
    #[arg(long, default_value_t = 0.7)]
    load: f64,
    /// How long the capacity is measured.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    calibrate: Duration,
    /// Seconds, not minutes: proves the harness works (CI).
    #[arg(long)]
    smoke: bool,
}

/// Where a domain of the write load stands, as acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Absent,
    Pending,
    Verified,
    Claimed,
}

/// The next write for a domain at `stage` (`unclaimed`: it was claimed and released once).
fn next_step(stage: Stage, unclaimed: bool) -> (&'static str, Stage) {
    match (stage, unclaimed) {
        (Stage::Absent, _) => ("getDomainVerificationToken", Stage::Pending),
        (Stage::Pending, _) => ("verifyDomain", Stage::Verified),
        (Stage::Verified, false) => ("claimDomain", Stage::Claimed),
        (Stage::Claimed, _) => ("unclaimDomain", Stage::Verified),
        (Stage::Verified, true) => ("unverifyDomain", Stage::Absent),
    }
}

struct Slot {
    name: String,
    stage: Stage,
    unclaimed: bool,
}

/// One finished request.
struct Sample {
    sent: Duration,
    done: Duration,
    process: usize,
    /// `None`: answered as expected.
    failure: Option<String>,
}

/// The processes and where each one listens while it is up.
struct Fleet {
    bases: Vec<Mutex<Option<String>>>,
    next: AtomicUsize,
}

impl Fleet {
    fn pick(&self) -> Option<(usize, String)> {
        let n = self.bases.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|k| {
            let i = (start + k) % n;
            let base = self.bases[i].lock().unwrap().clone()?;
            Some((i, base))
        })
    }
}

struct Shared {
    started: Instant,
    fleet: Fleet,
    client: Client<HttpConnector, Full<Bytes>>,
    org: OrgId,
    bearer: String,
    dns: TestDnsServer,
    /// Domains ready for their next write.
    ready: Mutex<Vec<Slot>>,
    /// Domains whose last write got no answer: (name, before, after).
    uncertain: Mutex<Vec<(String, Stage, Stage)>>,
    /// The stage each domain was left in by its last acknowledged write.
    settled: Mutex<HashMap<String, Stage>>,
    fresh: AtomicU64,
    samples: Mutex<Vec<Sample>>,
    /// Preloaded pending domains the reads look at.
    preloaded: u64,
    /// Requests not sent: no process was up.
    nowhere: AtomicU64,
    /// Requests not sent: 1,024 were in flight already.
    shed: AtomicU64,
}

async fn send(
    shared: &Shared,
    method: &str,
    base: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let url = format!(
        "{base}/v1/identity/organizations/{}{path}",
        shared.org.as_str()
    );
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", &shared.bearer)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let call = async {
        let response = shared
            .client
            .request(request)
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(result) => result,
        Err(_) => Err("no answer in 30 s".into()),
    }
}

/// One write: the next step of one domain's lifecycle.
async fn write(shared: &Shared, base: &str) -> Option<String> {
    let slot = shared.ready.lock().unwrap().pop();
    let mut slot = slot.unwrap_or_else(|| Slot {
        name: crate::domain("k", shared.fresh.fetch_add(1, Ordering::Relaxed)),
        stage: Stage::Absent,
        unclaimed: false,
    });
    let (action, after) = next_step(slot.stage, slot.unclaimed);
    let body = match action {
        "claimDomain" => format!("{{\"data\":[{{\"domain\":\"{}\"}}]}}", slot.name),
        "unverifyDomain" => format!("{{\"domain\":\"{}\",\"removePending\":true}}", slot.name),
        _ => format!("{{\"domain\":\"{}\"}}", slot.name),
    };
    let answer = send(
        shared,
        "POST",
        base,
        &format!("/actions/{action}"),
        Some(body),
    )
    .await;
    let expected = if action == "unclaimDomain" { 204 } else { 200 };
    match answer {
        Ok((status, body)) if status == expected => {
            if action == "getDomainVerificationToken" {
                let token = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["token"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let value = format!("cisco-ci-domain-verification={token}");
                shared.dns.set_txt(&slot.name, &[&value]).await;
            }
            if after == Stage::Absent {
                // The zone holds only the domains in use: the test DNS server answers a name
                // it does not hold by walking the whole zone.
                shared.dns.set_txt(&slot.name, &[]).await;
            }
            slot.unclaimed |= action == "unclaimDomain";
            slot.stage = after;
            shared
                .settled
                .lock()
                .unwrap()
                .insert(slot.name.clone(), after);
            if after != Stage::Absent {
                shared.ready.lock().unwrap().push(slot);
            }
            None
        }
        other => {
            let before = slot.stage;
            shared
                .uncertain
                .lock()
                .unwrap()
                .push((slot.name.clone(), before, after));
            Some(match other {
                Ok((status, body)) => {
                    format!(
                        "{action} answered {status}: {}",
                        body.chars().take(160).collect::<String>()
                    )
                }
                Err(e) => format!("{action}: {e}"),
            })
        }
    }
}

/// One read: a preloaded domain, the listing, or a dry run.
async fn read(shared: &Shared, base: &str, n: u64) -> Option<String> {
    let i = n.wrapping_mul(2_654_435_761) % shared.preloaded.max(1);
    let id = DomainName::parse(&crate::domain("r", i))
        .map(|d| d.resource_id())
        .unwrap_or_default();
    let (method, path) = match n % 8 {
        0..=4 => ("GET", format!("/domains/{id}")),
        5 | 6 => ("GET", "/domains?max=20".to_owned()),
        _ => ("POST", format!("/domains/{id}/check")),
    };
    match send(shared, method, base, &path, None).await {
        Ok((200, _)) => None,
        Ok((status, body)) => Some(format!(
            "{method} {path} answered {status}: {}",
            body.chars().take(160).collect::<String>()
        )),
        Err(e) => Some(format!("{method} {path}: {e}")),
    }
}

/// One request of the mix (6 writes in 10).
async fn one(shared: Arc<Shared>, n: u64) {
    let Some((process, base)) = shared.fleet.pick() else {
        shared.nowhere.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let sent = shared.started.elapsed();
    let failure = if n % 10 < 6 {
        write(&shared, &base).await
    } else {
        read(&shared, &base, n).await
    };
    let done = shared.started.elapsed();
    shared.samples.lock().unwrap().push(Sample {
        sent,
        done,
        process,
        failure,
    });
}

fn claimd_args(db_url: &str, dns: &TestDnsServer) -> Vec<String> {
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        db_url,
        "--dns-server",
        &dns.addr().to_string(),
        // The test server's zone is unsigned and has no parent: nothing to validate.
        "--dnssec",
        "off",
        "--dns-timeout",
        "2s",
    ]
    .into_iter()
    // The load is the soak's own choice, not the abuse controls'.
    .chain(LIMITS_OFF)
    .map(str::to_owned)
    .collect()
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

pub async fn run(mut args: SoakArgs, claimd_bin: &Path, log: &str) -> bool {
    if args.smoke {
        args.duration = Duration::from_secs(40);
        args.kill_every = Duration::from_secs(12);
        args.restart_database_at = Duration::from_secs(20);
        args.calibrate = Duration::from_secs(2);
    }
    let postgres = match args.store.as_str() {
        "postgres" => true,
        "sqlite" => false,
        other => panic!("--store {other}: postgres or sqlite"),
    };
    let processes = if postgres { args.processes.max(1) } else { 1 };
    let dns = TestDnsServer::start_zone("test.")
        .await
        .expect("DNS server");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cluster = if postgres {
        Some(PrivateCluster::start().await)
    } else {
        None
    };
    let db_url = match &cluster {
        Some(c) => c.url(),
        None => format!("sqlite:{}", dir.path().join("soak.db").display()),
    };

    // The organization, its credential, and the domains the reads look at.
    let preloaded = 5_000;
    let (org, secret) = {
        let store = open_store(&db_url).await;
        let (org, secret) = org_with_admin(&*store, "soak").await;
        // Their records are published, so a dry run finds one (see `write`).
        for i in 0..preloaded {
            let value = format!("cisco-ci-domain-verification={}", token(i).as_str());
            dns.set_txt(&crate::domain("r", i), &[&value]).await;
        }
        let batch: Vec<DomainRecord> = (0..preloaded)
            .map(|i| {
                record(
                    &org.id,
                    &crate::domain("r", i),
                    DomainState::Pending,
                    token(i),
                )
            })
            .collect();
        store
            .import_domains(&Actor::default(), batch)
            .await
            .expect("import");
        (org, secret)
    };

    let args_for_claimd = claimd_args(&db_url, &dns);
    let mut children: Vec<Child> = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..processes {
        let (child, base) = spawn_server(claimd_bin, &args_for_claimd, log).await;
        children.push(child);
        bases.push(Mutex::new(Some(base)));
    }
    let shared = Arc::new(Shared {
        started: Instant::now(),
        fleet: Fleet {
            bases,
            next: AtomicUsize::new(0),
        },
        client: Client::builder(TokioExecutor::new()).build_http(),
        org: org.id.clone(),
        bearer: format!("Bearer {}", secret.expose()),
        dns,
        ready: Mutex::new(Vec::new()),
        uncertain: Mutex::new(Vec::new()),
        settled: Mutex::new(HashMap::new()),
        fresh: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
        preloaded,
        nowhere: AtomicU64::new(0),
        shed: AtomicU64::new(0),
    });

    // Capacity: the same mix, closed loop, 16 at once.
    let counter = Arc::new(AtomicU64::new(0));
    let calibrate_until = Instant::now() + args.calibrate;
    let mut loops = Vec::new();
    for _ in 0..16 {
        let (shared, counter) = (shared.clone(), counter.clone());
        loops.push(tokio::spawn(async move {
            while Instant::now() < calibrate_until {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                one(shared.clone(), n).await;
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
    let capacity = counter.load(Ordering::Relaxed) as f64 / args.calibrate.as_secs_f64();
    let rate = (capacity * args.load).max(1.0);
    let calibration_samples = shared.samples.lock().unwrap().len();
    let calibration_failures = shared
        .samples
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.failure.is_some())
        .count();
    eprintln!(
        "capacity {capacity:.0} req/s ({calibration_samples} requests, {calibration_failures} failed); soaking at {rate:.0} req/s for {:?}",
        args.duration
    );
    shared.samples.lock().unwrap().clear();
    let soak_started = shared.started.elapsed();
    let rss_start: Vec<Option<u64>> = children.iter().map(|c| c.id().and_then(rss_kib)).collect();

    // The load: open loop, `rate` a second, at most 1,024 in flight.
    let stop_at = Instant::now() + args.duration;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1024));
    let generator = {
        let (shared, counter, in_flight) = (shared.clone(), counter.clone(), in_flight.clone());
        tokio::spawn(async move {
            let tick = Duration::from_millis(10);
            let per_tick = rate * tick.as_secs_f64();
            let mut owed = 0.0;
            let mut every = tokio::time::interval(tick);
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < stop_at {
                every.tick().await;
                owed += per_tick;
                while owed >= 1.0 {
                    owed -= 1.0;
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        shared.shed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (shared, n) = (shared.clone(), counter.fetch_add(1, Ordering::Relaxed));
                    tasks.spawn(async move {
                        one(shared, n).await;
                        drop(permit);
                    });
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    // The faults: process 0 killed and restarted every `kill_every`; the database restarted
    // once. Each with the time it was done, to explain the failures around it.
    let mut kills = Vec::new();
    let mut restart: Option<(Duration, Duration)> = None;
    let mut next_kill = args.kill_every;
    loop {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let elapsed = shared.started.elapsed() - soak_started;
        if postgres && restart.is_none() && elapsed >= args.restart_database_at {
            let cluster = cluster.as_ref().expect("a cluster");
            let down = shared.started.elapsed();
            eprintln!("restarting PostgreSQL at {elapsed:?}");
            cluster.stop().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.resume().await;
            restart = Some((down, shared.started.elapsed()));
            continue;
        }
        if elapsed >= next_kill {
            next_kill += args.kill_every;
            *shared.fleet.bases[0].lock().unwrap() = None;
            let at = shared.started.elapsed();
            eprintln!("kill -9 of process 0 at {elapsed:?}");
            let _ = children[0].start_kill();
            let _ = children[0].wait().await;
            kills.push(at);
            let (child, base) = spawn_server(claimd_bin, &args_for_claimd, log).await;
            children[0] = child;
            *shared.fleet.bases[0].lock().unwrap() = Some(base);
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = generator.await;
    let rss_end: Vec<Option<u64>> = children.iter().map(|c| c.id().and_then(rss_kib)).collect();
    let peaks: Vec<Option<u64>> = children
        .iter()
        .map(|c| c.id().and_then(peak_rss_kib))
        .collect();
    for child in &mut children {
        stop_server(child).await;
    }

    // Every acknowledged write against the database.
    let store = open_store(&db_url).await;
    let mut held: HashMap<String, Stage> = HashMap::new();
    let mut after: Option<DomainName> = None;
    loop {
        let page = store
            .list_domains(&org.id, after.as_ref(), 1000)
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        after = Some(last.domain.clone());
        for r in page {
            let stage = match r.state {
                DomainState::Pending => Stage::Pending,
                DomainState::Verified => Stage::Verified,
                DomainState::Claimed => Stage::Claimed,
            };
            held.insert(r.domain.to_string(), stage);
        }
    }
    let found = |name: &str| held.get(name).copied().unwrap_or(Stage::Absent);
    let uncertain = shared.uncertain.lock().unwrap().clone();
    let set_aside: std::collections::HashSet<&str> =
        uncertain.iter().map(|(n, _, _)| n.as_str()).collect();
    let settled = shared.settled.lock().unwrap().clone();
    let mut lost = Vec::new();
    for (name, stage) in &settled {
        if !set_aside.contains(name.as_str()) && found(name) != *stage {
            lost.push(format!(
                "{name}: acknowledged {stage:?}, found {:?}",
                found(name)
            ));
        }
    }
    for (name, before, then) in &uncertain {
        let now = found(name);
        if now != *before && now != *then {
            lost.push(format!(
                "{name}: unanswered write from {before:?} to {then:?}, found {now:?}"
            ));
        }
    }

    // The figures.
    let samples = std::mem::take(&mut *shared.samples.lock().unwrap());
    let explained = |s: &Sample| -> Option<&'static str> {
        let killed = s.process == 0
            && kills
                .iter()
                .any(|&k| k + Duration::from_millis(50) >= s.sent && k <= s.done);
        if killed {
            return Some("in flight on the killed process");
        }
        match restart {
            Some((down, up)) if s.sent <= up + Duration::from_secs(10) && s.done >= down => {
                Some("during the database restart")
            }
            _ => None,
        }
    };
    let mut out = String::new();
    out += &format!(
        "# Soak: {} × claimd on {}\n\n{:?} at {:.0} req/s ({:.0} % of the {:.0} req/s measured), 6 writes in 10; process 0 killed with -9 and restarted every {:?}{}.\n\n",
        processes,
        if postgres { "PostgreSQL" } else { "SQLite" },
        args.duration,
        rate,
        args.load * 100.0,
        capacity,
        args.kill_every,
        match restart {
            Some((down, up)) => format!(
                "; PostgreSQL restarted at {:.0} s (back after {:.1} s)",
                (down - soak_started).as_secs_f64(),
                (up - down).as_secs_f64()
            ),
            None => String::new(),
        }
    );
    out += "| window | requests | failed | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|\n";
    let window = if args.duration < Duration::from_secs(120) {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(60)
    };
    let windows = args.duration.as_secs().div_ceil(window.as_secs()).max(1);
    for w in 0..windows {
        let from = soak_started + window * w as u32;
        let to = from + window;
        let mut latencies: Vec<u64> = Vec::new();
        let (mut count, mut failed) = (0, 0);
        for s in samples.iter().filter(|s| s.done >= from && s.done < to) {
            count += 1;
            if s.failure.is_some() {
                failed += 1;
            } else {
                latencies.push((s.done - s.sent).as_micros() as u64);
            }
        }
        latencies.sort_unstable();
        out += &format!(
            "| {}{} | {count} | {failed} | {:.2} | {:.2} |\n",
            w + 1,
            if window.as_secs() == 60 {
                ""
            } else {
                " (10 s)"
            },
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    let mut causes: HashMap<String, u64> = HashMap::new();
    let mut unexplained = Vec::new();
    for s in &samples {
        if let Some(f) = &s.failure {
            match explained(s) {
                Some(why) => *causes.entry(why.to_owned()).or_default() += 1,
                None => unexplained.push(f.clone()),
            }
        }
    }
    out += &format!(
        "\nRequests: {} answered as expected, {} failed: {}; not sent: {} with no process up, {} with 1,024 in flight.\n",
        samples.iter().filter(|s| s.failure.is_none()).count(),
        samples.iter().filter(|s| s.failure.is_some()).count(),
        if causes.is_empty() && unexplained.is_empty() {
            "none".to_owned()
        } else {
            let mut parts: Vec<String> = causes.iter().map(|(k, v)| format!("{v} {k}")).collect();
            parts.sort();
            if !unexplained.is_empty() {
                parts.push(format!("{} unexplained", unexplained.len()));
            }
            parts.join(", ")
        },
        shared.nowhere.load(Ordering::Relaxed),
        shared.shed.load(Ordering::Relaxed)
    );
    for f in unexplained.iter().take(10) {
        out += &format!("- unexplained: {f}\n");
    }
    out += "\n| process | RSS at start | RSS at end | peak |\n|---:|---:|---:|---:|\n";
    let mb =
        |k: Option<u64>| k.map_or("–".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    for i in 0..processes {
        out += &format!(
            "| {i}{} | {} | {} | {} |\n",
            if i == 0 && !kills.is_empty() {
                " (restarted)"
            } else {
                ""
            },
            mb(rss_start[i]),
            mb(rss_end[i]),
            mb(peaks[i])
        );
    }
    out += &format!(
        "\nWrites acknowledged: {} domains checked against the database, {} set aside after an unanswered write; **acknowledged writes lost: {}**.\n",
        settled.len(),
        uncertain.len(),
        lost.len()
    );
    for l in lost.iter().take(20) {
        out += &format!("- lost: {l}\n");
    }
    println!("{out}");
    lost.is_empty() && unexplained.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_walks_its_whole_lifecycle_and_is_gone() {
        let (mut stage, mut unclaimed, mut steps) = (Stage::Absent, false, Vec::new());
        loop {
            let (action, after) = next_step(stage, unclaimed);
            steps.push(action);
            unclaimed |= action == "unclaimDomain";
            stage = after;
            if stage == Stage::Absent {
                break;
            }
        }
        assert_eq!(
            steps,
            [
                "getDomainVerificationToken",
                "verifyDomain",
                "claimDomain",
                "unclaimDomain",
                "unverifyDomain"
            ]
        );
    }
}
