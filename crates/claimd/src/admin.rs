//! `claimd org …` and `claimd token …`: organizations and credentials, directly in the database.

use anyhow::{Context as _, bail};
use claimd_domain::{
    ApiSecret, Credential, CredentialId, NewCredential, OrgId, ROLE_FULL_ADMIN,
    SCOPE_ORGANIZATIONS_RW, Timestamp,
};
use claimd_store::{Actor, Store};

use crate::cli::{OrgCommand, TokenCommand, TokenCreateArgs};

/// Changes made by these commands: an operator at the database, no credential.
fn operator() -> Actor {
    Actor {
        credential_id: None,
        tracking_id: Some(format!("claimd-cli-{}", std::process::id())),
        guarded: false,
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
        TokenCommand::List { org, .. } => list_tokens(store, org.map(OrgId::new)).await,
        TokenCommand::Revoke { id } => {
            let id = CredentialId::new(id);
            let before = store
                .revoke_credential(&operator(), &id, Timestamp::now())
                .await
                .context("cannot revoke the credential")?;
            match before {
                None => bail!("no credential with id {id}"),
                Some(Credential {
                    revoked_at: Some(at),
                    ..
                }) => eprintln!(
                    "credential {id} was already revoked at {}; nothing changed",
                    at.rfc3339()
                ),
                Some(_) => eprintln!("revoked credential {id}"),
            }
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

async fn list_tokens(store: &dyn Store, org: Option<OrgId>) -> anyhow::Result<()> {
    let now = Timestamp::now();
    if let Some(org) = &org {
        if org.as_str().trim().is_empty() {
            bail!("--org is empty: give an organization id (`claimd org list` shows them)");
        }
        if store.find_organization(org).await?.is_none() {
            bail!("organization '{org}' does not exist (`claimd org list` shows them)");
        }
    }
    let credentials = store
        .list_credentials(org.as_ref())
        .await
        .context("cannot list credentials")?;
    println!("id\tstate\tcreated\texpires\tscopes\troles\tlabel");
    for c in credentials {
        let state = if c.revoked_at.is_some() {
            "revoked"
        } else if !c.is_active(now) {
            "expired"
        } else {
            "active"
        };
        let expires = c
            .expires_at
            .map_or_else(|| "never".to_owned(), Timestamp::rfc3339);
        println!(
            "{}\t{state}\t{}\t{expires}\t{}\t{}\t{}",
            c.id,
            c.created_at.rfc3339(),
            c.scopes.join(","),
            c.roles.join(","),
            c.label
        );
    }
    Ok(())
}
