//! Dispatch on the road network of a real city: the Monaco extract of `roads/tests/data`
//! (OpenStreetMap, ODbL).

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::testing::Backend;

use crate::helpers::*;

fn monaco() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roads/tests/data/monaco.osm.pbf")
}

/// The customer, on the harbour's north-east side.
const CUSTOMER: (f64, f64) = (43.740477, 7.429996);
/// 1.1 km from the customer as the crow flies, but 3.5 km by road round the harbour.
const ACROSS: (f64, f64) = (43.731785, 7.423932);
/// 1.8 km as the crow flies, 2.2 km by road.
const DIRECT: (f64, f64) = (43.728992, 7.414387);

fn monaco_area() -> Value {
    json!({"type": "Polygon", "coordinates": [[[7.30,43.65],[7.55,43.65],[7.55,43.80],[7.30,43.80],[7.30,43.65]]]})
}

fn case_at(lat: f64, lon: f64) -> Value {
    json!({
        "channel": "app",
        "customer": {"name": "Jean", "phone": "+37799000001"},
        "location": {"lat": lat, "lon": lon, "crs": "wgs84", "road_kind": "urban"},
        "fault": {"category": "battery", "symptoms": ["no_crank"]},
        "service": "jump_start"
    })
}

async fn run_road_test<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = TestApp>,
{
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_string_lossy().into_owned();
    storage::testing::run_on(backend, |db| async move {
        let app = spawn_app_with(
            db,
            |settings| {
                settings.road_network = monaco().to_string_lossy().into_owned();
                settings.road_cache_dir = cache_dir;
            },
            Arc::new(domain::SystemClock),
        )
        .await;
        let app = body(app).await;
        app.stop().await;
    })
    .await;
}

async fn provider_in(app: &TestApp, name: &str, area: Value) -> String {
    let reply = app
        .post(
            "/v1/admin/providers",
            Some(ADMIN_TOKEN),
            &json!({"name": name, "service_area": area}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["api_key"].as_str().unwrap().to_owned()
}

async fn ranking(app: &TestApp, agent: &str, case_id: &str) -> Value {
    timeline(app, agent, case_id)
        .await
        .into_iter()
        .find(|event| event["kind"] == "candidates_ranked")
        .expect("a ranking")["data"]
        .clone()
}

storage::backend_test!(
    the_offer_goes_to_the_truck_nearer_by_road_not_by_straight_line,
    run = run_road_test,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let provider = provider_in(&app, "Monaco Dépannage", monaco_area()).await;
        app.register_vehicle(&provider, "ACROSS", &["jump_start"], ACROSS.0, ACROSS.1)
            .await;
        app.register_vehicle(&provider, "DIRECT", &["jump_start"], DIRECT.0, DIRECT.1)
            .await;
        let created = app.create_case(&case_at(CUSTOMER.0, CUSTOMER.1)).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        app.wait_for_offer(&provider, &case_id).await;
        let offers = app.get("/v1/provider/offers", Some(&provider)).await;
        assert_eq!(
            offers.body["offers"][0]["vehicle_id"], "DIRECT",
            "{}",
            offers.text
        );

        let ranked = ranking(&app, &agent, &case_id).await;
        assert_eq!(ranked["eta_model"], "road");
        let candidates = ranked["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 2, "{ranked}");
        let (first, second) = (&candidates[0], &candidates[1]);
        assert_eq!(
            (first["chosen"].as_bool(), second["chosen"].as_bool()),
            (Some(true), Some(false))
        );
        for candidate in candidates {
            assert_eq!(candidate["eta_model"], "road", "{candidate}");
        }
        let road = |c: &Value| c["road_distance_m"].as_f64().expect("a road distance");
        let straight = |c: &Value| c["distance_m"].as_f64().unwrap();
        // The chosen truck is farther as the crow flies and nearer by road.
        assert!(straight(first) > straight(second), "{ranked}");
        assert!(road(first) < road(second), "{ranked}");
        assert!(
            road(second) > 2.5 * straight(second),
            "round the harbour: {ranked}"
        );
        assert!(first["eta_s"].as_u64() < second["eta_s"].as_u64());

        // The truck left over is the agent's candidate, on road figures too.
        let list = app
            .get(&format!("/v1/cases/{case_id}/candidates"), Some(&agent))
            .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        let left = &list.body["candidates"][0];
        assert_eq!(left["vehicle_ref"], "ACROSS");
        assert_eq!(left["eta_model"], "road");
        assert_eq!(left["road_distance_m"].as_f64(), Some(road(second)));

        // Readiness reports the network.
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.body["eta_model"], "road", "{}", ready.text);
        assert_eq!(ready.body["road_network"]["file"], "monaco.osm.pbf");
        assert!(ready.body["road_network"]["memory_bytes"].as_u64().unwrap() > 0);
        app
    }
);

storage::backend_test!(
    a_case_off_the_network_is_dispatched_on_the_straight_line,
    run = run_road_test,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, provider) = app.create_provider("Shanghai Towing").await;
        let (lat, lon) = north_of_customer(2.0);
        app.register_vehicle(&provider, "SH-1", &["jump_start"], lat, lon)
            .await;
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        app.wait_for_offer(&provider, &case_id).await;
        let ranked = ranking(&app, &agent, &case_id).await;
        assert_eq!(ranked["eta_model"], "road", "the configured model");
        let candidate = &ranked["candidates"][0];
        assert_eq!(candidate["eta_model"], "straight_line", "{ranked}");
        assert_eq!(candidate["road_distance_m"], Value::Null);
        app
    }
);

#[tokio::test]
async fn a_bad_road_network_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.osm.pbf");
    std::fs::write(&bad, b"not a pbf").unwrap();
    for (file, expected) in [
        (bad.clone(), "broken.osm.pbf"),
        (dir.path().join("missing.osm.pbf"), "missing.osm.pbf"),
    ] {
        let mut settings =
            dispatcher::config::Settings::resolve(Default::default(), Default::default());
        settings.road_network = file.to_string_lossy().into_owned();
        let error = dispatcher::app::load_road_network(&settings)
            .await
            .expect_err("a bad extract is refused")
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
    let mut settings =
        dispatcher::config::Settings::resolve(Default::default(), Default::default());
    settings.road_network = monaco().to_string_lossy().into_owned();
    settings.road_profile = dir.path().join("nope.toml").to_string_lossy().into_owned();
    let error = dispatcher::app::load_road_network(&settings)
        .await
        .expect_err("a missing profile is refused")
        .to_string();
    assert!(error.contains("nope.toml"), "{error}");
}

#[test]
fn roads_prepare_fills_the_cache_serve_loads_from() {
    let cache = tempfile::tempdir().unwrap();
    let prepare = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dispatcher"))
            .args(["roads", "prepare"])
            .arg(file)
            .arg("--cache-dir")
            .arg(cache.path())
            .env_remove("RESCUE_ROAD_PROFILE")
            .output()
            .expect("the binary runs")
    };
    let first = prepare(&monaco());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        said.contains("monaco.osm.pbf") && said.contains("prepared"),
        "{said}"
    );
    let again = prepare(&monaco());
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.contains("loaded from the cache"), "{said}");

    let missing = prepare(&cache.path().join("nowhere.osm.pbf"));
    assert!(!missing.status.success());
    let said = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert!(said.contains("nowhere.osm.pbf"), "{said}");
}
