//! `serve --demo` seeds a city and keeps it busy.

use std::time::Duration;

use domain::ports::CaseFilter;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_a_city_and_dispatches_its_requests() {
    storage::testing::run_on(storage::testing::Backend::Sqlite, |db| async move {
        let app = spawn_app(db).await;
        let tasks = dispatcher::demo::start(app.state.clone(), 30, 0.5)
            .await
            .expect("demo starts");
        // The demo users can log in.
        let login = app
            .post(
                "/v1/auth/login",
                None,
                &json!({"username": "demo-agent", "password": dispatcher::demo::DEMO_PASSWORD}),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK);
        let agent = login.body["token"].as_str().unwrap().to_owned();
        let map = app
            .get("/v1/fleet?bbox=121.0,30.8,122.0,31.6", Some(&agent))
            .await;
        assert_eq!(map.body["vehicles"].as_array().unwrap().len(), 30);
        // Requests arrive and get offers; offers get answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            let cases = app
                .db
                .store
                .list_cases(&CaseFilter {
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap();
            let assigned = cases
                .iter()
                .filter(|case| case.promised_arrival.is_some())
                .count();
            if assigned >= 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no demo case was assigned: {} cases",
                cases.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for task in tasks {
            task.abort();
        }
        // Seeding again (a restart) adds nothing.
        let again = dispatcher::demo::start(app.state.clone(), 30, 1000.0)
            .await
            .expect("demo restarts");
        for task in again {
            task.abort();
        }
        assert_eq!(app.db.store.list_vehicles().await.unwrap().len(), 30);
        assert_eq!(app.db.store.list_providers().await.unwrap().len(), 3);
        app.stop().await;
    })
    .await;
}
