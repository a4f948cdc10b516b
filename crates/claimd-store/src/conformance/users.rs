//! The user directory: uniqueness, filters, paging and order, versions.

use std::sync::Arc;

use claimd_domain::{AccountStatus, Email, FilterAttribute, OrgId, UserFields, parse_filter};

use super::{actor, at};
use crate::error::StoreError;
use crate::store::Store;
use crate::users::UserQuery;

fn fields(user_name: &str, display: Option<&str>) -> UserFields {
    UserFields {
        user_name: user_name.into(),
        display_name: display.map(str::to_owned),
        given_name: None,
        family_name: None,
        external_id: None,
        active: true,
        emails: vec![Email {
            value: user_name.into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }],
    }
}

async fn org(store: &dyn Store, name: &str) -> OrgId {
    store
        .create_organization(&actor(), name, at(0))
        .await
        .unwrap()
        .id
}

fn query(filter: Option<&str>) -> UserQuery {
    UserQuery {
        filter: filter.map(|f| parse_filter(f).unwrap()),
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 100,
    }
}

/// The userNames a filter finds in `org`, in the default order.
async fn names(store: &dyn Store, org: &OrgId, filter: &str) -> Vec<String> {
    let page = store.list_users(org, &query(Some(filter))).await.unwrap();
    assert_eq!(page.total as usize, page.users.len(), "{filter}");
    page.users.into_iter().map(|u| u.fields.user_name).collect()
}

pub async fn users_are_unique_by_user_name_across_organizations(store: Arc<dyn Store>) {
    let (a, b) = (org(&*store, "a").await, org(&*store, "b").await);
    let ann = store
        .create_user(
            &actor(),
            &a,
            &fields("Ann@example.com", Some("Ann")),
            AccountStatus::Active,
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(ann.version, 1);
    assert_eq!(
        store.find_user(&a, &ann.id).await.unwrap(),
        Some(ann.clone())
    );
    // Another organization does not see it.
    assert_eq!(store.find_user(&b, &ann.id).await.unwrap(), None);
    // The same userName in any case, in any organization, is taken.
    for org in [&a, &b] {
        let e = store
            .create_user(
                &actor(),
                org,
                &fields("ann@EXAMPLE.com", None),
                AccountStatus::Active,
                at(2),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("ann@EXAMPLE.com")),
            "{e}"
        );
    }
    let ghost = OrgId::new("no-such-org");
    let e = store
        .create_user(
            &actor(),
            &ghost,
            &fields("zed@example.com", None),
            AccountStatus::Active,
            at(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::UnknownOrganization(_)), "{e}");

    // Replace: the version moves; a stale version or a taken userName changes nothing.
    store
        .create_user(
            &actor(),
            &b,
            &fields("bob@example.org", None),
            AccountStatus::Active,
            at(3),
        )
        .await
        .unwrap();
    let renamed = store
        .replace_user(
            &actor(),
            &a,
            &ann.id,
            &fields("ann.s@example.com", Some("Ann S")),
            Some(1),
            at(4),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.version, renamed.last_modified), (2, at(4)));
    assert_eq!(renamed.created_at, at(1));
    assert_eq!(renamed.fields.display_name.as_deref(), Some("Ann S"));
    let stale = store
        .replace_user(
            &actor(),
            &a,
            &ann.id,
            &fields("x@example.com", None),
            Some(1),
            at(5),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::VersionMismatch)));
    let taken = store
        .replace_user(
            &actor(),
            &a,
            &ann.id,
            &fields("BOB@example.org", None),
            None,
            at(5),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))));
    assert_eq!(
        store.find_user(&a, &ann.id).await.unwrap(),
        Some(renamed.clone())
    );
    // The old name is free again.
    store
        .create_user(
            &actor(),
            &b,
            &fields("ann@example.com", None),
            AccountStatus::Active,
            at(6),
        )
        .await
        .unwrap();
    // Another organization's user can be neither replaced nor deleted through this one.
    assert_eq!(
        store
            .replace_user(
                &actor(),
                &b,
                &ann.id,
                &fields("q@example.com", None),
                None,
                at(7)
            )
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .delete_user(&actor(), &b, &ann.id, None, at(8))
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .delete_user(&actor(), &a, &ann.id, Some(1), at(8))
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(
        store
            .delete_user(&actor(), &a, &ann.id, Some(2), at(8))
            .await
            .unwrap()
    );
    assert_eq!(store.find_user(&a, &ann.id).await.unwrap(), None);
    assert_eq!(
        names(&*store, &a, "userName pr").await,
        Vec::<String>::new()
    );
    // Deleted, its emails are no longer found either.
    assert_eq!(
        names(&*store, &a, r#"emails.value eq "ann.s@example.com""#).await,
        Vec::<String>::new()
    );
}

pub async fn filters_find_exactly_their_users(store: Arc<dyn Store>) {
    let (a, b) = (org(&*store, "a").await, org(&*store, "b").await);
    let mut people = vec![
        (
            "ann@sales.example.com",
            Some("Ann Archer"),
            Some("E-1"),
            true,
        ),
        ("bob@example.com", Some("Bob"), None, false),
        ("carol@example.net", None, Some("e-3"), true),
        ("Dave@Example.com", Some("dave d"), None, true),
    ];
    for (i, (name, display, external, active)) in people.drain(..).enumerate() {
        let mut f = fields(name, display);
        f.external_id = external.map(str::to_owned);
        f.active = active;
        if name.starts_with("bob") {
            f.emails.push(Email {
                value: "robert@home.example".into(),
                kind: Some("home".into()),
                primary: false,
                display: None,
            });
        }
        store
            .create_user(
                &actor(),
                &a,
                &f,
                AccountStatus::Active,
                at(1_000 * (i as i64 + 1)),
            )
            .await
            .unwrap();
    }
    // A user of another organization that every filter below would match.
    store
        .create_user(
            &actor(),
            &b,
            &fields("eve@example.com", Some("Ann Eve")),
            AccountStatus::Active,
            at(1),
        )
        .await
        .unwrap();

    let cases: &[(&str, &[&str])] = &[
        (r#"userName eq "DAVE@example.com""#, &["Dave@Example.com"]),
        (
            r#"userName ne "bob@example.com""#,
            &[
                "ann@sales.example.com",
                "carol@example.net",
                "Dave@Example.com",
            ],
        ),
        (
            r#"userName co "EXAMPLE.COM""#,
            &[
                "ann@sales.example.com",
                "bob@example.com",
                "Dave@Example.com",
            ],
        ),
        (r#"userName sw "b""#, &["bob@example.com"]),
        (r#"userName ew ".net""#, &["carol@example.net"]),
        (
            r#"userName ew "a-much-longer-suffix-than-any-name.example.com""#,
            &[],
        ),
        (
            r#"userName gt "c""#,
            &["carol@example.net", "Dave@Example.com"],
        ),
        (
            r#"userName le "bob@example.com""#,
            &["ann@sales.example.com", "bob@example.com"],
        ),
        (
            r#"emails.value eq "ROBERT@home.example""#,
            &["bob@example.com"],
        ),
        (
            r#"emails.value ne "robert@home.example""#,
            &[
                "ann@sales.example.com",
                "carol@example.net",
                "Dave@Example.com",
            ],
        ),
        (
            r#"emails.value ew "@example.com""#,
            &["bob@example.com", "Dave@Example.com"],
        ),
        (r#"displayName co "ann""#, &["ann@sales.example.com"]),
        (
            "displayName pr",
            &[
                "ann@sales.example.com",
                "bob@example.com",
                "Dave@Example.com",
            ],
        ),
        ("displayName eq null", &["carol@example.net"]),
        (
            r#"not (displayName eq "bob")"#,
            &[
                "ann@sales.example.com",
                "carol@example.net",
                "Dave@Example.com",
            ],
        ),
        (r#"externalId eq "e-1""#, &[]),
        (r#"externalId eq "E-1""#, &["ann@sales.example.com"]),
        ("active eq false", &["bob@example.com"]),
        (
            "active ne false",
            &[
                "ann@sales.example.com",
                "carol@example.net",
                "Dave@Example.com",
            ],
        ),
        (
            r#"meta.lastModified ge "2023-11-14T22:13:23Z""#,
            &["carol@example.net", "Dave@Example.com"],
        ),
        (
            r#"meta.created lt "2023-11-14T22:13:22Z""#,
            &["ann@sales.example.com"],
        ),
        (
            r#"userName sw "a" or userName sw "b" and active eq true"#,
            &["ann@sales.example.com"],
        ),
        (
            r#"(userName sw "a" or userName sw "b") and active eq false"#,
            &["bob@example.com"],
        ),
        (r#"userName eq "eve@example.com""#, &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(names(&*store, &a, filter).await, *expected, "{filter}");
    }
}

pub async fn pages_and_order_are_stable(store: Arc<dyn Store>) {
    let a = org(&*store, "a").await;
    for (i, display) in ["Zoe", "adam", "", "Mia", "mia"].iter().enumerate() {
        let display = (!display.is_empty()).then_some(*display);
        store
            .create_user(
                &actor(),
                &a,
                &fields(&format!("u{i}@example.com"), display),
                AccountStatus::Active,
                at(i as i64),
            )
            .await
            .unwrap();
    }
    let mut q = query(None);
    q.count = 2;
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        q.start_index = start;
        let page = store.list_users(&a, &q).await.unwrap();
        assert_eq!(page.total, 5);
        seen.extend(page.users.into_iter().map(|u| u.fields.user_name));
    }
    assert_eq!(
        seen,
        [
            "u0@example.com",
            "u1@example.com",
            "u2@example.com",
            "u3@example.com",
            "u4@example.com"
        ]
    );
    q.start_index = 6;
    assert!(store.list_users(&a, &q).await.unwrap().users.is_empty());

    // By displayName, ignoring case (equal ones by id); users without one last, either way.
    let order = |descending| {
        let store = store.clone();
        let a = a.clone();
        async move {
            let mut q = query(None);
            q.sort_by = Some(FilterAttribute::DisplayName);
            q.descending = descending;
            let page = store.list_users(&a, &q).await.unwrap();
            page.users
                .into_iter()
                .map(|u| u.fields.display_name.unwrap_or_default().to_lowercase())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(order(false).await, ["adam", "mia", "mia", "zoe", ""]);
    assert_eq!(order(true).await, ["zoe", "mia", "mia", "adam", ""]);
}
