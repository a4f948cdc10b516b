//! Credentials.

use std::sync::Arc;

use claimd_domain::{ApiSecret, NewCredential};

use super::{actor, at, org};
use crate::store::Store;

pub async fn credentials_round_trip(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    let secret = ApiSecret::generate();
    let new = NewCredential {
        expires_at: Some(at(1000)),
        ..NewCredential::org_admin(a.clone(), "ci")
    };
    let created = store
        .create_credential(&actor(), &new, &secret.hash(), at(1))
        .await
        .unwrap();
    assert_eq!(created.org_id, Some(a.clone()));
    let found = store
        .find_credential_by_secret(&secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(found.scopes, new.scopes);
    assert!(
        store
            .find_credential_by_secret(&ApiSecret::generate().hash())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.list_credentials(Some(&a)).await.unwrap(),
        vec![created.clone()]
    );
    assert_eq!(store.list_credentials(None).await.unwrap(), vec![]);
    let before = store.credential_changes().await.unwrap();
    assert_eq!(
        store
            .revoke_credential(&actor(), &created.id, at(5))
            .await
            .unwrap(),
        Some(created.clone()),
        "the credential as it was"
    );
    let after = store.credential_changes().await.unwrap();
    assert!(
        after > before,
        "a revocation moves the change counter ({before} -> {after}) so caches forget"
    );
    let again = store
        .revoke_credential(&actor(), &created.id, at(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(at(5)),
        "already revoked, at the first time"
    );
    let revoked = store
        .find_credential_by_secret(&secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(5)));
    assert!(!revoked.is_active(at(7)));
    assert_eq!(
        store
            .revoke_credential(&actor(), &claimd_domain::CredentialId::new("nope"), at(6))
            .await
            .unwrap(),
        None
    );
    let operator = NewCredential {
        org_id: None,
        ..new
    };
    let op = store
        .create_credential(&actor(), &operator, &ApiSecret::generate().hash(), at(1))
        .await
        .unwrap();
    assert_eq!(op.org_id, None);
    assert_eq!(store.list_credentials(None).await.unwrap(), vec![op]);
    assert_eq!(store.list_credentials(Some(&a)).await.unwrap().len(), 1);
}
