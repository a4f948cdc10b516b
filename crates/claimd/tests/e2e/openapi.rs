//! The served OpenAPI document: valid OpenAPI 3.1, every route in it, Cisco's contract for
//! the five actions inside it; and the Swagger UI that browses it, served from the binary.

use std::collections::BTreeSet;

use claimd_http::routes::endpoints;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp};

/// Cisco's published contract for the five Domain Management actions, kept as test data.
const CISCO: &str = include_str!("../contract/webex-domain-management.openapi.json");
/// The OpenAPI Initiative's JSON Schema of OpenAPI 3.1 documents (2022-10-07).
const OAS_31_SCHEMA: &str = include_str!("../contract/openapi-3.1.schema.json");
/// Cisco's paths are relative to its API base, which claimd serves under `/v1`.
const CISCO_BASE: &str = "/v1";

/// Follows a local `$ref` (`#/components/schemas/X`) to what it names.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> Result<&'a Value, String> {
    match value.get("$ref").and_then(Value::as_str) {
        None => Ok(value),
        Some(pointer) => {
            let target = pointer
                .strip_prefix('#')
                .and_then(|p| doc.pointer(p))
                .ok_or_else(|| format!("$ref {pointer} points nowhere"))?;
            resolve(doc, target)
        }
    }
}

/// The JSON types a schema allows (`"string"`, or `["string", "null"]`).
fn types(schema: &Value) -> BTreeSet<String> {
    match schema.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Every property of Cisco's schema `theirs` is in `ours` under the same name with the same
/// type, recursively through objects and arrays; each difference is one line.
fn compare(at: &str, cisco: &Value, theirs: &Value, doc: &Value, ours: &Value) -> Vec<String> {
    let (theirs, ours) = match (resolve(cisco, theirs), resolve(doc, ours)) {
        (Ok(t), Ok(o)) => (t, o),
        (Err(e), _) | (_, Err(e)) => return vec![format!("{at}: {e}")],
    };
    let mut problems = Vec::new();
    let (want, have) = (types(theirs), types(ours));
    if !want.is_subset(&have) {
        problems.push(format!("{at}: Cisco's type is {want:?}, claimd's {have:?}"));
    }
    if let Some(items) = theirs.get("items") {
        match ours.get("items") {
            Some(our_items) => {
                problems.extend(compare(&format!("{at}[]"), cisco, items, doc, our_items))
            }
            None => problems.push(format!("{at}: claimd's schema has no items")),
        }
    }
    if let Some(properties) = theirs.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let field = format!("{at}.{name}");
            match ours.pointer(&format!("/properties/{name}")) {
                Some(our_property) => {
                    problems.extend(compare(&field, cisco, property, doc, our_property))
                }
                None => problems.push(format!("{field}: missing in claimd's document")),
            }
        }
    }
    problems
}

/// For each operation of Cisco's contract: the same path and method in `doc`, the request
/// body's fields, and each success answer's status and fields.
fn against_cisco(cisco: &Value, doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let json_schema = "/content/application~1json/schema";
    for (path, item) in cisco["paths"].as_object().expect("Cisco has paths") {
        for (method, theirs) in item.as_object().expect("a path item") {
            let at = format!("{} {CISCO_BASE}{path}", method.to_uppercase());
            let Some(ours) = doc["paths"]
                .get(format!("{CISCO_BASE}{path}"))
                .and_then(|i| i.get(method))
            else {
                problems.push(format!("{at}: not in claimd's document"));
                continue;
            };
            if let Some(body) = theirs.pointer(&format!("/requestBody{json_schema}")) {
                match ours.pointer(&format!("/requestBody{json_schema}")) {
                    Some(our_body) => problems.extend(compare(
                        &format!("{at} request"),
                        cisco,
                        body,
                        doc,
                        our_body,
                    )),
                    None => problems.push(format!("{at}: claimd documents no JSON request body")),
                }
            }
            let successes = theirs["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .filter(|(status, _)| status.starts_with('2'));
            for (status, answer) in successes {
                let Some(our_answer) = ours.pointer(&format!("/responses/{status}")) else {
                    problems.push(format!("{at}: claimd does not answer {status}"));
                    continue;
                };
                if let Some(body) = answer.pointer(json_schema) {
                    match our_answer.pointer(json_schema) {
                        Some(our_body) => problems.extend(compare(
                            &format!("{at} {status}"),
                            cisco,
                            body,
                            doc,
                            our_body,
                        )),
                        None => problems.push(format!("{at} {status}: no JSON body in claimd's")),
                    }
                }
            }
        }
    }
    problems
}

/// Every `$ref` in `value` points at something in `doc`.
fn dangling_refs(doc: &Value, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && resolve(doc, value).is_err()
            {
                out.push(r.clone());
            }
            map.values().for_each(|v| dangling_refs(doc, v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| dangling_refs(doc, v, out)),
        _ => {}
    }
}

// The document does not depend on the store: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_covers_every_route_and_holds_ciscos_contract() {
    let app = TestApp::start(Backend::Sqlite).await;
    let r = app
        .send(app.client.get(format!("{}/openapi.json", app.base)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");

    // Valid by the OpenAPI Initiative's schema.
    let schema: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the OAS 3.1 schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    // The validator catches a broken document (it is not a test that cannot fail).
    let mut broken = doc.clone();
    broken["paths"]["/healthz"]["get"]["responses"] = json!("none");
    assert!(validator.iter_errors(&broken).next().is_some());

    let mut dangling = Vec::new();
    dangling_refs(&doc, &doc, &mut dangling);
    assert!(
        dangling.is_empty(),
        "$refs that point nowhere: {dangling:?}"
    );

    // Exactly the routes of the table (the Swagger UI's own files aside).
    let served: BTreeSet<(String, String)> = endpoints()
        .into_iter()
        .filter(|e| !e.path.starts_with("/docs/"))
        .map(|e| (e.method.to_lowercase(), e.path.to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(served, documented);

    // Every route that needs a credential says so, and documents the Webex error shape.
    for e in endpoints().into_iter().filter(|e| e.access.is_some()) {
        let op = &doc["paths"][e.path][e.method.to_lowercase()];
        assert_eq!(
            op["security"],
            json!([{"bearer": []}]),
            "{} {}",
            e.method,
            e.path
        );
        for status in ["400", "401", "403", "404", "429", "500"] {
            let error = &op["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(
                error["$ref"], "#/components/schemas/ErrorBody",
                "{} {} {status}",
                e.method, e.path
            );
        }
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    for field in ["message", "errors", "trackingId"] {
        assert!(
            error["properties"].get(field).is_some(),
            "ErrorBody.{field}"
        );
    }

    // Cisco's contract for the five actions: every request and response field, same name and
    // type; and the comparison does notice a field that goes missing.
    let cisco: Value = serde_json::from_str(CISCO).unwrap();
    let problems = against_cisco(&cisco, &doc);
    assert!(
        problems.is_empty(),
        "differs from Cisco's contract: {problems:#?}"
    );
    assert_eq!(cisco["paths"].as_object().unwrap().len(), 5);
    let mut renamed = doc.clone();
    let summary = renamed["components"]["schemas"]["SummaryResponse"]["properties"]
        .as_object_mut()
        .unwrap();
    let moved = summary.remove("verifiedDomains").unwrap();
    summary.insert("verified_domains".into(), moved);
    let problems = against_cisco(&cisco, &renamed);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("verifiedDomains: missing")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swagger_ui_is_served_from_the_binary() {
    let app = TestApp::start(Backend::Sqlite).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "docs/");

    let page = |file: &'static str| {
        let url = format!("{}/docs/{file}", app.base);
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, r.text().await.unwrap())
        }
    };
    let (status, kind, html) = page("").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(html.contains("swagger-initializer.js"), "{html}");
    // Everything the page loads is a relative file served here: no CDN.
    assert!(!html.contains("https://"), "{html}");
    for file in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(file), "the page loads {file}");
        let (status, _, body) = page(file).await;
        assert_eq!(status, 200, "{file}");
        assert!(body.len() > 10, "{file}");
    }
    let (_, kind, initializer) = page("swagger-initializer.js").await;
    assert!(kind.contains("javascript"), "{kind}");
    assert!(initializer.contains("../openapi.json"), "{initializer}");

    let (status, _, body) = page("no-such-file.js").await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["message"], "No such resource");
}

/// `claimd openapi` prints the served document, with the address it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_same_document() {
    let app = TestApp::start(Backend::Sqlite).await;
    let served = app
        .send(app.client.get(format!("{}/openapi.json", app.base)))
        .await
        .body;
    let out = tokio::process::Command::new(crate::process::BIN)
        .args(["openapi", "--public-url", "https://claimd.example.net"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["servers"],
        json!([{"url": "https://claimd.example.net"}])
    );
    printed["servers"] = served["servers"].clone();
    assert_eq!(printed, served);
}
