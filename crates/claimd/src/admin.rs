//! `claimd org …` and `claimd token …`: organizations and credentials, directly in the database.

use anyhow::{Context as _, bail};
use claimd_domain::{
    ApiSecret, CredentialId, NewCredential, OrgId, ROLE_FULL_ADMIN, SCOPE_ORGANIZATIONS_RW,
    Timestamp,
};
use claimd_store::{Actor, Store};

use crate::cli::{OrgCommand, TokenCommand, TokenCreateArgs};

/// Changes made by these commands: an operator at the database, no credential.
fn operator() -> Actor {
    Actor {
        credential_id: None,
        tracking_id: Some(format!("claimd-cli-{}", std::process::id())),
    }
}

pub async fn org(store: &dyn Store, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { name } => {
            let org = store
                .create_organization(&operator(), &name, Timestamp::now())
                .await
                .context("cannot create the organization")?;
            println!("{}", org.id);
        }
        OrgCommand::List => {
            let orgs = store
                .list_organizations()
                .await
                .context("cannot list organizations")?;
            for org in orgs {
                println!("{}\t{}", org.id, org.name);
            }
        }
    }
    Ok(())
}

pub async fn token(store: &dyn Store, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create_token(store, args).await,
        TokenCommand::List { org } => list_tokens(store, OrgId::new(org)).await,
        TokenCommand::Revoke { id } => {
            let id = CredentialId::new(id);
            let revoked = store
                .revoke_credential(&operator(), &id, Timestamp::now())
                .await
                .context("cannot revoke the credential")?;
            if !revoked {
                bail!("no credential with id {id}");
            }
            eprintln!("revoked credential {id}");
            Ok(())
        }
    }
}

async fn create_token(store: &dyn Store, args: TokenCreateArgs) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let or_default = |given: Vec<String>, default: &str| {
        if given.is_empty() {
            vec![default.to_owned()]
        } else {
            given
        }
    };
    let new = NewCredential {
        org_id: args.org.map(OrgId::new),
        label: args.label,
        scopes: or_default(args.scopes, SCOPE_ORGANIZATIONS_RW),
        roles: or_default(args.roles, ROLE_FULL_ADMIN),
        expires_at: args.expires_in.map(|d| now.plus(d)),
    };
    let secret = ApiSecret::generate();
    let credential = store
        .create_credential(&operator(), &new, &secret.hash(), now)
        .await
        .context("cannot create the credential")?;
    eprintln!("created credential {}", credential.id);
    println!("{}", secret.expose());
    Ok(())
}

async fn list_tokens(store: &dyn Store, org: OrgId) -> anyhow::Result<()> {
    let now = Timestamp::now();
    if store.find_organization(&org).await?.is_none() {
        bail!("organization {org} does not exist");
    }
    let credentials = store
        .list_credentials(&org)
        .await
        .context("cannot list credentials")?;
    for c in credentials {
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
