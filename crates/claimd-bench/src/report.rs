//! The side-by-side table (Markdown) and the same figures as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::load::Stats;

pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub commit: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            commit,
        }
    }
}

pub struct Row {
    pub workload: &'static str,
    pub concurrency: usize,
    pub claimd: Stats,
    pub reference: Option<Stats>,
}

impl Row {
    pub fn new(
        workload: &'static str,
        concurrency: usize,
        claimd: Stats,
        reference: Option<Stats>,
    ) -> Self {
        Self {
            workload,
            concurrency,
            claimd,
            reference,
        }
    }

    fn ratio(&self) -> Option<f64> {
        let r = self.reference.as_ref()?.rate();
        (r > 0.0).then(|| self.claimd.rate() / r)
    }
}

pub struct ScaleRow {
    pub size: usize,
    pub concurrency: usize,
    pub read: Stats,
    pub write: Stats,
}

/// The re-check sweep: how fast claimd's worker looked `size` due domains up again, and the
/// API's read and write (8 clients each) while it did, against idle.
pub struct SweepRow {
    pub size: u64,
    /// The sweep alone.
    pub alone_seconds: f64,
    /// Another sweep of `size` while the API was measured.
    pub seconds: f64,
    /// The raw TXT query rate at 64 at once.
    pub raw: Stats,
    /// The queries a second the DNS server saw while the raw rate was measured (warm-up
    /// included): about the raw rate when every lookup reached it.
    pub raw_served: f64,
    pub idle: (Stats, Stats),
    pub busy: (Stats, Stats),
}

impl SweepRow {
    /// Lookups a second of the sweep alone.
    fn rate(&self) -> f64 {
        per_second(self.size, self.alone_seconds)
    }

    /// Lookups a second of the sweep during the API's measurement.
    fn busy_rate(&self) -> f64 {
        per_second(self.size, self.seconds)
    }

    fn ratio(&self) -> f64 {
        let raw = self.raw.rate();
        if raw > 0.0 { self.rate() / raw } else { 0.0 }
    }
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// The API while a sweep runs under claimd's default bounds (`--recheck-rate 20`,
/// `--recheck-workers 8`), against the same claimd idle just before.
pub struct BoundedSweepRow {
    /// Re-check lookups the DNS server saw per second while the API was measured.
    pub rate: f64,
    pub idle: (Stats, Stats),
    pub busy: (Stats, Stats),
}

/// Webhook deliveries with a full queue: `queued` waiting when a claimd started, `deliveries`
/// of them received `seconds` after it was.
pub struct DeliveryRow {
    pub queued: u64,
    pub deliveries: u64,
    pub seconds: f64,
}

impl DeliveryRow {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.deliveries as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The API's read and write p99 during `what`, against idle.
fn api_during(what: &str, idle: &(Stats, Stats), busy: &(Stats, Stats)) -> String {
    let mut out = format!(
        "| API during {what} (8 + 8 clients) | idle p99 ms | sweep p99 ms | ratio |\n|---|---:|---:|---:|\n"
    );
    for (kind, idle, busy) in [("read", &idle.0, &busy.0), ("write", &idle.1, &busy.1)] {
        out += &format!(
            "| {kind} | {} | {} | {:.2} |\n",
            ms(idle.p99_us),
            ms(busy.p99_us),
            busy.p99_us as f64 / idle.p99_us.max(1) as f64
        );
    }
    out
}

pub struct Report {
    pub machine: Machine,
    pub database: &'static str,
    pub duration: Duration,
    pub rows: Vec<Row>,
    pub scale: Vec<ScaleRow>,
    pub sweep: Option<SweepRow>,
    pub bounded_sweep: Option<BoundedSweepRow>,
    pub deliveries: Option<DeliveryRow>,
    pub users: Option<crate::users::UsersReport>,
    pub peak_rss_kib: Option<u64>,
    pub smoke: bool,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn stats_json(s: &Stats) -> Value {
    json!({"requests": s.requests, "errors": s.errors, "rps": s.rate(), "p50_ms": s.p50_us as f64 / 1000.0, "p99_ms": s.p99_us as f64 / 1000.0})
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## claimd vs the bare stack — {} ({}{})\n\nmachine: {} cores, {}; commit {}; {} s per measurement\n\n",
            self.database,
            if self.smoke {
                "smoke run, figures meaningless; "
            } else {
                ""
            },
            "same run, same machine",
            self.machine.cores,
            self.machine.cpu,
            self.machine.commit,
            self.duration.as_secs_f64()
        );
        out += "| workload | conc. | claimd req/s | p50 ms | p99 ms | errors | reference req/s | p50 ms | p99 ms | ratio |\n";
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for r in &self.rows {
            let (rr, rp50, rp99) = match &r.reference {
                Some(s) => (format!("{:.0}", s.rate()), ms(s.p50_us), ms(s.p99_us)),
                None => ("–".into(), "–".into(), "–".into()),
            };
            out += &format!(
                "| {} | {} | {:.0} | {} | {} | {} | {rr} | {rp50} | {rp99} | {} |\n",
                r.workload,
                r.concurrency,
                r.claimd.rate(),
                ms(r.claimd.p50_us),
                ms(r.claimd.p99_us),
                r.claimd.errors,
                r.ratio().map_or("–".into(), |x| format!("{x:.2}"))
            );
        }
        for r in &self.rows {
            for (who, s) in [
                ("claimd", Some(&r.claimd)),
                ("reference", r.reference.as_ref()),
            ] {
                if let Some(e) = s.and_then(|s| s.first_error.as_ref()) {
                    out += &format!(
                        "\n- {} at {}: {who} failed, first: `{e}`",
                        r.workload, r.concurrency
                    );
                }
            }
        }
        out += "\nReference: the baseline server (axum + sqlx, same database) for write and read; the raw TXT query rate of the same DNS server through the same resolver library for verify.\n\n";
        out += "| domains preloaded | conc. | read p50 ms | read p99 ms | write p50 ms | write p99 ms |\n|---:|---:|---:|---:|---:|---:|\n";
        for s in &self.scale {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                s.size,
                s.concurrency,
                ms(s.read.p50_us),
                ms(s.read.p99_us),
                ms(s.write.p50_us),
                ms(s.write.p99_us)
            );
        }
        if let Some(s) = &self.sweep {
            out += &format!(
                "\nRe-check sweep: {} verified domains due at once, looked up again in {:.1} s: {:.0} lookups/s against {:.0} raw TXT queries/s at 64 at once of the same names (the server saw {:.0} queries/s meanwhile), **ratio {:.2}**. Another {} while the API was measured: {:.1} s, {:.0} lookups/s.\n\n",
                s.size,
                s.alone_seconds,
                s.rate(),
                s.raw.rate(),
                s.raw_served,
                s.ratio(),
                s.size,
                s.seconds,
                s.busy_rate(),
            );
            out += &api_during("the sweep", &s.idle, &s.busy);
        }
        if let Some(b) = &self.bounded_sweep {
            out += &format!(
                "\nThe same under claimd's default bounds (`--recheck-rate 20 --recheck-workers 8`): {:.0} re-check lookups/s while measured.\n\n",
                b.rate
            );
            out += &api_during("a bounded sweep", &b.idle, &b.busy);
        }
        if let Some(d) = &self.deliveries {
            out += &format!(
                "\nWebhook deliveries: {} queued during the run (2 webhooks), {} received by a receiver on loopback within {:.1} s of starting a claimd that delivers them: **{:.0} deliveries/s**.\n",
                d.queued,
                d.deliveries,
                d.seconds,
                d.rate()
            );
        }
        if let Some(u) = &self.users {
            out += &u.markdown();
        }
        out += &format!(
            "\nclaimd peak RSS: {}\n",
            self.peak_rss_kib
                .map_or("unknown".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
        );
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "database": self.database,
            "machine": {"cores": self.machine.cores, "cpu": self.machine.cpu, "commit": self.machine.commit},
            "seconds_per_measurement": self.duration.as_secs_f64(),
            "rows": self.rows.iter().map(|r| json!({
                "workload": r.workload, "concurrency": r.concurrency,
                "claimd": stats_json(&r.claimd),
                "reference": r.reference.as_ref().map(stats_json),
                "ratio": r.ratio(),
            })).collect::<Vec<_>>(),
            "scale": self.scale.iter().map(|s| json!({
                "domains": s.size, "concurrency": s.concurrency,
                "read": stats_json(&s.read), "write": stats_json(&s.write),
            })).collect::<Vec<_>>(),
            "sweep": self.sweep.as_ref().map(|s| json!({
                "domains": s.size, "seconds": s.alone_seconds, "rate": s.rate(),
                "raw_dns": stats_json(&s.raw), "raw_served": s.raw_served, "ratio": s.ratio(),
                "during_api": {"seconds": s.seconds, "rate": s.busy_rate()},
                "idle": {"read": stats_json(&s.idle.0), "write": stats_json(&s.idle.1)},
                "during": {"read": stats_json(&s.busy.0), "write": stats_json(&s.busy.1)},
            })),
            "bounded_sweep": self.bounded_sweep.as_ref().map(|b| json!({
                "rate": b.rate,
                "idle": {"read": stats_json(&b.idle.0), "write": stats_json(&b.idle.1)},
                "during": {"read": stats_json(&b.busy.0), "write": stats_json(&b.busy.1)},
            })),
            "webhook_deliveries": self.deliveries.as_ref().map(|d| json!({
                "queued": d.queued, "received": d.deliveries, "seconds": d.seconds, "rate": d.rate(),
            })),
            "users": self.users.as_ref().map(crate::users::UsersReport::json),
            "peak_rss_kib": self.peak_rss_kib,
        })
    }
}
