use reqwest::StatusCode;

use crate::api_test;
use crate::helpers::*;

api_test!(liveness_and_readiness_answer, |app| async move {
    let live = app.get("/healthz", None).await;
    assert_eq!(
        (live.status, live.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["storage"], app.db.store.backend());
    app
});

api_test!(
    metrics_count_requests_by_route_and_cases_by_status,
    |app| async move {
        app.create_settled_case(&case_body()).await;
        app.get("/v1/cases/not-a-case", None).await;
        let metrics = app.get("/metrics", None).await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert!(
            metrics.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(
            metrics.text.contains(
                r#"rescue_http_requests_total{method="POST",route="/v1/cases",status="201"}"#
            ),
            "{}",
            metrics.text
        );
        // Route templates, never ids, as labels.
        assert!(metrics.text.contains(r#"route="/v1/cases/{case_id}""#));
        assert!(!metrics.text.contains("not-a-case"));
        // The gauge reflects this server's database (the last scrape wins).
        let line = metrics
            .text
            .lines()
            .find(|line| line.starts_with(r#"rescue_cases{status="escalated"}"#))
            .expect("cases gauge");
        assert!(line.ends_with(" 1"), "{line}");
        app
    }
);

/// The sum of every sample of `series` (a metric name, optionally with the start of its
/// labels) in a Prometheus text scrape; `None` when there is none.
fn sample_sum(scrape: &str, series: &str) -> Option<f64> {
    let values: Vec<f64> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| match line.strip_prefix(series) {
            Some(_) if series.contains('{') => true,
            Some(rest) => rest.starts_with([' ', '{']),
            None => false,
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

// The recorder is process-wide and other tests run beside this one, so counters are
// compared before and after this test's own actions (they only grow), and gauges are
// read while this test holds what they count.
api_test!(
    metrics_cover_dispatch_offers_escalations_fixes_and_alerts,
    |app| async move {
        let before = app.get("/metrics", None).await.text;
        let (_, agent) = app.create_user("ann", "agent").await;
        // An agent watching the live stream counts as a subscriber while connected.
        let stream = app
            .client
            .get(app.url("/v1/stream"))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let (_, provider) = app.create_provider("Towing").await;
        app.register_vehicle(&provider, "T1", &["jump_start"], 31.2310, 121.4740)
            .await;
        // A fix from an hour ahead is refused.
        let refused = app
            .post(
                "/v1/provider/positions",
                Some(&provider),
                &serde_json::json!({"fixes": [{"vehicle_id": "T1", "lat": 31.2311, "lon": 121.4741,
                    "ts": chrono::Utc::now() + chrono::Duration::hours(1)}]}),
            )
            .await;
        assert_eq!(refused.body["accepted"], 0, "{}", refused.text);
        // One offer, declined; with no other truck the case escalates.
        let case = app.create_case(&case_body()).await;
        let case_id = case["case"]["id"].as_str().unwrap();
        let offer = app.wait_for_offer(&provider, case_id).await;
        let declined = app
            .post(
                &format!("/v1/provider/offers/{offer}/decline"),
                Some(&provider),
                &serde_json::json!({"reason": "busy"}),
            )
            .await;
        assert_eq!(declined.status, StatusCode::OK, "{}", declined.text);
        app.wait_for_status(case_id, domain::CaseStatus::Escalated)
            .await;

        // The escalation and its alert are counted just after the commit that made the
        // case `escalated` visible (so that only what was stored counts): scrape until
        // both are in.
        let escalations = "rescue_escalations_total";
        let no_vehicle_alerts = r#"rescue_alerts_raised_total{kind="no_vehicle"}"#;
        let (scraper, earlier) = (&app, &before);
        let after = app
            .eventually(
                "the escalation and its alert in /metrics",
                move || async move {
                    let scrape = scraper.get("/metrics", None).await.text;
                    let counted = |series: &str| {
                        sample_sum(&scrape, series).unwrap_or(0.0)
                            > sample_sum(earlier, series).unwrap_or(0.0)
                    };
                    (counted(escalations) && counted(no_vehicle_alerts)).then_some(scrape)
                },
            )
            .await;
        // Under nextest every test has its process, and so the metrics recorder, to
        // itself: then this test's escalation and alert are all there is, each counted
        // exactly once.
        if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test") {
            for series in [escalations, no_vehicle_alerts] {
                let was = sample_sum(&before, series).unwrap_or(0.0);
                assert_eq!(
                    sample_sum(&after, series),
                    Some(was + 1.0),
                    "`{series}` counted once:\n{after}"
                );
            }
        }
        assert!(
            after.contains("# TYPE rescue_dispatch_latency_seconds histogram"),
            "{after}"
        );
        assert!(
            after.contains(r#"rescue_dispatch_latency_seconds_bucket{le="0.0001"}"#),
            "{after}"
        );
        let grew = |series: &str| {
            let was = sample_sum(&before, series).unwrap_or(0.0);
            let is = sample_sum(&after, series)
                .unwrap_or_else(|| panic!("no `{series}` in the scrape:\n{after}"));
            assert!(is > was, "`{series}` did not grow: {was} → {is}");
        };
        grew("rescue_dispatch_latency_seconds_count");
        grew(r#"rescue_offers_total{outcome="sent"}"#);
        grew(r#"rescue_offers_total{outcome="declined"}"#);
        grew("rescue_escalations_total");
        grew(r#"rescue_alerts_raised_total{kind="no_vehicle"}"#);
        grew(r#"rescue_fixes_accepted_total{source="api"}"#);
        grew("rescue_fixes_rejected_total");
        // Published from the fleet at each scrape (by whichever server was scraped last,
        // so only its presence is certain here).
        assert!(
            sample_sum(&after, r#"rescue_fleet_vehicles{state="available"}"#).is_some(),
            "{after}"
        );
        let subscribers = sample_sum(&after, "rescue_stream_subscribers").expect("subscribers");
        assert!(subscribers >= 1.0, "{subscribers}");
        drop(stream);
        app
    }
);

api_test!(
    the_openapi_document_and_swagger_ui_are_served,
    |app| async move {
        let document = app.get("/openapi.json", None).await;
        assert_eq!(document.status, StatusCode::OK);
        assert_eq!(document.body["openapi"], "3.1.0");
        assert!(document.body["paths"]["/v1/cases"]["post"].is_object());
        assert!(document.body["components"]["schemas"]["Case"].is_object());
        let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        let html = docs.text().await.unwrap();
        assert!(
            html.contains("swagger"),
            "the UI is bundled, no CDN: {html}"
        );
        assert!(!html.contains("unpkg.com") && !html.contains("cdn."));
        app
    }
);

api_test!(every_response_carries_a_request_id, |app| async move {
    let reply = app.get("/healthz", None).await;
    let id = reply.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    // A caller's own id is kept.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "caller-chosen-id");
    app
});

#[tokio::test]
async fn shutdown_stops_serving_and_returns() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let app = spawn_app(db).await;
        let url = app.url("/healthz");
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
        tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
            .await
            .expect("server stops promptly");
        let after = reqwest::Client::new().get(url).send().await;
        assert!(after.is_err(), "the port no longer answers");
    })
    .await;
}
