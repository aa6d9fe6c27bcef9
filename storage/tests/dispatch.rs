//! The fleet and dispatch part of the storage conformance suite, on both backends.

use std::collections::HashSet;

use domain::ports::{ManualAssignment, NewAlert, StoreError};
use domain::{
    Actor, AlertId, AlertKind, AlertState, CaseId, CaseStatus, DeclineReason, DeviceBinding,
    DeviceProtocol, EventKind, Fix, FixSource, LatLon, OfferId, OfferState, Service, Severity,
    VehicleId, VehicleState,
};
use storage::backend_test;

mod common;
use common::*;

backend_test!(vehicles_register_update_and_bind_devices, |db| async move {
    let p = provider(&db, "Pudong").await;
    let jt808 = DeviceBinding {
        protocol: DeviceProtocol::Jt808,
        id: "013912345678".into(),
    };
    let first = db
        .store
        .register_vehicle(
            p,
            "T7",
            &registration(VehicleState::Offline, vec![jt808.clone()]),
            at(0),
        )
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.vehicle.vehicle_id, "T7");
    assert_eq!(first.vehicle.devices, vec![jt808.clone()]);
    assert_eq!(
        first.vehicle.capabilities,
        vec![Service::JumpStart, Service::Tow]
    );

    let osmand = DeviceBinding {
        protocol: DeviceProtocol::Osmand,
        id: "truck-7".into(),
    };
    let again = db
        .store
        .register_vehicle(
            p,
            "T7",
            &registration(VehicleState::Available, vec![osmand.clone()]),
            at(5),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.vehicle.id, first.vehicle.id);
    assert_eq!(again.vehicle.state, VehicleState::Available);
    assert_eq!(
        again.vehicle.devices,
        vec![osmand.clone()],
        "the device list is replaced"
    );
    assert!(
        db.store
            .vehicle_by_device(DeviceProtocol::Jt808, "013912345678")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.store
            .vehicle_by_device(DeviceProtocol::Osmand, "truck-7")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.vehicle.id
    );

    // A device bound to T7 cannot be claimed by T8, and the refusal changes nothing.
    let clash = db
        .store
        .register_vehicle(
            p,
            "T8",
            &registration(VehicleState::Available, vec![osmand]),
            at(6),
        )
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(message)) if message.contains("truck-7")));
    assert!(db.store.find_vehicle(p, "T8").await.unwrap().is_none());

    // Ids are per provider.
    let other = provider(&db, "Minhang").await;
    let theirs = db
        .store
        .register_vehicle(
            other,
            "T7",
            &registration(VehicleState::Available, vec![]),
            at(7),
        )
        .await
        .unwrap();
    assert_ne!(theirs.vehicle.id, first.vehicle.id);
    assert_eq!(db.store.list_provider_vehicles(p).await.unwrap().len(), 1);
    assert_eq!(db.store.list_vehicles().await.unwrap().len(), 2);
});

backend_test!(last_fixes_never_move_back_in_time, |db| async move {
    let p = provider(&db, "Pudong").await;
    let ids: Vec<VehicleId> = futures::future::join_all((0..3).map(|i| {
        let db = db.clone();
        async move { vehicle(&db, p, &format!("T{i}")).await }
    }))
    .await;
    let fix = |seconds: i64, lat: f64| Fix {
        position: LatLon::new(lat, 121.47).unwrap(),
        ts: at(seconds),
        speed_kmh: Some(42.0),
        heading: Some(90.0),
        accuracy_m: None,
        source: FixSource::Api,
    };
    let batch: Vec<_> = ids.iter().map(|id| (*id, fix(10, 31.2))).collect();
    assert_eq!(db.store.save_last_fixes(&batch).await.unwrap(), 3);
    // An older fix is ignored; a newer one moves the vehicle.
    let moved = db
        .store
        .save_last_fixes(&[(ids[0], fix(5, 31.0)), (ids[1], fix(20, 31.3))])
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let first = db
        .store
        .get_vehicle(ids[0])
        .await
        .unwrap()
        .unwrap()
        .last_fix
        .unwrap();
    assert_eq!((first.ts, first.position.lat()), (at(10), 31.2));
    let second = db
        .store
        .get_vehicle(ids[1])
        .await
        .unwrap()
        .unwrap()
        .last_fix
        .unwrap();
    assert_eq!(
        (second.ts, second.speed_kmh, second.heading),
        (at(20), Some(42.0), Some(90.0))
    );
});

backend_test!(
    large_position_batches_keep_the_newest_fix_of_each_vehicle,
    |db| async move {
        // More vehicles than one statement of either backend takes, each twice in the batch
        // (older first for half of them, newer first for the others), and an unknown vehicle.
        let p = provider(&db, "Pudong").await;
        let ids: Vec<VehicleId> = futures::future::join_all((0..1_100).map(|i| {
            let db = db.clone();
            async move { vehicle(&db, p, &format!("T{i}")).await }
        }))
        .await;
        let fix = |seconds: i64, lat: f64| Fix {
            position: LatLon::new(lat, 121.47).unwrap(),
            ts: at(seconds),
            speed_kmh: None,
            heading: None,
            accuracy_m: Some(5.0),
            source: FixSource::Jt808,
        };
        let mut batch = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let lat = 30.0 + i as f64 / 1_000.0;
            let (older, newer) = ((*id, fix(10, lat - 0.5)), (*id, fix(20, lat)));
            if i % 2 == 0 {
                batch.extend([older, newer]);
            } else {
                batch.extend([newer, older]);
            }
        }
        batch.push((VehicleId::new_v7(), fix(30, 31.0)));
        assert_eq!(db.store.save_last_fixes(&batch).await.unwrap(), 1_100);
        let stored: std::collections::HashMap<VehicleId, Fix> = db
            .store
            .list_vehicles()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.id, v.last_fix.expect("every vehicle has a position")))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let fix = &stored[id];
            assert_eq!(fix.ts, at(20), "vehicle {i}");
            assert!((fix.position.lat() - (30.0 + i as f64 / 1_000.0)).abs() < 1e-9);
            assert_eq!((fix.accuracy_m, fix.source), (Some(5.0), FixSource::Jt808));
        }
        // The same batch again moves nothing: no fix is newer than the stored one.
        assert_eq!(db.store.save_last_fixes(&batch).await.unwrap(), 0);
    }
);

backend_test!(
    an_offer_claims_the_vehicle_and_acceptance_assigns_the_case,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let case_id = dispatching_case(&db).await;
        let offer = db
            .store
            .create_offer(&new_offer(case_id, v, p, 10), &ranking(10))
            .await
            .unwrap();
        assert_eq!(offer.state, OfferState::Pending);
        assert_eq!(vehicle_state(&db, v).await, VehicleState::Offered);
        assert_eq!(
            db.store.pending_offers(p).await.unwrap(),
            vec![offer.clone()]
        );

        let (accepted, case) = db
            .store
            .accept_offer(offer.id, p, at(20), Some(600))
            .await
            .unwrap();
        assert_eq!(accepted.state, OfferState::Accepted);
        assert_eq!(accepted.provider_eta_s, Some(600));
        assert_eq!(case.status, CaseStatus::Assigned);
        assert_eq!(case.promised_arrival, Some(at(620)));
        assert_eq!(vehicle_state(&db, v).await, VehicleState::Busy);
        assert_eq!(
            db.store.active_job(case_id).await.unwrap().unwrap().id,
            offer.id
        );

        let kinds: Vec<EventKind> = db
            .store
            .timeline(case_id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Created,
                EventKind::StatusChanged,
                EventKind::CandidatesRanked,
                EventKind::OfferSent,
                EventKind::OfferAccepted,
                EventKind::StatusChanged
            ]
        );
        // Answering twice is a conflict.
        assert!(matches!(
            db.store.accept_offer(offer.id, p, at(21), None).await,
            Err(StoreError::Conflict(_))
        ));
    }
);

backend_test!(
    a_vehicle_already_offered_is_never_offered_twice,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let first_case = dispatching_case(&db).await;
        let second_case = dispatching_case(&db).await;
        db.store
            .create_offer(&new_offer(first_case, v, p, 10), &ranking(10))
            .await
            .unwrap();
        let refused = db
            .store
            .create_offer(&new_offer(second_case, v, p, 11), &ranking(11))
            .await;
        assert!(matches!(refused, Err(StoreError::Conflict(_))));
        assert!(db.store.case_offers(second_case).await.unwrap().is_empty());
        assert_eq!(
            db.store.timeline(second_case).await.unwrap().len(),
            2,
            "the refusal wrote nothing"
        );
    }
);

backend_test!(
    the_database_itself_refuses_a_double_booking,
    |db| async move {
        // Bypass the code: even a raw insert of a second open offer for a vehicle fails.
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let first_case = dispatching_case(&db).await;
        let second_case = dispatching_case(&db).await;
        db.store
            .create_offer(&new_offer(first_case, v, p, 10), &ranking(10))
            .await
            .unwrap();
        let insert = "INSERT INTO offers (id, case_id, vehicle_id, provider_id, state, round, attempt, eta_s, distance_m, sent_at, expires_at) \
                  VALUES ($1, $2, $3, $4, 'pending', 1, 1, 60, 1.0, $5, $5)";
        let error = if let Some(sqlite) = &db.sqlite {
            sqlx::query(insert)
                .bind(uuid::Uuid::now_v7())
                .bind(second_case.as_uuid())
                .bind(v.as_uuid())
                .bind(p.as_uuid())
                .bind(at(0))
                .execute(sqlite.raw_pool())
                .await
                .unwrap_err()
        } else {
            sqlx::query(insert)
                .bind(uuid::Uuid::now_v7())
                .bind(second_case.as_uuid())
                .bind(v.as_uuid())
                .bind(p.as_uuid())
                .bind(at(0))
                .execute(db.postgres.as_ref().unwrap().raw_pool())
                .await
                .unwrap_err()
        };
        assert!(
            error
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation()),
            "{error}"
        );
    }
);

backend_test!(
    a_decline_frees_the_vehicle_and_a_late_answer_is_refused,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let case_id = dispatching_case(&db).await;
        let offer = db
            .store
            .create_offer(&new_offer(case_id, v, p, 10), &ranking(10))
            .await
            .unwrap();
        let declined = db
            .store
            .decline_offer(offer.id, p, DeclineReason::TooFar, at(15))
            .await
            .unwrap();
        assert_eq!(
            (declined.state, declined.decline_reason),
            (OfferState::Declined, Some(DeclineReason::TooFar))
        );
        assert_eq!(vehicle_state(&db, v).await, VehicleState::Available);

        let second = db
            .store
            .create_offer(&new_offer(case_id, v, p, 20), &ranking(20))
            .await
            .unwrap();
        // 45 s later the offer has expired, even before a sweep saw it.
        let late = db.store.accept_offer(second.id, p, at(65), None).await;
        assert!(matches!(late, Err(StoreError::Conflict(message)) if message.contains("expired")));
        assert_eq!(vehicle_state(&db, v).await, VehicleState::Offered);
        // Another provider cannot answer it at all.
        let stranger = provider(&db, "Stranger").await;
        assert!(matches!(
            db.store
                .accept_offer(second.id, stranger, at(30), None)
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            db.store
                .decline_offer(second.id, stranger, DeclineReason::Busy, at(30))
                .await,
            Err(StoreError::NotFound)
        ));
    }
);

backend_test!(
    due_offers_expire_exactly_once_even_with_concurrent_sweeps,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let mut offers = HashSet::new();
        for index in 0..12 {
            let v = vehicle(&db, p, &format!("T{index}")).await;
            let case_id = dispatching_case(&db).await;
            offers.insert(
                db.store
                    .create_offer(&new_offer(case_id, v, p, index), &ranking(index))
                    .await
                    .unwrap()
                    .id,
            );
        }
        assert!(
            db.store
                .expire_offers(at(40), 100)
                .await
                .unwrap()
                .is_empty(),
            "none due yet"
        );
        let mut sweeps = Vec::new();
        for _ in 0..4 {
            let store = db.store.clone();
            sweeps.push(tokio::spawn(async move {
                store.expire_offers(at(100), 5).await.unwrap()
            }));
        }
        let mut expired = Vec::new();
        for sweep in sweeps {
            expired.extend(sweep.await.unwrap().into_iter().map(|offer| offer.id));
        }
        // Batches of five: whatever the sweeps left is taken by the next one.
        expired.extend(
            db.store
                .expire_offers(at(100), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|offer| offer.id),
        );
        assert_eq!(expired.len(), 12, "each offer expired exactly once");
        assert_eq!(expired.iter().copied().collect::<HashSet<_>>(), offers);
        assert!(
            db.store
                .expire_offers(at(200), 100)
                .await
                .unwrap()
                .is_empty()
        );
        for vehicle in db.store.list_vehicles().await.unwrap() {
            assert_eq!(vehicle.state, VehicleState::Available);
        }
    }
);

fn no_vehicle() -> NewAlert {
    NewAlert {
        id: AlertId::new_v7(),
        kind: AlertKind::NoVehicle,
        severity: Severity::Critical,
        predicted_breach: None,
        message: "no vehicle accepted after 3 offers".into(),
    }
}

backend_test!(
    escalation_raises_one_no_vehicle_alert_per_episode,
    |db| async move {
        let case_id = dispatching_case(&db).await;
        let case = db
            .store
            .escalate_case(case_id, at(100), &no_vehicle())
            .await
            .unwrap();
        assert_eq!(case.status, CaseStatus::Escalated);
        let alerts = db
            .store
            .list_alerts(Some(AlertState::Open), 10)
            .await
            .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].kind, alerts[0].case_id),
            (AlertKind::NoVehicle, case_id)
        );
        // Back to dispatching and escalated again while the alert is still open: no second one.
        db.store
            .redispatch_case(case_id, &Actor::System, at(110))
            .await
            .unwrap();
        db.store
            .escalate_case(case_id, at(200), &no_vehicle())
            .await
            .unwrap();
        assert_eq!(db.store.list_alerts(None, 10).await.unwrap().len(), 1);
        // Escalating a case that is not dispatching is refused.
        assert!(matches!(
            db.store
                .escalate_case(case_id, at(300), &no_vehicle())
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
);

backend_test!(
    a_manual_assignment_withdraws_the_pending_offer_and_resolves_the_alert,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let offered = vehicle(&db, p, "T1").await;
        let chosen = vehicle(&db, p, "T2").await;
        let case_id = dispatching_case(&db).await;
        let pending = db
            .store
            .create_offer(&new_offer(case_id, offered, p, 10), &ranking(10))
            .await
            .unwrap();
        let assignment = ManualAssignment {
            offer_id: OfferId::new_v7(),
            vehicle_id: chosen,
            eta_s: 1200,
            distance_m: 9000.0,
        };
        let agent = Actor::User {
            role: domain::Role::Agent,
            id: domain::UserId::new_v7(),
        };
        let (case, job, released) = db
            .store
            .assign_vehicle(case_id, &assignment, &agent, at(20))
            .await
            .unwrap();
        assert_eq!(case.status, CaseStatus::Assigned);
        assert_eq!(case.promised_arrival, Some(at(1220)));
        assert_eq!(
            (job.state, job.assigned_by.clone()),
            (OfferState::Accepted, Some(agent.to_string()))
        );
        assert_eq!(released.vehicles, vec![offered]);
        assert_eq!(
            db.store.get_offer(pending.id).await.unwrap().unwrap().state,
            OfferState::Withdrawn
        );
        assert_eq!(vehicle_state(&db, offered).await, VehicleState::Available);
        assert_eq!(vehicle_state(&db, chosen).await, VehicleState::Busy);
        // A busy vehicle cannot be assigned to another case.
        let other = dispatching_case(&db).await;
        let again = ManualAssignment {
            offer_id: OfferId::new_v7(),
            ..assignment
        };
        assert!(matches!(
            db.store.assign_vehicle(other, &again, &agent, at(30)).await,
            Err(StoreError::Conflict(_))
        ));

        // Escalated cases can be assigned too, and their no_vehicle alert resolves.
        let escalated = dispatching_case(&db).await;
        db.store
            .escalate_case(escalated, at(40), &no_vehicle())
            .await
            .unwrap();
        let third = ManualAssignment {
            offer_id: OfferId::new_v7(),
            vehicle_id: offered,
            eta_s: 600,
            distance_m: 1.0,
        };
        db.store
            .assign_vehicle(escalated, &third, &agent, at(50))
            .await
            .unwrap();
        assert!(
            db.store
                .list_alerts(Some(AlertState::Open), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

backend_test!(cancelling_frees_whatever_the_case_held, |db| async move {
    let p = provider(&db, "Pudong").await;
    let v1 = vehicle(&db, p, "T1").await;
    let v2 = vehicle(&db, p, "T2").await;
    // A pending offer is withdrawn.
    let first = dispatching_case(&db).await;
    db.store
        .create_offer(&new_offer(first, v1, p, 10), &ranking(10))
        .await
        .unwrap();
    let (case, released) = db
        .store
        .cancel_case(first, &Actor::Customer, at(20), "customer_request")
        .await
        .unwrap();
    assert_eq!(case.status, CaseStatus::Cancelled);
    assert_eq!(released.vehicles, vec![v1]);
    assert_eq!(vehicle_state(&db, v1).await, VehicleState::Available);
    // A job in progress ends.
    let second = dispatching_case(&db).await;
    let offer = db
        .store
        .create_offer(&new_offer(second, v2, p, 30), &ranking(30))
        .await
        .unwrap();
    db.store
        .accept_offer(offer.id, p, at(35), None)
        .await
        .unwrap();
    db.store
        .report_job_status(second, p, CaseStatus::EnRoute, at(40))
        .await
        .unwrap();
    let (_, released) = db
        .store
        .cancel_case(second, &Actor::Customer, at(50), "customer_request")
        .await
        .unwrap();
    assert_eq!(released.vehicles, vec![v2]);
    assert_eq!(vehicle_state(&db, v2).await, VehicleState::Available);
    assert!(db.store.active_job(second).await.unwrap().is_none());
    // Cancelling twice is refused and changes nothing.
    assert!(matches!(
        db.store
            .cancel_case(second, &Actor::Customer, at(60), "again")
            .await,
        Err(StoreError::IllegalTransition(_))
    ));
});

backend_test!(
    job_progress_follows_the_machine_and_completion_frees_the_vehicle,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let case_id = dispatching_case(&db).await;
        let offer = db
            .store
            .create_offer(&new_offer(case_id, v, p, 10), &ranking(10))
            .await
            .unwrap();
        db.store
            .accept_offer(offer.id, p, at(20), Some(300))
            .await
            .unwrap();
        // Skipping en_route is refused.
        assert!(matches!(
            db.store
                .report_job_status(case_id, p, CaseStatus::OnScene, at(30))
                .await,
            Err(StoreError::IllegalTransition(_))
        ));
        // Another provider has no such job.
        let stranger = provider(&db, "Stranger").await;
        assert!(matches!(
            db.store
                .report_job_status(case_id, stranger, CaseStatus::EnRoute, at(30))
                .await,
            Err(StoreError::NotFound)
        ));
        for (status, seconds) in [
            (CaseStatus::EnRoute, 40),
            (CaseStatus::OnScene, 300),
            (CaseStatus::Completed, 900),
        ] {
            let (case, _) = db
                .store
                .report_job_status(case_id, p, status, at(seconds))
                .await
                .unwrap();
            assert_eq!(case.status, status);
        }
        assert_eq!(vehicle_state(&db, v).await, VehicleState::Available);
        let records = db.store.provider_records(at(0)).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (
                records[0].offers,
                records[0].accepted,
                records[0].arrivals,
                records[0].on_time
            ),
            (1, 1, 1, 1)
        );
    }
);

backend_test!(
    each_entry_into_dispatching_starts_a_new_round_of_offers,
    |db| async move {
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let case_id = dispatching_case(&db).await;
        let offer = db
            .store
            .create_offer(&new_offer(case_id, v, p, 10), &ranking(10))
            .await
            .unwrap();
        db.store
            .decline_offer(offer.id, p, DeclineReason::Busy, at(12))
            .await
            .unwrap();
        let state = db.store.dispatch_state(case_id).await.unwrap().unwrap();
        assert_eq!(state.offers_in_round.len(), 1);
        db.store
            .escalate_case(case_id, at(20), &no_vehicle())
            .await
            .unwrap();
        db.store
            .redispatch_case(case_id, &Actor::System, at(30))
            .await
            .unwrap();
        let state = db.store.dispatch_state(case_id).await.unwrap().unwrap();
        assert_eq!(state.case.status, CaseStatus::Dispatching);
        assert!(
            state.offers_in_round.is_empty(),
            "a redispatch starts afresh"
        );
        db.store
            .create_offer(&new_offer(case_id, v, p, 40), &ranking(40))
            .await
            .unwrap();
        assert_eq!(
            db.store
                .dispatch_state(case_id)
                .await
                .unwrap()
                .unwrap()
                .offers_in_round
                .len(),
            1
        );
        assert_eq!(db.store.case_offers(case_id).await.unwrap().len(), 2);
        assert!(
            db.store
                .dispatch_state(CaseId::new_v7())
                .await
                .unwrap()
                .is_none()
        );
    }
);

backend_test!(
    cases_without_an_offer_are_found_for_a_retry,
    |db| async move {
        let waiting = dispatching_case(&db).await;
        let p = provider(&db, "Pudong").await;
        let v = vehicle(&db, p, "T7").await;
        let offered = dispatching_case(&db).await;
        db.store
            .create_offer(&new_offer(offered, v, p, 10), &ranking(10))
            .await
            .unwrap();
        let found = db.store.cases_awaiting_offer(at(30), 10).await.unwrap();
        assert!(found.contains(&waiting));
        assert!(!found.contains(&offered));
        assert!(
            db.store
                .cases_awaiting_offer(at(-1), 10)
                .await
                .unwrap()
                .is_empty(),
            "only cases idle since before"
        );
    }
);
