//! `claimd serve`: the API, configured from the flags; the first-start bootstrap; graceful
//! shutdown on SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use claimd_dns::{Dnssec, Verifier};
use claimd_domain::{ApiSecret, DomainPolicy, SecretHash, Timestamp};
use claimd_http::limits::LimitConfig;
use claimd_http::serve::ConnectionLimits;
use claimd_http::{AppState, HttpConfig};
use claimd_recheck::Worker;
use claimd_store::Store;
use claimd_webhooks::Dispatcher;

use crate::cli::ServeArgs;

pub async fn run(store: Arc<dyn Store>, args: ServeArgs) -> anyhow::Result<()> {
    let verifier = args.dns.verifier()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let metrics_listener = match args.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
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
                .with_context(|| format!("cannot read {}", path.display()))?,
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
        recheck: args.recheck.config(),
        webhook_targets: args.webhooks.targets(),
        metrics_token: args.metrics_token.as_deref().map(SecretHash::of),
        oidc: args.oidc.config(&args.jwt),
        ..HttpConfig::default()
    };
    let verifier = Arc::new(verifier);
    tokio::spawn(probe_dnssec(verifier.clone()));
    let worker = Worker::spawn(
        store.clone(),
        verifier.clone(),
        config.recheck,
        args.recheck.worker(args.dns.dns_timeout),
    );
    let dispatcher =
        Dispatcher::spawn(store.clone(), args.webhooks.dispatcher()).map_err(anyhow::Error::msg)?;
    let pruner = args
        .webhooks
        .audit_retention
        .map(|keep| tokio::spawn(prune(store.clone(), keep)));
    let mut state = AppState::new(store, verifier, config);
    if let Some(jwt) = args.jwt.verifier().await? {
        state = state.with_jwt(jwt);
    }
    // The rate limits are shared among the processes on this database from the first request.
    let member = format!("pid-{}-{}", std::process::id(), uuid::Uuid::new_v4());
    heartbeat(&state, &member).await;
    let fleet = tokio::spawn(fleet(state.clone(), member.clone()));
    let fleet_store = state.store.clone();
    let metrics_state = state.clone();
    let app = claimd_http::router(state);
    tracing::info!(address = %local, "claimd listening");
    // Logged after the API's address, which tools and tests read first.
    let metrics = metrics_listener.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(metrics = %address, "metrics listening");
        }
        tokio::spawn(claimd_http::serve::serve(
            listener,
            claimd_http::metrics::router(metrics_state),
            ConnectionLimits::default(),
            std::future::pending(),
        ))
    });
    notify_systemd("READY=1");
    claimd_http::serve::serve(listener, app, ConnectionLimits::default(), async {
        shutdown_signal().await;
        notify_systemd("STOPPING=1");
    })
    .await
    .context("the server failed")?;
    if let Some(worker) = worker {
        worker.stop().await;
    }
    if let Some(dispatcher) = dispatcher {
        dispatcher.stop().await;
    }
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    fleet.abort();
    if let Err(e) = fleet_store.leave(&member).await {
        tracing::warn!(error = %e, "cannot leave the fleet; the others take the share back later");
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    tracing::info!("claimd stopped");
    Ok(())
}

/// On first start against an empty database: one organization and one admin credential,
/// printed once with a ready-to-paste curl line.
async fn bootstrap(store: &dyn Store, public_url: &str) -> anyhow::Result<()> {
    let secret = ApiSecret::generate();
    let created = store
        .create_first_organization("Default organization", &secret.hash(), Timestamp::now())
        .await
        .context("cannot create the first organization")?;
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

/// How often a process says it is alive.
const FLEET_HEARTBEAT: Duration = Duration::from_secs(2);
/// A process silent for longer no longer counts: its share of the rate limits is back with the
/// others within this plus one heartbeat.
const FLEET_TTL: Duration = Duration::from_secs(10);

/// Says this process is alive, and shares the rate limits among the processes that are.
async fn heartbeat(state: &AppState, member: &str) {
    match state
        .store
        .heartbeat(member, Timestamp::now(), FLEET_TTL)
        .await
    {
        Ok(members) => {
            if members != state.limits.members() {
                tracing::info!(
                    processes = members,
                    "rate limits shared among the processes on this database"
                );
            }
            state.limits.set_members(members);
        }
        // The last share stays: between heartbeats is the documented slack.
        Err(e) => tracing::warn!(error = %e, "fleet heartbeat failed; keeping the last share"),
    }
}

async fn fleet(state: AppState, member: String) {
    let mut every = tokio::time::interval(FLEET_HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        heartbeat(&state, &member).await;
    }
}

/// Deletes the events older than `keep`, at start and then hourly.
async fn prune(store: Arc<dyn Store>, keep: Duration) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match store.prune_events(keep, Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old events deleted (audit retention)"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old events"),
        }
    }
}

/// Tells systemd how claimd stands (`Type=notify` units): `READY=1` once it listens,
/// `STOPPING=1` when it begins to stop. Nothing without `NOTIFY_SOCKET`.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|socket| {
        match path.as_encoded_bytes().strip_prefix(b"@") {
            // An abstract socket (Linux): the name after the '@'.
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &address)
            }
            _ => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Says at start whether each perspective's resolvers can serve validation: one that cannot
/// (it strips signatures, or is unreachable) would make every lookup fail.
async fn probe_dnssec(verifier: Arc<Verifier>) {
    for (perspective, status) in verifier.probe_dnssec().await {
        let reason = match status {
            Ok(Dnssec::Secure) => {
                tracing::info!(
                    perspective,
                    "DNSSEC validation works through this perspective"
                );
                continue;
            }
            Ok(other) => format!("the root's SOA record came back {}", other.as_str()),
            Err(e) => format!("the root's SOA record could not be fetched: {e}"),
        };
        tracing::warn!(
            perspective,
            reason,
            "DNSSEC validation fails through this perspective: its resolvers do not pass signed \
             answers, cannot be reached, or the trust anchor is not this root's; lookups will \
             not verify (use resolvers that pass DNSSEC, or --dnssec off on a closed network)"
        );
    }
}
