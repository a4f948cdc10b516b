//! `claimd events` and `claimd webhook …`: the event log and webhooks, read and replayed
//! directly in the database.

use anyhow::{Context as _, bail};
use claimd_domain::{DomainName, OrgId, Timestamp, WebhookId};
use claimd_store::{Actor, AuditQuery, Event, Store};

use crate::cli::{EventsArgs, WebhookCommand};

/// One event per line, tab-separated; its detail cut to `detail_chars`.
fn line(e: &Event, detail_chars: usize) -> String {
    let detail = e.detail.as_deref().unwrap_or("");
    let detail: String = detail.chars().take(detail_chars).collect();
    format!(
        "{}\t{}\t{} {}\t{}\t{}\t{}",
        e.at.rfc3339(),
        e.kind.as_str(),
        e.target.kind(),
        e.target.id(),
        e.credential_id.as_ref().map_or("-", |c| c.as_str()),
        e.tracking_id.as_deref().unwrap_or("-"),
        detail
    )
}

pub async fn events(store: &dyn Store, args: EventsArgs) -> anyhow::Result<()> {
    let org = OrgId::new(args.org);
    if store.find_organization(&org).await?.is_none() {
        bail!("organization '{org}' does not exist (`claimd org list` shows them)");
    }
    let since = args.since.unwrap_or(Timestamp::from_millis(0));
    // One domain's history shows each lookup's evidence in full.
    let detail_chars = if args.domain.is_some() {
        usize::MAX
    } else {
        160
    };
    let events: Vec<Event> = match args.domain {
        Some(domain) => {
            let domain = DomainName::parse(&domain).context("invalid domain")?;
            store
                .list_events(&org, &domain)
                .await?
                .into_iter()
                .filter(|e| e.at >= since)
                .take(args.max as usize)
                .collect()
        }
        None => {
            let query = AuditQuery {
                org,
                from: Some(since),
                to: None,
                actor: None,
                kinds: Vec::new(),
                offset: 0,
                limit: args.max,
            };
            store
                .list_audit_events(&query)
                .await?
                .into_iter()
                .map(|entry| entry.event)
                .collect()
        }
    };
    for event in &events {
        println!("{}", line(event, detail_chars));
    }
    Ok(())
}

pub async fn webhook(store: &dyn Store, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::List { org } => {
            let org = OrgId::new(org);
            for w in store.list_webhooks(&org).await? {
                println!(
                    "{}\t{}\t{} {}\t{}\t{}{}",
                    w.id,
                    w.status.as_str(),
                    w.resource.as_str(),
                    w.event.as_str(),
                    w.target_url,
                    w.name,
                    w.failing_since
                        .map(|t| format!("\tfailing since {}", t.rfc3339()))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        WebhookCommand::Replay { id, org, since } => {
            let (org, id) = (OrgId::new(org), WebhookId::new(id));
            if store.find_webhook(&org, &id).await?.is_none() {
                bail!("organization {org} has no webhook {id}");
            }
            let actor = Actor {
                credential_id: None,
                tracking_id: Some(format!("claimd-cli-{}", std::process::id())),
                guarded: false,
            };
            let queued = store
                .replay_deliveries(&actor, &org, &id, since, Timestamp::now())
                .await?;
            eprintln!("queued {queued} deliveries");
            Ok(())
        }
    }
}
