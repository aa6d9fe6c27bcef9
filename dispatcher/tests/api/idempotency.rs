use reqwest::StatusCode;
use serde_json::json;

use crate::api_test;
use crate::helpers::*;

async fn post_with_key(
    app: &TestApp,
    key: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Reply {
    let mut request = app
        .client
        .post(app.url("/v1/cases"))
        .header("Idempotency-Key", key)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    read(request.send().await.unwrap()).await
}

api_test!(
    a_retry_with_the_same_key_returns_the_first_response,
    |app| async move {
        let first = post_with_key(&app, "5b8c0b1e-retry", None, &case_body()).await;
        assert_eq!(first.status, StatusCode::CREATED);
        // Same content, other key order and whitespace: the same request.
        let reordered: serde_json::Value =
            serde_json::from_str(&serde_json::to_string_pretty(&case_body()).unwrap()).unwrap();
        let retry = post_with_key(&app, "5b8c0b1e-retry", None, &reordered).await;
        assert_eq!(retry.status, StatusCode::CREATED);
        assert_eq!(
            retry.body, first.body,
            "same case, same token, same tracking link"
        );
        assert_eq!(app.case_count().await, 1);
        app
    }
);

api_test!(
    the_same_key_with_another_body_is_refused,
    |app| async move {
        post_with_key(&app, "key-1", None, &case_body()).await;
        let mut changed = case_body();
        changed["service"] = json!("tow");
        let reply = post_with_key(&app, "key-1", None, &changed).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
        );
        assert_eq!(app.case_count().await, 1);
        app
    }
);

api_test!(concurrent_duplicates_create_one_case, |app| async move {
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = app.client.clone();
        let url = app.url("/v1/cases");
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("Idempotency-Key", "storm-key")
                .json(&case_body())
                .send()
                .await
                .unwrap();
            read(response).await
        }));
    }
    let mut case_ids = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        case_ids.insert(reply.body["case"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(case_ids.len(), 1);
    assert_eq!(app.case_count().await, 1);
    app
});

api_test!(keys_of_different_callers_do_not_collide, |app| async move {
    let (_, agent) = app.create_user("ann", "agent").await;
    post_with_key(&app, "shared", None, &case_body()).await;
    let by_agent = post_with_key(&app, "shared", Some(&agent), &case_body()).await;
    assert_eq!(by_agent.status, StatusCode::CREATED);
    assert_eq!(app.case_count().await, 2);
    app
});

api_test!(a_malformed_key_is_refused, |app| async move {
    let reply = post_with_key(&app, &"k".repeat(300), None, &case_body()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.case_count().await, 0);
    app
});
