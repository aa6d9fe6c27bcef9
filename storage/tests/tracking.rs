//! The tracking part of the storage conformance suite, on both backends: trajectories,
//! tracker state, alerts raised by rules and handled by agents, the event log as a stream.

use domain::ports::{AlertUpdate, CaseFix, NewAlert, StoreError};
use domain::{
    Actor, AlertId, AlertKind, AlertState, CaseId, EventKind, Fix, FixSource, LatLon, Role,
    Severity, UserId, VehicleId,
};
use storage::backend_test;
use storage::testing::TestDatabaseHandle;

mod common;
use common::*;

async fn assigned_case(db: &TestDatabaseHandle) -> (CaseId, VehicleId) {
    let p = provider(db, "Pudong").await;
    let v = vehicle(db, p, &format!("T{}", uuid::Uuid::now_v7().simple())).await;
    let case_id = dispatching_case(db).await;
    let offer = db
        .store
        .create_offer(&new_offer(case_id, v, p, 10), &ranking(10))
        .await
        .unwrap();
    db.store
        .accept_offer(offer.id, p, at(20), Some(900))
        .await
        .unwrap();
    (case_id, v)
}

fn fix(seconds: i64, lat: f64) -> Fix {
    Fix {
        position: LatLon::new(lat, 121.47).unwrap(),
        ts: at(seconds),
        speed_kmh: Some(30.0),
        heading: Some(180.0),
        accuracy_m: Some(5.0),
        source: FixSource::Jt808,
    }
}

backend_test!(
    trajectories_are_stored_in_time_order_and_purged_by_age,
    |db| async move {
        let (case_id, v) = assigned_case(&db).await;
        let fixes: Vec<CaseFix> = [(30, 31.30, 25), (10, 31.32, 25), (20, 31.31, 100)]
            .into_iter()
            .map(|(seconds, lat, received)| CaseFix {
                case_id,
                vehicle_id: v,
                fix: fix(seconds, lat),
                live: seconds != 10,
                received_at: at(received),
            })
            .collect();
        assert_eq!(db.store.insert_case_fixes(&fixes).await.unwrap(), 3);
        let stored = db.store.case_fixes(case_id).await.unwrap();
        assert_eq!(
            stored.iter().map(|f| f.fix.ts).collect::<Vec<_>>(),
            vec![at(10), at(20), at(30)]
        );
        assert_eq!(stored[1].fix.heading, Some(180.0));
        assert!(!stored[0].live);
        assert_eq!(db.store.purge_case_fixes(at(50)).await.unwrap(), 2);
        assert_eq!(db.store.case_fixes(case_id).await.unwrap().len(), 1);
        // Many at once (chunked inserts).
        let many: Vec<CaseFix> = (0..1200)
            .map(|i| CaseFix {
                case_id,
                vehicle_id: v,
                fix: fix(1000 + i, 31.0),
                live: true,
                received_at: at(1000),
            })
            .collect();
        assert_eq!(db.store.insert_case_fixes(&many).await.unwrap(), 1200);
    }
);

backend_test!(
    tracker_state_and_the_prediction_are_saved_without_touching_the_case,
    |db| async move {
        let (case_id, v) = assigned_case(&db).await;
        let before = db.store.get_case(case_id).await.unwrap().unwrap();
        let state = serde_json::json!({"engine": {"open": []}});
        db.store
            .save_tracking(case_id, v, &state, Some(at(700)), at(60))
            .await
            .unwrap();
        db.store
            .save_tracking(
                case_id,
                v,
                &serde_json::json!({"engine": 2}),
                Some(at(800)),
                at(90),
            )
            .await
            .unwrap();
        assert_eq!(
            db.store.load_tracking(case_id).await.unwrap(),
            Some(serde_json::json!({"engine": 2}))
        );
        let after = db.store.get_case(case_id).await.unwrap().unwrap();
        assert_eq!(after.predicted_arrival, Some(at(800)));
        assert_eq!(after.updated_at, before.updated_at);
        assert!(
            db.store
                .load_tracking(CaseId::new_v7())
                .await
                .unwrap()
                .is_none()
        );
        let active = db.store.active_jobs().await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!((active[0].case.id, active[0].job.vehicle_id), (case_id, v));
    }
);

fn alert(kind: AlertKind) -> NewAlert {
    NewAlert {
        id: AlertId::new_v7(),
        kind,
        severity: Severity::Warning,
        predicted_breach: Some(at(900)),
        message: "late".into(),
    }
}

backend_test!(
    rule_alerts_open_once_per_episode_escalate_and_clear,
    |db| async move {
        let (case_id, _) = assigned_case(&db).await;
        let first = db
            .store
            .raise_alert(case_id, &alert(AlertKind::Stalled), at(100))
            .await
            .unwrap()
            .expect("raised");
        assert!(
            db.store
                .raise_alert(case_id, &alert(AlertKind::Stalled), at(110))
                .await
                .unwrap()
                .is_none(),
            "one per episode"
        );
        let update = AlertUpdate {
            severity: Severity::Critical,
            predicted_breach: Some(at(950)),
            message: "later".into(),
        };
        let escalated = db
            .store
            .escalate_alert(case_id, AlertKind::Stalled, &update, at(120))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (escalated.id, escalated.severity),
            (first.id, Severity::Critical)
        );
        let cleared = db
            .store
            .clear_alert(case_id, AlertKind::Stalled, "moving again", at(130))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (cleared.state, cleared.resolved_by.as_deref()),
            (AlertState::Resolved, Some("system"))
        );
        assert!(
            db.store
                .clear_alert(case_id, AlertKind::Stalled, "again", at(131))
                .await
                .unwrap()
                .is_none()
        );
        // A new episode is a new alert.
        let second = db
            .store
            .raise_alert(case_id, &alert(AlertKind::Stalled), at(200))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(second.id, first.id);
        let kinds: Vec<EventKind> = db
            .store
            .timeline(case_id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        let alert_kinds: Vec<EventKind> = kinds
            .into_iter()
            .filter(|k| k.as_str().starts_with("alert_"))
            .collect();
        assert_eq!(
            alert_kinds,
            vec![
                EventKind::AlertRaised,
                EventKind::AlertEscalated,
                EventKind::AlertResolved,
                EventKind::AlertRaised
            ]
        );
    }
);

backend_test!(
    agents_acknowledge_and_resolve_alerts_once,
    |db| async move {
        let (case_id, _) = assigned_case(&db).await;
        let raised = db
            .store
            .raise_alert(case_id, &alert(AlertKind::GpsLost), at(100))
            .await
            .unwrap()
            .unwrap();
        let agent = Actor::User {
            role: Role::Agent,
            id: UserId::new_v7(),
        };
        let acked = db
            .store
            .acknowledge_alert(raised.id, &agent, at(110))
            .await
            .unwrap();
        assert_eq!(
            (acked.state, acked.acknowledged_by.clone()),
            (AlertState::Acknowledged, Some(agent.to_string()))
        );
        assert!(matches!(
            db.store.acknowledge_alert(raised.id, &agent, at(111)).await,
            Err(StoreError::Conflict(_))
        ));
        let resolved = db
            .store
            .resolve_alert(raised.id, &agent, at(120))
            .await
            .unwrap();
        assert_eq!(resolved.resolved_at, Some(at(120)));
        assert!(matches!(
            db.store.resolve_alert(raised.id, &agent, at(121)).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            db.store
                .acknowledge_alert(AlertId::new_v7(), &agent, at(122))
                .await,
            Err(StoreError::NotFound)
        ));
        let events = db.store.timeline(case_id).await.unwrap();
        let ack = events
            .iter()
            .find(|e| e.kind == EventKind::AlertAcknowledged)
            .unwrap();
        assert_eq!(ack.actor, agent);
        assert_eq!(ack.data["alert_id"], serde_json::json!(raised.id));
    }
);

backend_test!(the_event_log_streams_in_id_order, |db| async move {
    let start = db.store.last_event_id().await.unwrap();
    let (case_id, _) = assigned_case(&db).await;
    let events = db.store.events_after(start, 1000).await.unwrap();
    assert!(events.len() >= 6);
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(
        db.store.last_event_id().await.unwrap(),
        events.last().unwrap().id
    );
    let tail = db.store.events_after(events[2].id, 2).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![events[3].id, events[4].id]
    );
    assert!(
        events
            .iter()
            .any(|e| e.case_id == case_id && e.kind == EventKind::OfferAccepted)
    );
});
