use std::sync::Arc;

use chrono::TimeZone;
use domain::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::api_test;
use crate::helpers::*;

api_test!(
    a_user_logs_in_with_a_token_and_an_httponly_cookie,
    |app| async move {
        app.create_user("ann", "agent").await;
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"username": "ann", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.starts_with("rescue_session=st_"), "{cookie}");
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Path=/")
        );
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        assert_eq!(body["user"]["role"], "agent");
        assert!(body["user"].get("password_hash").is_none());

        let me = app.get("/v1/auth/me", Some(token)).await;
        assert_eq!(
            (me.status, me.body["username"].as_str()),
            (StatusCode::OK, Some("ann"))
        );

        // The cookie alone authenticates (EventSource cannot send headers).
        let session = cookie.split(';').next().unwrap();
        let by_cookie = app
            .client
            .get(app.url("/v1/cases"))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(by_cookie.status(), StatusCode::OK);
        app
    }
);

api_test!(
    wrong_passwords_and_unknown_users_get_the_same_401,
    |app| async move {
        app.create_user("ann", "agent").await;
        for (username, password) in [("ann", "wrong password here"), ("nobody", PASSWORD)] {
            let reply = app
                .post(
                    "/v1/auth/login",
                    None,
                    &json!({"username": username, "password": password}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reply.body["error"]["message"], "wrong username or password");
        }
        app
    }
);

api_test!(logout_ends_the_session, |app| async move {
    let (_, token) = app.create_user("ann", "agent").await;
    let reply = app
        .request(reqwest::Method::POST, "/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let me = app.get("/v1/auth/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    app
});

api_test!(
    a_state_change_by_cookie_from_another_origin_is_refused,
    |app| async move {
        app.create_user("ann", "agent").await;
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"username": "ann", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let forged = app
            .client
            .post(app.url("/v1/cases"))
            .header("cookie", &cookie)
            .header("origin", "https://evil.example")
            .json(&case_body())
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.case_count().await, 0);
        let same_origin = app
            .client
            .post(app.url("/v1/cases"))
            .header("cookie", &cookie)
            .header("origin", &app.address)
            .json(&case_body())
            .send()
            .await
            .unwrap();
        assert_eq!(same_origin.status(), StatusCode::CREATED);
        app
    }
);

#[tokio::test]
async fn a_session_expires_after_its_lifetime() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let start = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let app = spawn_app_with(db, |settings| settings.session_ttl_s = 600, clock.clone()).await;
        let (_, token) = app.create_user("ann", "agent").await;
        clock.advance(chrono::Duration::seconds(599));
        assert_eq!(
            app.get("/v1/auth/me", Some(&token)).await.status,
            StatusCode::OK
        );
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            app.get("/v1/auth/me", Some(&token)).await.status,
            StatusCode::UNAUTHORIZED
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn repeated_logins_from_one_address_are_rate_limited() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let app = spawn_app_with(
            db,
            |settings| settings.login_rate_per_min = 3,
            Arc::new(domain::SystemClock),
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let reply = app
                .post(
                    "/v1/auth/login",
                    None,
                    &json!({"username": "x", "password": "y"}),
                )
                .await;
            statuses.push(reply.status);
        }
        assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
        assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
        app.stop().await;
    })
    .await;
}
