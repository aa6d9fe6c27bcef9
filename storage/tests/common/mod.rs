//! Helpers shared by the storage conformance tests.
#![allow(dead_code)]

use chrono::{Duration, TimeZone, Utc};
use domain::ports::{CreateCaseOutcome, NewOffer, Transition};
use domain::{
    Actor, CaseId, CaseInput, CaseStatus, DeviceBinding, EventKind, NewCase, NewEvent, OfferId,
    Provider, ProviderId, Service, Timestamp, VehicleId, VehicleRegistration, VehicleState,
};
use storage::testing::TestDatabaseHandle;

pub fn at(seconds: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + Duration::seconds(seconds)
}

pub async fn provider(db: &TestDatabaseHandle, name: &str) -> ProviderId {
    let provider = Provider {
        id: ProviderId::new_v7(),
        name: name.into(),
        webhook_url: None,
        service_area: None,
        priority: 0,
        webhook_secret_generation: 1,
        webhook_secret_rotated_at: None,
        created_at: at(0),
    };
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(provider.id.as_uuid().as_bytes());
    db.store.insert_provider(&provider, &key).await.unwrap();
    provider.id
}

pub fn registration(state: VehicleState, devices: Vec<DeviceBinding>) -> VehicleRegistration {
    VehicleRegistration {
        capabilities: vec![Service::JumpStart, Service::Tow],
        state: Some(state),
        plate: Some("沪A12345".into()),
        driver_phone: None,
        devices,
    }
}

pub async fn vehicle(db: &TestDatabaseHandle, provider: ProviderId, name: &str) -> VehicleId {
    db.store
        .register_vehicle(
            provider,
            name,
            &registration(VehicleState::Available, vec![]),
            at(0),
        )
        .await
        .unwrap()
        .vehicle
        .id
}

pub async fn dispatching_case(db: &TestDatabaseHandle) -> CaseId {
    let input: CaseInput = serde_json::from_value(serde_json::json!({
        "channel": "app",
        "customer": {"phone": "+8613800138000"},
        "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "urban"},
        "fault": {"category": "battery"},
        "service": "jump_start"
    }))
    .unwrap();
    let case = NewCase::parse(input).unwrap().open(CaseId::new_v7(), at(0));
    let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
    let CreateCaseOutcome::Created(case) =
        db.store.create_case(&case, &created, None).await.unwrap()
    else {
        panic!("created");
    };
    let to_dispatching = Transition {
        to: CaseStatus::Dispatching,
        expected_from: Some(CaseStatus::New),
        actor: Actor::System,
        at: at(0),
        reason: Some("needs_vehicle".into()),
    };
    db.store
        .transition_case(case.id, &to_dispatching)
        .await
        .unwrap();
    case.id
}

pub fn new_offer(
    case_id: CaseId,
    vehicle_id: VehicleId,
    provider_id: ProviderId,
    sent: i64,
) -> NewOffer {
    NewOffer {
        id: OfferId::new_v7(),
        case_id,
        vehicle_id,
        provider_id,
        attempt: 1,
        eta_s: 900,
        distance_m: 4200.0,
        sent_at: at(sent),
        expires_at: at(sent + 45),
    }
}

pub fn ranking(sent: i64) -> NewEvent {
    NewEvent::new(
        EventKind::CandidatesRanked,
        Actor::System,
        at(sent),
        serde_json::json!({"candidates": []}),
    )
}

pub async fn vehicle_state(db: &TestDatabaseHandle, id: VehicleId) -> VehicleState {
    db.store.get_vehicle(id).await.unwrap().unwrap().state
}
