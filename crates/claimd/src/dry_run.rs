//! `claimd dry-run DOMAIN --org ID`: the lookup verifyDomain would make, for a person at a
//! terminal. The same sequence as the API's dry run ([`claimd_http::verification::dry_run`]).

use anyhow::{Context as _, bail};
use claimd_domain::{DomainName, OrgId, Timestamp};
use claimd_store::Store;

use crate::cli::DryRunArgs;

pub async fn run(store: &dyn Store, args: DryRunArgs) -> anyhow::Result<()> {
    let domain = DomainName::parse(&args.domain).context("invalid domain")?;
    let org = OrgId::new(args.org);
    let record = store
        .find_domain(&org, &domain)
        .await?
        .with_context(|| format!("organization {org} has requested no token for {domain}"))?;
    let verifier = args.dns.verifier()?;
    let run = claimd_http::verification::dry_run(&verifier, None, record, Timestamp::now())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.descriptions.join("; ")))?;
    println!(
        "{domain}: {} in organization {org}",
        run.record.state.as_str()
    );
    println!("{}", run.report);
    if !run.report.outcome.is_verified() {
        bail!(
            "{domain} would not verify now ({})",
            run.report.outcome.kind().as_str()
        );
    }
    Ok(())
}
