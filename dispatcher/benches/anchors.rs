//! The side-by-side anchors of issue 7: the fleet index against Redis `GEOADD`/`GEOSEARCH`
//! and PostgreSQL + PostGIS KNN (`ORDER BY geom <-> point LIMIT 10` over a GiST index), on
//! the same vehicles and the same query points, in one run, at 10k, 100k and 1M vehicles.
//!
//! ```text
//! scripts/bench/anchors            # installs PostGIS, starts throwaway servers, runs this
//! ```
//!
//! For each size it reports, per engine:
//! - **k-nearest**: k = 10 nearest to a query point, one query at a time, p50/p99/mean over
//!   the query points (ours in process; Redis and PostGIS over a loopback connection, as a
//!   dispatcher built on them would query). Redis gets `GEOSEARCH … BYRADIUS r km ASC
//!   COUNT 10` with r sized to the density so that 40 vehicles lie inside on average (it
//!   sorts everything inside the radius, so a generous radius would only slow it down);
//!   PostGIS needs no radius;
//! - **updates/s**: moving every vehicle once — ours one `apply` per move on one thread;
//!   Redis `GEOADD` pipelined 1,000 per round trip; PostGIS `UPDATE … FROM unnest(…)`
//!   1,000 rows per statement (each engine's fastest way to take a batch);
//! - **agreement**: how many of the 10 nearest ids each engine returns match ours (Redis
//!   quantizes positions to a 52-bit geohash, ~0.6 m, so a near-tie may swap; PostGIS
//!   computes on the sphere as we do).
//!
//! The index is also timed with the dispatch filter (available, fresh, can tow: 80 % of
//! vehicles rejected), which Redis and PostGIS would have to apply by over-fetching.
//!
//! Results print as a Markdown table and go to `RESCUE_ANCHORS_OUT` (JSON, default
//! `target/anchors.json`). `RESCUE_ANCHOR_SIZES=10000,100000` picks sizes. Without
//! `REDIS_URL` or a PostGIS-capable `DATABASE_URL` that engine is skipped, saying so; under
//! `cargo test --benches` everything runs once at 2,000 vehicles.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetUpdate, FleetVehicle};
use domain::{LatLon, ProviderId, Service, Timestamp, VehicleId, VehicleState};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

const SEED: u64 = 20_261_202;
const K: usize = 10;
/// Far enough never to cut a query short at these densities (our index and PostGIS stop
/// at the k-th nearest whatever the bound).
const MAX_DISTANCE_M: f64 = 500_000.0;
/// Vehicles Redis should find, on average, inside its search radius: `GEOSEARCH` collects
/// and sorts everything inside the radius before `COUNT` cuts, so the radius is sized to
/// the density (Redis's best case); at 4k a query finds fewer than k with a probability
/// of about 1e-8.
const REDIS_EXPECTED_IN_RADIUS: f64 = 4.0 * K as f64;
const REDIS_KEY: &str = "rescue:bench:anchors";
const PG_TABLE: &str = "rescue_bench_anchors";
const BATCH: usize = 1_000;

fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

struct Fleet {
    vehicles: Vec<FleetVehicle>,
    queries: Vec<LatLon>,
    /// A second position for every vehicle (~500 m away), for the update pass.
    moved: Vec<LatLon>,
    now: Timestamp,
}

fn uuid_from(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn position(rng: &mut StdRng, lat: (f64, f64), lon: (f64, f64)) -> LatLon {
    LatLon::new(
        rng.random_range(lat.0..lat.1),
        rng.random_range(lon.0..lon.1),
    )
    .expect("inside China")
}

impl Fleet {
    /// `size` vehicles uniformly over China (lat 18–53, lon 73–135), seeded; query points
    /// 1° inside that box.
    fn generate(size: usize, queries: usize) -> Fleet {
        let mut rng = StdRng::seed_from_u64(SEED);
        let now: Timestamp = "2026-12-02T03:00:00Z".parse().expect("an instant");
        let providers: Vec<ProviderId> = (0..200)
            .map(|_| ProviderId::from(uuid_from(&mut rng)))
            .collect();
        let mut vehicles = Vec::with_capacity(size);
        let mut moved = Vec::with_capacity(size);
        for _ in 0..size {
            let state = match rng.random_range(0..100) {
                0..50 => VehicleState::Available,
                50..60 => VehicleState::Offered,
                60..85 => VehicleState::Busy,
                _ => VehicleState::Offline,
            };
            let mut capabilities = CapabilitySet::from_iter([Service::JumpStart]);
            if rng.random_range(0..100) < 40 {
                capabilities.extend([Service::Tow, Service::Winch]);
            }
            let here = position(&mut rng, (18.0, 53.0), (73.0, 135.0));
            moved.push(
                LatLon::new(
                    (here.lat() + rng.random_range(-0.0045..0.0045)).clamp(18.0, 53.0),
                    (here.lon() + rng.random_range(-0.0045..0.0045)).clamp(73.0, 135.0),
                )
                .expect("inside China"),
            );
            vehicles.push(FleetVehicle {
                id: VehicleId::from(uuid_from(&mut rng)),
                provider: providers[rng.random_range(0..providers.len())],
                position: here,
                fix_at: now - TimeDelta::seconds(rng.random_range(0..120)),
                state,
                capabilities,
            });
        }
        let queries = (0..queries)
            .map(|_| position(&mut rng, (19.0, 52.0), (74.0, 134.0)))
            .collect();
        Fleet {
            vehicles,
            queries,
            moved,
            now,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index].as_secs_f64() * 1e6
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
    Latency {
        p50_us: at(0.50),
        p99_us: at(0.99),
        mean_us: mean * 1e6,
    }
}

#[derive(Debug, Default)]
struct EngineResult {
    name: &'static str,
    nearest: Option<Latency>,
    updates_per_s: Option<f64>,
    load_s: Option<f64>,
    /// Ids among the k nearest that match ours, over all queries.
    agreement: Option<f64>,
    /// Redis's search radius.
    radius_km: Option<f64>,
    skipped: Option<String>,
}

impl EngineResult {
    fn json(&self) -> serde_json::Value {
        json!({
            "engine": self.name,
            "nearest_p50_us": self.nearest.map(|l| l.p50_us),
            "nearest_p99_us": self.nearest.map(|l| l.p99_us),
            "nearest_mean_us": self.nearest.map(|l| l.mean_us),
            "updates_per_s": self.updates_per_s,
            "load_s": self.load_s,
            "agreement_with_index": self.agreement,
            "radius_km": self.radius_km,
            "skipped": self.skipped,
        })
    }
}

fn agreement(ours: &[Vec<VehicleId>], theirs: &[Vec<VehicleId>]) -> f64 {
    let mut same = 0usize;
    let mut total = 0usize;
    for (a, b) in ours.iter().zip(theirs) {
        total += a.len();
        same += a.iter().filter(|id| b.contains(id)).count();
    }
    same as f64 / total.max(1) as f64
}

/// Ours: bulk load, k-nearest unfiltered and filtered, then one `apply` per move.
fn index_engine(fleet: &Fleet) -> (EngineResult, Latency, Vec<Vec<VehicleId>>) {
    let started = Instant::now();
    let index = FleetIndex::from_vehicles(fleet.vehicles.iter().cloned());
    let load_s = started.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(fleet.queries.len());
    let mut answers = Vec::with_capacity(fleet.queries.len());
    for point in &fleet.queries {
        let started = Instant::now();
        let found = index.nearest(*point, K, MAX_DISTANCE_M, |_| true);
        samples.push(started.elapsed());
        answers.push(found.iter().map(|c| c.vehicle.id).collect());
        black_box(found);
    }
    let fresh_since = fleet.now - TimeDelta::seconds(300);
    let mut filtered = Vec::with_capacity(fleet.queries.len());
    for point in &fleet.queries {
        let started = Instant::now();
        let found = index.nearest(*point, K, MAX_DISTANCE_M, |vehicle| {
            vehicle.state == VehicleState::Available
                && vehicle.fix_at >= fresh_since
                && vehicle.capabilities.contains(Service::Tow)
        });
        filtered.push(started.elapsed());
        black_box(found);
    }
    let started = Instant::now();
    for (step, (vehicle, to)) in fleet.vehicles.iter().zip(&fleet.moved).enumerate() {
        index.apply([FleetUpdate::Position {
            id: vehicle.id,
            position: *to,
            fix_at: fleet.now + TimeDelta::milliseconds(step as i64),
        }]);
    }
    let updates_per_s = fleet.vehicles.len() as f64 / started.elapsed().as_secs_f64();
    (
        EngineResult {
            name: "fleet index",
            nearest: Some(latency(samples)),
            updates_per_s: Some(updates_per_s),
            load_s: Some(load_s),
            agreement: Some(1.0),
            radius_km: None,
            skipped: None,
        },
        latency(filtered),
        answers,
    )
}

/// The radius holding `REDIS_EXPECTED_IN_RADIUS` vehicles on average: the fleet's box
/// (lat 18–53, lon 73–135) is 21.5 million km².
fn redis_radius_km(vehicles: usize) -> f64 {
    let earth_km: f64 = 6371.0;
    let area_km2 = earth_km.powi(2)
        * (53f64.to_radians().sin() - 18f64.to_radians().sin())
        * 62f64.to_radians();
    (REDIS_EXPECTED_IN_RADIUS * area_km2 / (vehicles as f64 * std::f64::consts::PI)).sqrt()
}

async fn redis_engine(fleet: &Fleet, ours: &[Vec<VehicleId>]) -> EngineResult {
    let mut result = EngineResult {
        name: "Redis GEOSEARCH",
        ..Default::default()
    };
    let Ok(url) = std::env::var("REDIS_URL") else {
        result.skipped = Some("REDIS_URL is not set".into());
        return result;
    };
    let client = redis::Client::open(url).expect("a valid REDIS_URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let _: () = redis::cmd("DEL")
        .arg(REDIS_KEY)
        .query_async(&mut connection)
        .await
        .expect("DEL");
    let geoadd = |chunk: &[(VehicleId, LatLon)]| {
        let mut pipe = redis::pipe();
        let mut command = redis::cmd("GEOADD");
        command.arg(REDIS_KEY);
        for (id, position) in chunk {
            command
                .arg(position.lon())
                .arg(position.lat())
                .arg(id.to_string());
        }
        pipe.add_command(command).ignore();
        pipe
    };
    let initial: Vec<(VehicleId, LatLon)> =
        fleet.vehicles.iter().map(|v| (v.id, v.position)).collect();
    let started = Instant::now();
    for chunk in initial.chunks(BATCH) {
        let _: () = geoadd(chunk)
            .query_async(&mut connection)
            .await
            .expect("GEOADD");
    }
    result.load_s = Some(started.elapsed().as_secs_f64());
    let radius_km = redis_radius_km(fleet.vehicles.len());
    result.radius_km = Some(radius_km);
    let mut samples = Vec::with_capacity(fleet.queries.len());
    let mut answers = Vec::with_capacity(fleet.queries.len());
    for point in &fleet.queries {
        let started = Instant::now();
        let ids: Vec<String> = redis::cmd("GEOSEARCH")
            .arg(REDIS_KEY)
            .arg("FROMLONLAT")
            .arg(point.lon())
            .arg(point.lat())
            .arg("BYRADIUS")
            .arg(radius_km)
            .arg("km")
            .arg("ASC")
            .arg("COUNT")
            .arg(K)
            .query_async(&mut connection)
            .await
            .expect("GEOSEARCH");
        samples.push(started.elapsed());
        answers.push(
            ids.iter()
                .map(|id| VehicleId::from(id.parse::<uuid::Uuid>().expect("our ids")))
                .collect(),
        );
    }
    result.nearest = Some(latency(samples));
    result.agreement = Some(agreement(ours, &answers));
    let moved: Vec<(VehicleId, LatLon)> = fleet
        .vehicles
        .iter()
        .zip(&fleet.moved)
        .map(|(v, to)| (v.id, *to))
        .collect();
    let started = Instant::now();
    for chunk in moved.chunks(BATCH) {
        let _: () = geoadd(chunk)
            .query_async(&mut connection)
            .await
            .expect("GEOADD");
    }
    result.updates_per_s = Some(moved.len() as f64 / started.elapsed().as_secs_f64());
    let _: () = redis::cmd("DEL")
        .arg(REDIS_KEY)
        .query_async(&mut connection)
        .await
        .expect("DEL");
    result
}

async fn postgis_engine(fleet: &Fleet, ours: &[Vec<VehicleId>]) -> EngineResult {
    use sqlx::Connection;
    let mut result = EngineResult {
        name: "PostGIS KNN",
        ..Default::default()
    };
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => {
            result.skipped = Some("DATABASE_URL is not a PostgreSQL URL".into());
            return result;
        }
    };
    let mut db = sqlx::PgConnection::connect(&url)
        .await
        .expect("PostgreSQL answers");
    if let Err(error) = sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(&mut db)
        .await
    {
        result.skipped = Some(format!(
            "PostGIS is not installed ({error}); scripts/bench/anchors installs it"
        ));
        return result;
    }
    let ddl = [
        format!("DROP TABLE IF EXISTS {PG_TABLE}"),
        format!(
            "CREATE UNLOGGED TABLE {PG_TABLE} (id uuid PRIMARY KEY, geom geography(Point, 4326) NOT NULL)"
        ),
    ];
    for statement in &ddl {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut db)
            .await
            .expect("DDL");
    }
    let insert = format!(
        "INSERT INTO {PG_TABLE} (id, geom) \
         SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography \
         FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS t(id, lon, lat)"
    );
    let started = Instant::now();
    for chunk in fleet.vehicles.chunks(BATCH) {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|v| v.id.0).collect();
        let lons: Vec<f64> = chunk.iter().map(|v| v.position.lon()).collect();
        let lats: Vec<f64> = chunk.iter().map(|v| v.position.lat()).collect();
        sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(&ids)
            .bind(&lons)
            .bind(&lats)
            .execute(&mut db)
            .await
            .expect("INSERT");
    }
    for statement in [
        format!("CREATE INDEX {PG_TABLE}_geom ON {PG_TABLE} USING gist (geom)"),
        format!("ANALYZE {PG_TABLE}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut db)
            .await
            .expect("index");
    }
    result.load_s = Some(started.elapsed().as_secs_f64());
    let knn = format!(
        "SELECT id FROM {PG_TABLE} \
         ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography LIMIT {K}"
    );
    // Prepared once, as a pooled application would have it.
    let mut samples = Vec::with_capacity(fleet.queries.len());
    let mut answers = Vec::with_capacity(fleet.queries.len());
    for point in &fleet.queries {
        let started = Instant::now();
        let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(knn.clone()))
            .bind(point.lon())
            .bind(point.lat())
            .fetch_all(&mut db)
            .await
            .expect("KNN");
        samples.push(started.elapsed());
        answers.push(rows.into_iter().map(|(id,)| VehicleId::from(id)).collect());
    }
    result.nearest = Some(latency(samples));
    result.agreement = Some(agreement(ours, &answers));
    let update = format!(
        "UPDATE {PG_TABLE} AS f SET geom = ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography \
         FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS t(id, lon, lat) WHERE f.id = t.id"
    );
    let started = Instant::now();
    for (chunk, to) in fleet.vehicles.chunks(BATCH).zip(fleet.moved.chunks(BATCH)) {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|v| v.id.0).collect();
        let lons: Vec<f64> = to.iter().map(LatLon::lon).collect();
        let lats: Vec<f64> = to.iter().map(LatLon::lat).collect();
        sqlx::query(sqlx::AssertSqlSafe(update.clone()))
            .bind(&ids)
            .bind(&lons)
            .bind(&lats)
            .execute(&mut db)
            .await
            .expect("UPDATE");
    }
    result.updates_per_s = Some(fleet.vehicles.len() as f64 / started.elapsed().as_secs_f64());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {PG_TABLE}")))
        .execute(&mut db)
        .await
        .expect("DROP");
    result
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        println!("anchors: bench");
        return;
    }
    let measuring = benchmarking();
    let sizes: Vec<usize> = match std::env::var("RESCUE_ANCHOR_SIZES") {
        Ok(text) => text
            .split(',')
            .map(|size| size.trim().parse().expect("sizes are numbers"))
            .collect(),
        Err(_) if measuring => vec![10_000, 100_000, 1_000_000],
        Err(_) => vec![2_000],
    };
    let queries = if measuring { 2_000 } else { 50 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut report = Vec::new();
    println!("| vehicles | engine | k-nearest p50 | p99 | mean | updates/s | load | ids as ours |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        let fleet = Fleet::generate(size, queries);
        let (ours, filtered, answers) = index_engine(&fleet);
        let redis = runtime.block_on(redis_engine(&fleet, &answers));
        let postgis = runtime.block_on(postgis_engine(&fleet, &answers));
        for engine in [&ours, &redis, &postgis] {
            match (&engine.skipped, engine.nearest) {
                (Some(why), _) => println!("| {size} | {} | skipped: {why} |||||", engine.name),
                (None, Some(l)) => println!(
                    "| {size} | {}{} | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} | {:.2} s | {:.1} % |",
                    engine.name,
                    engine
                        .radius_km
                        .map_or(String::new(), |r| format!(" (BYRADIUS {r:.0} km)")),
                    l.p50_us,
                    l.p99_us,
                    l.mean_us,
                    engine.updates_per_s.unwrap_or_default(),
                    engine.load_s.unwrap_or_default(),
                    engine.agreement.unwrap_or_default() * 100.0
                ),
                (None, None) => {}
            }
        }
        println!(
            "| {size} | fleet index, dispatch filter | {:.1} µs | {:.1} µs | {:.1} µs | | | |",
            filtered.p50_us, filtered.p99_us, filtered.mean_us
        );
        let ratio = |other: &EngineResult| {
            other
                .nearest
                .zip(ours.nearest)
                .map(|(theirs, mine)| theirs.p50_us / mine.p50_us)
        };
        report.push(json!({
            "vehicles": size,
            "queries": queries,
            "k": K,
            "engines": [ours.json(), redis.json(), postgis.json()],
            "index_filtered": {"p50_us": filtered.p50_us, "p99_us": filtered.p99_us, "mean_us": filtered.mean_us},
            "ratio_p50_redis_over_index": ratio(&redis),
            "ratio_p50_postgis_over_index": ratio(&postgis),
        }));
    }
    for entry in &report {
        println!(
            "{} vehicles: k-nearest p50 Redis/index = {}, PostGIS/index = {}",
            entry["vehicles"],
            entry["ratio_p50_redis_over_index"]
                .as_f64()
                .map_or("n/a".into(), |r| format!("{r:.1}×")),
            entry["ratio_p50_postgis_over_index"]
                .as_f64()
                .map_or("n/a".into(), |r| format!("{r:.1}×")),
        );
    }
    let out = std::env::var("RESCUE_ANCHORS_OUT").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/anchors.json")
    });
    if measuring {
        std::fs::write(
            &out,
            serde_json::to_vec_pretty(&json!({"runs": report})).expect("JSON"),
        )
        .expect("write the report");
        println!("report: {out}");
    }
}
