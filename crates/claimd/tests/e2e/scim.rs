//! SCIM 2.0 Users over HTTP: the round trip, filters, versions, and every refusal in SCIM's
//! shape, changing nothing.

use claimd_domain::{ROLE_FULL_ADMIN, ROLE_USER_ADMIN, SCOPE_PEOPLE_RW};
use serde_json::{Value, json};

use crate::support::{Backend, Org, Reply, TestApp};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn users_url(app: &TestApp, org: &Org) -> String {
    format!("{}/identity/scim/{}/v2/Users", app.base, org.id)
}

async fn post(app: &TestApp, org: &Org, body: Value) -> Reply {
    app.send(
        app.client
            .post(users_url(app, org))
            .bearer_auth(&org.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string()),
    )
    .await
}

async fn get(app: &TestApp, org: &Org, query: &str) -> Reply {
    app.send(
        app.client
            .get(format!("{}{query}", users_url(app, org)))
            .bearer_auth(&org.token),
    )
    .await
}

fn person(user_name: &str) -> Value {
    json!({"schemas": [USER], "userName": user_name, "displayName": "Ann Archer",
           "name": {"givenName": "Ann", "familyName": "Archer"}, "externalId": "hr-1"})
}

pub async fn users_round_trip_with_filters_versions_and_refusals(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);

    let created = post(&app, a, person("Ann@Bücher.Example")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["content-type"], "application/scim+json");
    let ann = created.body.clone();
    let id = ann["id"].as_str().unwrap().to_owned();
    assert_eq!(ann["userName"], "Ann@xn--bcher-kva.example");
    assert_eq!(ann["emails"][0]["value"], "Ann@xn--bcher-kva.example");
    assert_eq!(ann["emails"][0]["primary"], true);
    assert_eq!(
        ann["urn:scim:schemas:extension:cisco:webexidentity:2.0:User"]["accountStatus"],
        json!(["active"])
    );
    assert_eq!(ann["meta"]["version"], "W/\"1\"");
    assert_eq!(created.headers["etag"], "W/\"1\"");
    let location = ann["meta"]["location"].as_str().unwrap();
    assert_eq!(created.headers["location"], location);
    assert!(location.ends_with(&format!("/identity/scim/{}/v2/Users/{id}", a.id)));
    let fetched = get(&app, a, &format!("/{id}")).await;
    assert_eq!((fetched.status.as_u16(), &fetched.body), (200, &ann));
    // Another organization does not see it.
    get(&app, b, &format!("/{id}")).await.assert_error(404);

    // userName is unique across organizations, ignoring case.
    let taken = post(&app, b, person("ANN@xn--bcher-kva.example")).await;
    taken.assert_error(409);
    assert_eq!(taken.body["scimType"], "uniqueness");

    // Bad input: 400 with the scimType that fits, naming the field; nothing is created.
    let refusals: &[(Value, &str, &str)] = &[
        (
            json!({"userName": "x@example.com"}),
            "invalidValue",
            "schemas",
        ),
        (
            json!({"schemas": ["urn:nope"], "userName": "x@example.com"}),
            "invalidValue",
            "urn:nope",
        ),
        (
            json!({"schemas": [USER], "userName": 5}),
            "invalidValue",
            "userName",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com", "active": "no"}),
            "invalidValue",
            "active",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com",
                   "emails": [{"value": "y@example.com", "primary": true}]}),
            "invalidValue",
            "primary email",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com",
                   "emails": [{"value": "x@example.com", "primary": true}, {"value": "X@example.com"}]}),
            "invalidValue",
            "twice",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com", "roles": "id_full_admin"}),
            "invalidValue",
            "roles",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com",
                   "roles": [{"value": "id full admin"}]}),
            "invalidValue",
            "roles[0].value",
        ),
        (
            json!({"schemas": [USER], "userName": "x@example.com",
                   "roles": [{"value": "x", "type": "serviceRole"}]}),
            "invalidValue",
            "roles[0].type",
        ),
        (json!([1, 2]), "invalidSyntax", "object"),
    ];
    for (body, scim_type, names) in refusals {
        let r = post(&app, a, body.clone()).await;
        r.assert_error(400);
        assert_eq!(r.body["scimType"], *scim_type, "{body}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains(names),
            "{body}: {}",
            r.body
        );
    }
    let malformed = app
        .send(
            app.client
                .post(users_url(&app, a))
                .bearer_auth(&a.token)
                .header("content-type", "application/scim+json")
                .body("{\"schemas\": ["),
        )
        .await;
    malformed.assert_error(400);
    assert_eq!(malformed.body["scimType"], "invalidSyntax");
    let all = get(&app, a, "").await;
    assert_eq!(all.body["totalResults"], 1, "{}", all.body);

    // Filters, pages, order, projection.
    for name in ["bob@example.com", "carol@example.net"] {
        let r = post(
            &app,
            a,
            json!({"schemas": [USER], "userName": name, "active": name.starts_with('b')}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let found = |r: &Reply| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = |filter: &str| format!("?filter={}", urlencode(filter));
    let r = get(&app, a, &q(r#"userName eq "BOB@example.com""#)).await;
    assert_eq!(found(&r), ["bob@example.com"]);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    let r = get(&app, a, &q(r#"active eq false or externalId eq "hr-1""#)).await;
    assert_eq!(
        found(&r),
        ["Ann@xn--bcher-kva.example", "carol@example.net"]
    );
    let r = get(
        &app,
        a,
        &format!(
            "{}&sortBy=userName&sortOrder=descending&count=2&startIndex=1",
            q("userName pr")
        ),
    )
    .await;
    assert_eq!(found(&r), ["carol@example.net", "bob@example.com"]);
    assert_eq!(
        (
            r.body["totalResults"].as_u64(),
            r.body["itemsPerPage"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let r = get(&app, a, "?attributes=userName&count=1").await;
    let only = r.body["Resources"][0].as_object().unwrap();
    assert!(
        only.contains_key("userName") && only.contains_key("id") && !only.contains_key("emails")
    );
    for (query, scim_type) in [
        (q("userName eq"), "invalidFilter"),
        (q(r#"password eq "x""#), "invalidFilter"),
        ("?count=5000".to_owned(), "invalidValue"),
        ("?count=-1".to_owned(), "invalidValue"),
        ("?sortBy=password".to_owned(), "invalidValue"),
        ("?sortOrder=sideways".to_owned(), "invalidValue"),
    ] {
        let r = get(&app, a, &query).await;
        r.assert_error(400);
        assert_eq!(r.body["scimType"], scim_type, "{query}: {}", r.body);
    }

    // Versions: a stale If-Match changes nothing.
    let user_url = format!("{}/{id}", users_url(&app, a));
    let mut changed = person("ann.archer@xn--bcher-kva.example");
    changed["displayName"] = "Ann A.".into();
    let put = |if_match: &'static str, body: Value| {
        app.send(
            app.client
                .put(&user_url)
                .bearer_auth(&a.token)
                .header("if-match", if_match)
                .json(&body),
        )
    };
    let replaced = put("W/\"1\"", changed.clone()).await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["meta"]["version"], "W/\"2\"");
    assert_eq!(replaced.body["meta"]["created"], ann["meta"]["created"]);
    put("W/\"1\"", person("someone@example.com"))
        .await
        .assert_error(412);
    let unchanged = get(&app, a, &format!("/{id}")).await;
    assert_eq!(unchanged.body["displayName"], "Ann A.");
    let delete = |if_match: &'static str| {
        app.send(
            app.client
                .delete(&user_url)
                .bearer_auth(&a.token)
                .header("if-match", if_match),
        )
    };
    delete("W/\"1\"").await.assert_error(412);
    assert_eq!(delete("W/\"2\"").await.status, 204);
    let gone = get(&app, a, &format!("/{id}")).await;
    gone.assert_error(404);
    assert_eq!(gone.body["scimType"], "noTarget");

    // A user administrator manages users, and nothing else.
    let (user_admin, _) = app
        .credential(Some(&a.id), &[SCOPE_PEOPLE_RW], &[ROLE_USER_ADMIN], None)
        .await;
    let r = app
        .send(
            app.client
                .post(users_url(&app, a))
                .bearer_auth(&user_admin)
                .json(&json!({"schemas": [USER], "userName": "dan@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .send(
            app.client
                .post(format!(
                    "{}/actions/getDomainVerificationToken",
                    app.org_url(a)
                ))
                .bearer_auth(&user_admin)
                .json(&json!({"domain": "example.com"})),
        )
        .await;
    r.assert_error(403);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The userNames of `org` with their accountStatus.
async fn statuses(app: &TestApp, org: &Org) -> Vec<(String, String)> {
    let r = get(app, org, "?sortBy=userName").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap().to_owned(),
                u["urn:scim:schemas:extension:cisco:webexidentity:2.0:User"]["accountStatus"][0]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

pub async fn a_claim_marks_other_organizations_users_and_an_unclaim_restores_them(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    for (org, name) in [
        (b, "bob@corp.test"),
        (b, "carl@sales.corp.test"),
        (b, "dan@corpus.test"),
        (a, "alice@corp.test"),
    ] {
        let r = post(&app, org, json!({"schemas": [USER], "userName": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let untouched = pairs(&[
        ("bob@corp.test", "active"),
        ("carl@sales.corp.test", "active"),
        ("dan@corpus.test", "active"),
    ]);
    app.verified(a, "corp.test").await;

    // Without forceDomainClaim the claim is refused, saying how many, not who or where.
    let r = app
        .action(
            a,
            "claimDomain",
            json!({"data": [{"domain": "corp.test"}], "forceDomainClaim": false}),
        )
        .await;
    r.assert_error(409);
    assert!(
        r.description().contains("2 user(s) of other organizations"),
        "{}",
        r.body
    );
    assert!(!r.description().contains("bob") && !r.description().contains(b.id.as_str()));
    assert_eq!(statuses(&app, b).await, untouched);

    // claimDomainOnly: nobody is searched or marked.
    let r = app
        .action(
            a,
            "claimDomain",
            json!({"data": [{"domain": "corp.test"}], "claimDomainOnly": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(statuses(&app, b).await, untouched);
    // A user added meanwhile is not marked either.
    let r = post(
        &app,
        b,
        json!({"schemas": [USER], "userName": "eve@corp.test"}),
    )
    .await;
    assert_eq!(
        r.body["urn:scim:schemas:extension:cisco:webexidentity:2.0:User"]["accountStatus"][0],
        "active"
    );
    assert_eq!(app.unclaim(a, "corp.test").await.status, 204);

    // The default claim marks the other organization's users in the domain and below it.
    let r = app
        .action(a, "claimDomain", json!({"data": [{"domain": "corp.test"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claim_tracking = r.tracking_id().to_owned();
    let marked = pairs(&[
        ("bob@corp.test", "transient"),
        ("carl@sales.corp.test", "transient"),
        ("dan@corpus.test", "active"),
        ("eve@corp.test", "transient"),
    ]);
    assert_eq!(statuses(&app, b).await, marked);
    assert_eq!(
        statuses(&app, a).await,
        pairs(&[("alice@corp.test", "active")])
    );
    // A user another organization adds in the claimed domain is transient from the start.
    let r = post(
        &app,
        b,
        json!({"schemas": [USER], "userName": "fay@x.sales.corp.test"}),
    )
    .await;
    assert_eq!(
        r.body["urn:scim:schemas:extension:cisco:webexidentity:2.0:User"]["accountStatus"][0],
        "transient"
    );

    // Unclaimed: the users the claim made transient are active again.
    assert_eq!(app.unclaim(a, "corp.test").await.status, 204);
    assert!(
        statuses(&app, b).await.iter().all(|(_, s)| s == "active"),
        "{:?}",
        statuses(&app, b).await
    );

    // Every change is in the owning organization's log; the claim's marks carry the claim's
    // tracking id, and never the organization or credential that claimed.
    let (changes, items) = user_events(&app, b).await;
    let count = |c: &str| changes.iter().filter(|x| *x == c).count();
    assert_eq!(count("user_created"), 5, "{changes:?}");
    assert_eq!(count("user_transient"), 3, "bob, carl, eve: {changes:?}");
    assert_eq!(
        count("user_restored"),
        4,
        "and fay, transient from the start: {changes:?}"
    );
    for e in items
        .iter()
        .filter(|e| e["data"]["change"] == "user_transient")
    {
        assert_eq!(e["data"]["trackingId"], claim_tracking.as_str(), "{e}");
        assert_eq!(e["data"]["status"], "transient", "{e}");
        assert!(e["actorOrgId"].is_null() && e["actorId"].is_null(), "{e}");
    }
    let text = Value::Array(items).to_string();
    assert!(
        !text.contains(a.id.as_str()),
        "the claiming organization leaks: {text}"
    );
    let (changes, _) = user_events(&app, a).await;
    assert_eq!(changes, ["user_created"]);
}

/// The `change`s of `org`'s user events, and the events.
async fn user_events(app: &TestApp, org: &Org) -> (Vec<String>, Vec<Value>) {
    let r = app
        .send(
            app.client
                .get(format!(
                    "{}/v1/adminAudit/events?orgId={}&eventCategories=USERS&max=200",
                    app.base, org.id
                ))
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap().clone();
    let changes = items
        .iter()
        .map(|e| e["data"]["change"].as_str().unwrap().to_owned())
        .collect();
    (changes, items)
}

pub async fn discovery_says_what_is_supported(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    let base = format!("{}/identity/scim/{}/v2", app.base, a.id);
    let fetch = |path: &str| {
        app.send(
            app.client
                .get(format!("{base}/{path}"))
                .bearer_auth(&a.token),
        )
    };
    let config = fetch("ServiceProviderConfig").await;
    assert_eq!(config.status, 200, "{}", config.body);
    assert_eq!(config.headers["content-type"], "application/scim+json");
    assert_eq!(config.body["filter"]["supported"], true);
    assert_eq!(config.body["filter"]["maxResults"], 1000);
    assert_eq!(config.body["etag"]["supported"], true);
    assert_eq!(config.body["sort"]["supported"], true);
    assert_eq!(config.body["bulk"]["supported"], false);
    assert_eq!(
        config.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let types = fetch("ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 1);
    let user = &types.body["Resources"][0];
    assert_eq!(
        (user["id"].as_str(), user["endpoint"].as_str()),
        (Some("User"), Some("/Users"))
    );
    assert_eq!(user["schema"], USER);

    let schemas = fetch("Schemas").await;
    assert_eq!(schemas.body["totalResults"], 3);
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            USER,
            ENTERPRISE,
            "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"
        ]
    );
    // Every extension a resource type declares is described.
    for ext in user["schemaExtensions"].as_array().unwrap() {
        let described = schemas.body["Resources"].as_array().unwrap().iter();
        assert!(described.clone().any(|s| s["id"] == ext["schema"]), "{ext}");
    }
    let schema = &schemas.body["Resources"][0];
    assert_eq!(schema["id"], USER);
    let names: Vec<&str> = schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "userName",
            "name",
            "displayName",
            "userType",
            "active",
            "externalId",
            "emails",
            "roles"
        ]
    );
    assert_eq!(schema["attributes"][0]["uniqueness"], "global");

    // Discovery needs a credential, like everything about an organization.
    let anonymous = app.send(app.client.get(format!("{base}/Schemas"))).await;
    anonymous.assert_error(401);
}

pub async fn patch_changes_some_of_a_user_all_or_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    let created = post(&app, a, person("pat@example.com")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = format!(
        "{}/{}",
        users_url(&app, a),
        created.body["id"].as_str().unwrap()
    );
    let patch = |ops: Value, if_match: Option<&'static str>| {
        let mut request = app
            .client
            .patch(&url)
            .bearer_auth(&a.token)
            .header("content-type", "application/scim+json")
            .body(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": ops})
                .to_string(),
            );
        if let Some(v) = if_match {
            request = request.header("if-match", v);
        }
        app.send(request)
    };

    let r = patch(
        json!([
            {"op": "replace", "path": "displayName", "value": "Pat P."},
            {"op": "add", "path": "name.givenName", "value": "Patricia"},
            {"op": "remove", "path": "externalId"},
            {"op": "add", "path": "emails", "value": [{"value": "pat@home.example", "type": "home"}]},
            {"op": "replace", "value": {"active": false}},
        ]),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Pat P.");
    assert_eq!(r.body["name"]["givenName"], "Patricia");
    assert_eq!(r.body["name"]["familyName"], "Archer");
    assert!(r.body.get("externalId").is_none());
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");

    // A new primary address and userName together; the home address removed by filter.
    let r = patch(
        json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "pat@new.example"},
            {"op": "replace", "path": "userName", "value": "pat@new.example"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
        ]),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], "pat@new.example");
    assert_eq!(
        r.body["emails"],
        json!([{"value": "pat@new.example", "type": "work", "primary": true}])
    );

    // Refusals change nothing, even after operations that would have worked.
    let refusals: &[(Value, u16, &str)] = &[
        (
            json!([{"op": "replace", "path": "displayName", "value": "X"}, {"op": "replace", "path": "password", "value": "x"}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "rename", "path": "displayName", "value": "X"}]),
            400,
            "invalidSyntax",
        ),
        (
            json!([{"op": "remove", "path": "userName"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": "other@example.com"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
            400,
            "noTarget",
        ),
        (json!([]), 400, "invalidValue"),
    ];
    for (ops, status, scim_type) in refusals {
        let r = patch(ops.clone(), None).await;
        r.assert_error(*status);
        assert_eq!(r.body["scimType"], *scim_type, "{ops}: {}", r.body);
    }
    patch(
        json!([{"op": "replace", "path": "displayName", "value": "X"}]),
        Some("W/\"1\""),
    )
    .await
    .assert_error(412);
    let now = app.send(app.client.get(&url).bearer_auth(&a.token)).await;
    assert_eq!(now.body["displayName"], "Pat P.");
    assert_eq!(now.body["meta"]["version"], "W/\"3\"");

    // The enterprise extension: set whole, one attribute, the manager's id, removed.
    let r = patch(
        json!([
            {"op": "add", "value": {ENTERPRISE: {"department": "Sales", "costCenter": "42"}}},
            {"op": "replace", "path": format!("{ENTERPRISE}:division"), "value": "EMEA"},
            {"op": "add", "path": format!("{ENTERPRISE}:manager.value"), "value": "boss-id"},
            {"op": "remove", "path": format!("{ENTERPRISE}:costCenter")},
        ]),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body[ENTERPRISE],
        json!({"department": "Sales", "division": "EMEA", "manager": {"value": "boss-id"}})
    );
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );
    let now = app.send(app.client.get(&url).bearer_auth(&a.token)).await;
    assert_eq!(now.body[ENTERPRISE], r.body[ENTERPRISE]);
    for (ops, scim_type) in [
        (
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": 7}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:shoeSize"), "value": "9"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": "x"}]),
            "invalidValue",
        ),
    ] {
        let r = patch(ops.clone(), None).await;
        r.assert_error(400);
        assert_eq!(r.body["scimType"], scim_type, "{ops}: {}", r.body);
    }
    // Created with it, it is there from the start.
    let r = post(
        &app,
        a,
        json!({"schemas": [USER, ENTERPRISE], "userName": "eve@example.com",
               ENTERPRISE: {"employeeNumber": "701", "organization": "Claimd"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body[ENTERPRISE],
        json!({"employeeNumber": "701", "organization": "Claimd"})
    );
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A SCIM client library (scim2-client, Python, strict about the protocol: it builds its models
/// from the server's discovery and checks every answer against them) through the whole cycle.
pub async fn a_scim_client_library_round_trips(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scim");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the SCIM client library is missing: run scripts/ensure-scim-client.sh (scripts/test.sh does)"
    );
    let out = tokio::process::Command::new(python)
        .arg("-W")
        .arg("error::DeprecationWarning")
        .arg(dir.join("round_trip.py"))
        .env(
            "SCIM_BASE",
            format!("{}/identity/scim/{}/v2", app.base, app.a.id),
        )
        .env("SCIM_TOKEN", &app.a.token)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("every step passed"), "{stdout}");
}

async fn enforce(app: &TestApp, org: &Org, on: bool) {
    let r = app
        .send(
            app.client
                .patch(app.org_url(org))
                .bearer_auth(&org.token)
                .json(&json!({"enforceVerifiedDomains": on})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["enforceVerifiedDomains"], on);
}

pub async fn enforcement_keeps_users_inside_the_verified_domains(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = &app.a;
    for name in ["alice@corp.test", "ann@other.test", "al@sub.corp.test"] {
        let r = post(&app, a, json!({"schemas": [USER], "userName": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let all_active = pairs(&[
        ("al@sub.corp.test", "active"),
        ("alice@corp.test", "active"),
        ("ann@other.test", "active"),
    ]);
    // Asked for, without a verified domain: not in effect yet.
    enforce(&app, a, true).await;
    assert_eq!(statuses(&app, a).await, all_active);

    // A verified domain puts it in effect: the users outside it are transient.
    app.verified(a, "corp.test").await;
    let enforced = pairs(&[
        ("al@sub.corp.test", "active"),
        ("alice@corp.test", "active"),
        ("ann@other.test", "transient"),
    ]);
    assert_eq!(statuses(&app, a).await, enforced);
    // A new user outside is refused, naming the domain; inside (or below) is welcome.
    let r = post(
        &app,
        a,
        json!({"schemas": [USER], "userName": "zed@other.test"}),
    )
    .await;
    r.assert_error(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    assert!(
        r.body["detail"].as_str().unwrap().contains("other.test"),
        "{}",
        r.body
    );
    let r = post(
        &app,
        a,
        json!({"schemas": [USER], "userName": "bo@eng.corp.test"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bo = r.body["id"].as_str().unwrap().to_owned();
    // Nor can a user be moved outside.
    let r = app
        .send(
            app.client
                .put(format!("{}/{bo}", users_url(&app, a)))
                .bearer_auth(&a.token)
                .json(&json!({"schemas": [USER], "userName": "bo@other.test"})),
        )
        .await;
    r.assert_error(400);

    // Switched off, everyone is active again; on again, transient again.
    enforce(&app, a, false).await;
    assert!(statuses(&app, a).await.iter().all(|(_, s)| s == "active"));
    enforce(&app, a, true).await;
    assert_eq!(
        statuses(&app, a)
            .await
            .iter()
            .filter(|(_, s)| s == "transient")
            .count(),
        1
    );
    // Losing the last verified domain takes enforcement out of effect.
    let r = app.unverify(a, "corp.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(statuses(&app, a).await.iter().all(|(_, s)| s == "active"));

    let (changes, _) = user_events(&app, a).await;
    let count = |c: &str| changes.iter().filter(|x| *x == c).count();
    assert_eq!(
        (count("user_transient"), count("user_restored")),
        (2, 2),
        "{changes:?}"
    );
}

/// `?preview=true` on a change that moves users: the counts it would move, nothing changed.
async fn preview(app: &TestApp, org: &Org, action: &str, body: Value) -> Reply {
    app.send(
        app.client
            .post(format!(
                "{}/actions/{action}?preview=true",
                app.org_url(org)
            ))
            .bearer_auth(&org.token)
            .json(&body),
    )
    .await
}

fn impact(r: &Reply) -> [u64; 4] {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["preview"], true, "{}", r.body);
    [
        "usersBecomingTransient",
        "usersBecomingActive",
        "externalUsersMarked",
        "externalUsersRestored",
    ]
    .map(|k| {
        r.body[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {}", r.body))
    })
}

pub async fn previews_answer_what_would_change_and_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    for (org, name) in [
        (a, "alice@corp.test"),
        (a, "ann@other.test"),
        (b, "bob@corp.test"),
        (b, "bea@eng.corp.test"),
    ] {
        let r = post(&app, org, json!({"schemas": [USER], "userName": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let everyone = || async { (statuses(&app, a).await, statuses(&app, b).await) };
    let all_active = everyone().await;

    // Enforcement asked for, previewed before any domain is verified: nothing would change.
    let patch = |on: bool| {
        app.client
            .patch(format!("{}?preview=true", app.org_url(a)))
            .bearer_auth(&a.token)
            .json(&json!({"enforceVerifiedDomains": on}))
    };
    assert_eq!(impact(&app.send(patch(true)).await), [0, 0, 0, 0]);
    let org = app.get(a, &app.org_url(a)).await;
    assert_eq!(org.body["enforceVerifiedDomains"], false, "not switched on");
    enforce(&app, a, true).await;

    // verifyDomain previewed: no lookup (nothing is published), a's user outside would become
    // transient once the name is verified; the domain stays pending.
    let token = app.token_for(a, "corp.test").await;
    let r = preview(&app, a, "verifyDomain", json!({"domain": "corp.test"})).await;
    assert_eq!(impact(&r), [1, 0, 0, 0]);
    assert_eq!(app.domain(a, "corp.test").await.body["status"], "pending");
    // With claimDomain, b's two users would be marked as well.
    let r = preview(
        &app,
        a,
        "verifyDomain",
        json!({"domain": "corp.test", "claimDomain": true}),
    )
    .await;
    assert_eq!(impact(&r), [1, 0, 2, 0]);
    assert_eq!(everyone().await, all_active);

    app.publish("corp.test", &[&token]).await;
    assert_eq!(app.verify(a, "corp.test").await.status, 200);
    let enforced = everyone().await;
    assert_ne!(enforced, all_active);
    let claim = json!({"data": [{"domain": "corp.test"}]});
    assert_eq!(
        impact(&preview(&app, a, "claimDomain", claim.clone()).await),
        [0, 0, 2, 0]
    );
    // A preview is refused as the change would be.
    let careful = json!({"data": [{"domain": "corp.test"}], "forceDomainClaim": false});
    let r = preview(&app, a, "claimDomain", careful).await;
    r.assert_error(409);
    assert!(r.description().contains("2 user(s)"), "{}", r.body);
    let r = preview(&app, b, "claimDomain", claim.clone()).await;
    r.assert_error(400);
    assert_eq!(everyone().await, enforced);
    assert_eq!(app.domain(a, "corp.test").await.body["status"], "verified");

    assert_eq!(app.action(a, "claimDomain", claim).await.status, 200);
    let claimed = everyone().await;
    let r = preview(&app, a, "unclaimDomain", json!({"domain": "corp.test"})).await;
    assert_eq!(impact(&r), [0, 0, 0, 2]);
    let r = preview(&app, a, "unverifyDomain", json!({"domain": "corp.test"})).await;
    r.assert_error(400);
    assert_eq!(app.unclaim(a, "corp.test").await.status, 204);
    // Unverifying the only verified domain takes enforcement out of effect.
    let r = preview(&app, a, "unverifyDomain", json!({"domain": "corp.test"})).await;
    assert_eq!(impact(&r), [0, 1, 0, 0]);
    // Switching enforcement off would do the same.
    assert_eq!(impact(&app.send(patch(false)).await), [0, 1, 0, 0]);
    assert_eq!(everyone().await, enforced);
    assert_ne!(claimed, enforced);

    // A preview value that is neither true nor false is refused, naming the parameter.
    let r = app
        .send(
            app.client
                .post(format!(
                    "{}/actions/unverifyDomain?preview=maybe",
                    app.org_url(a)
                ))
                .bearer_auth(&a.token)
                .json(&json!({"domain": "corp.test"})),
        )
        .await;
    r.assert_error(400);
    assert!(r.description().contains("preview"), "{}", r.body);
    assert_eq!(app.domain(a, "corp.test").await.body["status"], "verified");
    // A preview is no audit event: a's log has the real changes only.
    let (changes, _) = user_events(&app, a).await;
    assert_eq!(
        changes.iter().filter(|c| *c == "user_transient").count(),
        1,
        "{changes:?}"
    );
}

pub async fn the_claimant_lists_and_converts_its_external_users(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    let mut ids = Vec::new();
    for name in ["bob@corp.test", "bea@eng.corp.test", "bo@other.test"] {
        let r = post(&app, b, json!({"schemas": [USER], "userName": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    app.claimed(a, "corp.test").await;
    let list_url = format!("{}/externalUsers", app.org_url(a));
    let r = app.get(a, &format!("{list_url}?max=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["items"],
        json!([{"id": ids[1], "userName": "bea@eng.corp.test", "accountStatus": "transient",
                "claimedDomain": "corp.test"}])
    );
    let link = r.headers["link"].to_str().unwrap().to_owned();
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let r = app.get(a, &next).await;
    assert_eq!(
        r.body["items"][0]["userName"], "bob@corp.test",
        "{}",
        r.body
    );
    assert!(r.headers.get("link").is_none());
    // Nothing of b shows in the list.
    assert!(!r.body.to_string().contains(b.id.as_str()));
    // b has no external users; b cannot convert a's.
    let r = app
        .get(b, &format!("{}/externalUsers", app.org_url(b)))
        .await;
    assert_eq!(r.body["items"], json!([]));
    let convert = |org: &Org, id: &str| {
        app.client
            .post(format!("{}/externalUsers/{id}/convert", app.org_url(org)))
            .bearer_auth(&org.token)
    };
    app.send(convert(b, &ids[0])).await.assert_error(404);
    // A user outside a's claims is not a's to take.
    app.send(convert(a, &ids[2])).await.assert_error(404);

    let r = app.send(convert(a, &ids[0])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], "bob@corp.test");
    assert_eq!(
        r.body["urn:scim:schemas:extension:cisco:webexidentity:2.0:User"]["accountStatus"][0],
        "active"
    );
    assert!(
        r.body["meta"]["location"]
            .as_str()
            .unwrap()
            .contains(a.id.as_str())
    );
    app.send(convert(a, &ids[0])).await.assert_error(404);
    // bob is a's now, and gone from b.
    assert_eq!(
        statuses(&app, a).await,
        pairs(&[("bob@corp.test", "active")])
    );
    assert_eq!(
        statuses(&app, b).await,
        pairs(&[
            ("bea@eng.corp.test", "transient"),
            ("bo@other.test", "active")
        ])
    );
    // Each log has its side; b's says the user left, never to whom or by whose credential.
    let (changes, _) = user_events(&app, a).await;
    assert!(changes.contains(&"user_joined".to_owned()), "{changes:?}");
    let (changes, items) = user_events(&app, b).await;
    assert!(changes.contains(&"user_left".to_owned()), "{changes:?}");
    let text = Value::Array(items).to_string();
    assert!(!text.contains(a.id.as_str()), "{text}");
}

fn admin(user_name: &str) -> Value {
    json!({"schemas": [USER], "userName": user_name,
           "roles": [{"value": "id_full_admin", "type": "ciRole"}]})
}

/// The admin lock-out guard over HTTP: an organization's credentials cannot remove, deactivate
/// or demote its last active full administrator, nor can another organization's claim make it
/// transient; the operator can.
pub async fn the_last_full_admin_stays(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (a, b) = (&app.a, &app.b);
    let r = post(&app, a, admin("root@corp.test")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["roles"],
        json!([{"value": "id_full_admin", "type": "ciRole"}])
    );
    let root = r.body["id"].as_str().unwrap().to_owned();
    let r = post(&app, a, person("pat@corp.test")).await;
    let pat = r.body["id"].as_str().unwrap().to_owned();
    let user = |id: &str| format!("{}/{id}", users_url(&app, a));
    let patch = |id: &str, ops: Value| {
        app.client.patch(user(id)).bearer_auth(&a.token).json(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": ops}),
        )
    };
    let guarded = |r: &Reply| {
        r.assert_error(409);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("admin lock-out guard"),
            "{}",
            r.body
        );
    };
    guarded(
        &app.send(app.client.delete(user(&root)).bearer_auth(&a.token))
            .await,
    );
    guarded(
        &app.send(patch(
            &root,
            json!([{"op": "remove", "path": "roles[value eq \"id_full_admin\"]"}]),
        ))
        .await,
    );
    guarded(
        &app.send(patch(
            &root,
            json!([{"op": "replace", "path": "active", "value": false}]),
        ))
        .await,
    );
    let r = get(&app, a, &format!("/{root}")).await;
    assert_eq!(
        r.body["meta"]["version"], "W/\"1\"",
        "nothing changed: {}",
        r.body
    );

    // b's claim of corp.test would make a's only admin transient.
    app.verified(b, "corp.test").await;
    let r = app.claim(b, &["corp.test"]).await;
    r.assert_error(409);
    assert!(
        r.description().contains("admin lock-out guard"),
        "{}",
        r.body
    );
    assert!(!r.description().contains(a.id.as_str()));

    // A second admin (added by PATCH) lets the first go.
    let r = app
        .send(patch(
            &pat,
            json!([{"op": "add", "path": "roles", "value": [{"value": "id_full_admin"}]}]),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .send(app.client.delete(user(&root)).bearer_auth(&a.token))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The operator is not held by the guard.
    let (operator, _) = app
        .credential(None, &[SCOPE_PEOPLE_RW], &[ROLE_FULL_ADMIN], None)
        .await;
    let r = app
        .send(app.client.delete(user(&pat)).bearer_auth(&operator))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
}
