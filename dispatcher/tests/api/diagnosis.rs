//! Remote diagnosis end to end: triage (safety override first), the phone-expert queue
//! (claim, solve, escalate, lapse, fallback), masked calls, the rules API and the report.
//! Every test runs on SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use domain::{CaseStatus, EventKind, ManualClock, TicketOutcome};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_test;
use crate::helpers::*;

/// A case the default rules find phone-solvable: a key fob that is not detected, in town,
/// by day (the server clock), with no safety flag.
fn phone_case() -> Value {
    let mut body = case_body();
    body["fault"] = json!({"category": "key_fob", "symptoms": ["key_not_detected"]});
    body["service"] = json!("tow");
    body
}

fn id_of(created: &Value) -> String {
    created["case"]["id"].as_str().unwrap().to_owned()
}

async fn create_expert(app: &TestApp, username: &str, skills: &[&str]) -> (String, String) {
    let reply = app
        .post(
            "/v1/admin/users",
            Some(ADMIN_TOKEN),
            &json!({"username": username, "password": PASSWORD, "role": "expert", "skills": skills}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let token = app.login(username, PASSWORD).await;
    (reply.body["id"].as_str().unwrap().to_owned(), token)
}

async fn timeline(app: &TestApp, case_id: &str) -> Vec<domain::Event> {
    app.db
        .store
        .timeline(case_id.parse().unwrap())
        .await
        .unwrap()
}

async fn triage_event(app: &TestApp, case_id: &str) -> Value {
    timeline(app, case_id)
        .await
        .into_iter()
        .find(|event| event.kind == EventKind::Triaged)
        .map(|event| event.data)
        .expect("a triaged event in the timeline")
}

async fn ticket_of(app: &TestApp, case_id: &str) -> domain::DiagnosisTicket {
    app.db
        .store
        .case_ticket(case_id.parse().unwrap())
        .await
        .unwrap()
        .expect("the case has a ticket")
}

/// On manual time, so that the sweeps that could still send a truck can be run with the
/// clock past the claim timeout, the queue's maximum wait and the dispatch retry's cutoff.
async fn a_phone_solvable_case_is_claimed_solved_and_closed_without_a_truck(
    backend: storage::testing::Backend,
) {
    storage::testing::run_on(backend, |db| async move {
        let start = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let max_wait_s: u64 = 120;
        let app = spawn_app_with(
            db,
            |settings| {
                settings.diagnosis_max_wait_s = max_wait_s;
                settings.diagnosis_claim_timeout_s = 60;
                // The truck's fix stays fresh past the wait: were the case dispatched
                // after all, the truck would get an offer.
                settings.fix_max_age_s = 3600;
            },
            clock.clone(),
        )
        .await;
        let (_, provider) = app.create_provider("Idle Towing").await;
        app.register_vehicle_at(
            &provider,
            "I1",
            &["tow", "jump_start"],
            31.2404,
            121.4737,
            domain::Clock::now(&*clock),
        )
        .await;
        let (expert_id, expert) = create_expert(&app, "ella", &["key_fob"]).await;
        let (_, other_expert) = create_expert(&app, "otto", &["key_fob"]).await;
        let created = app.create_case(&phone_case()).await;
        let case_id = id_of(&created);
        app.wait_for_status(&case_id, CaseStatus::Diagnosing).await;
        let triage = triage_event(&app, &case_id).await;
        assert_eq!(triage["outcome"], "phone_solvable", "{triage}");
        assert_eq!(
            triage["reasons"][0]["code"], "rule_phone_solvable",
            "{triage}"
        );

        let queue = app.get("/v1/diagnosis/queue", Some(&expert)).await;
        assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
        assert_eq!(queue.body["waiting"], 1, "{}", queue.text);
        assert_eq!(queue.body["tickets"][0]["case_id"], case_id.as_str());
        assert_eq!(queue.body["tickets"][0]["skill"], "key_fob");

        // Nobody reads the case before claiming it.
        let before = app
            .get(&format!("/v1/cases/{case_id}"), Some(&expert))
            .await;
        assert_eq!(before.status, StatusCode::NOT_FOUND, "{}", before.text);

        let claimed = app
            .post("/v1/diagnosis/claim", Some(&expert), &json!({}))
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text);
        assert_eq!(claimed.body["case"]["id"], case_id.as_str());
        assert_eq!(claimed.body["ticket"]["claimed_by"], expert_id.as_str());
        let ticket_id = claimed.body["ticket"]["id"].as_str().unwrap().to_owned();

        // The holder reads the case; another expert does not, and has nothing to claim.
        let read = app
            .get(&format!("/v1/cases/{case_id}"), Some(&expert))
            .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text);
        let foreign = app
            .get(&format!("/v1/cases/{case_id}"), Some(&other_expert))
            .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
        let nothing = app
            .post("/v1/diagnosis/claim", Some(&other_expert), &json!({}))
            .await;
        assert_eq!(nothing.status, StatusCode::NO_CONTENT, "{}", nothing.text);
        let not_theirs = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/solve"),
                Some(&other_expert),
                &json!({}),
            )
            .await;
        assert_eq!(
            not_theirs.status,
            StatusCode::CONFLICT,
            "{}",
            not_theirs.text
        );

        // A masked call through the pool, kept for the case, released when it closes.
        let call = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/call"),
                Some(&expert),
                &json!({"expert_phone": "+861088880001"}),
            )
            .await;
        assert_eq!(call.status, StatusCode::OK, "{}", call.text);
        let number = call.body["virtual_number"].as_str().unwrap().to_owned();
        assert_eq!(number, "+861095500001");
        let again = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/call"),
                Some(&expert),
                &json!({"expert_phone": "+861088880002"}),
            )
            .await;
        assert_eq!(
            again.body["virtual_number"],
            number.as_str(),
            "{}",
            again.text
        );
        let binding = app
            .db
            .store
            .phone_binding(&number)
            .await
            .unwrap()
            .expect("bound");
        assert_eq!(binding.party_a, "+861088880002");
        assert_eq!(binding.party_b, "+8613800138000");

        let solved = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/solve"),
                Some(&expert),
                &json!({"notes": "fob held against the start button; started"}),
            )
            .await;
        assert_eq!(solved.status, StatusCode::OK, "{}", solved.text);
        assert_eq!(solved.body["case"]["status"], "resolved_remotely");
        assert_eq!(solved.body["ticket"]["outcome"], "solved");
        let twice = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/solve"),
                Some(&expert),
                &json!({}),
            )
            .await;
        assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);

        // No truck moved, not even once the claim would have lapsed, the ticket been due
        // for the fallback and the case for a dispatch retry: the sweeps of the diagnosis
        // queue and of the dispatch retry run here, past all three, and find nothing to
        // do. Then: no offer, the vehicle still available, the number free again.
        clock.advance(chrono::Duration::seconds(max_wait_s as i64 + 1));
        assert_eq!(app.state.diagnosis.lapse_expired().await.unwrap(), 0);
        assert!(
            app.state
                .diagnosis
                .fall_back_due()
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(app.state.intake.retry_untriaged().await.unwrap(), 0);
        assert_eq!(app.state.cascade.retry_waiting().await.unwrap(), 0);
        let case = app
            .wait_for_status(&case_id, CaseStatus::ResolvedRemotely)
            .await;
        assert!(app.db.store.case_offers(case.id).await.unwrap().is_empty());
        let vehicle = app
            .db
            .store
            .list_vehicles()
            .await
            .unwrap()
            .into_iter()
            .find(|vehicle| vehicle.vehicle_id == "I1")
            .unwrap();
        assert_eq!(vehicle.state, domain::VehicleState::Available);
        assert!(app.db.store.phone_binding(&number).await.unwrap().is_none());
        let kinds: Vec<EventKind> = timeline(&app, &case_id)
            .await
            .iter()
            .map(|e| e.kind)
            .collect();
        for kind in [
            EventKind::Triaged,
            EventKind::DiagnosisQueued,
            EventKind::DiagnosisClaimed,
            EventKind::CallBridged,
            EventKind::DiagnosisSolved,
        ] {
            assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
        }

        // The report counts it as solved by phone.
        let (_, agent) = app.create_user("ann", "agent").await;
        let report = app.get("/v1/reports/diagnosis", Some(&agent)).await;
        assert_eq!(report.status, StatusCode::OK, "{}", report.text);
        assert_eq!(
            report.body["overall"]["solved_by_phone"], 1,
            "{}",
            report.text
        );
        assert_eq!(
            report.body["by_category"]["key_fob"]["solved_by_phone"], 1,
            "{}",
            report.text
        );
        app.stop().await;
    })
    .await;
}

storage::backend_test!(a_phone_solvable_case_is_claimed_solved_and_closed_without_a_truck);

api_test!(
    an_escalated_ticket_is_dispatched_at_once,
    |app| async move {
        let (_, provider) = app.create_provider("Ready Towing").await;
        app.register_vehicle(&provider, "R1", &["tow"], 31.2404, 121.4737)
            .await;
        let (_, expert) = create_expert(&app, "ella", &["key_fob"]).await;
        let case_id = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&case_id, CaseStatus::Diagnosing).await;
        let claimed = app
            .post("/v1/diagnosis/claim", Some(&expert), &json!({}))
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text);
        let ticket_id = claimed.body["ticket"]["id"].as_str().unwrap().to_owned();
        let priority = claimed.body["ticket"]["priority"].as_i64().unwrap();
        let escalated = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/escalate"),
                Some(&expert),
                &json!({"notes": "fob dead, no spare"}),
            )
            .await;
        assert_eq!(escalated.status, StatusCode::OK, "{}", escalated.text);
        assert_eq!(escalated.body["ticket"]["outcome"], "escalated");
        assert!(escalated.body["ticket"]["priority"].as_i64().unwrap() > priority);
        // The matcher offers it to the truck straight away.
        app.wait_for_offer(&provider, &case_id).await;
        let kinds: Vec<EventKind> = timeline(&app, &case_id)
            .await
            .iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&EventKind::DiagnosisEscalated), "{kinds:?}");
        assert!(kinds.contains(&EventKind::OfferSent), "{kinds:?}");
        app
    }
);

api_test!(
    every_safety_condition_sends_a_vehicle_at_once_with_its_reason,
    |app| async move {
        let (_, expert) = create_expert(&app, "ella", &["key_fob"]).await;
        let conditions: Vec<(&str, Value)> = vec![
            ("highway", json!({"location_road_kind": "highway"})),
            ("accident", json!({"safety": {"accident": true}})),
            ("injury", json!({"safety": {"injury": true}})),
            ("smoke_or_fire", json!({"safety": {"smoke_or_fire": true}})),
            (
                "vulnerable_customer",
                json!({"safety": {"vulnerable_customer": true}}),
            ),
            (
                "customer_requested_vehicle",
                json!({"safety": {"requests_vehicle": true}}),
            ),
            ("smoke_or_fire", json!({"symptoms": ["smoke"]})),
        ];
        for (code, change) in conditions {
            let mut body = phone_case();
            if let Some(kind) = change.get("location_road_kind") {
                body["location"]["road_kind"] = kind.clone();
            }
            if let Some(safety) = change.get("safety") {
                body["safety"] = safety.clone();
            }
            if let Some(symptoms) = change.get("symptoms") {
                body["fault"]["symptoms"] = symptoms.clone();
            }
            let case_id = id_of(&app.create_case(&body).await);
            // No vehicle is registered: dispatching ends in escalation to an agent.
            app.wait_for_status(&case_id, CaseStatus::Escalated).await;
            let triage = triage_event(&app, &case_id).await;
            assert_eq!(triage["outcome"], "needs_vehicle", "{code}: {triage}");
            assert_eq!(triage["safety_override"], true, "{code}: {triage}");
            let codes: Vec<&str> = triage["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason["code"].as_str().unwrap())
                .collect();
            assert!(codes.contains(&code), "{code} not among {codes:?}");
            let status_change = timeline(&app, &case_id)
                .await
                .into_iter()
                .find(|event| event.kind == EventKind::StatusChanged)
                .unwrap();
            assert_eq!(status_change.data["to"], "dispatching");
            assert_eq!(status_change.data["reason"], "safety_override");
            assert!(
                app.db
                    .store
                    .case_ticket(case_id.parse().unwrap())
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // Nothing was queued for the expert.
        let nothing = app
            .post("/v1/diagnosis/claim", Some(&expert), &json!({}))
            .await;
        assert_eq!(nothing.status, StatusCode::NO_CONTENT, "{}", nothing.text);
        // The unchanged request is phone-solvable: the override, not the rules, decided.
        let control = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&control, CaseStatus::Diagnosing).await;
        app
    }
);

/// Night on a rural road, on injected time: 23:00 in Shanghai is dark, 11:00 is not.
async fn night_on_a_rural_road_sends_a_vehicle(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let night = chrono::Utc.with_ymd_and_hms(2026, 5, 4, 15, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(night));
        let app = spawn_app_with(db, |_| {}, clock.clone()).await;
        let mut rural = phone_case();
        rural["location"]["road_kind"] = json!("rural");
        let dark = id_of(&app.create_case(&rural).await);
        app.wait_for_status(&dark, CaseStatus::Escalated).await;
        let triage = triage_event(&app, &dark).await;
        assert_eq!(
            triage["reasons"][0]["code"], "night_on_rural_road",
            "{triage}"
        );
        clock.advance(chrono::Duration::hours(12));
        let day = id_of(&app.create_case(&rural).await);
        app.wait_for_status(&day, CaseStatus::Diagnosing).await;
        app.stop().await;
    })
    .await;
}

storage::backend_test!(night_on_a_rural_road_sends_a_vehicle);

api_test!(
    twenty_experts_claiming_five_hundred_tickets_get_each_exactly_once,
    |app| async move {
        const EXPERTS: usize = 20;
        const TICKETS: usize = 500;
        // Cases and tickets straight through the store: the claims are under test.
        let input: domain::CaseInput = serde_json::from_value(phone_case()).unwrap();
        let now = domain::time::to_storage_precision(chrono::Utc::now());
        for index in 0..TICKETS {
            let case = domain::NewCase::parse(input.clone())
                .unwrap()
                .open(domain::CaseId::new_v7(), now);
            let created =
                domain::NewEvent::new(EventKind::Created, domain::Actor::App, now, json!({}));
            app.db
                .store
                .create_case(&case, &created, None)
                .await
                .unwrap();
            let ticket = domain::diagnosis::NewTicket {
                id: domain::TicketId::new_v7(),
                skill: if index % 2 == 0 {
                    "key_fob"
                } else {
                    "gear_lock"
                }
                .to_owned(),
                rule_id: "test".to_owned(),
                expected_fix_s: 600,
                expected_truck_eta_s: None,
                priority: i32::try_from(index % 3).unwrap(),
                queued_at: now,
            };
            let triaged =
                domain::NewEvent::new(EventKind::Triaged, domain::Actor::System, now, json!({}));
            app.db
                .store
                .queue_for_diagnosis(case.id, &ticket, &triaged)
                .await
                .unwrap();
        }
        let mut experts = Vec::new();
        for index in 0..EXPERTS {
            experts.push(
                create_expert(&app, &format!("expert{index}"), &["key_fob", "gear_lock"]).await,
            );
        }
        let app = Arc::new(app);
        let mut tasks = Vec::new();
        for (expert_id, token) in experts {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let reply = app
                        .post("/v1/diagnosis/claim", Some(&token), &json!({}))
                        .await;
                    match reply.status {
                        StatusCode::OK => {
                            assert_eq!(reply.body["ticket"]["claimed_by"], expert_id.as_str());
                            mine.push(reply.body["ticket"]["id"].as_str().unwrap().to_owned());
                        }
                        StatusCode::NO_CONTENT => break,
                        other => panic!("claim failed with {other}: {}", reply.text),
                    }
                }
                (expert_id, mine)
            }));
        }
        let mut holder: HashMap<String, String> = HashMap::new();
        let mut experts_with_work = 0;
        for task in tasks {
            let (expert_id, mine) = task.await.unwrap();
            experts_with_work += usize::from(!mine.is_empty());
            for ticket in mine {
                if let Some(first) = holder.insert(ticket.clone(), expert_id.clone()) {
                    panic!("ticket {ticket} went to {first} and to {expert_id}");
                }
            }
        }
        assert_eq!(holder.len(), TICKETS, "every ticket claimed exactly once");
        assert!(experts_with_work > 1, "the claims ran concurrently");
        // The store agrees on who holds each.
        let open = app.db.store.open_tickets(1000).await.unwrap();
        assert_eq!(open.len(), TICKETS);
        let ids: HashSet<String> = open.iter().map(|ticket| ticket.id.to_string()).collect();
        assert_eq!(ids.len(), TICKETS);
        for ticket in &open {
            let expert = ticket.claimed_by.expect("claimed").to_string();
            assert_eq!(holder[&ticket.id.to_string()], expert);
        }
        Arc::try_unwrap(app).ok().expect("tasks done")
    }
);

/// The fallback on injected time: unclaimed for RESCUE_DIAGNOSIS_MAX_WAIT_S, the case is
/// dispatched anyway with a `diagnosis_wait` alert; a second earlier is not.
async fn an_unclaimed_ticket_falls_back_to_dispatch(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let start = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let app = spawn_app_with(
            db,
            |settings| {
                settings.diagnosis_max_wait_s = 120;
                settings.diagnosis_sweep_ms = 20;
            },
            clock.clone(),
        )
        .await;
        let (_, agent) = app.create_user("ann", "agent").await;
        let case_id = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&case_id, CaseStatus::Diagnosing).await;
        clock.advance(chrono::Duration::seconds(119));
        // The fallback sweep runs at 119 s and leaves the ticket alone.
        assert!(
            app.state
                .diagnosis
                .fall_back_due()
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        let case = app.wait_for_status(&case_id, CaseStatus::Diagnosing).await;
        assert_eq!(case.status, CaseStatus::Diagnosing, "not due yet");
        clock.advance(chrono::Duration::seconds(1));
        // No vehicle is registered: dispatched, then escalated to an agent.
        app.wait_for_status(&case_id, CaseStatus::Escalated).await;
        let ticket = ticket_of(&app, &case_id).await;
        assert_eq!(ticket.outcome, Some(TicketOutcome::TimedOut));
        let alerts = app.get("/v1/alerts?state=open", Some(&agent)).await;
        let kinds: Vec<&str> = alerts.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|alert| alert["case_id"] == case_id.as_str())
            .map(|alert| alert["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"diagnosis_wait"), "{}", alerts.text);
        let changes: Vec<Value> = timeline(&app, &case_id)
            .await
            .into_iter()
            .filter(|event| event.kind == EventKind::StatusChanged)
            .map(|event| event.data)
            .collect();
        assert!(
            changes.iter().any(|data| data["from"] == "diagnosing"
                && data["to"] == "dispatching"
                && data["reason"] == "diagnosis_wait"),
            "{changes:?}"
        );
        app.stop().await;
    })
    .await;
}

storage::backend_test!(an_unclaimed_ticket_falls_back_to_dispatch);

/// An expert who disappears loses the claim after RESCUE_DIAGNOSIS_CLAIM_TIMEOUT_S and the
/// ticket goes to the next expert.
async fn a_silent_expert_loses_the_claim(backend: storage::testing::Backend) {
    storage::testing::run_on(backend, |db| async move {
        let start = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let app = spawn_app_with(
            db,
            |settings| {
                settings.diagnosis_claim_timeout_s = 60;
                settings.diagnosis_max_wait_s = 3600;
                settings.diagnosis_sweep_ms = 20;
            },
            clock.clone(),
        )
        .await;
        let (_, first) = create_expert(&app, "ella", &["key_fob"]).await;
        let (second_id, second) = create_expert(&app, "otto", &["key_fob"]).await;
        let case_id = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&case_id, CaseStatus::Diagnosing).await;
        let claimed = app
            .post("/v1/diagnosis/claim", Some(&first), &json!({}))
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text);
        let ticket_id = claimed.body["ticket"]["id"].as_str().unwrap().to_owned();
        clock.advance(chrono::Duration::seconds(59));
        // The lapse sweep runs at 59 s and leaves the claim alone.
        assert_eq!(
            app.state.diagnosis.lapse_expired().await.unwrap(),
            0,
            "not lapsed yet"
        );
        assert!(
            ticket_of(&app, &case_id).await.claimed_by.is_some(),
            "not lapsed yet"
        );
        let nothing = app
            .post("/v1/diagnosis/claim", Some(&second), &json!({}))
            .await;
        assert_eq!(nothing.status, StatusCode::NO_CONTENT, "{}", nothing.text);
        clock.advance(chrono::Duration::seconds(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ticket = ticket_of(&app, &case_id).await;
            if ticket.claimed_by.is_none() {
                assert_eq!(ticket.lapsed_claims, 1);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the claim never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kinds: Vec<EventKind> = timeline(&app, &case_id)
            .await
            .iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&EventKind::DiagnosisReleased), "{kinds:?}");
        let taken = app
            .post("/v1/diagnosis/claim", Some(&second), &json!({}))
            .await;
        assert_eq!(taken.status, StatusCode::OK, "{}", taken.text);
        assert_eq!(taken.body["ticket"]["id"], ticket_id.as_str());
        assert_eq!(taken.body["ticket"]["claimed_by"], second_id.as_str());
        let late = app
            .post(
                &format!("/v1/diagnosis/{ticket_id}/solve"),
                Some(&first),
                &json!({}),
            )
            .await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
        let read = app.get(&format!("/v1/cases/{case_id}"), Some(&first)).await;
        assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.text);
        app.stop().await;
    })
    .await;
}

storage::backend_test!(a_silent_expert_loses_the_claim);

async fn put_rules(app: &TestApp, content_type: &str, text: &str) -> Reply {
    let response = app
        .client
        .request(Method::PUT, app.url("/v1/admin/triage-rules"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", content_type)
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    read(response).await
}

api_test!(
    a_rules_document_with_an_error_is_refused_naming_line_and_field_and_the_old_rules_stay,
    |app| async move {
        let before = app.get("/v1/admin/triage-rules", Some(ADMIN_TOKEN)).await;
        assert_eq!(before.status, StatusCode::OK, "{}", before.text);
        assert_eq!(before.body["version"], 0);
        assert_eq!(before.body["document"], diagnosis_core::DEFAULT_RULES_TOML);

        let refused = put_rules(&app, "application/toml", "version = 1\nskils = []\n").await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.text
        );
        assert_eq!(refused.error_code(), "invalid_rules");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("line 2") && message.contains("skils"),
            "{message}"
        );
        let refused_json = put_rules(
            &app,
            "application/json",
            r#"{"version": 1, "fallback": {"outcome": "phone_solvable"}}"#,
        )
        .await;
        assert_eq!(
            refused_json.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused_json.text
        );
        assert!(
            refused_json.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fallback"),
            "{}",
            refused_json.text
        );

        let after = app.get("/v1/admin/triage-rules", Some(ADMIN_TOKEN)).await;
        assert_eq!(after.body, before.body, "the old rules stay active");
        let still = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&still, CaseStatus::Diagnosing).await;

        // A valid document replaces them: now nothing is phone-solvable.
        let replaced = put_rules(&app, "application/json", r#"{"version": 1, "rule": [{"id": "key_fob_truck", "category": "key_fob", "outcome": "needs_vehicle", "dispatch_service": "tow"}], "fallback": {"outcome": "needs_vehicle"}}"#).await;
        assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
        assert_eq!(replaced.body["version"], 1);
        let now_dispatched = id_of(&app.create_case(&phone_case()).await);
        app.wait_for_status(&now_dispatched, CaseStatus::Escalated)
            .await;
        assert_eq!(
            triage_event(&app, &now_dispatched).await["rules_version"],
            1
        );
        app
    }
);
