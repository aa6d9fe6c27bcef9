//! Tracking end to end: the agents' stream with replay, delay alerts raised on injected
//! time and handled by agents, the trajectory, and the customer's tracking link.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use domain::{CaseStatus, Clock, ManualClock};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_test;
use crate::helpers::*;

/// A minimal Server-Sent Events reader.
struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

#[derive(Debug, Clone)]
struct SseEvent {
    id: i64,
    kind: String,
    data: Value,
}

impl SseReader {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> SseReader {
        let mut request = app.client.get(app.url("/v1/stream")).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event, within `patience`.
    async fn next(&mut self, patience: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: 0,
                    kind: String::new(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        event.id = id.trim().parse().unwrap_or(0);
                    } else if let Some(kind) = line.strip_prefix("event:") {
                        event.kind = kind.trim().to_owned();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                    }
                }
                if event.id != 0 {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one of `kind` for `case_id` arrives (or panics after `patience`).
    async fn until(&mut self, kind: &str, case_id: &str, patience: Duration) -> Vec<SseEvent> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no `{kind}` for {case_id}; saw {seen:?}"));
            let done = event.kind == kind && event.data["case_id"] == case_id;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

api_test!(
    agents_see_case_events_live_and_get_what_they_missed_on_reconnect,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let mut stream = SseReader::open(&app, &agent, None).await;
        let started = std::time::Instant::now();
        let case_id = app.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let seen = stream
            .until("alert_raised", &case_id, Duration::from_secs(5))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "events arrive within a second or so"
        );
        let kinds: Vec<&str> = seen
            .iter()
            .filter(|e| e.data["case_id"] == case_id.as_str())
            .map(|e| e.kind.as_str())
            .collect();
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
        assert!(
            seen.windows(2).all(|pair| pair[0].id < pair[1].id),
            "ids increase"
        );
        let alert = &seen.last().unwrap().data["data"];
        assert_eq!(alert["kind"], "no_vehicle");

        // Disconnected after the first event: a reconnect replays exactly the rest.
        let first = seen[0].id;
        drop(stream);
        let other = app.create_case(&case_body()).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.wait_for_status(&other, CaseStatus::Escalated).await;
        let mut resumed = SseReader::open(&app, &agent, Some(first)).await;
        let replayed = resumed
            .until("alert_raised", &other, Duration::from_secs(5))
            .await;
        let replayed_ids: Vec<i64> = replayed.iter().map(|e| e.id).collect();
        assert_eq!(
            replayed_ids[..seen.len() - 1],
            seen[1..].iter().map(|e| e.id).collect::<Vec<_>>()[..]
        );
        assert!(
            replayed_ids.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "no gap, no repeat: {replayed_ids:?}"
        );

        // Only agents may listen.
        let refused = app.client.get(app.url("/v1/stream")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let bad = app
            .client
            .get(app.url("/v1/stream"))
            .bearer_auth(&agent)
            .header("Last-Event-ID", "yesterday")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        app
    }
);

fn start() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
}

/// A server on manual time with a fast rule tick, a provider with one truck 3 km north of
/// the customer, and a case assigned to it.
async fn assigned_case(
    db: storage::testing::TestDatabaseHandle,
    clock: Arc<ManualClock>,
) -> (TestApp, String, String, String) {
    let app = spawn_app_with(
        db,
        |settings| {
            settings.alert_tick_s = 1;
            settings.offer_sweep_ms = 50;
            settings.fix_max_age_s = 3600;
        },
        clock.clone(),
    )
    .await;
    let (_, agent) = app.create_user("ann", "agent").await;
    let (_, provider) = app.create_provider("Tracked Towing").await;
    app.register_vehicle_at(
        &provider,
        "T1",
        &["jump_start"],
        31.2304 + 3.0 / 111.195,
        121.4737,
        clock.now(),
    )
    .await;
    let created = app.create_case(&case_body()).await;
    let case_id = created["case"]["id"].as_str().unwrap().to_owned();
    let offer = app.wait_for_offer(&provider, &case_id).await;
    let accepted = app
        .post(
            &format!("/v1/provider/offers/{offer}/accept"),
            Some(&provider),
            &json!({"eta_s": 900}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    // Wait until the tracker has picked the case up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app
        .state
        .tracking
        .snapshot(case_id.parse().unwrap())
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "tracking never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (
        app,
        agent,
        provider,
        created["customer_token"].as_str().unwrap().to_owned(),
    )
}

async fn wait_for_alert(app: &TestApp, agent: &str, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = app.get("/v1/alerts", Some(agent)).await;
        if let Some(alert) = alerts.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
        {
            return alert.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} alert: {}",
            alerts.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_truck_that_does_not_leave_raises_late_departure_which_agents_handle(
    backend: storage::testing::Backend,
) {
    storage::testing::run_on(backend, |db| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let (app, agent, provider, _) = assigned_case(db, clock.clone()).await;
        let mut stream = SseReader::open(&app, &agent, None).await;
        // Standing still, reporting from the same spot: after 5 minutes, late_departure.
        for _minute in 1..=6 {
            clock.advance(chrono::Duration::minutes(1));
            app.report_position(
                &provider,
                "T1",
                31.2304 + 3.0 / 111.195,
                121.4737,
                clock.now(),
            )
            .await;
        }
        let alert = wait_for_alert(&app, &agent, "late_departure").await;
        let case_id = alert["case_id"].as_str().unwrap().to_owned();
        assert_eq!(alert["state"], "open");
        assert!(alert["predicted_breach"].is_string());
        // Pushed to the agent's stream.
        let events = stream
            .until("alert_raised", &case_id, Duration::from_secs(5))
            .await;
        assert_eq!(
            events.last().unwrap().data["data"]["kind"],
            "late_departure"
        );

        // Raised once per episode: more ticks of the delay rules (run here, a minute
        // later), no second alert.
        clock.advance(chrono::Duration::minutes(1));
        app.state.tracking.tick().await;
        app.state.tracking.tick().await;
        let all = app.get("/v1/alerts", Some(&agent)).await;
        let late = all.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "late_departure")
            .count();
        assert_eq!(late, 1);

        // An agent takes it and closes it; the timeline says who and when.
        let id = alert["id"].as_str().unwrap();
        let acked = app
            .post(&format!("/v1/alerts/{id}/ack"), Some(&agent), &json!({}))
            .await;
        assert_eq!(
            (acked.status, acked.body["state"].as_str()),
            (StatusCode::OK, Some("acknowledged"))
        );
        let again = app
            .post(&format!("/v1/alerts/{id}/ack"), Some(&agent), &json!({}))
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        let resolved = app
            .post(
                &format!("/v1/alerts/{id}/resolve"),
                Some(&agent),
                &json!({}),
            )
            .await;
        assert_eq!(
            (resolved.status, resolved.body["state"].as_str()),
            (StatusCode::OK, Some("resolved"))
        );
        let timeline = app
            .get(&format!("/v1/cases/{case_id}/timeline"), Some(&agent))
            .await;
        let kinds: Vec<&str> = timeline.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"alert_acknowledged") && kinds.ends_with(&["alert_resolved"]),
            "{kinds:?}"
        );
        let ack = timeline.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "alert_acknowledged")
            .unwrap();
        assert!(ack["actor"].as_str().unwrap().starts_with("agent:"));
        assert!(
            app.post("/v1/alerts/not-an-id/ack", Some(&agent), &json!({}))
                .await
                .status
                == StatusCode::NOT_FOUND
        );
        app.stop().await;
    })
    .await;
}

storage::backend_test!(a_truck_that_does_not_leave_raises_late_departure_which_agents_handle);

async fn the_trajectory_and_the_tracking_link_follow_the_truck(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let (app, agent, provider, token) = assigned_case(db, clock.clone()).await;
        let case_id = app
            .state
            .tracking
            .snapshot_case_ids()
            .pop()
            .expect("tracked")
            .to_string();
        // The truck drives south towards the customer at about 40 km/h, with a 300 km GPS
        // jump and a duplicate thrown in: neither moves the trajectory nor raises an alert.
        let mut lat = 31.2304 + 3.0 / 111.195;
        for step in 1..=10 {
            clock.advance(chrono::Duration::seconds(20));
            lat -= 0.002;
            app.report_position(&provider, "T1", lat, 121.4737, clock.now())
                .await;
            if step == 5 {
                clock.advance(chrono::Duration::seconds(1));
                app.report_position(&provider, "T1", lat + 2.7, 121.4737, clock.now())
                    .await;
            }
        }
        // Trajectory: the plausible fixes only.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let path = loop {
            let path = app
                .get(&format!("/v1/cases/{case_id}/trajectory"), Some(&agent))
                .await;
            assert_eq!(path.status, StatusCode::OK, "{}", path.text);
            if path.body["features"][0]["geometry"]["coordinates"]
                .as_array()
                .is_some_and(|c| c.len() >= 10)
            {
                break path;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "trajectory incomplete: {}",
                path.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(path.body["type"], "FeatureCollection");
        let line = &path.body["features"][0];
        assert_eq!(line["geometry"]["type"], "LineString");
        let coordinates = line["geometry"]["coordinates"].as_array().unwrap();
        assert!(
            coordinates.iter().all(|c| c[1].as_f64().unwrap() < 31.3),
            "the jump is not in the path"
        );
        assert_eq!(
            coordinates[0][0].as_f64(),
            Some(121.4737),
            "[lon, lat] order"
        );
        assert!(
            app.get("/v1/alerts?state=open", Some(&agent)).await.body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["kind"] != "moving_away")
        );

        // The customer's view: rough position, a prediction, nothing for strangers.
        let view = app.get(&format!("/v1/track/{token}"), None).await;
        assert_eq!(view.status, StatusCode::OK, "{}", view.text);
        assert_eq!(view.body["status"], "assigned");
        assert!(view.body["predicted_arrival"].is_string(), "{}", view.text);
        let shown = view.body["vehicle"]["lat"].as_f64().unwrap();
        assert!(
            (shown - lat).abs() < 0.0005 && shown != lat,
            "rounded to ~50 m: {shown} vs {lat}"
        );
        let case = app.get(&format!("/v1/cases/{case_id}"), Some(&agent)).await;
        assert!(case.body["predicted_arrival"].is_string());
        assert_eq!(
            app.get("/v1/track/ct_forged", None).await.status,
            StatusCode::NOT_FOUND
        );
        let other = app.create_case(&case_body()).await;
        let other_view = app
            .get(
                &format!("/v1/track/{}", other["customer_token"].as_str().unwrap()),
                None,
            )
            .await;
        assert!(
            other_view.body["vehicle"].is_null(),
            "another customer does not see this truck"
        );
        let page = app
            .client
            .get(app.url(&format!("/track/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(page.headers().contains_key("content-security-policy"));
        assert_eq!(
            app.client
                .get(app.url("/track/ct_forged"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );

        // On scene and completed: the truck disappears from the customer's view.
        let status = format!("/v1/provider/jobs/{case_id}/status");
        for step in ["en_route", "on_scene", "completed"] {
            assert_eq!(
                app.post(&status, Some(&provider), &json!({"status": step}))
                    .await
                    .status,
                StatusCode::OK
            );
        }
        let done = app.get(&format!("/v1/track/{token}"), None).await;
        assert_eq!(done.body["status"], "completed");
        assert!(done.body["vehicle"].is_null() && done.body["predicted_arrival"].is_null());
        app.stop().await;
    })
    .await;
}

storage::backend_test!(the_trajectory_and_the_tracking_link_follow_the_truck);
