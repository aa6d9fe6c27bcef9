//! Several instances on one PostgreSQL and one Redis: what one instance learns about the
//! fleet reaches the others, and a case taken in by one can be dispatched to a vehicle
//! reported to another.

use std::sync::Arc;
use std::time::Duration;

use domain::CaseStatus;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_fleet_over_redis_on_postgres() {
    let redis = storage::testing::redis_url();
    storage::testing::run_on(storage::testing::Backend::Postgres, |db| async move {
        let channel = format!("test:{}", uuid::Uuid::new_v4());
        let configure = |settings: &mut dispatcher::config::Settings| {
            settings.redis_url = redis.clone();
            settings.bus_channel = channel.clone();
        };
        let first = spawn_app_with(db.clone(), configure, Arc::new(domain::SystemClock)).await;
        let second = spawn_app_with(db, configure, Arc::new(domain::SystemClock)).await;
        assert_eq!(first.state.bus.backend(), "redis");

        // The provider and its truck are set up through the first instance only.
        let (_, provider) = first.create_provider("Shared Towing").await;
        first
            .register_vehicle(&provider, "S1", &["jump_start"], 31.24, 121.4737)
            .await;
        let (_, agent) = first.create_user("ann", "agent").await;

        // The second instance sees the truck on its map, from its own index.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let map = second
                .get("/v1/fleet?bbox=121.4,31.2,121.5,31.3", Some(&agent))
                .await;
            if map.body["vehicles"]
                .as_array()
                .is_some_and(|vehicles| vehicles.len() == 1)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the second instance never saw the truck: {}",
                map.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A case taken in by the second instance is offered to that truck.
        let case_id = second.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let offer_id = first.wait_for_offer(&provider, &case_id).await;
        let accepted = first
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        second.wait_for_status(&case_id, CaseStatus::Assigned).await;

        // The truck's new state reaches the second instance's index too.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let map = second
                .get("/v1/fleet?bbox=121.4,31.2,121.5,31.3", Some(&agent))
                .await;
            if map.body["vehicles"][0]["state"] == "busy" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "state never propagated: {}",
                map.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And a position reported to the second instance moves the truck on the first.
        second
            .report_position(&provider, "S1", 31.25, 121.48, chrono::Utc::now())
            .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let map = first
                .get("/v1/fleet?bbox=121.4,31.2,121.5,31.3", Some(&agent))
                .await;
            if map.body["vehicles"][0]["lat"].as_f64() == Some(31.25) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "position never propagated: {}",
                map.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        first.stop().await;
        second.stop().await;
    })
    .await;
}
