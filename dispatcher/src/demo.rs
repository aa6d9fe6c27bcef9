//! `dispatcher serve --demo`: a city comes alive with one command. It seeds three tow
//! companies and their trucks around People's Square in Shanghai, moves the trucks (free
//! ones cruise between random waypoints, assigned ones drive to their customer and back to
//! work), answers offers the way real dispatchers do (after a few seconds; mostly yes,
//! sometimes no, now and then not at all) and creates a stream of rescue requests.
//!
//! It drives the server through the same domain operations the API uses, so everything
//! it does shows up in the timeline, the offers, the map and the metrics exactly as real
//! traffic would. The paths are straight lines between waypoints with GPS jitter: plausible
//! on a map, not a road network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::{CreateCaseOutcome, StoreError};
use domain::{
    Actor, CaseId, CaseInput, CaseStatus, DeclineReason, EventKind, Fix, FixSource, LatLon,
    NewCase, NewEvent, NewUserInput, OfferId, Provider, ProviderId, Role, Service, User, UserId,
    VehicleId, VehicleRegistration, VehicleState,
};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::api::state::AppState;
use crate::security;

/// The demo city's centre (People's Square, Shanghai).
const CENTRE: (f64, f64) = (31.2304, 121.4737);
/// Trucks roam within this radius.
const CITY_RADIUS_KM: f64 = 14.0;
/// Password of the demo console users (`demo-agent`, `demo-expert`, `demo-admin`).
pub const DEMO_PASSWORD: &str = "demo-password-change-me";

const COMPANIES: [(&str, i32); 3] = [
    ("Demo Pudong Towing", 2),
    ("Demo Puxi Rescue", 1),
    ("Demo Hongqiao Recovery", 0),
];

/// A small xorshift generator: the demo needs variety, not cryptography.
struct Dice(u64);

impl Dice {
    fn from_clock() -> Dice {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x2545_f491);
        Dice(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// A random point within `radius_km` of the centre.
fn random_point(dice: &mut Dice, radius_km: f64) -> LatLon {
    let distance_km = radius_km * dice.unit().sqrt();
    let bearing = dice.between(0.0, std::f64::consts::TAU);
    offset(
        LatLon::new(CENTRE.0, CENTRE.1).unwrap_or_else(|_| unreachable!()),
        distance_km * 1000.0,
        bearing,
    )
}

/// The point `distance_m` from `from` along `bearing` (radians from north).
fn offset(from: LatLon, distance_m: f64, bearing: f64) -> LatLon {
    let dlat = distance_m * bearing.cos() / 111_195.0;
    let dlon = distance_m * bearing.sin() / (111_195.0 * from.lat().to_radians().cos());
    LatLon::new(
        (from.lat() + dlat).clamp(-89.9, 89.9),
        (from.lon() + dlon).clamp(-179.9, 179.9),
    )
    .unwrap_or(from)
}

fn bearing(from: &LatLon, to: &LatLon) -> f64 {
    let dy = to.lat() - from.lat();
    let dx = (to.lon() - from.lon()) * from.lat().to_radians().cos();
    dx.atan2(dy)
}

/// What a simulated truck is doing.
#[derive(Debug, Clone)]
enum Errand {
    /// Cruising to a waypoint.
    Cruise(LatLon),
    /// Driving to a customer.
    ToCustomer {
        case_id: CaseId,
        provider: ProviderId,
        target: LatLon,
    },
    /// Working on scene until the given time.
    OnScene {
        case_id: CaseId,
        provider: ProviderId,
        until: domain::Timestamp,
    },
}

#[derive(Debug, Clone)]
struct Truck {
    id: VehicleId,
    position: LatLon,
    speed_kmh: f64,
    errand: Errand,
}

/// The demo's shared picture of its trucks and the offers it has decided on.
struct Demo {
    state: AppState,
    trucks: Mutex<HashMap<VehicleId, Truck>>,
    providers: Vec<ProviderId>,
    answers: Mutex<HashMap<OfferId, domain::Timestamp>>,
}

/// Seeds the demo fleet (once per database) and starts the simulation.
pub async fn start(
    state: AppState,
    trucks: usize,
    case_interval_s: f64,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let providers = seed_providers(&state).await?;
    seed_users(&state).await?;
    let fleet = seed_trucks(&state, &providers, trucks).await?;
    tracing::warn!(
        trucks = fleet.len(),
        providers = providers.len(),
        users = "demo-agent, demo-expert, demo-admin",
        password = DEMO_PASSWORD,
        "demo mode: a simulated city is running; do not use demo mode with real data"
    );
    let demo = Arc::new(Demo {
        state,
        trucks: Mutex::new(fleet.into_iter().map(|truck| (truck.id, truck)).collect()),
        providers,
        answers: Mutex::new(HashMap::new()),
    });
    let mut tasks = Vec::new();
    let driver = demo.clone();
    tasks.push(tokio::spawn(async move {
        let mut dice = Dice::from_clock();
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        loop {
            ticker.tick().await;
            if let Err(error) = driver.drive(&mut dice, 2.0).await {
                tracing::warn!(error = %error, "demo: moving trucks failed");
            }
        }
    }));
    let dispatcher = demo.clone();
    tasks.push(tokio::spawn(async move {
        let mut dice = Dice::from_clock();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticker.tick().await;
            if let Err(error) = dispatcher.answer_offers(&mut dice).await {
                tracing::warn!(error = %error, "demo: answering offers failed");
            }
        }
    }));
    let caller = demo;
    tasks.push(tokio::spawn(async move {
        let mut dice = Dice::from_clock();
        loop {
            // Exponential gaps: requests arrive as a Poisson stream.
            let gap_s = -case_interval_s * (1.0 - dice.unit()).ln();
            tokio::time::sleep(Duration::from_secs_f64(
                gap_s.clamp(0.5, case_interval_s * 6.0),
            ))
            .await;
            if let Err(error) = caller.request_rescue(&mut dice).await {
                tracing::warn!(error = %error, "demo: creating a request failed");
            }
        }
    }));
    Ok(tasks)
}

async fn seed_providers(state: &AppState) -> Result<Vec<ProviderId>, StoreError> {
    let existing = state.store.list_providers().await?;
    let mut ids = Vec::new();
    for (name, priority) in COMPANIES {
        if let Some(provider) = existing.iter().find(|provider| provider.name == name) {
            ids.push(provider.id);
            continue;
        }
        let area = serde_json::json!({
            "type": "Polygon",
            "coordinates": [[[121.2, 31.0], [121.8, 31.0], [121.8, 31.45], [121.2, 31.45], [121.2, 31.0]]]
        });
        let provider = Provider {
            id: ProviderId::new_v7(),
            name: name.to_owned(),
            webhook_url: None,
            service_area: Some(area),
            priority,
            webhook_secret_generation: 1,
            webhook_secret_rotated_at: None,
            created_at: domain::time::to_storage_precision(state.clock.now()),
        };
        // The demo answers for its providers in-process; their key is never used.
        let key = security::random_token(security::API_KEY_PREFIX)
            .map_err(|error| StoreError::Internal(error.into()))?;
        state
            .registry
            .add_provider(&provider, &security::sha256(key.as_bytes()))
            .await?;
        ids.push(provider.id);
    }
    Ok(ids)
}

async fn seed_users(state: &AppState) -> anyhow::Result<()> {
    for (username, role, skills) in [
        ("demo-agent", Role::Agent, vec![]),
        (
            "demo-expert",
            Role::Expert,
            vec![
                "key_fob".to_owned(),
                "ev".to_owned(),
                "warning_light".to_owned(),
            ],
        ),
        ("demo-admin", Role::Admin, vec![]),
    ] {
        if state.store.user_credentials(username).await?.is_some() {
            continue;
        }
        let input = NewUserInput {
            username: username.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            role,
            skills: skills.clone(),
            display_name: None,
        };
        input.validate()?;
        let hash = tokio::task::spawn_blocking(|| security::hash_password(DEMO_PASSWORD)).await??;
        let user = User {
            id: UserId::new_v7(),
            username: username.to_owned(),
            display_name: Some(format!("Demo {role}")),
            role,
            skills,
            created_at: domain::time::to_storage_precision(state.clock.now()),
        };
        state.store.insert_user(&user, &hash).await?;
    }
    Ok(())
}

async fn seed_trucks(
    state: &AppState,
    providers: &[ProviderId],
    count: usize,
) -> Result<Vec<Truck>, StoreError> {
    let mut dice = Dice::from_clock();
    let kinds: [&[Service]; 4] = [
        &[Service::Tow, Service::Winch],
        &[Service::Tow, Service::JumpStart],
        &[
            Service::JumpStart,
            Service::TyreChange,
            Service::FuelDelivery,
            Service::Lockout,
        ],
        &[Service::JumpStart, Service::TyreChange, Service::Lockout],
    ];
    let mut trucks = Vec::with_capacity(count);
    let now = state.clock.now();
    let mut fixes = Vec::with_capacity(count);
    for index in 0..count {
        let provider = providers[index % providers.len()];
        let external_id = format!("DEMO-{index:03}");
        let registration = VehicleRegistration {
            capabilities: kinds[index % kinds.len()].to_vec(),
            state: None,
            plate: Some(format!("沪D{:05}", 10_000 + index)),
            // Demo drivers: numbers of the reserved 555 range, so masked calls can be tried.
            driver_phone: Some(format!("+8610555{:05}", 10_000 + index)),
            devices: vec![],
        };
        let existing = state.store.find_vehicle(provider, &external_id).await?;
        let vehicle = match existing {
            Some(vehicle) => vehicle,
            None => {
                let registration = VehicleRegistration {
                    state: Some(VehicleState::Available),
                    ..registration
                };
                state
                    .registry
                    .register(provider, &external_id, &registration, now)
                    .await?
                    .vehicle
            }
        };
        if vehicle.state == VehicleState::Offline {
            let registration = VehicleRegistration {
                capabilities: vehicle.capabilities.clone(),
                state: Some(VehicleState::Available),
                plate: vehicle.plate.clone(),
                driver_phone: vehicle.driver_phone.clone(),
                devices: vehicle.devices.clone(),
            };
            state
                .registry
                .register(provider, &external_id, &registration, now)
                .await?;
        }
        let position = match &vehicle.last_fix {
            Some(fix) => fix.position,
            None => random_point(&mut dice, CITY_RADIUS_KM),
        };
        fixes.push((vehicle.id, demo_fix(position, now, 0.0, 0.0)));
        trucks.push(Truck {
            id: vehicle.id,
            position,
            speed_kmh: dice.between(22.0, 45.0),
            errand: Errand::Cruise(random_point(&mut dice, CITY_RADIUS_KM)),
        });
    }
    let fresh: Vec<_> = fixes
        .into_iter()
        .filter(|(id, fix)| state.registry.check(*id, fix, now).is_ok())
        .collect();
    state.registry.accept(fresh);
    Ok(trucks)
}

fn demo_fix(position: LatLon, at: domain::Timestamp, speed_kmh: f64, heading_deg: f64) -> Fix {
    Fix {
        position,
        ts: at,
        speed_kmh: Some(speed_kmh),
        heading: Some(heading_deg.rem_euclid(360.0)),
        accuracy_m: Some(8.0),
        source: FixSource::Demo,
    }
}

impl Demo {
    /// Moves every truck by `step_s` seconds of driving and reports the positions.
    async fn drive(&self, dice: &mut Dice, step_s: f64) -> Result<(), StoreError> {
        let now = self.state.clock.now();
        let mut fixes = Vec::new();
        let mut arrivals = Vec::new();
        let mut finished = Vec::new();
        {
            let mut trucks = self.trucks.lock();
            for truck in trucks.values_mut() {
                let target = match &truck.errand {
                    Errand::Cruise(target) => Some(*target),
                    Errand::ToCustomer { target, .. } => Some(*target),
                    Errand::OnScene {
                        case_id,
                        provider,
                        until,
                    } => {
                        if *until <= now {
                            finished.push((*case_id, *provider));
                            truck.errand = Errand::Cruise(random_point(dice, CITY_RADIUS_KM));
                        }
                        None
                    }
                };
                let Some(target) = target else {
                    fixes.push((truck.id, demo_fix(truck.position, now, 0.0, 0.0)));
                    continue;
                };
                let remaining_m = truck.position.distance_m(&target);
                let step_m = truck.speed_kmh / 3.6 * step_s * dice.between(0.6, 1.2);
                let heading = bearing(&truck.position, &target);
                if remaining_m <= step_m {
                    truck.position = target;
                    match truck.errand.clone() {
                        Errand::ToCustomer {
                            case_id, provider, ..
                        } => {
                            arrivals.push((case_id, provider));
                            let service_s = dice.between(60.0, 180.0) as i64;
                            truck.errand = Errand::OnScene {
                                case_id,
                                provider,
                                until: now + chrono::Duration::seconds(service_s),
                            };
                        }
                        _ => truck.errand = Errand::Cruise(random_point(dice, CITY_RADIUS_KM)),
                    }
                } else {
                    // A little sideways jitter makes the track look like GPS, not a ruler.
                    let moved = offset(truck.position, step_m, heading);
                    truck.position = offset(
                        moved,
                        dice.between(-6.0, 6.0),
                        heading + std::f64::consts::FRAC_PI_2,
                    );
                }
                fixes.push((
                    truck.id,
                    demo_fix(truck.position, now, truck.speed_kmh, heading.to_degrees()),
                ));
            }
        }
        let checked: Vec<_> = fixes
            .into_iter()
            .filter(|(id, fix)| self.state.registry.check(*id, fix, now).is_ok())
            .collect();
        self.state.registry.accept(checked);
        for (case_id, provider) in arrivals {
            self.report(case_id, provider, CaseStatus::OnScene).await;
        }
        for (case_id, provider) in finished {
            self.report(case_id, provider, CaseStatus::Completed).await;
        }
        Ok(())
    }

    async fn report(&self, case_id: CaseId, provider: ProviderId, status: CaseStatus) {
        match self
            .state
            .cascade
            .report_job_status(case_id, provider, status)
            .await
        {
            Ok(_) => {}
            // Cancelled meanwhile, or reassigned: the truck just goes back to work.
            Err(error) => {
                tracing::debug!(case_id = %case_id, error = %error, "demo: job report refused")
            }
        }
    }

    /// Answers the demo providers' pending offers after a human-like pause.
    async fn answer_offers(&self, dice: &mut Dice) -> Result<(), StoreError> {
        let now = self.state.clock.now();
        for provider in &self.providers {
            for offer in self.state.store.pending_offers(*provider).await? {
                let due = {
                    let mut answers = self.answers.lock();
                    *answers.entry(offer.id).or_insert_with(|| {
                        now + chrono::Duration::milliseconds(
                            (dice.between(2.0, 12.0) * 1000.0) as i64,
                        )
                    })
                };
                if due > now {
                    continue;
                }
                self.answers.lock().remove(&offer.id);
                let roll = dice.unit();
                if roll < 0.78 {
                    self.accept(&offer).await?;
                } else if roll < 0.93 {
                    let reason = *dice.pick(&[
                        DeclineReason::Busy,
                        DeclineReason::TooFar,
                        DeclineReason::NoEquipment,
                    ]);
                    let _ = self
                        .state
                        .cascade
                        .decline_offer(offer.id, *provider, reason)
                        .await;
                }
                // Otherwise the dispatcher at the tow company is on a coffee break: the offer
                // expires and cascades.
            }
        }
        Ok(())
    }

    async fn accept(&self, offer: &domain::Offer) -> Result<(), StoreError> {
        let Ok((offer, case)) = self
            .state
            .cascade
            .accept_offer(offer.id, offer.provider_id, None)
            .await
        else {
            return Ok(());
        };
        if let Some(truck) = self.trucks.lock().get_mut(&offer.vehicle_id) {
            truck.errand = Errand::ToCustomer {
                case_id: case.id,
                provider: offer.provider_id,
                target: case.location.position,
            };
            truck.speed_kmh = truck.speed_kmh.max(30.0);
        }
        self.report(case.id, offer.provider_id, CaseStatus::EnRoute)
            .await;
        Ok(())
    }

    /// A stranded driver somewhere in the city asks for help.
    async fn request_rescue(&self, dice: &mut Dice) -> Result<(), StoreError> {
        let faults = [
            ("battery", "jump_start", "no_crank"),
            ("battery", "jump_start", "clicking"),
            ("tyre", "tyre_change", "flat_tyre"),
            ("engine", "tow", "engine_stalled"),
            ("overheating", "tow", "steam"),
            ("accident", "tow", "collision"),
            ("fuel", "fuel_delivery", "out_of_fuel"),
            ("lockout", "lockout", "keys_inside"),
            ("stuck", "winch", "ditch"),
        ];
        let (category, service, symptom) = *dice.pick(&faults);
        let position = random_point(dice, CITY_RADIUS_KM - 2.0);
        let road_kind = *dice.pick(&["urban", "urban", "urban", "highway", "rural"]);
        let input: CaseInput = serde_json::from_value(serde_json::json!({
            "channel": "app",
            "customer": {
                "name": dice.pick(&["王芳", "李雷", "韩梅梅", "张伟", "Anna Virtanen", "John Smith"]),
                "phone": format!("+86138{:08}", dice.next() % 100_000_000),
                "plate": format!("沪{}{:05}", dice.pick(&["A", "B", "C", "E"]), dice.next() % 100_000),
            },
            "location": {"lat": position.lat(), "lon": position.lon(), "road_kind": road_kind},
            "fault": {"category": category, "symptoms": [symptom]},
            "service": service,
        }))
        .map_err(|error| StoreError::Internal(error.into()))?;
        let now = domain::time::to_storage_precision(self.state.clock.now());
        let case = NewCase::parse(input)
            .map_err(|error| StoreError::Internal(error.to_string().into()))?
            .open(CaseId::new_v7(), now);
        let created = NewEvent::new(
            EventKind::Created,
            Actor::App,
            now,
            serde_json::json!({"channel": "app", "service": service, "demo": true}),
        );
        if let CreateCaseOutcome::Created(case) =
            self.state.store.create_case(&case, &created, None).await?
        {
            self.state.intake.spawn_take_in(case.id);
        }
        Ok(())
    }
}
