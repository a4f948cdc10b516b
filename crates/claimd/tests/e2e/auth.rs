//! Who may do what: the authentication and authorization matrix over real HTTP.

use std::time::Duration;

use claimd_domain::{
    ApiSecret, OrgId, ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN, SCOPE_IDENTITY_ORGANIZATION,
    SCOPE_ORGANIZATIONS_READ, SCOPE_ORGANIZATIONS_RW, Timestamp,
};
use serde_json::json;

use crate::support::{Backend, Org, TestApp};

/// (status of a write action, status of a read) for `authorization` on org a.
async fn statuses(app: &TestApp, authorization: Option<&str>, org: &OrgId) -> (u16, u16) {
    let base = format!("{}/v1/identity/organizations/{}", app.base, org);
    let mut post = app
        .client
        .post(format!("{base}/actions/getDomainVerificationToken"))
        .json(&json!({"domain": "matrix.test"}));
    let mut get = app.client.get(format!("{base}/domains"));
    if let Some(value) = authorization {
        post = post.header("authorization", value);
        get = get.header("authorization", value);
    }
    let w = app.send(post).await;
    let r = app.send(get).await;
    for reply in [&w, &r] {
        if reply.status.as_u16() >= 400 {
            reply.assert_error(reply.status.as_u16());
        }
    }
    if w.status == 401 {
        assert_eq!(
            w.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
    }
    (w.status.as_u16(), r.status.as_u16())
}

pub async fn the_authorization_matrix(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a.id;
    let bearer = |t: &str| format!("Bearer {t}");

    let (revoked, revoked_id) = app
        .credential(Some(a), &[SCOPE_ORGANIZATIONS_RW], &[ROLE_FULL_ADMIN], None)
        .await;
    app.store
        .revoke_credential(
            &claimd_store::Actor::default(),
            &revoked_id,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (expired, _) = app
        .credential(
            Some(a),
            &[SCOPE_ORGANIZATIONS_RW],
            &[ROLE_FULL_ADMIN],
            Some(Timestamp::now().plus(Duration::from_millis(1))),
        )
        .await;
    // The test clock runs from now; move it past the expiry.
    app.clock.advance(Duration::from_secs(1));
    let (no_scope, _) = app.credential(Some(a), &[], &[ROLE_FULL_ADMIN], None).await;
    let (no_role, _) = app
        .credential(Some(a), &[SCOPE_ORGANIZATIONS_RW], &[], None)
        .await;
    let (read_only, _) = app
        .credential(
            Some(a),
            &[SCOPE_ORGANIZATIONS_READ],
            &[ROLE_READONLY_ADMIN],
            None,
        )
        .await;
    let (legacy_scope, _) = app
        .credential(
            Some(a),
            &[SCOPE_IDENTITY_ORGANIZATION],
            &[ROLE_FULL_ADMIN],
            None,
        )
        .await;
    let (readonly_role_rw_scope, _) = app
        .credential(
            Some(a),
            &[SCOPE_ORGANIZATIONS_RW],
            &[ROLE_READONLY_ADMIN],
            None,
        )
        .await;
    let (operator, _) = app
        .credential(None, &[SCOPE_ORGANIZATIONS_RW], &[ROLE_FULL_ADMIN], None)
        .await;

    let unknown_org = OrgId::generate();
    // Hand-written expectations: (credential, org, write status, read status).
    type Case<'a> = (&'a str, Option<String>, &'a OrgId, (u16, u16));
    let cases: Vec<Case> = vec![
        ("no credential", None, a, (401, 401)),
        (
            "malformed header",
            Some("Basic dXNlcjpwYXNz".into()),
            a,
            (401, 401),
        ),
        ("empty bearer", Some("Bearer ".into()), a, (401, 401)),
        (
            "unknown token",
            Some(bearer(ApiSecret::generate().expose())),
            a,
            (401, 401),
        ),
        ("revoked", Some(bearer(&revoked)), a, (401, 401)),
        ("expired", Some(bearer(&expired)), a, (401, 401)),
        (
            "other organization",
            Some(bearer(&app.b.token)),
            a,
            (403, 403),
        ),
        (
            "unknown organization",
            Some(bearer(&app.a.token)),
            &unknown_org,
            (404, 404),
        ),
        ("missing scope", Some(bearer(&no_scope)), a, (403, 403)),
        ("missing role", Some(bearer(&no_role)), a, (403, 403)),
        ("read-only", Some(bearer(&read_only)), a, (403, 200)),
        (
            "read-only role with rw scope",
            Some(bearer(&readonly_role_rw_scope)),
            a,
            (403, 200),
        ),
        (
            "Identity:Organization scope",
            Some(bearer(&legacy_scope)),
            a,
            (200, 200),
        ),
        (
            "organization admin",
            Some(bearer(&app.a.token)),
            a,
            (200, 200),
        ),
        (
            "lower-case scheme",
            Some(format!("bearer {}", app.a.token)),
            a,
            (200, 200),
        ),
        ("operator", Some(bearer(&operator)), a, (200, 200)),
        (
            "operator on another org",
            Some(bearer(&operator)),
            &app.b.id,
            (200, 200),
        ),
    ];
    for (name, header, org, expected) in cases {
        let got = statuses(&app, header.as_deref(), org).await;
        assert_eq!(got, expected, "{name}");
    }
}

pub async fn a_refused_request_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let intruder = Org {
        id: app.a.id.clone(),
        token: app.b.token.clone(),
    };
    app.action(
        &intruder,
        "getDomainVerificationToken",
        json!({"domain": "quiet.test"}),
    )
    .await
    .assert_error(403);
    let r = app
        .get(&app.a, &format!("{}/domains", app.org_url(&app.a)))
        .await;
    assert_eq!(r.body["items"], json!([]));
}
