//! What a delivery carries: the JSON envelope in Cisco's webhook shape, and its two signatures
//! — Cisco's `X-Spark-Signature` (hex HMAC-SHA1 of the body, keyed with the secret as written)
//! and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
//! `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the decoded secret), so
//! receivers of either kind verify it with their usual code and can reject replays.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use claimd_domain::{Timestamp, WebhookSecret};
use claimd_store::{DueDelivery, EventTarget};
use hmac::{Hmac, Mac};
use serde::Serialize;

/// A delivery's body, in Cisco's webhook envelope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    /// The webhook (as Cisco's envelopes carry it).
    id: &'a str,
    name: &'a str,
    target_url: &'a str,
    resource: &'static str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    org_id: &'a str,
    created_by: Option<&'a str>,
    app_id: &'static str,
    owned_by: &'static str,
    status: &'static str,
    /// When the change happened.
    created: String,
    /// The credential that made the change (none for claimd's own re-checks).
    actor_id: Option<&'a str>,
    data: Data<'a>,
}

/// The domain's new state.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    /// The domain resource's id (base64url of the name).
    id: String,
    domain: &'a str,
    org_id: &'a str,
    /// `pending`, `verified`, `claimed` or `removed`.
    status: Option<&'a str>,
    /// What happened, as the event log names it (`claimed`, `lapsed`, …).
    change: &'static str,
    event_id: i64,
    tracking_id: Option<&'a str>,
}

/// The body of a delivery: the same bytes at every attempt.
pub fn body(delivery: &DueDelivery) -> Vec<u8> {
    let (w, e) = (&delivery.webhook, &delivery.event);
    let domain = match &e.target {
        EventTarget::Domain(d) => d.clone(),
        // Only domain events are queued for webhooks.
        _ => return b"{}".to_vec(),
    };
    let envelope = Envelope {
        id: w.id.as_str(),
        name: &w.name,
        target_url: &w.target_url,
        resource: w.resource.as_str(),
        event: e
            .kind
            .webhook_event()
            .map_or("updated", claimd_domain::WebhookEvent::as_str),
        filter: w.filter.stored(),
        org_id: w.org_id.as_str(),
        created_by: w
            .created_by
            .as_ref()
            .map(claimd_domain::CredentialId::as_str),
        app_id: "claimd",
        owned_by: "org",
        status: w.status.as_str(),
        created: e.at.rfc3339(),
        actor_id: e
            .credential_id
            .as_ref()
            .map(claimd_domain::CredentialId::as_str),
        data: Data {
            id: domain.resource_id(),
            domain: domain.as_str(),
            org_id: e.org_id.as_str(),
            status: e.state.as_deref(),
            change: e.kind.as_str(),
            event_id: e.id,
            tracking_id: e.tracking_id.as_deref(),
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// The Standard Webhooks message id of a delivery: the same at every attempt.
pub fn message_id(delivery_id: i64) -> String {
    format!("msg_claimd_{delivery_id}")
}

/// The headers that sign `body`, sent at `now`.
pub fn headers(
    secret: &WebhookSecret,
    id: &str,
    now: Timestamp,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = (now.as_millis() / 1000).to_string();
    let mut spark =
        Hmac::<sha1::Sha1>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    spark.update(body);
    let spark: String = spark
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut standard =
        Hmac::<sha2::Sha256>::new_from_slice(&secret.key()).expect("HMAC takes any key");
    standard.update(id.as_bytes());
    standard.update(b".");
    standard.update(timestamp.as_bytes());
    standard.update(b".");
    standard.update(body);
    let standard = STANDARD.encode(standard.finalize().into_bytes());
    vec![
        ("x-spark-signature", spark),
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", format!("v1,{standard}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example.
    #[test]
    fn the_standard_signature_matches_the_specification() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let headers = headers(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            Timestamp::from_millis(1_614_265_330_000),
            body,
        );
        assert_eq!(
            headers[3],
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned()
            )
        );
        assert_eq!(headers[2].1, "1614265330");
    }

    /// Computed independently (Python's `hmac.new(secret, body, sha1).hexdigest()`).
    #[test]
    fn the_spark_signature_is_hex_hmac_sha1_of_the_body_keyed_with_the_secret_as_written() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let headers = headers(&secret, "msg_x", Timestamp::from_millis(0), body);
        assert_eq!(
            headers[0],
            (
                "x-spark-signature",
                "2da57a63580e1b8259222d7c976d87cd11bdfb5b".to_owned()
            )
        );
    }

    /// The specification's reference library verifies what claimd sends, unchanged.
    #[test]
    fn the_reference_library_verifies_a_delivery() {
        let secret = WebhookSecret::generate();
        let body = br#"{"data":{"domain":"example.com"}}"#;
        let now = Timestamp::now();
        let mut map = http::HeaderMap::new();
        for (name, value) in headers(&secret, "msg_claimd_7", now, body) {
            map.insert(name, value.parse().unwrap());
        }
        let reference = standardwebhooks::Webhook::new(secret.expose()).unwrap();
        reference.verify(body, &map).unwrap();
        let mut tampered = body.to_vec();
        tampered[0] = b' ';
        assert!(reference.verify(&tampered, &map).is_err());
    }
}
