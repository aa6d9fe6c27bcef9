//! Never a double-booked truck: many clients and providers at once, then the whole
//! history is checked. And offers that expire while the server is down are processed
//! exactly once when it comes back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::TimeZone;
use domain::ports::CaseFilter;
use domain::{CaseStatus, Clock, ManualClock, OfferState, VehicleState};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// A tiny deterministic generator, so a failing run can be repeated.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

const PROVIDERS: usize = 5;
const TRUCKS_PER_PROVIDER: usize = 20;
const CLIENTS: usize = 50;
const CASES_PER_CLIENT: usize = 10;

/// Answers its provider's offers: mostly accepts (and then drives the job to completion),
/// sometimes declines, sometimes stays silent and lets the offer expire.
async fn provider_loop(app_url: String, api_key: String, seed: u64, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    let mut dice = Dice(seed);
    let mut ignored = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let response = client
            .get(format!("{app_url}/v1/provider/offers"))
            .bearer_auth(&api_key)
            .send()
            .await;
        let Ok(response) = response else { continue };
        let offers: serde_json::Value = response.json().await.unwrap_or_default();
        for offer in offers["offers"].as_array().cloned().unwrap_or_default() {
            let id = offer["id"].as_str().unwrap().to_owned();
            if ignored.contains(&id) {
                continue;
            }
            match dice.roll(20) {
                0..=11 => {
                    let accepted = client
                        .post(format!("{app_url}/v1/provider/offers/{id}/accept"))
                        .bearer_auth(&api_key)
                        .json(&json!({}))
                        .send()
                        .await;
                    if accepted.is_ok_and(|r| r.status() == StatusCode::OK) {
                        let case_id = offer["case_id"].as_str().unwrap().to_owned();
                        let (client, url, key) = (client.clone(), app_url.clone(), api_key.clone());
                        let pause = Duration::from_millis(20 + dice.roll(80));
                        tokio::spawn(async move {
                            for status in ["en_route", "on_scene", "completed"] {
                                tokio::time::sleep(pause).await;
                                let _ = client
                                    .post(format!("{url}/v1/provider/jobs/{case_id}/status"))
                                    .bearer_auth(&key)
                                    .json(&json!({"status": status}))
                                    .send()
                                    .await;
                            }
                        });
                    }
                }
                12..=16 => {
                    let _ = client
                        .post(format!("{app_url}/v1/provider/offers/{id}/decline"))
                        .bearer_auth(&api_key)
                        .json(&json!({"reason": "busy"}))
                        .send()
                        .await;
                }
                _ => {
                    ignored.insert(id);
                }
            }
        }
        // A provider's own pace between polls (load, not a wait before a check).
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn many_clients_and_providers_never_double_book(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let app = spawn_app_with(
            db,
            |settings| {
                settings.offer_timeout_s = 1;
                settings.offer_sweep_ms = 50;
                settings.max_offer_attempts = 3;
                settings.dispatch_retry_s = 1;
            },
            Arc::new(domain::SystemClock),
        )
        .await;
        let mut keys = Vec::new();
        for provider in 0..PROVIDERS {
            let (_, key) = app.create_provider(&format!("Provider {provider}")).await;
            for truck in 0..TRUCKS_PER_PROVIDER {
                let offset = (provider * TRUCKS_PER_PROVIDER + truck) as f64 * 0.0004;
                app.register_vehicle(
                    &key,
                    &format!("T{truck}"),
                    &["jump_start", "tow"],
                    31.21 + offset,
                    121.46,
                )
                .await;
            }
            keys.push(key);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let responders: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                tokio::spawn(provider_loop(
                    app.address.clone(),
                    key.clone(),
                    0x9e37_79b9 + index as u64,
                    stop.clone(),
                ))
            })
            .collect();

        // Some cases are cancelled along the way, by the customer or by an agent, at any
        // point: while being dispatched, with an offer out, or on the job.
        let (_, agent) = app.create_user("ann", "agent").await;
        let mut clients = Vec::new();
        for client_index in 0..CLIENTS {
            let (client, url) = (app.client.clone(), app.url("/v1/cases"));
            let (base, agent) = (app.address.clone(), agent.clone());
            clients.push(tokio::spawn(async move {
                let mut dice = Dice(0x51ed_270b + client_index as u64);
                let mut created = Vec::new();
                let mut cancels = Vec::new();
                for _ in 0..CASES_PER_CLIENT {
                    let mut body = case_body();
                    if client_index % 3 == 0 {
                        body["service"] = json!("tow");
                    }
                    let reply = read(client.post(&url).json(&body).send().await.unwrap()).await;
                    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
                    let case_id = reply.body["case"]["id"].as_str().unwrap().to_owned();
                    created.push(case_id.clone());
                    if dice.roll(6) != 0 {
                        continue;
                    }
                    let token = match dice.roll(2) {
                        0 => reply.body["customer_token"].as_str().unwrap().to_owned(),
                        _ => agent.clone(),
                    };
                    let pause = Duration::from_millis(dice.roll(400));
                    let (client, base) = (client.clone(), base.clone());
                    cancels.push(tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        let reply = read(
                            client
                                .post(format!("{base}/v1/cases/{case_id}/cancel"))
                                .bearer_auth(token)
                                .json(&json!({"reason": "changed my mind"}))
                                .send()
                                .await
                                .unwrap(),
                        )
                        .await;
                        // Too late is fine (the job was done); anything else is not.
                        assert!(
                            matches!(reply.status, StatusCode::OK | StatusCode::CONFLICT),
                            "cancelling {case_id}: {} {}",
                            reply.status,
                            reply.text
                        );
                        reply.status == StatusCode::OK
                    }));
                }
                let mut cancelled = 0;
                for cancel in cancels {
                    cancelled += usize::from(cancel.await.unwrap());
                }
                (created, cancelled)
            }));
        }
        let mut case_ids = Vec::new();
        let mut cancelled_ok = 0;
        for client in clients {
            let (created, cancelled) = client.await.unwrap();
            case_ids.extend(created);
            cancelled_ok += cancelled;
        }
        assert_eq!(case_ids.len(), CLIENTS * CASES_PER_CLIENT);
        assert!(cancelled_ok > 0, "no cancel went through");

        // Wait until no case is still being dispatched and every job is done.
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        let all = CaseFilter {
            limit: 10_000,
            ..Default::default()
        };
        loop {
            let cases = app.db.store.list_cases(&all).await.unwrap();
            let busy = cases.iter().filter(|case| {
                matches!(
                    case.status,
                    CaseStatus::New
                        | CaseStatus::Dispatching
                        | CaseStatus::Assigned
                        | CaseStatus::EnRoute
                        | CaseStatus::OnScene
                )
            });
            if busy.count() == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cases still in progress after 3 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for responder in responders {
            responder.await.unwrap();
        }

        // Every acknowledged case exists once, in a recorded final state.
        let cases = app.db.store.list_cases(&all).await.unwrap();
        assert_eq!(cases.len(), case_ids.len());
        let mut by_status: HashMap<CaseStatus, usize> = HashMap::new();
        for case in &cases {
            assert!(
                matches!(
                    case.status,
                    CaseStatus::Completed | CaseStatus::Escalated | CaseStatus::Cancelled
                ),
                "{:?}",
                case.status
            );
            *by_status.entry(case.status).or_default() += 1;
        }
        assert!(
            by_status.get(&CaseStatus::Completed).copied().unwrap_or(0) > 100,
            "{by_status:?}"
        );
        // Every cancel that was acknowledged stuck.
        assert_eq!(
            by_status.get(&CaseStatus::Cancelled).copied().unwrap_or(0),
            cancelled_ok,
            "{by_status:?}"
        );

        // History per vehicle: its offers and jobs never overlap in time.
        type Span = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);
        let mut per_vehicle: HashMap<domain::VehicleId, Vec<Span>> = HashMap::new();
        let mut offers_total = 0;
        for case in &cases {
            let offers = app.db.store.case_offers(case.id).await.unwrap();
            offers_total += offers.len();
            let accepted = offers
                .iter()
                .filter(|o| o.state == OfferState::Accepted)
                .count();
            assert!(
                accepted <= 1,
                "case {} has {accepted} accepted offers",
                case.id
            );
            if case.status == CaseStatus::Completed {
                assert_eq!(accepted, 1);
            }
            for offer in offers {
                assert!(
                    offer.expires_at > offer.sent_at,
                    "every offer has an expiry"
                );
                let end = match offer.state {
                    OfferState::Pending => panic!("offer {} still pending", offer.id),
                    OfferState::Accepted => offer.released_at.expect("finished jobs are released"),
                    _ => offer.answered_at.expect("answered offers have a time"),
                };
                per_vehicle
                    .entry(offer.vehicle_id)
                    .or_default()
                    .push((offer.sent_at, end));
            }
            // The timeline is gapless.
            let timeline = app.db.store.timeline(case.id).await.unwrap();
            assert!(
                timeline
                    .iter()
                    .enumerate()
                    .all(|(index, event)| event.seq == index as i64 + 1)
            );
        }
        for (vehicle, mut intervals) in per_vehicle {
            intervals.sort();
            for pair in intervals.windows(2) {
                assert!(
                    pair[1].0 >= pair[0].1,
                    "vehicle {vehicle} held two offers or jobs at once: {pair:?}"
                );
            }
        }
        for vehicle in app.db.store.list_vehicles().await.unwrap() {
            assert_eq!(
                vehicle.state,
                VehicleState::Available,
                "every truck is free again"
            );
        }
        eprintln!(
            "{} cases, {offers_total} offers, final states {by_status:?}",
            cases.len()
        );
        app.stop().await;
    })
    .await;
}

storage::backend_test!(many_clients_and_providers_never_double_book);

async fn offers_that_expire_while_the_server_is_down_are_processed_once(
    backend: storage::testing::Backend,
) {
    storage::testing::run_on(backend, |db| async move {
        let start = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let settings = |settings: &mut dispatcher::config::Settings| {
            settings.offer_sweep_ms = 20;
            settings.offer_timeout_s = 45;
            settings.fix_max_age_s = 3600;
        };
        let first_run = spawn_app_with(db.clone(), settings, clock.clone()).await;
        let (_, agent) = first_run.create_user("ann", "agent").await;
        let (_, provider) = first_run.create_provider("Towing").await;
        // One jump-start case and one tow case, each with a near truck that gets the first
        // offer and a farther one for the cascade, so which truck is next is certain.
        for (name, service, km) in [
            ("V1", "jump_start", 1.0),
            ("V2", "tow", 1.5),
            ("V3", "jump_start", 2.0),
            ("V4", "tow", 2.5),
        ] {
            first_run
                .register_vehicle_at(
                    &provider,
                    name,
                    &[service],
                    31.2304 + km / 111.195,
                    121.4737,
                    clock.now(),
                )
                .await;
        }
        let mut cases = Vec::new();
        for service in ["jump_start", "tow"] {
            let mut body = case_body();
            body["service"] = json!(service);
            let case_id = first_run.create_case(&body).await["case"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            first_run.wait_for_offer(&provider, &case_id).await;
            cases.push(case_id);
        }
        // The vehicles holding the pending offers, before the crash.
        let mut first_vehicles = Vec::new();
        for case_id in &cases {
            let offers = first_run
                .get(&format!("/v1/cases/{case_id}/offers"), Some(&agent))
                .await;
            let offers = offers.body["offers"].as_array().unwrap().clone();
            assert_eq!(offers.len(), 1, "{offers:?}");
            assert_eq!(offers[0]["state"], "pending");
            first_vehicles.push(offers[0]["vehicle_id"].as_str().unwrap().to_owned());
        }
        // A crash loses the last second of positions; wait until the trucks' positions
        // are in the database, as they would be for trucks that have been reporting.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !first_run
            .db
            .store
            .list_vehicles()
            .await
            .unwrap()
            .iter()
            .all(|vehicle| vehicle.last_fix.is_some())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "positions never flushed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A crash, not a shutdown: nothing gets to run on the way out.
        first_run.kill();

        // While the server is down, both offers run out.
        clock.advance(chrono::Duration::seconds(120));
        let second_run = spawn_app_with(db, settings, clock.clone()).await;
        for (case_id, first_vehicle) in cases.iter().zip(&first_vehicles) {
            // Each expired once and cascaded to another vehicle.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let offers = loop {
                let offers = second_run
                    .get(&format!("/v1/cases/{case_id}/offers"), Some(&agent))
                    .await;
                let offers = offers.body["offers"].as_array().unwrap().clone();
                let states: Vec<&str> = offers
                    .iter()
                    .map(|o| o["state"].as_str().unwrap())
                    .collect();
                if states == ["expired", "pending"] {
                    break offers;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "case {case_id}: {states:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(&offers[0]["vehicle_id"], first_vehicle.as_str());
            assert_ne!(
                &offers[1]["vehicle_id"],
                first_vehicle.as_str(),
                "the case cascaded to the next truck"
            );
            let timeline = second_run
                .get(&format!("/v1/cases/{case_id}/timeline"), Some(&agent))
                .await;
            let expired = timeline.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "offer_expired")
                .count();
            assert_eq!(expired, 1, "processed exactly once");
        }
        // The trucks whose offers ran out are free again: nothing is left claimed by an
        // offer that died with the first server.
        for vehicle_id in &first_vehicles {
            let id: domain::VehicleId = vehicle_id.parse().expect("vehicle id");
            let vehicle = second_run
                .db
                .store
                .get_vehicle(id)
                .await
                .unwrap()
                .expect("vehicle exists");
            assert_eq!(vehicle.state, VehicleState::Available, "{vehicle_id}");
        }
        second_run.stop().await;
    })
    .await;
}

storage::backend_test!(offers_that_expire_while_the_server_is_down_are_processed_once);

/// The promise in the README: a crash loses at most the last second of positions. Fixes
/// taken more than a second before the crash are in the database, so a new server knows
/// the vehicle's last fix and shows it on the fleet map.
async fn a_crash_loses_at_most_the_last_second_of_fixes(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let first_run = spawn_app(db.clone()).await;
        let (_, agent) = first_run.create_user("ann", "agent").await;
        let (_, provider) = first_run.create_provider("Towing").await;
        let registration = first_run
            .request(
                reqwest::Method::PUT,
                "/v1/provider/vehicles/T1",
                Some(&provider),
                Some(&json!({"capabilities": ["tow"], "state": "available"})),
            )
            .await;
        assert!(registration.status.is_success(), "{}", registration.text);
        // Two fixes in one batch; the later one is the vehicle's last fix.
        let now = chrono::Utc::now();
        let earlier = (now - chrono::Duration::seconds(5)).to_rfc3339();
        let later = now.to_rfc3339();
        let posted = first_run
            .post(
                "/v1/provider/positions",
                Some(&provider),
                &json!({"fixes": [
                    {"vehicle_id": "T1", "lat": 31.2200, "lon": 121.4600, "ts": earlier},
                    {"vehicle_id": "T1", "lat": 31.2250, "lon": 121.4650, "ts": later},
                ]}),
            )
            .await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.text);
        assert_eq!(posted.body["accepted"], 2, "{}", posted.text);
        // The promise is about fixes older than a second at the crash (the flush runs
        // every RESCUE_FIX_FLUSH_MS, 250 ms by default).
        // A real wait, on purpose: the flush period is wall time, not the injected clock.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        first_run.kill();

        let second_run = spawn_app(db).await;
        let vehicle = second_run
            .get("/v1/provider/vehicles/T1", Some(&provider))
            .await;
        assert_eq!(vehicle.status, StatusCode::OK, "{}", vehicle.text);
        let last_fix = &vehicle.body["last_fix"];
        assert_eq!(last_fix["lat"], 31.2250, "{}", vehicle.text);
        assert_eq!(last_fix["lon"], 121.4650, "{}", vehicle.text);
        let stored_ts: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(last_fix["ts"].clone()).expect("a timestamp");
        assert_eq!(stored_ts.timestamp_millis(), now.timestamp_millis());

        let fleet = second_run
            .get("/v1/fleet?bbox=121.4,31.2,121.5,31.3", Some(&agent))
            .await;
        assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.text);
        let on_map: Vec<_> = fleet.body["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["vehicle_id"] == "T1")
            .collect();
        assert_eq!(on_map.len(), 1, "{}", fleet.text);
        assert_eq!(on_map[0]["lat"], 31.2250);
        assert_eq!(on_map[0]["lon"], 121.4650);
        second_run.stop().await;
    })
    .await;
}

storage::backend_test!(a_crash_loses_at_most_the_last_second_of_fixes);
