//! The dispatcher end to end: candidates, ranking, the offer cascade, expiry, escalation,
//! manual assignment, job progress, positions — through the real API on both backends.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use domain::{CaseStatus, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_test;
use crate::helpers::*;

async fn timeline_kinds(app: &TestApp, agent: &str, case_id: &str) -> Vec<String> {
    let timeline = app
        .get(&format!("/v1/cases/{case_id}/timeline"), Some(agent))
        .await;
    timeline.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_owned())
        .collect()
}

api_test!(
    the_nearest_capable_vehicle_gets_the_offer_and_acceptance_assigns_it,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, near) = app.create_provider("Near Towing").await;
        let (_, far) = app.create_provider("Far Towing").await;
        let (lat, lon) = north_of_customer(2.0);
        app.register_vehicle(&near, "N1", &["jump_start"], lat, lon)
            .await;
        let (lat, lon) = north_of_customer(8.0);
        app.register_vehicle(&far, "F1", &["jump_start", "tow"], lat, lon)
            .await;
        // The nearest of all cannot do a jump start.
        let (lat, lon) = north_of_customer(0.5);
        app.register_vehicle(&near, "TOW-ONLY", &["tow"], lat, lon)
            .await;

        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap();
        // The first offer is written with the case: it is out when the 201 comes back.
        let offers = app.get("/v1/provider/offers", Some(&near)).await;
        let offer = &offers.body["offers"][0];
        assert_eq!(offer["case_id"], case_id, "{}", offers.text);
        let offer_id = offer["id"].as_str().unwrap().to_owned();
        assert_eq!(offer["vehicle_id"], "N1");
        assert_eq!(offer["service"], "jump_start");
        assert!((offer["distance_m"].as_f64().unwrap() - 2000.0).abs() < 20.0);
        // 2 km × 1.3 at 30 km/h is 312 s, plus 120 s to get going.
        assert_eq!(offer["eta_s"], 432);
        assert!(
            offer.get("customer").is_none(),
            "no personal data before acceptance"
        );
        assert!(
            app.get("/v1/provider/offers", Some(&far)).await.body["offers"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // Each provider lists its own vehicles and delivery log, none of the other's.
        let vehicle_ids = |reply: Reply| -> Vec<String> {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let mut ids: Vec<String> = reply.body["vehicles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|vehicle| vehicle["vehicle_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            vehicle_ids(app.get("/v1/provider/vehicles", Some(&far)).await),
            ["F1"]
        );
        assert_eq!(
            vehicle_ids(app.get("/v1/provider/vehicles", Some(&near)).await),
            ["N1", "TOW-ONLY"]
        );
        let far_hooks = app.get("/v1/provider/webhooks", Some(&far)).await;
        assert_eq!(far_hooks.status, StatusCode::OK, "{}", far_hooks.text);
        assert_eq!(far_hooks.body["webhooks"], json!([]), "{}", far_hooks.text);

        // The ranking is in the timeline: why this truck.
        let events = timeline(&app, &agent, case_id).await;
        let ranking = events
            .iter()
            .find(|e| e["kind"] == "candidates_ranked")
            .unwrap();
        assert_eq!(ranking["data"]["reason"], "fastest ETA");
        let candidates = ranking["data"]["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 2, "the tow-only truck is not a candidate");
        assert_eq!(candidates[0]["chosen"], true);
        assert!(candidates[0]["eta_s"].as_u64() < candidates[1]["eta_s"].as_u64());

        let accepted = app
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&near),
                &json!({"eta_s": 600}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        assert_eq!(accepted.body["status"], "assigned");
        assert_eq!(accepted.body["customer"]["phone"], "+8613800138000");
        let case = app.wait_for_status(case_id, CaseStatus::Assigned).await;
        let promised = case.promised_arrival.expect("promised arrival");
        let expected = chrono::Utc::now() + chrono::Duration::seconds(600);
        assert!((promised - expected).num_seconds().abs() < 5);
        let vehicle = app.get("/v1/provider/vehicles/N1", Some(&near)).await;
        assert_eq!(vehicle.body["state"], "busy");

        // Job progress along the machine; a skipped step is refused.
        let status = format!("/v1/provider/jobs/{case_id}/status");
        let skipped = app
            .post(&status, Some(&near), &json!({"status": "on_scene"}))
            .await;
        assert_eq!(
            (skipped.status, skipped.error_code()),
            (StatusCode::CONFLICT, "illegal_transition")
        );
        let foreign = app
            .post(&status, Some(&far), &json!({"status": "en_route"}))
            .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND);
        for step in ["en_route", "on_scene", "completed"] {
            let reply = app
                .post(&status, Some(&near), &json!({"status": step}))
                .await;
            assert_eq!(
                (reply.status, reply.body["status"].as_str()),
                (StatusCode::OK, Some(step)),
                "{}",
                reply.text
            );
        }
        assert_eq!(
            app.get("/v1/provider/vehicles/N1", Some(&near)).await.body["state"],
            "available"
        );
        let kinds = timeline_kinds(&app, &agent, case_id).await;
        assert!(
            kinds.ends_with(&["status_changed".into(), "vehicle_released".into()]),
            "{kinds:?}"
        );
        app
    }
);

api_test!(a_decline_cascades_to_the_next_vehicle, |app| async move {
    let (_, agent) = app.create_user("ann", "agent").await;
    let (_, provider) = app.create_provider("Towing").await;
    for (name, km) in [("V1", 1.0), ("V2", 3.0), ("V3", 6.0)] {
        let (lat, lon) = north_of_customer(km);
        app.register_vehicle(&provider, name, &["jump_start"], lat, lon)
            .await;
    }
    let case_id = app.create_case(&case_body()).await["case"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = app.wait_for_offer(&provider, &case_id).await;
    let declined = app
        .post(
            &format!("/v1/provider/offers/{first}/decline"),
            Some(&provider),
            &json!({"reason": "busy"}),
        )
        .await;
    assert_eq!(
        (declined.status, declined.body["state"].as_str()),
        (StatusCode::OK, Some("declined"))
    );
    // The next offer goes to the next nearest.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let offers = app.get("/v1/provider/offers", Some(&provider)).await;
        if let Some(offer) = offers.body["offers"].as_array().unwrap().first() {
            break offer.clone();
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(second["vehicle_id"], "V2");
    assert_ne!(second["id"], first.as_str());
    let offers = app
        .get(&format!("/v1/cases/{case_id}/offers"), Some(&agent))
        .await;
    let states: Vec<&str> = offers.body["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["declined", "pending"]);
    assert_eq!(
        app.get("/v1/provider/vehicles/V1", Some(&provider))
            .await
            .body["state"],
        "available"
    );
    // A bad decline reason is refused, naming the field.
    let bad = app
        .post(
            &format!(
                "/v1/provider/offers/{}/decline",
                second["id"].as_str().unwrap()
            ),
            Some(&provider),
            &json!({"reason": "lunch"}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason"))
    );
    app
});

// Radii are 10, 25, 50, 100 km by default; each attempt starts one step wider.
api_test!(
    a_truck_beyond_the_first_radius_is_offered_once_the_search_widens,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, provider) = app.create_provider("Towing").await;
        let (lat, lon) = north_of_customer(2.0);
        app.register_vehicle(&provider, "NEAR", &["jump_start"], lat, lon)
            .await;
        // Beyond 10 km, inside 25 km.
        let (lat, lon) = north_of_customer(15.0);
        app.register_vehicle(&provider, "FAR", &["jump_start"], lat, lon)
            .await;
        let case_id = app.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let first = app.wait_for_offer(&provider, &case_id).await;
        let offers = app.get("/v1/provider/offers", Some(&provider)).await;
        assert_eq!(
            offers.body["offers"][0]["vehicle_id"], "NEAR",
            "{}",
            offers.text
        );
        let declined = app
            .post(
                &format!("/v1/provider/offers/{first}/decline"),
                Some(&provider),
                &json!({"reason": "busy"}),
            )
            .await;
        assert_eq!(declined.status, StatusCode::OK, "{}", declined.text);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            let offers = app.get("/v1/provider/offers", Some(&provider)).await;
            if let Some(offer) = offers.body["offers"].as_array().unwrap().first() {
                break offer.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no second offer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(second["vehicle_id"], "FAR");
        assert_eq!(second["case_id"], case_id.as_str());

        // The timeline records the radius each ranking searched, and the far truck was not
        // a candidate of the first.
        let timeline = app
            .get(&format!("/v1/cases/{case_id}/timeline"), Some(&agent))
            .await;
        let rankings: Vec<_> = timeline.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["kind"] == "candidates_ranked")
            .collect();
        assert_eq!(rankings.len(), 2, "{}", timeline.text);
        assert_eq!(rankings[0]["data"]["attempt"], 1);
        assert_eq!(rankings[0]["data"]["radius_m"], 10_000.0);
        assert_eq!(rankings[0]["data"]["considered"], 1, "only the near truck");
        assert_eq!(rankings[1]["data"]["attempt"], 2);
        assert_eq!(rankings[1]["data"]["radius_m"], 25_000.0);
        let chosen = &rankings[1]["data"]["candidates"][0];
        assert_eq!(chosen["chosen"], true);
        assert!(
            chosen["distance_m"].as_f64().unwrap() > 10_000.0,
            "{chosen}"
        );
        app
    }
);

api_test!(
    without_a_suitable_vehicle_the_case_is_escalated_with_an_alert,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, provider) = app.create_provider("Towing").await;
        // Offline, stale, incapable, too far, and outside the contract area: none qualifies.
        let (lat, lon) = north_of_customer(1.0);
        let reply = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/OFF",
                Some(&provider),
                Some(&json!({"capabilities": ["jump_start"], "state": "offline"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        app.report_position(&provider, "OFF", lat, lon, chrono::Utc::now())
            .await;
        let reply = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/STALE",
                Some(&provider),
                Some(&json!({"capabilities": ["jump_start"], "state": "available"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        app.report_position(
            &provider,
            "STALE",
            lat,
            lon,
            chrono::Utc::now() - chrono::Duration::minutes(30),
        )
        .await;
        app.register_vehicle(&provider, "TOW", &["tow"], lat, lon)
            .await;
        // 120 km away (widest radius is 100 km), still inside the area's longitude band.
        let far = north_of_customer(-120.0);
        let (_, wide) = app.create_provider("Wide Towing").await;
        app.register_vehicle(&wide, "FAR", &["jump_start"], far.0.max(30.0), far.1)
            .await;

        let case_id = app.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.wait_for_status(&case_id, CaseStatus::Escalated).await;
        let alerts = app.get("/v1/alerts?state=open", Some(&agent)).await;
        let alert = &alerts.body["alerts"][0];
        assert_eq!(
            (alert["kind"].as_str(), alert["severity"].as_str()),
            (Some("no_vehicle"), Some("critical"))
        );
        assert_eq!(alert["case_id"], case_id.as_str());
        assert!(
            alert["message"]
                .as_str()
                .unwrap()
                .contains("no available vehicle"),
            "{alert}"
        );
        let kinds = timeline_kinds(&app, &agent, &case_id).await;
        assert_eq!(
            kinds,
            vec![
                "created",
                "triaged",
                "status_changed",
                "status_changed",
                "alert_raised"
            ]
        );

        // The agent assigns a vehicle by hand: the alert resolves.
        let tow_id = app
            .get("/v1/provider/vehicles/TOW", Some(&provider))
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let refused = app
            .post(
                &format!("/v1/cases/{case_id}/assign"),
                Some(&agent),
                &json!({"vehicle_id": tow_id}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a tow truck cannot jump-start: {}",
            refused.text
        );
        let reply = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/OFF",
                Some(&provider),
                Some(&json!({"capabilities": ["jump_start"], "state": "available"})),
            )
            .await;
        let available_id = reply.body["id"].as_str().unwrap().to_owned();
        let assigned = app
            .post(
                &format!("/v1/cases/{case_id}/assign"),
                Some(&agent),
                &json!({"vehicle_id": available_id}),
            )
            .await;
        assert_eq!(
            (assigned.status, assigned.body["status"].as_str()),
            (StatusCode::OK, Some("assigned")),
            "{}",
            assigned.text
        );
        assert!(
            app.get("/v1/alerts?state=open", Some(&agent)).await.body["alerts"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            app.get("/v1/provider/vehicles/OFF", Some(&provider))
                .await
                .body["state"],
            "busy"
        );
        app
    }
);

api_test!(
    an_escalated_case_is_redispatched_by_an_agent_once_a_vehicle_appears,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let case_id = app.create_settled_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, provider) = app.create_provider("Late Towing").await;
        let (lat, lon) = north_of_customer(3.0);
        app.register_vehicle(&provider, "L1", &["jump_start"], lat, lon)
            .await;
        let reply = app
            .request(
                Method::POST,
                &format!("/v1/cases/{case_id}/dispatch"),
                Some(&agent),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.body["status"].as_str()),
            (StatusCode::OK, Some("dispatching")),
            "{}",
            reply.text
        );
        app.wait_for_offer(&provider, &case_id).await;
        // Only escalated cases can be redispatched.
        let again = app
            .request(
                Method::POST,
                &format!("/v1/cases/{case_id}/dispatch"),
                Some(&agent),
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        app
    }
);

api_test!(
    cancelling_withdraws_the_offer_and_frees_the_vehicle,
    |app| async move {
        let (_, provider) = app.create_provider("Towing").await;
        let (lat, lon) = north_of_customer(1.0);
        app.register_vehicle(&provider, "V1", &["jump_start"], lat, lon)
            .await;
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap();
        let offer_id = app.wait_for_offer(&provider, case_id).await;
        assert_eq!(
            app.get("/v1/provider/vehicles/V1", Some(&provider))
                .await
                .body["state"],
            "offered"
        );
        let cancelled = app
            .post(
                &format!("/v1/cases/{case_id}/cancel"),
                Some(created["customer_token"].as_str().unwrap()),
                &json!({}),
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK);
        assert_eq!(
            app.get("/v1/provider/vehicles/V1", Some(&provider))
                .await
                .body["state"],
            "available"
        );
        let late = app
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(
            (late.status, late.error_code()),
            (StatusCode::CONFLICT, "conflict")
        );
        app
    }
);

api_test!(
    positions_are_checked_one_by_one_and_the_batch_survives,
    |app| async move {
        let (_, provider) = app.create_provider("Towing").await;
        let reply = app
        .request(Method::PUT, "/v1/provider/vehicles/T7", Some(&provider), Some(&json!({
            "capabilities": ["tow", "jump_start"], "state": "available", "plate": "沪A12345",
            "devices": [{"protocol": "jt808", "id": "013912345678"}, {"protocol": "osmand", "id": "truck-7"}]
        })))
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(reply.body["devices"].as_array().unwrap().len(), 2);
        let now = chrono::Utc::now();
        let fixes = json!({"fixes": [
            {"vehicle_id": "T7", "lat": 31.2304, "lon": 121.4737, "ts": now - chrono::Duration::seconds(10), "speed_kmh": 42.0, "heading": 90},
            {"vehicle_id": "NOPE", "lat": 31.2, "lon": 121.4, "ts": now},
            {"vehicle_id": "T7", "lat": 91.0, "lon": 121.4, "ts": now},
            {"vehicle_id": "T7", "lat": 31.2, "lon": 121.4, "ts": now + chrono::Duration::minutes(10)},
            {"vehicle_id": "T7", "lat": 31.2, "lon": 121.4, "ts": now - chrono::Duration::seconds(20)},
            {"vehicle_id": "T7", "lat": 31.2, "lon": 121.4, "ts": now, "speed_kmh": -5},
            {"vehicle_id": "T7", "lat": 31.2401, "lon": 121.4801, "ts": now - chrono::Duration::seconds(5), "speed_kmh": 40.0, "heading": 45}
        ]});
        let reply = app
            .post("/v1/provider/positions", Some(&provider), &fixes)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["accepted"], 2);
        let rejected: Vec<(u64, String)> = reply.body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap(),
                    r["error"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert!(rejected[0].1.contains("unknown vehicle"));
        assert!(rejected[1].1.contains("latitude"));
        assert!(rejected[2].1.contains("future"));
        assert!(rejected[3].1.contains("not newer"));
        assert!(rejected[4].1.contains("speed"));
        let vehicle = app.get("/v1/provider/vehicles/T7", Some(&provider)).await;
        let last = &vehicle.body["last_fix"];
        assert_eq!(
            (
                last["lat"].as_f64(),
                last["lon"].as_f64(),
                last["heading"].as_f64()
            ),
            (Some(31.2401), Some(121.4801), Some(45.0))
        );
        // A device id already bound elsewhere is refused.
        let clash = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/T8",
                Some(&provider),
                Some(&json!({
                    "capabilities": ["tow"], "devices": [{"protocol": "osmand", "id": "truck-7"}]
                })),
            )
            .await;
        assert_eq!(clash.status, StatusCode::CONFLICT);
        // Providers cannot set server-managed states.
        let managed = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/T7",
                Some(&provider),
                Some(&json!({"capabilities": ["tow"], "state": "busy"})),
            )
            .await;
        assert_eq!(
            (managed.status, managed.body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("state"))
        );
        app
    }
);

api_test!(the_fleet_map_shows_vehicles_in_a_box, |app| async move {
    let (_, agent) = app.create_user("ann", "agent").await;
    let (_, provider) = app.create_provider("Towing").await;
    app.register_vehicle(&provider, "IN", &["tow"], 31.23, 121.47)
        .await;
    app.register_vehicle(&provider, "OUT", &["tow"], 31.39, 121.79)
        .await;
    let map = app
        .get("/v1/fleet?bbox=121.4,31.2,121.5,31.3", Some(&agent))
        .await;
    assert_eq!(map.status, StatusCode::OK, "{}", map.text);
    let vehicles = map.body["vehicles"].as_array().unwrap();
    assert_eq!(vehicles.len(), 1);
    assert_eq!(
        (
            vehicles[0]["vehicle_id"].as_str(),
            vehicles[0]["state"].as_str()
        ),
        (Some("IN"), Some("available"))
    );
    for bad in [
        "/v1/fleet?bbox=1,2,3",
        "/v1/fleet?bbox=0,95,1,96",
        "/v1/fleet",
    ] {
        assert_eq!(
            app.get(bad, Some(&agent)).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    app
});

/// Expiry runs on manual time: the sweep checks every 20 ms, the clock only moves when the
/// test says so.
async fn manual_app(db: storage::testing::TestDatabaseHandle, clock: Arc<ManualClock>) -> TestApp {
    spawn_app_with(
        db,
        |settings| {
            settings.offer_sweep_ms = 20;
            settings.offer_timeout_s = 45;
            settings.max_offer_attempts = 2;
        },
        clock,
    )
    .await
}

fn start() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap()
}

async fn silence_cascades_then_escalates(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let app = manual_app(db, clock.clone()).await;
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, provider) = app.create_provider("Silent Towing").await;
        for (name, km) in [("S1", 1.0), ("S2", 2.0), ("S3", 3.0)] {
            let (lat, lon) = north_of_customer(km);
            app.register_vehicle_at(
                &provider,
                name,
                &["jump_start"],
                lat,
                lon,
                domain::Clock::now(&*clock),
            )
            .await;
        }
        let case_id = app.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let first = app.wait_for_offer(&provider, &case_id).await;
        // 44 s: still pending. 45 s: expired, and the next vehicle is offered.
        clock.advance(chrono::Duration::seconds(44));
        // The expiry sweep runs at 44 s and expires nothing.
        assert_eq!(
            app.state.cascade.expire_due().await.unwrap(),
            0,
            "nothing is due at 44 s"
        );
        assert_eq!(app.wait_for_offer(&provider, &case_id).await, first);
        clock.advance(chrono::Duration::seconds(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            let offer = app.wait_for_offer(&provider, &case_id).await;
            if offer != first {
                break offer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no cascade after expiry"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // A late accept of the expired offer is refused.
        let late = app
            .post(
                &format!("/v1/provider/offers/{first}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(late.status, StatusCode::CONFLICT);
        // The second also goes unanswered: two attempts is the budget, so escalate.
        clock.advance(chrono::Duration::seconds(45));
        app.wait_for_status(&case_id, CaseStatus::Escalated).await;
        let offers = app
            .get(&format!("/v1/cases/{case_id}/offers"), Some(&agent))
            .await;
        let states: Vec<&str> = offers.body["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, vec!["expired", "expired"]);
        assert_ne!(second, first);
        let kinds = timeline_kinds(&app, &agent, &case_id).await;
        assert_eq!(kinds.iter().filter(|k| *k == "offer_expired").count(), 2);
        assert_eq!(kinds.last().map(String::as_str), Some("alert_raised"));
        for name in ["S1", "S2", "S3"] {
            assert_eq!(
                app.get(&format!("/v1/provider/vehicles/{name}"), Some(&provider))
                    .await
                    .body["state"],
                "available"
            );
        }
        app.stop().await;
    })
    .await;
}

storage::backend_test!(silence_cascades_then_escalates);
