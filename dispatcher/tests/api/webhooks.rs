//! Outgoing webhooks end to end: the real server sends signed webhooks to a real local
//! HTTP server (wiremock), retries failures, dead-letters what keeps failing and shows it
//! to agents, refuses unsafe URLs at registration, and signs with both secrets during a
//! rotation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provider_adapters::webhook::sign::DEFAULT_TOLERANCE;
use provider_adapters::webhook::verify;
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::testing::Backend;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A server whose webhooks may reach loopback (wiremock), retrying fast.
async fn spawn(db: storage::testing::TestDatabaseHandle, max_attempts: u32) -> TestApp {
    spawn_app_with(
        db,
        |settings| {
            settings.webhook_allow_loopback = true;
            settings.webhook_retry_base_ms = 20;
            settings.webhook_retry_max_ms = 40;
            settings.webhook_max_attempts = max_attempts;
            settings.webhook_poll_ms = 20;
            settings.webhook_timeout_ms = 500;
            settings.stream_poll_ms = 20;
        },
        Arc::new(domain::SystemClock),
    )
    .await
}

/// Creates a provider with a webhook URL; returns (id, api key, webhook secret).
async fn provider_with_hook(app: &TestApp, name: &str, url: &str) -> (String, String, String) {
    let reply = app
        .post(
            "/v1/admin/providers",
            Some(ADMIN_TOKEN),
            &json!({"name": name, "service_area": shanghai_area(), "webhook_url": url}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let secret = reply.body["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        !reply.body["provider"].to_string().contains(&secret),
        "the secret is not part of the provider record"
    );
    (
        reply.body["id"].as_str().unwrap().to_owned(),
        reply.body["api_key"].as_str().unwrap().to_owned(),
        secret,
    )
}

/// Waits (up to 15 s) until the hook server has received a request matching `wanted`.
async fn wait_for_request(
    server: &MockServer,
    what: &str,
    wanted: impl Fn(&wiremock::Request, &Value) -> bool,
) -> wiremock::Request {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        for request in requests {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            if wanted(&request, &body) {
                return request;
            }
        }
        assert!(Instant::now() < deadline, "no webhook: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header(request: &wiremock::Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn hook_server(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn offers_and_cancellations_reach_the_provider_as_signed_webhooks(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let server = hook_server(ResponseTemplate::new(204)).await;
        let app = spawn(db, 5).await;
        let url = format!("{}/hook", server.uri());
        let (provider_id, provider, secret) = provider_with_hook(&app, "Hooked Towing", &url).await;
        let (_, quiet) = app.create_provider("No Hook Towing").await;
        app.register_vehicle(&provider, "H1", &["jump_start", "tow"], 31.2304, 121.4637)
            .await;
        let (_, agent) = app.create_user("hook-agent", "agent").await;

        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        let offer_id = app.wait_for_offer(&provider, &case_id).await;

        let request = wait_for_request(&server, "offer.created", |_, body| {
            body["event"] == "offer.created" && body["data"]["id"] == offer_id.as_str()
        })
        .await;
        // The documented algorithm verifies it with the secret shown at creation …
        verify(
            secret.as_bytes(),
            &request.headers,
            &request.body,
            chrono::Utc::now(),
            DEFAULT_TOLERANCE,
        )
        .expect("the signature verifies with the provider's secret");
        // … and not with another secret, nor over another body.
        assert!(
            verify(
                b"whsec_not-the-right-secret-at-all",
                &request.headers,
                &request.body,
                chrono::Utc::now(),
                DEFAULT_TOLERANCE
            )
            .is_err()
        );
        let mut tampered = request.body.clone();
        tampered.push(b' ');
        assert!(
            verify(
                secret.as_bytes(),
                &request.headers,
                &tampered,
                chrono::Utc::now(),
                DEFAULT_TOLERANCE
            )
            .is_err()
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(header(&request, "rescue-webhook-id"), body["id"]);
        assert_eq!(header(&request, "rescue-webhook-event"), "offer.created");
        assert_eq!(body["data"]["case_id"], case_id.as_str());
        assert_eq!(body["data"]["vehicle_id"], "H1");
        assert_eq!(body["data"]["service"], "jump_start");
        assert!(body["data"]["expires_at"].is_string());
        // No personal data before acceptance.
        assert!(!String::from_utf8_lossy(&request.body).contains("13800138000"));

        // Accepting, then cancelling: case.updated (assigned) and case.cancelled.
        let accepted = app
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        wait_for_request(&server, "case.updated", |_, body| {
            body["event"] == "case.updated"
                && body["data"]["case_id"] == case_id.as_str()
                && body["data"]["status"] == "assigned"
        })
        .await;
        let cancelled = app
            .post(
                &format!("/v1/cases/{case_id}/cancel"),
                Some(&agent),
                &json!({"reason": "customer fixed it"}),
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        let request = wait_for_request(&server, "case.cancelled", |_, body| {
            body["event"] == "case.cancelled" && body["data"]["case_id"] == case_id.as_str()
        })
        .await;
        verify(
            secret.as_bytes(),
            &request.headers,
            &request.body,
            chrono::Utc::now(),
            DEFAULT_TOLERANCE,
        )
        .expect("signed");

        // The provider sees its delivery log; another provider sees none of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = app.get("/v1/provider/webhooks", Some(&provider)).await;
            assert_eq!(log.status, StatusCode::OK, "{}", log.text);
            let entries = log.body["webhooks"].as_array().unwrap().clone();
            if entries.len() >= 3 && entries.iter().all(|entry| entry["status"] == "delivered") {
                break entries;
            }
            assert!(Instant::now() < deadline, "{}", log.text);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let events: Vec<&str> = log.iter().map(|e| e["event"].as_str().unwrap()).collect();
        for event in ["offer.created", "case.updated", "case.cancelled"] {
            assert!(events.contains(&event), "{events:?}");
        }
        for entry in &log {
            assert_eq!(entry["attempts"], 1, "{entry}");
            assert_eq!(entry["attempt_log"][0]["outcome"], "delivered");
            assert_eq!(entry["attempt_log"][0]["status_code"], 204);
            assert!(entry.get("body").is_none(), "bodies are not listed");
        }
        let other = app.get("/v1/provider/webhooks", Some(&quiet)).await;
        assert_eq!(other.status, StatusCode::OK);
        assert_eq!(other.body["webhooks"], json!([]));
        // Nor by naming the other provider, nor its vehicles.
        let named = app
            .get(
                &format!("/v1/provider/webhooks?provider_id={provider_id}"),
                Some(&quiet),
            )
            .await;
        assert_eq!(
            named.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            named.text
        );
        let vehicles = app.get("/v1/provider/vehicles", Some(&quiet)).await;
        assert_eq!(vehicles.status, StatusCode::OK);
        assert_eq!(vehicles.body["vehicles"], json!([]), "{}", vehicles.text);
        // Each event was delivered once, even with every instance deriving deliveries.
        let received = server.received_requests().await.unwrap();
        let mut ids: Vec<String> = received
            .iter()
            .map(|request| header(request, "rescue-webhook-id"))
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "no delivery was sent twice");
        app.stop().await;
    })
    .await;
}
storage::backend_test!(offers_and_cancellations_reach_the_provider_as_signed_webhooks);

async fn a_failing_endpoint_is_retried_then_dead_lettered_and_shown_to_agents(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let server =
            hook_server(ResponseTemplate::new(503).set_body_string("down for maintenance")).await;
        let app = spawn(db, 3).await;
        let url = format!("{}/hook", server.uri());
        let (provider_id, provider, _) = provider_with_hook(&app, "Broken Hook Towing", &url).await;
        app.register_vehicle(&provider, "B1", &["jump_start"], 31.2304, 121.4637)
            .await;
        let (_, agent) = app.create_user("dead-letter-agent", "agent").await;
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        // Dispatch does not wait for the webhook: the offer is there at once.
        let offer_id = app.wait_for_offer(&provider, &case_id).await;

        let deadline = Instant::now() + Duration::from_secs(15);
        let dead = loop {
            let reply = app
                .get(
                    &format!("/v1/webhooks?status=dead&provider_id={provider_id}"),
                    Some(&agent),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            if let Some(entry) = reply.body["webhooks"].as_array().unwrap().first() {
                break entry.clone();
            }
            assert!(
                Instant::now() < deadline,
                "not dead-lettered: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(dead["event"], "offer.created");
        assert_eq!(dead["status"], "dead");
        assert_eq!(dead["attempts"], 3, "{dead}");
        assert!(dead["dead_letter_reason"].is_string(), "{dead}");
        let log = dead["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 3);
        for (number, attempt) in log.iter().enumerate() {
            assert_eq!(attempt["attempt"], number + 1);
            assert_eq!(attempt["outcome"], "http_error");
            assert_eq!(attempt["status_code"], 503);
            assert!(
                attempt["response_excerpt"]
                    .as_str()
                    .unwrap()
                    .contains("maintenance")
            );
        }
        // The same delivery id on every attempt, so the receiver can deduplicate.
        let received = server.received_requests().await.unwrap();
        let offer_hooks: Vec<_> = received
            .iter()
            .filter(|request| header(request, "rescue-webhook-event") == "offer.created")
            .collect();
        assert_eq!(offer_hooks.len(), 3);
        assert!(
            offer_hooks
                .iter()
                .all(|request| header(request, "rescue-webhook-id") == dead["id"])
        );
        // The case timeline says so.
        let timeline = app
            .get(&format!("/v1/cases/{case_id}/timeline"), Some(&agent))
            .await;
        assert!(
            timeline.text.contains("webhook_dead_lettered"),
            "{}",
            timeline.text
        );
        // And the offer is still answerable through the API.
        let accepted = app
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        // Bad filters are refused clearly.
        let bad = app.get("/v1/webhooks?status=lost", Some(&agent)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        let bad = app.get("/v1/webhooks?limit=0", Some(&agent)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
        app.stop().await;
    })
    .await;
}
storage::backend_test!(a_failing_endpoint_is_retried_then_dead_lettered_and_shown_to_agents);

async fn a_slow_endpoint_times_out_and_the_retry_delivers(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let server = MockServer::start().await;
        // The first attempt hangs past the 500 ms budget; the next one is answered.
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&server)
            .await;
        let app = spawn(db, 5).await;
        let url = format!("{}/hook", server.uri());
        let (_, provider, _) = provider_with_hook(&app, "Slow Hook Towing", &url).await;
        app.register_vehicle(&provider, "S1", &["jump_start"], 31.2304, 121.4637)
            .await;
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        app.wait_for_offer(&provider, &case_id).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        let entry = loop {
            let log = app.get("/v1/provider/webhooks", Some(&provider)).await;
            let entries = log.body["webhooks"].as_array().unwrap().clone();
            if let Some(entry) = entries.iter().find(|entry| entry["status"] == "delivered") {
                break entry.clone();
            }
            assert!(Instant::now() < deadline, "{}", log.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(entry["attempts"], 2, "{entry}");
        assert_eq!(entry["attempt_log"][0]["outcome"], "timeout");
        assert_eq!(entry["attempt_log"][1]["outcome"], "delivered");
        app.stop().await;
    })
    .await;
}
storage::backend_test!(a_slow_endpoint_times_out_and_the_retry_delivers);

async fn unsafe_webhook_urls_are_refused_at_registration(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let app = spawn_app(db).await;
        for url in [
            "http://127.0.0.1/hook",
            "http://localhost:8080/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/",
            "http://10.0.0.7/hook",
            "http://192.168.1.20/hook",
            "http://172.16.0.1/hook",
            "http://[fe80::1]/hook",
            "http://0.0.0.0/hook",
            "ftp://tow.example/hook",
            "https://user:pw@tow.example/hook",
        ] {
            let reply = app
                .post(
                    "/v1/admin/providers",
                    Some(ADMIN_TOKEN),
                    &json!({"name": "Sneaky Towing", "webhook_url": url}),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{url}: {}",
                reply.text
            );
            assert_eq!(
                reply.body["error"]["field"], "webhook_url",
                "{}",
                reply.text
            );
        }
        // Nothing was created.
        let ok = app
            .post(
                "/v1/admin/providers",
                Some(ADMIN_TOKEN),
                &json!({"name": "Honest Towing", "webhook_url": "https://hooks.towco.com/rescue"}),
            )
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
        app.stop().await;
    })
    .await;
}
storage::backend_test!(unsafe_webhook_urls_are_refused_at_registration);

async fn after_a_rotation_webhooks_verify_with_the_old_and_the_new_secret(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let server = hook_server(ResponseTemplate::new(200)).await;
        let app = spawn(db, 5).await;
        let url = format!("{}/hook", server.uri());
        let (provider_id, provider, old_secret) =
            provider_with_hook(&app, "Rotating Towing", &url).await;
        let rotated = app
            .post(
                &format!("/v1/admin/providers/{provider_id}/webhook-secret"),
                Some(ADMIN_TOKEN),
                &json!({}),
            )
            .await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
        let new_secret = rotated.body["webhook_secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, old_secret);
        assert_eq!(rotated.body["generation"], 2);
        let unknown = app
            .post(
                "/v1/admin/providers/0192f6c2-3b1e-7c3a-9d7e-2f1a6b1c9e01/webhook-secret",
                Some(ADMIN_TOKEN),
                &json!({}),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);

        app.register_vehicle(&provider, "R1", &["jump_start"], 31.2304, 121.4637)
            .await;
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        app.wait_for_offer(&provider, &case_id).await;
        let request = wait_for_request(&server, "offer.created", |_, body| {
            body["event"] == "offer.created"
        })
        .await;
        assert_eq!(
            header(&request, "rescue-webhook-signature")
                .matches("v1=")
                .count(),
            2
        );
        for secret in [&old_secret, &new_secret] {
            verify(
                secret.as_bytes(),
                &request.headers,
                &request.body,
                chrono::Utc::now(),
                DEFAULT_TOLERANCE,
            )
            .expect("both secrets verify during the grace period");
        }
        app.stop().await;
    })
    .await;
}
storage::backend_test!(after_a_rotation_webhooks_verify_with_the_old_and_the_new_secret);

async fn expired_and_withdrawn_offers_reach_the_provider_as_signed_webhooks(backend: Backend) {
    storage::testing::run_on(backend, |db| async move {
        let server = hook_server(ResponseTemplate::new(204)).await;
        // Expiry on manual time, as in the dispatch tests: the sweep runs every 20 ms, the
        // offer runs out only when the test moves the clock. The clock starts at the real
        // time, so signatures verify against it.
        let clock = Arc::new(domain::ManualClock::new(chrono::Utc::now()));
        let app = spawn_app_with(
            db,
            |settings| {
                settings.webhook_allow_loopback = true;
                settings.webhook_retry_base_ms = 20;
                settings.webhook_retry_max_ms = 40;
                settings.webhook_poll_ms = 20;
                settings.webhook_timeout_ms = 500;
                settings.stream_poll_ms = 20;
                settings.offer_sweep_ms = 20;
                settings.offer_timeout_s = 5;
            },
            clock.clone(),
        )
        .await;
        let url = format!("{}/hook", server.uri());
        let (_, provider, secret) = provider_with_hook(&app, "Sleepy Towing", &url).await;
        app.register_vehicle_at(
            &provider,
            "H1",
            &["jump_start"],
            31.2304,
            121.4637,
            domain::Clock::now(&*clock),
        )
        .await;
        let verify_signed = |request: &wiremock::Request| {
            verify(
                secret.as_bytes(),
                &request.headers,
                &request.body,
                domain::Clock::now(&*clock),
                DEFAULT_TOLERANCE,
            )
            .expect("the signature verifies with the provider's secret");
        };

        // Unanswered for the offer timeout: offer.expired.
        let first = app.create_case(&case_body()).await;
        let first_case = first["case"]["id"].as_str().unwrap().to_owned();
        let expiring = app.wait_for_offer(&provider, &first_case).await;
        clock.advance(chrono::Duration::seconds(5));
        let request = wait_for_request(&server, "offer.expired", |_, body| {
            body["event"] == "offer.expired" && body["data"]["id"] == expiring.as_str()
        })
        .await;
        verify_signed(&request);
        assert_eq!(header(&request, "rescue-webhook-event"), "offer.expired");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(header(&request, "rescue-webhook-id"), body["id"]);
        assert_eq!(body["data"]["case_id"], first_case.as_str());
        assert_eq!(body["data"]["vehicle_id"], "H1");
        assert_eq!(body["data"]["state"], "expired", "{body}");
        // With its only truck tried, the first case escalates and the truck is free.
        app.wait_for_status(&first_case, domain::CaseStatus::Escalated)
            .await;

        // A case cancelled while its offer is out: offer.withdrawn.
        let second = app.create_case(&case_body()).await;
        let second_case = second["case"]["id"].as_str().unwrap().to_owned();
        let withdrawn = app.wait_for_offer(&provider, &second_case).await;
        let cancelled = app
            .post(
                &format!("/v1/cases/{second_case}/cancel"),
                Some(second["customer_token"].as_str().unwrap()),
                &json!({}),
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        let request = wait_for_request(&server, "offer.withdrawn", |_, body| {
            body["event"] == "offer.withdrawn" && body["data"]["id"] == withdrawn.as_str()
        })
        .await;
        verify_signed(&request);
        assert_eq!(header(&request, "rescue-webhook-event"), "offer.withdrawn");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["data"]["case_id"], second_case.as_str());
        assert_eq!(body["data"]["state"], "withdrawn", "{body}");
        // Neither offer was announced as the other's fate.
        let received = server.received_requests().await.unwrap();
        let fates: Vec<(String, String)> = received
            .iter()
            .filter_map(|request| {
                let body: Value = serde_json::from_slice(&request.body).ok()?;
                let event = body["event"].as_str()?;
                let offer = body["data"]["id"].as_str()?;
                (event == "offer.expired" || event == "offer.withdrawn")
                    .then(|| (event.to_owned(), offer.to_owned()))
            })
            .collect();
        assert_eq!(
            fates,
            [
                ("offer.expired".to_owned(), expiring.clone()),
                ("offer.withdrawn".to_owned(), withdrawn.clone())
            ],
            "each fate delivered once"
        );
        app.stop().await;
    })
    .await;
}
storage::backend_test!(expired_and_withdrawn_offers_reach_the_provider_as_signed_webhooks);
