//! The remote-diagnosis part of the storage conformance suite, on both backends: triage
//! outcomes, exactly-once claims under concurrency, reports, claim lapse, the fallback
//! and masked-call bindings.

use std::collections::HashSet;
use std::sync::Arc;

use domain::diagnosis::{NewPhoneBinding, NewTicket, TicketClaim, TicketReport};
use domain::ports::{
    CreateCaseOutcome, IdempotencyClaim, NewAlert, StoreError, TriageWrite, TriagedCase,
};
use domain::{
    Actor, AlertId, AlertKind, CaseId, CaseInput, CaseStatus, EventKind, NewCase, NewEvent,
    OfferState, Role, Severity, TicketId, TicketOutcome, Timestamp, User, UserId, VehicleId,
    VehicleState,
};
use storage::backend_test;
use storage::testing::TestDatabaseHandle;

mod common;
use common::*;

async fn new_case(db: &TestDatabaseHandle) -> CaseId {
    let input: CaseInput = serde_json::from_value(serde_json::json!({
        "channel": "app",
        "customer": {"phone": "+8613800138000"},
        "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "urban"},
        "fault": {"category": "key_fob", "symptoms": ["key_not_detected"]},
        "service": "tow"
    }))
    .unwrap();
    let case = NewCase::parse(input).unwrap().open(CaseId::new_v7(), at(0));
    let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
    db.store.create_case(&case, &created, None).await.unwrap();
    case.id
}

fn triaged(seconds: i64) -> NewEvent {
    NewEvent::new(
        EventKind::Triaged,
        Actor::System,
        at(seconds),
        serde_json::json!({"outcome": "phone_solvable"}),
    )
}

fn ticket(skill: &str, priority: i32, queued: i64) -> NewTicket {
    NewTicket {
        id: TicketId::new_v7(),
        skill: skill.into(),
        rule_id: "test_rule".into(),
        expected_fix_s: 600,
        expected_truck_eta_s: Some(1500),
        priority,
        queued_at: at(queued),
    }
}

async fn queued(
    db: &TestDatabaseHandle,
    skill: &str,
    priority: i32,
    queued: i64,
) -> (CaseId, TicketId) {
    let case_id = new_case(db).await;
    let new = ticket(skill, priority, queued);
    db.store
        .queue_for_diagnosis(case_id, &new, &triaged(queued))
        .await
        .unwrap();
    (case_id, new.id)
}

async fn expert(db: &TestDatabaseHandle, name: &str) -> UserId {
    let user = User {
        id: UserId::new_v7(),
        username: name.into(),
        display_name: None,
        role: Role::Expert,
        skills: vec!["key_fob".into()],
        created_at: at(0),
    };
    db.store.insert_user(&user, "$argon2id$fake").await.unwrap();
    user.id
}

fn claim(expert: UserId, skills: &[&str], now: i64) -> TicketClaim {
    TicketClaim {
        expert,
        skills: skills.iter().map(|skill| (*skill).to_owned()).collect(),
        at: at(now),
        expires_at: at(now + 600),
        fallback_cutoff: at(now - 300),
    }
}

fn report(outcome: TicketOutcome, expert: UserId, seconds: i64) -> TicketReport {
    TicketReport {
        outcome,
        expert,
        notes: Some("done".into()),
        priority_points: 30,
        at: at(seconds),
    }
}

async fn kinds(db: &TestDatabaseHandle, case_id: CaseId) -> Vec<EventKind> {
    db.store
        .timeline(case_id)
        .await
        .unwrap()
        .iter()
        .map(|event| event.kind)
        .collect()
}

backend_test!(
    queueing_moves_the_case_to_diagnosing_in_one_transaction,
    |db| async move {
        let (case_id, ticket_id) = queued(&db, "key_fob", 10, 1).await;
        let case = db.store.get_case(case_id).await.unwrap().unwrap();
        assert_eq!(case.status, CaseStatus::Diagnosing);
        let stored = db.store.get_ticket(ticket_id).await.unwrap().unwrap();
        assert_eq!(stored.category, domain::FaultCategory::KeyFob);
        assert_eq!(stored.priority, 10);
        assert_eq!(stored.expected_truck_eta_s, Some(1500));
        assert_eq!(
            kinds(&db, case_id).await,
            [
                EventKind::Created,
                EventKind::Triaged,
                EventKind::StatusChanged,
                EventKind::DiagnosisQueued
            ]
        );
        // Triage happens once: a second queueing or dispatch is a conflict and changes nothing.
        let again = db
            .store
            .queue_for_diagnosis(case_id, &ticket("key_fob", 0, 2), &triaged(2))
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let dispatch = db
            .store
            .triage_to_dispatch(case_id, &triaged(2), "needs_vehicle")
            .await;
        assert!(
            matches!(dispatch, Err(StoreError::Conflict(_))),
            "{dispatch:?}"
        );
        assert_eq!(kinds(&db, case_id).await.len(), 4);

        let other = new_case(&db).await;
        let case = db
            .store
            .triage_to_dispatch(other, &triaged(3), "safety_override")
            .await
            .unwrap();
        assert_eq!(case.status, CaseStatus::Dispatching);
        assert_eq!(
            kinds(&db, other).await,
            [
                EventKind::Created,
                EventKind::Triaged,
                EventKind::StatusChanged
            ]
        );
    }
);

fn unsaved_case() -> domain::Case {
    let input: CaseInput = serde_json::from_value(serde_json::json!({
        "channel": "app",
        "customer": {"phone": "+8613800138000"},
        "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "urban"},
        "fault": {"category": "key_fob", "symptoms": ["key_not_detected"]},
        "service": "tow"
    }))
    .unwrap();
    NewCase::parse(input).unwrap().open(CaseId::new_v7(), at(0))
}

backend_test!(
    a_case_is_created_with_its_triage_in_one_transaction,
    |db| async move {
        let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
        // Needs a vehicle: created, triaged and dispatching at once.
        let case = unsaved_case();
        let dispatch = TriageWrite::Dispatch {
            event: triaged(0),
            reason: "needs_vehicle".into(),
            offers: Vec::new(),
        };
        let claim = IdempotencyClaim {
            scope: "app".into(),
            key: "k-1".into(),
            request_hash: [1; 32],
            response: serde_json::json!({"case": case.id}),
            created_at: at(0),
        };
        let (outcome, triage) = db
            .store
            .create_triaged_case(&case, &created, Some(&claim), &dispatch)
            .await
            .unwrap();
        match outcome {
            CreateCaseOutcome::Created(stored) => assert_eq!(stored.status, CaseStatus::New),
            other => panic!("expected a new case, got {other:?}"),
        }
        match triage {
            Some(TriagedCase::Dispatching(stored)) => {
                assert_eq!(stored.id, case.id);
                assert_eq!(stored.status, CaseStatus::Dispatching);
            }
            other => panic!("expected a dispatching case, got {other:?}"),
        }
        assert_eq!(
            db.store.get_case(case.id).await.unwrap().unwrap().status,
            CaseStatus::Dispatching
        );
        assert_eq!(
            kinds(&db, case.id).await,
            [
                EventKind::Created,
                EventKind::Triaged,
                EventKind::StatusChanged
            ]
        );
        // The same key again replays and writes nothing, whatever triage says.
        let (again, triage) = db
            .store
            .create_triaged_case(&unsaved_case(), &created, Some(&claim), &dispatch)
            .await
            .unwrap();
        assert!(triage.is_none());
        match again {
            CreateCaseOutcome::Replayed { case_id, .. } => assert_eq!(case_id, case.id),
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(kinds(&db, case.id).await.len(), 3);

        // Phone-solvable: queued with its ticket.
        let phone = unsaved_case();
        let new = ticket("key_fob", 10, 0);
        let queue = TriageWrite::Queue {
            event: triaged(0),
            ticket: new.clone(),
        };
        let (_, triage) = db
            .store
            .create_triaged_case(&phone, &created, None, &queue)
            .await
            .unwrap();
        match triage {
            Some(TriagedCase::Queued(ticket)) => {
                assert_eq!(ticket.id, new.id);
                assert_eq!(ticket.case_id, phone.id);
            }
            other => panic!("expected a queued ticket, got {other:?}"),
        }
        assert_eq!(
            db.store.get_case(phone.id).await.unwrap().unwrap().status,
            CaseStatus::Diagnosing
        );
        assert_eq!(
            kinds(&db, phone.id).await,
            [
                EventKind::Created,
                EventKind::Triaged,
                EventKind::StatusChanged,
                EventKind::DiagnosisQueued
            ]
        );
        // A failing triage write takes the case with it: the same ticket id again.
        let broken = unsaved_case();
        let result = db
            .store
            .create_triaged_case(&broken, &created, None, &queue)
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert!(db.store.get_case(broken.id).await.unwrap().is_none());
        assert!(kinds(&db, broken.id).await.is_empty());
    }
);

backend_test!(
    a_case_can_be_created_with_its_first_offer_in_one_transaction,
    |db| async move {
        let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
        let p = provider(&db, "Pudong").await;
        let (taken, free, spare) = (
            vehicle(&db, p, "T-taken").await,
            vehicle(&db, p, "T-free").await,
            vehicle(&db, p, "T-spare").await,
        );
        // Another case holds the best vehicle already.
        let other = dispatching_case(&db).await;
        db.store
            .create_offer(&new_offer(other, taken, p, 0), &ranking(0))
            .await
            .unwrap();
        let case = unsaved_case();
        let dispatch = |vehicles: &[VehicleId], case_id: CaseId| TriageWrite::Dispatch {
            event: triaged(1),
            reason: "needs_vehicle".into(),
            offers: vehicles
                .iter()
                .map(|vehicle| (new_offer(case_id, *vehicle, p, 1), ranking(1)))
                .collect(),
        };
        let (outcome, triage) = db
            .store
            .create_triaged_case(
                &case,
                &created,
                None,
                &dispatch(&[taken, free, spare], case.id),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, CreateCaseOutcome::Created(_)));
        let (dispatching, offer) = match triage {
            Some(TriagedCase::Offered {
                case: stored,
                offer,
            }) => {
                assert_eq!(stored.status, CaseStatus::Dispatching);
                (stored, offer)
            }
            other => panic!("expected an offered case, got {other:?}"),
        };
        // What the store returns without reading it back is what it stored.
        assert_eq!(
            db.store.get_case(case.id).await.unwrap().as_ref(),
            Some(&*dispatching)
        );
        // The offer is in the case's current round, and the case counts its events.
        let state = db.store.dispatch_state(case.id).await.unwrap().unwrap();
        assert_eq!(state.offers_in_round.len(), 1);
        assert_eq!(state.offers_in_round[0].id, offer.id);
        let events = db.store.timeline(case.id).await.unwrap();
        assert_eq!(
            events.iter().map(|event| event.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(dispatching.updated_at, events[4].at);
        // The taken vehicle is skipped, the next one claimed, the third left alone.
        assert_eq!((offer.case_id, offer.vehicle_id), (case.id, free));
        assert_eq!(offer.state, OfferState::Pending);
        assert_eq!(vehicle_state(&db, taken).await, VehicleState::Offered);
        assert_eq!(vehicle_state(&db, free).await, VehicleState::Offered);
        assert_eq!(vehicle_state(&db, spare).await, VehicleState::Available);
        assert_eq!(
            db.store.pending_offers(p).await.unwrap().len(),
            2,
            "one offer of each case"
        );
        assert_eq!(
            kinds(&db, case.id).await,
            [
                EventKind::Created,
                EventKind::Triaged,
                EventKind::StatusChanged,
                EventKind::CandidatesRanked,
                EventKind::OfferSent
            ]
        );

        // Nobody to claim: the case is created dispatching, without an offer.
        let alone = unsaved_case();
        let (_, triage) = db
            .store
            .create_triaged_case(&alone, &created, None, &dispatch(&[taken, free], alone.id))
            .await
            .unwrap();
        assert!(
            matches!(triage, Some(TriagedCase::Dispatching(_))),
            "{triage:?}"
        );
        assert_eq!(kinds(&db, alone.id).await.len(), 3);
        assert_eq!(vehicle_state(&db, spare).await, VehicleState::Available);

        // An offer that cannot be written takes the case with it, and claims nothing.
        let broken = unsaved_case();
        let result = db
            .store
            .create_triaged_case(
                &broken,
                &created,
                None,
                &dispatch(&[spare], CaseId::new_v7()),
            )
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert!(db.store.get_case(broken.id).await.unwrap().is_none());
        assert_eq!(vehicle_state(&db, spare).await, VehicleState::Available);

        // The next change of the case numbers its events on from there.
        db.store
            .decline_offer(offer.id, p, domain::DeclineReason::TooFar, at(2))
            .await
            .unwrap();
        let events = db.store.timeline(case.id).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert!(seqs.len() > 5, "{seqs:?}");
        assert_eq!(vehicle_state(&db, free).await, VehicleState::Available);
    }
);

backend_test!(claims_follow_queue_order_and_skills, |db| async move {
    let ella = expert(&db, "ella").await;
    let (_, old_low) = queued(&db, "key_fob", 0, 0).await;
    let (_, new_high) = queued(&db, "key_fob", 20, 50).await;
    let (_, other_skill) = queued(&db, "gear_lock", 50, 0).await;
    let (_, young_low) = queued(&db, "key_fob", 0, 60).await;
    let mut order = Vec::new();
    while let Some(ticket) = db
        .store
        .claim_ticket(&claim(ella, &["key_fob"], 100))
        .await
        .unwrap()
    {
        assert_eq!(ticket.claimed_by, Some(ella));
        assert_eq!(ticket.first_claimed_at, Some(at(100)));
        order.push(ticket.id);
    }
    assert_eq!(order, [new_high, old_low, young_low]);
    let gear = db
        .store
        .claim_ticket(&claim(ella, &["gear_lock"], 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gear.id, other_skill);
    assert!(
        db.store
            .claim_ticket(&claim(ella, &[], 100))
            .await
            .unwrap()
            .is_none()
    );
});

backend_test!(
    a_ticket_due_for_the_fallback_is_not_handed_out,
    |db| async move {
        let ella = expert(&db, "ella").await;
        queued(&db, "key_fob", 0, 0).await;
        // Queued at 0, cutoff at 300 - 300 = 0: due, not claimable.
        assert!(
            db.store
                .claim_ticket(&claim(ella, &["key_fob"], 300))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            db.store
                .claim_ticket(&claim(ella, &["key_fob"], 299))
                .await
                .unwrap()
                .is_some()
        );
    }
);

backend_test!(
    concurrent_claims_hand_each_ticket_to_exactly_one_expert,
    |db| async move {
        const EXPERTS: usize = 20;
        const TICKETS: usize = 500;
        let mut tickets = HashSet::new();
        for index in 0..TICKETS {
            let (_, id) = queued(&db, "key_fob", i32::try_from(index % 4).unwrap(), 0).await;
            tickets.insert(id);
        }
        let mut experts = Vec::new();
        for index in 0..EXPERTS {
            experts.push(expert(&db, &format!("expert{index}")).await);
        }
        let store = db.store.clone();
        let mut tasks = Vec::new();
        for expert_id in experts {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(ticket) = store
                    .claim_ticket(&claim(expert_id, &["key_fob"], 10))
                    .await
                    .unwrap()
                {
                    assert_eq!(ticket.claimed_by, Some(expert_id));
                    mine.push(ticket.id);
                }
                mine
            }));
        }
        let mut claimed = Vec::new();
        for task in tasks {
            claimed.extend(task.await.unwrap());
        }
        assert_eq!(claimed.len(), TICKETS, "one claim per ticket");
        let unique: HashSet<TicketId> = claimed.into_iter().collect();
        assert_eq!(unique, tickets, "every ticket, none twice");
    }
);

backend_test!(
    solving_closes_the_case_and_escalating_dispatches_it,
    |db| async move {
        let ella = expert(&db, "ella").await;
        let otto = expert(&db, "otto").await;
        let (solved_case, solved) = queued(&db, "key_fob", 0, 0).await;
        let (escalated_case, escalated) = queued(&db, "key_fob", 0, 1).await;
        db.store
            .claim_ticket(&claim(ella, &["key_fob"], 10))
            .await
            .unwrap()
            .unwrap();
        db.store
            .claim_ticket(&claim(ella, &["key_fob"], 10))
            .await
            .unwrap()
            .unwrap();
        let refused = db
            .store
            .report_ticket(solved, &report(TicketOutcome::Solved, otto, 20))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        let (ticket, case) = db
            .store
            .report_ticket(solved, &report(TicketOutcome::Solved, ella, 20))
            .await
            .unwrap();
        assert_eq!(ticket.outcome, Some(TicketOutcome::Solved));
        assert_eq!(ticket.closed_at, Some(at(20)));
        assert_eq!(case.status, CaseStatus::ResolvedRemotely);
        assert!(
            kinds(&db, solved_case)
                .await
                .contains(&EventKind::DiagnosisSolved)
        );
        let twice = db
            .store
            .report_ticket(solved, &report(TicketOutcome::Escalated, ella, 21))
            .await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");

        let (ticket, case) = db
            .store
            .report_ticket(escalated, &report(TicketOutcome::Escalated, ella, 30))
            .await
            .unwrap();
        assert_eq!(ticket.outcome, Some(TicketOutcome::Escalated));
        assert_eq!(ticket.priority, 30);
        assert_eq!(case.status, CaseStatus::Dispatching);
        assert!(
            kinds(&db, escalated_case)
                .await
                .contains(&EventKind::DiagnosisEscalated)
        );
        assert!(db.store.open_tickets(10).await.unwrap().is_empty());
    }
);

backend_test!(
    an_expired_claim_lapses_once_back_to_the_queue,
    |db| async move {
        let ella = expert(&db, "ella").await;
        let otto = expert(&db, "otto").await;
        let (case_id, id) = queued(&db, "key_fob", 0, 0).await;
        db.store
            .claim_ticket(&claim(ella, &["key_fob"], 10))
            .await
            .unwrap()
            .unwrap();
        // The claim expires at 610.
        assert!(
            db.store
                .expired_claims(at(609), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            db.store
                .lapse_claim(id, at(609), 15)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(db.store.expired_claims(at(610), 10).await.unwrap(), [id]);
        let lapsed = db
            .store
            .lapse_claim(id, at(610), 15)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lapsed.claimed_by, None);
        assert_eq!(lapsed.lapsed_claims, 1);
        assert_eq!(lapsed.priority, 15);
        assert!(
            db.store
                .lapse_claim(id, at(611), 15)
                .await
                .unwrap()
                .is_none(),
            "once"
        );
        assert!(
            kinds(&db, case_id)
                .await
                .contains(&EventKind::DiagnosisReleased)
        );
        // (A long maximum wait here, so the ticket is not due for the fallback yet.)
        let no_fallback_yet = TicketClaim {
            fallback_cutoff: at(-10_000),
            ..claim(otto, &["key_fob"], 612)
        };
        let taken = db
            .store
            .claim_ticket(&no_fallback_yet)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.claimed_by, Some(otto));
        assert_eq!(
            taken.first_claimed_at,
            Some(at(10)),
            "pickup time is the first claim"
        );
        let late = db
            .store
            .report_ticket(id, &report(TicketOutcome::Solved, ella, 613))
            .await;
        assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    }
);

fn wait_alert() -> NewAlert {
    NewAlert {
        id: AlertId::new_v7(),
        kind: AlertKind::DiagnosisWait,
        severity: Severity::Warning,
        predicted_breach: None,
        message: "no expert in time".into(),
    }
}

backend_test!(
    an_unclaimed_ticket_falls_back_to_dispatch_once_with_an_alert,
    |db| async move {
        let ella = expert(&db, "ella").await;
        let (case_id, id) = queued(&db, "key_fob", 0, 0).await;
        let (_, claimed) = queued(&db, "key_fob", 0, 0).await;
        let held = db
            .store
            .claim_ticket(&claim(ella, &["key_fob"], 10))
            .await
            .unwrap()
            .unwrap();
        assert!(held.id == id || held.id == claimed);
        let unclaimed = if held.id == id { claimed } else { id };
        let cutoff: Timestamp = at(0);
        // A held claim is not overridden by the fallback.
        assert_eq!(
            db.store
                .tickets_due_for_fallback(cutoff, at(300), 10)
                .await
                .unwrap(),
            [unclaimed]
        );
        assert!(
            db.store
                .fall_back(held.id, cutoff, at(300), &wait_alert())
                .await
                .unwrap()
                .is_none()
        );
        let (ticket, case) = db
            .store
            .fall_back(unclaimed, cutoff, at(300), &wait_alert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ticket.outcome, Some(TicketOutcome::TimedOut));
        assert_eq!(case.status, CaseStatus::Dispatching);
        assert!(
            db.store
                .fall_back(unclaimed, cutoff, at(301), &wait_alert())
                .await
                .unwrap()
                .is_none(),
            "once"
        );
        let alerts = db.store.list_alerts(None, 10).await.unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::DiagnosisWait);
        assert_eq!(alerts[0].case_id, ticket.case_id);
        let _ = case_id;
    }
);

backend_test!(
    virtual_numbers_are_bound_once_reused_least_recently_and_released,
    |db| async move {
        let pool: Vec<String> = vec!["+861095500001".into(), "+861095500002".into()];
        let bind = |case_id: CaseId, seconds: i64| NewPhoneBinding {
            case_id,
            pool: pool.clone(),
            party_a: "+861088880001".into(),
            party_b: "+8613800138000".into(),
            at: at(seconds),
        };
        let (first, second, third) = (
            new_case(&db).await,
            new_case(&db).await,
            new_case(&db).await,
        );
        let a = db.store.bind_phone(&bind(first, 1)).await.unwrap().unwrap();
        assert_eq!(a.virtual_number, "+861095500001");
        let again = db.store.bind_phone(&bind(first, 2)).await.unwrap().unwrap();
        assert_eq!(
            again.virtual_number, a.virtual_number,
            "a case keeps its number"
        );
        let b = db
            .store
            .bind_phone(&bind(second, 3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.virtual_number, "+861095500002");
        assert!(
            db.store
                .bind_phone(&bind(third, 4))
                .await
                .unwrap()
                .is_none(),
            "pool exhausted"
        );
        assert_eq!(
            db.store
                .phone_binding("+861095500001")
                .await
                .unwrap()
                .unwrap()
                .case_id,
            first
        );
        db.store.release_phone(first, at(5)).await.unwrap();
        db.store.release_phone(first, at(6)).await.unwrap();
        assert!(
            db.store
                .phone_binding("+861095500001")
                .await
                .unwrap()
                .is_none()
        );
        let c = db.store.bind_phone(&bind(third, 7)).await.unwrap().unwrap();
        assert_eq!(c.virtual_number, "+861095500001");
        db.store.release_phone(second, at(8)).await.unwrap();
        db.store.release_phone(third, at(9)).await.unwrap();
        // Both free: ...02 was released longer ago, so it goes first.
        let d = db
            .store
            .bind_phone(&bind(first, 10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.virtual_number, "+861095500002");
    }
);

backend_test!(triage_rules_are_versioned, |db| async move {
    assert!(db.store.triage_rules().await.unwrap().is_none());
    assert_eq!(
        db.store
            .save_triage_rules("version = 1", &Actor::BootstrapAdmin, at(0))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.store
            .save_triage_rules("version = 1 # b", &Actor::BootstrapAdmin, at(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        db.store.triage_rules().await.unwrap(),
        Some(("version = 1 # b".to_owned(), 2))
    );
});

backend_test!(
    cancelling_a_diagnosing_case_abandons_its_ticket,
    |db| async move {
        let (case_id, id) = queued(&db, "key_fob", 0, 0).await;
        db.store
            .cancel_case(case_id, &Actor::Customer, at(5), "customer_request")
            .await
            .unwrap();
        let ticket = db.store.get_ticket(id).await.unwrap().unwrap();
        assert_eq!(ticket.outcome, Some(TicketOutcome::Abandoned));
        let rows = db
            .store
            .diagnosis_report_rows(at(-10), at(10))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].ticket.as_ref().unwrap().outcome,
            Some(TicketOutcome::Abandoned)
        );
    }
);

backend_test!(
    a_first_offer_starts_no_earlier_than_its_vehicle_was_freed,
    |db| async move {
        let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
        let p = provider(&db, "Minhang").await;
        let truck = vehicle(&db, p, "T-late").await;
        // The truck's last offer was declined at 10 s, after the new case read its clock.
        let other = dispatching_case(&db).await;
        let earlier = db
            .store
            .create_offer(&new_offer(other, truck, p, 0), &ranking(0))
            .await
            .unwrap();
        db.store
            .decline_offer(earlier.id, p, domain::DeclineReason::TooFar, at(10))
            .await
            .unwrap();
        assert_eq!(vehicle_state(&db, truck).await, VehicleState::Available);

        let case = unsaved_case();
        let dispatch = TriageWrite::Dispatch {
            event: triaged(1),
            reason: "needs_vehicle".into(),
            offers: vec![(new_offer(case.id, truck, p, 1), ranking(1))],
        };
        let (_, triage) = db
            .store
            .create_triaged_case(&case, &created, None, &dispatch)
            .await
            .unwrap();
        let (stored, offer) = match triage {
            Some(TriagedCase::Offered { case, offer }) => (case, offer),
            other => panic!("expected an offered case, got {other:?}"),
        };
        // Sent when the truck was free, with the whole 45 s answer window after that.
        assert_eq!((offer.sent_at, offer.expires_at), (at(10), at(55)));
        assert_eq!(stored.updated_at, at(10));
        assert_eq!(
            db.store.get_case(case.id).await.unwrap().as_ref(),
            Some(&*stored)
        );
        let events = db.store.timeline(case.id).await.unwrap();
        let sent = events.last().unwrap();
        assert_eq!(sent.kind, EventKind::OfferSent);
        assert_eq!(sent.at, at(10));
        let expires: Timestamp = serde_json::from_value(sent.data["expires_at"].clone()).unwrap();
        assert_eq!(expires, at(55));
        assert_eq!(sent.data["offer_id"], serde_json::json!(offer.id));
    }
);
