//! Wire conventions: the tracking id and the Webex error body on every kind of response.

use serde_json::json;

use crate::support::{Backend, TestApp};

pub async fn every_response_carries_a_tracking_id_and_errors_the_webex_shape(backend: Backend) {
    let app = TestApp::start(backend).await;
    let actions = format!("{}/actions", app.org_url(&app.a));

    let ok = app.request_token(&app.a, "wire.test").await;
    assert_eq!(ok.status, 200);
    assert!(ok.tracking_id().starts_with("claimd_"));

    let cases = [
        (
            "unknown route",
            app.client.get(format!("{}/v1/nothing/here", app.base)),
            404,
        ),
        (
            "wrong method",
            app.client
                .get(format!("{actions}/verifyDomain"))
                .bearer_auth(&app.a.token),
            405,
        ),
        (
            "malformed JSON",
            app.client
                .post(format!("{actions}/verifyDomain"))
                .bearer_auth(&app.a.token)
                .header("content-type", "application/json")
                .body("{\"domain\": "),
            400,
        ),
        (
            "wrong content type",
            app.client
                .post(format!("{actions}/verifyDomain"))
                .bearer_auth(&app.a.token)
                .body("domain=x.test"),
            415,
        ),
        (
            "oversized body",
            app.client
                .post(format!("{actions}/verifyDomain"))
                .bearer_auth(&app.a.token)
                .header("content-type", "application/json")
                .body(format!("{{\"domain\": \"{}\"}}", "a".repeat(200_000))),
            413,
        ),
        (
            "invalid UTF-8",
            app.client
                .post(format!("{actions}/verifyDomain"))
                .bearer_auth(&app.a.token)
                .header("content-type", "application/json")
                .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
            400,
        ),
        (
            "no credential",
            app.client
                .post(format!("{actions}/verifyDomain"))
                .json(&json!({"domain": "x.test"})),
            401,
        ),
    ];
    for (name, request, status) in cases {
        let r = app.send(request).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.body);
        r.assert_error(status);
    }

    // The caller's TrackingID is kept, so ids can be followed across services.
    let r = app
        .send(
            app.client
                .get(format!("{}/v1/nothing", app.base))
                .header("TrackingID", "ROUTER_abc-123"),
        )
        .await;
    assert_eq!(r.tracking_id(), "ROUTER_abc-123");
    assert_eq!(r.body["trackingId"], "ROUTER_abc-123");
    // A hostile one is replaced.
    let r = app
        .send(
            app.client
                .get(format!("{}/v1/nothing", app.base))
                .header("TrackingID", "a b<script>"),
        )
        .await;
    assert!(r.tracking_id().starts_with("claimd_"));
}

pub async fn unknown_fields_are_ignored_and_health_endpoints_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = app
        .action(
            &app.a,
            "getDomainVerificationToken",
            json!({"domain": "fwd.test", "futureField": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for path in ["/healthz", "/readyz"] {
        let r = app
            .send(app.client.get(format!("{}{path}", app.base)))
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.tracking_id().is_empty());
    }
}
