//! Bad input gets a clear error with the JSON error body, and changes nothing.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_test;
use crate::helpers::*;

fn assert_error_body(reply: &Reply) {
    assert_eq!(
        reply.headers["content-type"].to_str().unwrap(),
        "application/json",
        "{}",
        reply.text
    );
    assert!(reply.body["error"]["code"].is_string(), "{}", reply.text);
    assert!(reply.body["error"]["message"].is_string(), "{}", reply.text);
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let response = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    read(response).await
}

api_test!(malformed_json_is_a_400, |app| async move {
    let reply = post_raw(
        &app,
        "/v1/cases",
        "application/json",
        "{\"channel\": \"app\",",
    )
    .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    assert_error_body(&reply);
    assert_eq!(app.case_count().await, 0);
    app
});

api_test!(bad_fields_are_a_422_naming_the_field, |app| async move {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|body: &mut Value| body["location"]["lat"] = json!(91)),
            "location.lat",
        ),
        (
            Box::new(|body: &mut Value| body["location"]["lon"] = json!(-180.5)),
            "location.lon",
        ),
        (
            Box::new(|body: &mut Value| body["customer"]["phone"] = json!("")),
            "customer.phone",
        ),
        (
            Box::new(|body: &mut Value| body["customer"]["favourite_colour"] = json!("red")),
            "customer.favourite_colour",
        ),
        (
            Box::new(|body: &mut Value| {
                body.as_object_mut().unwrap().remove("service");
            }),
            "service",
        ),
        (
            Box::new(|body: &mut Value| body["service"] = json!("teleport")),
            "service",
        ),
        (
            Box::new(|body: &mut Value| body["location"]["road_kind"] = json!("river")),
            "location.road_kind",
        ),
        (
            Box::new(|body: &mut Value| body["location"]["lat"] = json!("thirty-one")),
            "location.lat",
        ),
        (
            Box::new(|body: &mut Value| body["fault"]["symptoms"] = json!(["Not Snake Case"])),
            "fault.symptoms[0]",
        ),
    ];
    for (mutate, field) in cases {
        let mut body = case_body();
        mutate(&mut body);
        let reply = app.post("/v1/cases", None, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            reply.text
        );
        assert_error_body(&reply);
        let named = reply.body["error"]["field"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field),
            "expected field {field}, got {}",
            reply.text
        );
    }
    assert_eq!(app.case_count().await, 0);
    app
});

api_test!(a_wrong_content_type_is_a_415, |app| async move {
    let reply = post_raw(
        &app,
        "/v1/cases",
        "text/plain",
        serde_json::to_vec(&case_body()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_body(&reply);
    app
});

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let app = spawn_app_with(
            db,
            |settings| settings.max_body_bytes = 4096,
            Arc::new(domain::SystemClock),
        )
        .await;
        let mut body = case_body();
        body["fault"]["description"] = json!("x".repeat(5000));
        let reply = app.post("/v1/cases", None, &body).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
        assert_error_body(&reply);
        assert_eq!(app.case_count().await, 0);
        app.stop().await;
    })
    .await;
}

api_test!(
    invalid_credentials_are_refused_even_on_open_routes,
    |app| async move {
        for token in ["nonsense", "st_unknown", "rk_unknown", "ct_forged", ""] {
            let reply = app
                .client
                .post(app.url("/v1/cases"))
                .header("authorization", format!("Bearer {token}"))
                .json(&case_body())
                .send()
                .await
                .unwrap();
            let reply = read(reply).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{token}: {}",
                reply.text
            );
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
            assert_error_body(&reply);
        }
        let basic = app
            .client
            .get(app.url("/v1/cases"))
            .header("authorization", "Basic YWRtaW46YWRtaW4=")
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.case_count().await, 0);
        app
    }
);

api_test!(
    unknown_routes_and_methods_answer_in_json,
    |app| async move {
        let missing = app.get("/v1/nothing-here", None).await;
        assert_eq!(
            (missing.status, missing.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert_error_body(&missing);
        let wrong_method = app
            .request(reqwest::Method::DELETE, "/v1/cases", None, None)
            .await;
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_error_body(&wrong_method);
        app
    }
);

api_test!(
    invalid_admin_input_is_refused_and_writes_nothing,
    |app| async move {
        let bad_area = app
        .post(
            "/v1/admin/providers",
            Some(ADMIN_TOKEN),
            &json!({"name": "X", "service_area": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[0,0]]]}}),
        )
        .await;
        assert_eq!(bad_area.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad_area.body["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("service_area")
        );
        let bad_hook = app
            .post(
                "/v1/admin/providers",
                Some(ADMIN_TOKEN),
                &json!({"name": "X", "webhook_url": "ftp://x"}),
            )
            .await;
        assert_eq!(bad_hook.body["error"]["field"], "webhook_url");
        let weak = app
            .post(
                "/v1/admin/users",
                Some(ADMIN_TOKEN),
                &json!({"username": "ann", "password": "short", "role": "agent"}),
            )
            .await;
        assert_eq!(
            (weak.status, weak.body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("password"))
        );
        let bad_role = app
            .post(
                "/v1/admin/users",
                Some(ADMIN_TOKEN),
                &json!({"username": "ann", "password": PASSWORD, "role": "janitor"}),
            )
            .await;
        assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
        app.create_user("ann", "agent").await;
        let duplicate = app
            .post(
                "/v1/admin/users",
                Some(ADMIN_TOKEN),
                &json!({"username": "ann", "password": PASSWORD, "role": "expert"}),
            )
            .await;
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        app
    }
);

#[tokio::test]
async fn unauthenticated_case_creation_is_rate_limited_per_client() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let app = spawn_app_with(
            db,
            |settings| {
                settings.app_rate_per_min = 2;
                settings.app_rate_burst = 2;
            },
            Arc::new(domain::SystemClock),
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(app.post("/v1/cases", None, &case_body()).await);
        }
        assert_eq!(statuses[0].status, StatusCode::CREATED);
        assert_eq!(statuses[1].status, StatusCode::CREATED);
        let limited = &statuses[3];
        assert_eq!(
            (limited.status, limited.error_code()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert!(limited.headers.contains_key("retry-after"));
        assert_eq!(app.case_count().await, 2);
        // Agents are not limited by the app quota.
        let (_, agent) = app.create_user("ann", "agent").await;
        assert_eq!(
            app.post("/v1/cases", Some(&agent), &case_body())
                .await
                .status,
            StatusCode::CREATED
        );
        app.stop().await;
    })
    .await;
}
