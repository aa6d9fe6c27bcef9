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
