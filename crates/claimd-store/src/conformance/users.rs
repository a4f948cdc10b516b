//! The user directory: uniqueness, filters, paging and order, versions.

use std::sync::Arc;

use claimd_domain::{
    AccountStatus, ClaimFlags, DomainState, Email, Enterprise, FilterAttribute, LifecycleError,
    OrgId, OrganizationPatch, User, UserFields, parse_filter,
};

use super::{TTL, actor, at, name, req, verified};
use crate::error::{StoreError, StoreResult};
use crate::events::{Actor, AuditEntry, AuditQuery, EventKind};
use crate::previews::{Change, Impact};
use crate::store::Store;
use crate::users::UserQuery;

pub(crate) fn fields(user_name: &str, display: Option<&str>) -> UserFields {
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
        roles: Vec::new(),
        enterprise: Enterprise::default(),
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
    // Every field a client sets comes back as written, the enterprise extension's too.
    let ann_fields = UserFields {
        roles: vec!["id_user_admin".into()],
        enterprise: Enterprise {
            department: Some("Sales".into()),
            manager: Some("u-42".into()),
            ..Enterprise::default()
        },
        ..fields("Ann@example.com", Some("Ann"))
    };
    let ann = store
        .create_user(&actor(), &a, &ann_fields, AccountStatus::Active, at(1))
        .await
        .unwrap();
    assert_eq!(ann.fields, ann_fields);
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

/// Every event of `org`, counted (a preview must add none).
async fn event_count(store: &dyn Store, org: &OrgId) -> usize {
    audit(store, org, Vec::new()).await.len()
}

/// `org`'s audit log, of these kinds (all when empty).
async fn audit(store: &dyn Store, org: &OrgId, kinds: Vec<EventKind>) -> Vec<AuditEntry> {
    let query = AuditQuery {
        org: org.clone(),
        from: None,
        to: None,
        actor: None,
        kinds,
        offset: 0,
        limit: 1000,
    };
    store.list_audit_events(&query).await.unwrap()
}

/// Each user's status in `org`, by userName.
async fn statuses(store: &dyn Store, org: &OrgId) -> Vec<(String, AccountStatus)> {
    let page = store.list_users(org, &query(None)).await.unwrap();
    page.users
        .into_iter()
        .map(|u| (u.fields.user_name, u.account_status))
        .collect()
}

/// A preview runs the change's rules in full and answers what they would do to users, by
/// count, with nothing changed; a change the rules refuse is refused the same way.
pub async fn previews_count_what_would_change_and_change_nothing(store: Arc<dyn Store>) {
    let (a, b) = (org(&*store, "a").await, org(&*store, "b").await);
    for (o, user) in [
        (&a, "ann@example.com"),
        (&a, "al@elsewhere.test"),
        (&b, "bob@example.com"),
        (&b, "bea@sub.example.com"),
        (&b, "bo@other.test"),
    ] {
        store
            .create_user(
                &actor(),
                o,
                &fields(user, None),
                AccountStatus::Active,
                at(1),
            )
            .await
            .unwrap();
    }
    let d = verified(&*store, &a, "example.com").await;
    let snapshot = || async {
        (
            statuses(&*store, &a).await,
            statuses(&*store, &b).await,
            event_count(&*store, &a).await,
            event_count(&*store, &b).await,
            store.find_domain(&a, &d).await.unwrap(),
            store.find_organization(&a).await.unwrap(),
        )
    };
    let before = snapshot().await;

    let force = ClaimFlags::default();
    let claim = Change::Claim {
        domains: vec![d.clone()],
        flags: force,
    };
    let impact = store.preview(&actor(), &a, claim, at(3)).await.unwrap();
    assert_eq!(
        impact,
        Impact {
            external_users_marked: 2,
            ..Impact::default()
        }
    );
    assert_eq!(snapshot().await, before, "a preview changes nothing");
    // Refused as the claim itself would be.
    let careful = Change::Claim {
        domains: vec![d.clone()],
        flags: ClaimFlags {
            force_domain_claim: false,
            claim_domain_only: false,
        },
    };
    let err = store
        .preview(&actor(), &a, careful, at(3))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Rule(LifecycleError::ExternalUsers { count: 2, .. })
    ));
    // Nobody is searched with claimDomainOnly.
    let only = Change::Claim {
        domains: vec![d.clone()],
        flags: ClaimFlags {
            force_domain_claim: false,
            claim_domain_only: true,
        },
    };
    let impact = store.preview(&actor(), &a, only, at(3)).await.unwrap();
    assert_eq!(impact, Impact::default());

    // The enforcement switch: a's user outside its verified domains would become transient.
    let enforce = Change::Organization(OrganizationPatch {
        enforce_verified_domains: Some(true),
        ..OrganizationPatch::default()
    });
    let impact = store
        .preview(&actor(), &a, enforce.clone(), at(3))
        .await
        .unwrap();
    assert_eq!(impact.users_becoming_transient, 1);
    assert_eq!(snapshot().await, before);

    // Once enforcing and claimed, unverifying would leave no verified domain (enforcement no
    // longer applies: al is active again), and unclaiming would restore b's users.
    store
        .update_organization(
            &actor(),
            &a,
            &OrganizationPatch {
                enforce_verified_domains: Some(true),
                ..OrganizationPatch::default()
            },
            at(4),
        )
        .await
        .unwrap();
    store
        .claim_domains(&actor(), &a, std::slice::from_ref(&d), force, at(5))
        .await
        .unwrap();
    let after_claim = snapshot().await;
    let impact = store
        .preview(&actor(), &a, Change::Unclaim(d.clone()), at(6))
        .await
        .unwrap();
    assert_eq!(
        impact,
        Impact {
            external_users_restored: 2,
            ..Impact::default()
        }
    );
    let err = store
        .preview(
            &actor(),
            &a,
            Change::Unverify {
                domain: d.clone(),
                remove_pending: false,
            },
            at(6),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Rule(LifecycleError::StillClaimed(_))
    ));
    store.unclaim_domain(&actor(), &a, &d, at(7)).await.unwrap();
    let unverify = Change::Unverify {
        domain: d.clone(),
        remove_pending: false,
    };
    let impact = store.preview(&actor(), &a, unverify, at(8)).await.unwrap();
    assert_eq!(
        impact,
        Impact {
            users_becoming_active: 1,
            ..Impact::default()
        }
    );
    assert_ne!(
        snapshot().await,
        after_claim,
        "the real unclaim did change things"
    );

    // Verifying a pending name (as if its lookup succeeded) under enforcement: c's user in it
    // would be inside, its other user outside.
    let c = org(&*store, "c").await;
    for user in ["cy@ours.test", "cat@theirs.test"] {
        store
            .create_user(
                &actor(),
                &c,
                &fields(user, None),
                AccountStatus::Active,
                at(9),
            )
            .await
            .unwrap();
    }
    store
        .update_organization(
            &actor(),
            &c,
            &OrganizationPatch {
                enforce_verified_domains: Some(true),
                ..OrganizationPatch::default()
            },
            at(9),
        )
        .await
        .unwrap();
    let ours = name("ours.test");
    store
        .issue_token(&actor(), &c, &ours, req(TTL, 0), at(9))
        .await
        .unwrap();
    let verify = Change::Verify {
        domain: ours.clone(),
        claim: false,
        reserve_domain: false,
    };
    let impact = store.preview(&actor(), &c, verify, at(10)).await.unwrap();
    assert_eq!(impact.users_becoming_transient, 1);
    assert_eq!(
        store.find_domain(&c, &ours).await.unwrap().unwrap().state,
        DomainState::Pending
    );
    // A name with no token: refused as verifyDomain is.
    let unknown = Change::Verify {
        domain: name("unknown.test"),
        claim: false,
        reserve_domain: false,
    };
    let err = store
        .preview(&actor(), &c, unknown, at(10))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Rule(LifecycleError::NoTokenRequested(_))
    ));
}

/// The claiming organization sees the users its claim made transient, and can convert them:
/// each leaves its organization (whose log says so, without saying who took it) and is active
/// in the claimant; a conversion happens once, and only for its own external users.
pub async fn external_users_are_listed_and_converted(store: Arc<dyn Store>) {
    let (a, b) = (org(&*store, "a").await, org(&*store, "b").await);
    let mut ids = Vec::new();
    for user in ["Bob@corp.test", "carl@sales.corp.test", "dan@other.test"] {
        let u = store
            .create_user(
                &actor(),
                &b,
                &fields(user, None),
                AccountStatus::Active,
                at(1),
            )
            .await
            .unwrap();
        ids.push(u.id);
    }
    let d = verified(&*store, &a, "corp.test").await;
    assert!(
        store
            .list_external_users(&a, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .claim_domains(
            &actor(),
            &a,
            std::slice::from_ref(&d),
            ClaimFlags::default(),
            at(3),
        )
        .await
        .unwrap();
    let external = store.list_external_users(&a, None, 10).await.unwrap();
    let names: Vec<(&str, &str)> = external
        .iter()
        .map(|e| (e.user.fields.user_name.as_str(), e.claimed_domain.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Bob@corp.test", "corp.test"),
            ("carl@sales.corp.test", "corp.test")
        ]
    );
    // Paged by userName, ignoring case.
    let next = store
        .list_external_users(&a, Some("bob@CORP.test"), 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].user.fields.user_name, "carl@sales.corp.test");
    assert!(
        store
            .list_external_users(&b, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // b cannot convert a's external users, nor a a user outside its claims.
    assert_eq!(
        store
            .convert_user(&actor(), &b, &ids[0], at(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .convert_user(&actor(), &a, &ids[2], at(4))
            .await
            .unwrap(),
        None
    );
    let bob = store
        .convert_user(&actor(), &a, &ids[0], at(4))
        .await
        .unwrap()
        .expect("converted");
    assert_eq!(bob.org_id, a);
    assert_eq!(bob.account_status, AccountStatus::Active);
    assert_eq!(
        store.find_user(&a, &ids[0]).await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(store.find_user(&b, &ids[0]).await.unwrap(), None);
    // Once only.
    assert_eq!(
        store
            .convert_user(&actor(), &a, &ids[0], at(5))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_external_users(&a, None, 10).await.unwrap().len(),
        1
    );

    let conversions = vec![EventKind::UserJoined, EventKind::UserLeft];
    let joined = audit(&*store, &a, conversions.clone()).await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].event.kind, EventKind::UserJoined);
    assert_eq!(
        joined[0].event.detail.as_deref(),
        Some("claim of corp.test")
    );
    let left = audit(&*store, &b, conversions).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.kind, EventKind::UserLeft);
    assert_eq!(left[0].event.credential_id, None, "not who took it");
    assert!(left[0].actor_org.is_none());

    // The claim ends: carl is restored in b; bob stays in a.
    store.unclaim_domain(&actor(), &a, &d, at(6)).await.unwrap();
    let carl = store.find_user(&b, &ids[1]).await.unwrap().unwrap();
    assert_eq!(carl.account_status, AccountStatus::Active);
    assert_eq!(
        store.find_user(&a, &ids[0]).await.unwrap().unwrap().org_id,
        a
    );
    assert!(
        store
            .list_external_users(&a, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The admin lock-out guard: no change by an organization's credential (or another's, through a
/// claim or a conversion) leaves an organization that has an active full administrator without
/// one; the operator is not held; an organization that never had one is not held either.
pub async fn the_last_active_full_admin_is_kept(store: Arc<dyn Store>) {
    let (a, b) = (org(&*store, "a").await, org(&*store, "b").await);
    let guarded = Actor {
        guarded: true,
        ..actor()
    };
    let admin = |name: &str| UserFields {
        roles: vec!["id_full_admin".into()],
        ..fields(name, None)
    };
    let create = |o: OrgId, f: UserFields| {
        let store = store.clone();
        async move {
            store
                .create_user(&actor(), &o, &f, AccountStatus::Active, at(1))
                .await
                .unwrap()
        }
    };
    let ann = create(a.clone(), admin("ann@a.test")).await;
    let al = create(a.clone(), admin("al@a.test")).await;
    let plain = create(a.clone(), fields("pat@a.test", None)).await;
    let lockout = |r: StoreResult<Option<User>>| {
        assert!(
            matches!(r, Err(StoreError::Rule(LifecycleError::AdminLockout))),
            "{r:?}"
        );
    };
    // Two admins: one may go; the other is then the last.
    assert!(
        store
            .delete_user(&guarded, &a, &al.id, None, at(2))
            .await
            .unwrap()
    );
    let err = store.delete_user(&guarded, &a, &ann.id, None, at(2)).await;
    assert!(matches!(
        err,
        Err(StoreError::Rule(LifecycleError::AdminLockout))
    ));
    // Nor deactivated, nor stripped of the role.
    let inactive = UserFields {
        active: false,
        ..admin("ann@a.test")
    };
    lockout(
        store
            .replace_user(&guarded, &a, &ann.id, &inactive, None, at(3))
            .await,
    );
    lockout(
        store
            .replace_user(
                &guarded,
                &a,
                &ann.id,
                &fields("ann@a.test", None),
                None,
                at(3),
            )
            .await,
    );
    // Other users change freely, and the admin in ways that keep it one.
    store
        .replace_user(
            &guarded,
            &a,
            &plain.id,
            &UserFields {
                active: false,
                ..plain.fields.clone()
            },
            None,
            at(3),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .replace_user(
            &guarded,
            &a,
            &ann.id,
            &UserFields {
                display_name: Some("Ann".into()),
                ..admin("ann@a.test")
            },
            None,
            at(3),
        )
        .await
        .unwrap()
        .unwrap();
    // Enforcement that would make the admin transient (a's verified domain is elsewhere).
    verified(&*store, &a, "other.test").await;
    let enforce = OrganizationPatch {
        enforce_verified_domains: Some(true),
        ..OrganizationPatch::default()
    };
    let err = store
        .update_organization(&guarded, &a, &enforce, at(4))
        .await;
    assert!(
        matches!(err, Err(StoreError::Rule(LifecycleError::AdminLockout))),
        "{err:?}"
    );
    assert!(
        !store
            .find_organization(&a)
            .await
            .unwrap()
            .unwrap()
            .enforce_verified_domains
    );

    // b claiming a.test would make a's last admin transient: refused, counted, not named.
    let d = verified(&*store, &b, "a.test").await;
    let err = store
        .claim_domains(
            &guarded,
            &b,
            std::slice::from_ref(&d),
            ClaimFlags::default(),
            at(5),
        )
        .await;
    assert!(
        matches!(
            err,
            Err(StoreError::Rule(LifecycleError::AdminLockoutElsewhere {
                count: 1,
                ..
            }))
        ),
        "{err:?}"
    );
    assert_eq!(
        store
            .find_user(&a, &ann.id)
            .await
            .unwrap()
            .unwrap()
            .account_status,
        AccountStatus::Active
    );
    // With a second admin outside the domain, a keeps one: the claim goes through, and b may
    // convert ann (a keeps its other admin) ...
    let ada = create(a.clone(), admin("ada@elsewhere.test")).await;
    store
        .claim_domains(
            &guarded,
            &b,
            std::slice::from_ref(&d),
            ClaimFlags::default(),
            at(6),
        )
        .await
        .unwrap();
    store
        .convert_user(&guarded, &b, &ann.id, at(7))
        .await
        .unwrap()
        .unwrap();
    // ... but not a's last admin, once the operator moved ada into the domain.
    store
        .replace_user(&actor(), &a, &ada.id, &admin("ada@x.a.test"), None, at(8))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .find_user(&a, &ada.id)
            .await
            .unwrap()
            .unwrap()
            .account_status,
        AccountStatus::Transient
    );
    // (ada is transient already: a has no active admin left to keep, so nothing is held.)
    store
        .convert_user(&guarded, &b, &ada.id, at(9))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        store
            .find_user(&b, &ada.id)
            .await
            .unwrap()
            .unwrap()
            .account_status,
        AccountStatus::Active
    );

    // The operator is not held: c's last admin may be deleted by it.
    let c = org(&*store, "c").await;
    let cy = create(c.clone(), admin("cy@c.test")).await;
    let err = store.delete_user(&guarded, &c, &cy.id, None, at(10)).await;
    assert!(matches!(
        err,
        Err(StoreError::Rule(LifecycleError::AdminLockout))
    ));
    assert!(
        store
            .delete_user(&actor(), &c, &cy.id, None, at(10))
            .await
            .unwrap()
    );
    // An organization without admins is not held.
    let cat = create(c.clone(), fields("cat@c.test", None)).await;
    assert!(
        store
            .delete_user(&guarded, &c, &cat.id, None, at(11))
            .await
            .unwrap()
    );
}
