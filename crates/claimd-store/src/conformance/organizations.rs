//! Organizations, and the first-start bootstrap.

use std::sync::Arc;

use claimd_domain::{ApiSecret, NewCredential, OrgId};

use super::{TTL, actor, at, name, req};
use crate::error::StoreError;
use crate::store::Store;

pub async fn first_organization_once(store: Arc<dyn Store>) {
    let (h1, h2) = (ApiSecret::generate().hash(), ApiSecret::generate().hash());
    let (r1, r2) = tokio::join!(
        store.create_first_organization("first", &h1, at(0)),
        store.create_first_organization("second", &h2, at(0)),
    );
    let created = [r1.unwrap(), r2.unwrap()];
    assert_eq!(
        created.iter().flatten().count(),
        1,
        "exactly one bootstrap creates the organization"
    );
    let (org, admin) = created.into_iter().flatten().next().unwrap();
    assert_eq!(store.list_organizations().await.unwrap(), vec![org.clone()]);
    assert_eq!(admin.org_id, Some(org.id));
    assert!(admin.has_any_role(&[claimd_domain::ROLE_FULL_ADMIN]));
}

pub async fn unknown_organization_is_refused(store: Arc<dyn Store>) {
    let ghost = OrgId::generate();
    assert_eq!(store.find_organization(&ghost).await.unwrap(), None);
    let err = store
        .issue_token(&actor(), &ghost, &name("example.com"), req(TTL, 0), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownOrganization(_)));
    let err = store
        .create_credential(
            &actor(),
            &NewCredential::org_admin(ghost, "x"),
            &ApiSecret::generate().hash(),
            at(0),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownOrganization(_)));
}
