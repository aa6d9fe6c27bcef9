//! The fleet index against the targets of issue 3 ("Speed"), and against Redis GEOSEARCH
//! over the same points in the same run.
//!
//! ```text
//! scripts/with-services cargo bench -p dispatcher --bench fleet_index
//! ```
//!
//! 100k vehicles spread uniformly over China (lat 18–53, lon 73–135, seeded). Half are
//! `available`, 40 % can tow, all fixes are fresh, so the dispatch filter (available, fresh,
//! can tow) rejects 80 % of them. Groups:
//!
//! - `nearest`: k=10 nearest passing the filter, on a freshly bulk-loaded index and on one
//!   that took 1M incremental moves (target ≤ 20 µs median);
//! - `update`: one moved vehicle per `apply`, single-threaded, right after a rebuild (the
//!   tree is rebuilt, untimed, every 10k updates) and after 1M incremental moves (target
//!   ≥ 200k updates/s);
//! - `rebuild`: snapshot, bulk load and swap of 100k vehicles;
//! - `redis`: `GEOSEARCH … BYRADIUS r km COUNT 10 ASC` over a real connection, and
//!   `COUNT 50` with the same filter applied by the client, as a dispatcher built on Redis
//!   would have to. Skipped, saying so, when `REDIS_URL` is not set.
//!
//! After criterion's report, a summary times each operation call by call and prints the
//! medians and the ours/Redis ratios.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use criterion::{BenchmarkId, Criterion, Throughput};
use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetUpdate, FleetVehicle};
use domain::{LatLon, ProviderId, Service, Timestamp, VehicleId, VehicleState};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

const SEED: u64 = 20_261_122;
const K: usize = 10;
/// How far the filtered search may reach; far enough never to cut a query short here.
const MAX_DISTANCE_M: f64 = 200_000.0;
const FIX_MAX_AGE: TimeDelta = TimeDelta::seconds(300);
/// The update benchmark "right after a rebuild" rebuilds (untimed) this often.
const UPDATES_BETWEEN_REBUILDS: u64 = 10_000;
const REDIS_KEY_PREFIX: &str = "rescue:bench:fleet_index";

/// Sizes: the issue's in a benchmark run, small ones when `cargo test --benches` only
/// checks that the benchmarks run.
struct Sizes {
    fleet: usize,
    queries: usize,
    incremental_updates: usize,
    summary_samples: usize,
}

impl Sizes {
    fn for_this_run(benchmarking: bool) -> Self {
        if benchmarking {
            Self {
                fleet: 100_000,
                queries: 1_000,
                incremental_updates: 1_000_000,
                summary_samples: 20_000,
            }
        } else {
            Self {
                fleet: 2_000,
                queries: 50,
                incremental_updates: 10_000,
                summary_samples: 0,
            }
        }
    }
}

/// Whether this is a measuring run (`cargo bench`), as criterion decides it.
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// The same fleet and query points for every group, ours and Redis.
struct Scenario {
    fleet: Vec<FleetVehicle>,
    queries: Vec<LatLon>,
    now: Timestamp,
}

fn random_position_in(rng: &mut StdRng, lat: (f64, f64), lon: (f64, f64)) -> LatLon {
    LatLon::new(
        rng.random_range(lat.0..lat.1),
        rng.random_range(lon.0..lon.1),
    )
    .expect("inside China")
}

impl Scenario {
    fn generate(sizes: &Sizes) -> Self {
        let mut rng = StdRng::seed_from_u64(SEED);
        let now: Timestamp = "2026-11-22T03:00:00Z".parse().expect("a valid instant");
        let providers: Vec<ProviderId> = (0..200)
            .map(|_| ProviderId::from(uuid_from(&mut rng)))
            .collect();
        let fleet = (0..sizes.fleet)
            .map(|_| {
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
                FleetVehicle {
                    id: VehicleId::from(uuid_from(&mut rng)),
                    provider: providers[rng.random_range(0..providers.len())],
                    position: random_position_in(&mut rng, (18.0, 53.0), (73.0, 135.0)),
                    fix_at: now - TimeDelta::seconds(rng.random_range(0..120)),
                    state,
                    capabilities,
                }
            })
            .collect();
        // Requests come from inside the covered area: 1° inside the fleet's box, so that
        // every query has vehicles all around it.
        let queries = (0..sizes.queries)
            .map(|_| random_position_in(&mut rng, (19.0, 52.0), (74.0, 134.0)))
            .collect();
        Self {
            fleet,
            queries,
            now,
        }
    }

    /// The dispatch filter: available, fresh, able to tow. Rejects about 80 % of vehicles.
    fn dispatchable(&self) -> impl Fn(&FleetVehicle) -> bool + Copy + use<> {
        let fresh_since = self.now - FIX_MAX_AGE;
        move |vehicle: &FleetVehicle| {
            vehicle.state == VehicleState::Available
                && vehicle.fix_at >= fresh_since
                && vehicle.capabilities.contains(Service::Tow)
        }
    }

    fn query(&self, n: usize) -> LatLon {
        self.queries[n % self.queries.len()]
    }
}

fn uuid_from(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Moves every vehicle by a short random walk step (~1 km) `count` times in total, as a
/// day of fixes would, leaving the tree as incremental updates leave it.
fn apply_incremental_moves(index: &FleetIndex, scenario: &Scenario, count: usize) {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let mut positions: Vec<LatLon> = scenario
        .fleet
        .iter()
        .map(|vehicle| vehicle.position)
        .collect();
    for step in 0..count {
        let which = rng.random_range(0..scenario.fleet.len());
        let from = positions[which];
        let to = LatLon::new(
            (from.lat() + rng.random_range(-0.01..0.01)).clamp(18.0, 53.0),
            (from.lon() + rng.random_range(-0.01..0.01)).clamp(73.0, 135.0),
        )
        .expect("inside China");
        positions[which] = to;
        let fix_at = scenario.now + TimeDelta::milliseconds(step as i64);
        index.apply([FleetUpdate::Position {
            id: scenario.fleet[which].id,
            position: to,
            fix_at,
        }]);
    }
}

/// An endless stream of realistic moves: vehicles in shuffled order, each hopping between
/// where it is and a point up to ~500 m away, with ever later fixes.
struct Moves {
    order: Vec<(VehicleId, LatLon, LatLon)>,
    next: usize,
    fix_at: Timestamp,
}

impl Moves {
    fn over(index: &FleetIndex, scenario: &Scenario) -> Self {
        let mut rng = StdRng::seed_from_u64(SEED + 2);
        let mut order: Vec<(VehicleId, LatLon, LatLon)> = scenario
            .fleet
            .iter()
            .map(|vehicle| {
                let here = index.get(vehicle.id).expect("in the index").position;
                let there = LatLon::new(
                    (here.lat() + rng.random_range(-0.005..0.005)).clamp(18.0, 53.0),
                    (here.lon() + rng.random_range(-0.005..0.005)).clamp(73.0, 135.0),
                )
                .expect("inside China");
                (vehicle.id, here, there)
            })
            .collect();
        order.shuffle(&mut rng);
        // Later than any fix the index holds, or every update would be refused as stale.
        let latest = scenario
            .fleet
            .iter()
            .filter_map(|vehicle| index.get(vehicle.id))
            .map(|vehicle| vehicle.fix_at)
            .max();
        Self {
            order,
            next: 0,
            fix_at: latest.unwrap_or(scenario.now),
        }
    }

    fn next_update(&mut self) -> FleetUpdate {
        let (id, here, there) = self.order[self.next % self.order.len()];
        let outbound = (self.next / self.order.len()).is_multiple_of(2);
        self.next += 1;
        self.fix_at += TimeDelta::milliseconds(1);
        FleetUpdate::Position {
            id,
            position: if outbound { there } else { here },
            fix_at: self.fix_at,
        }
    }
}

/// Per-call timings, for medians.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn time<T>(&mut self, operation: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = operation();
        self.0.push(started.elapsed());
        result
    }

    fn percentile(&mut self, fraction: f64) -> Duration {
        self.0.sort_unstable();
        let last = self.0.len().saturating_sub(1);
        self.0
            .get((last as f64 * fraction).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    fn median(&mut self) -> Duration {
        self.percentile(0.5)
    }
}

fn micros(duration: Duration) -> String {
    format!("{:>9.2} µs", duration.as_secs_f64() * 1e6)
}

fn bench_nearest(criterion: &mut Criterion, scenario: &Scenario, indexes: &[(&str, &FleetIndex)]) {
    let filter = scenario.dispatchable();
    let mut group = criterion.benchmark_group("nearest");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for &(label, index) in indexes {
        let mut n = 0;
        group.bench_function(
            BenchmarkId::new("k10_filter_rejecting_80pct", label),
            |bencher| {
                bencher.iter(|| {
                    n += 1;
                    black_box(index.nearest(scenario.query(n), K, MAX_DISTANCE_M, filter))
                })
            },
        );
    }
    group.finish();
}

fn bench_update(
    criterion: &mut Criterion,
    scenario: &Scenario,
    fresh: &FleetIndex,
    worn: &FleetIndex,
) {
    let mut group = criterion.benchmark_group("update");
    group.throughput(Throughput::Elements(1));
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut moves = Moves::over(fresh, scenario);
    group.bench_function(
        BenchmarkId::new("moved_vehicle", "after_rebuild"),
        |bencher| {
            bencher.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iterations {
                    fresh.rebuild();
                    let chunk = UPDATES_BETWEEN_REBUILDS.min(iterations - done);
                    let started = Instant::now();
                    for _ in 0..chunk {
                        let outcome = fresh.apply([moves.next_update()]);
                        assert_eq!(outcome.applied, 1, "a move, not a stale fix");
                    }
                    timed += started.elapsed();
                    done += chunk;
                }
                timed
            })
        },
    );
    let mut moves = Moves::over(worn, scenario);
    group.bench_function(
        BenchmarkId::new("moved_vehicle", "after_1m_updates"),
        |bencher| {
            bencher.iter(|| {
                let outcome = worn.apply([moves.next_update()]);
                assert_eq!(outcome.applied, 1, "a move, not a stale fix");
            })
        },
    );
    group.finish();
}

fn bench_rebuild(criterion: &mut Criterion, index: &FleetIndex) {
    let mut group = criterion.benchmark_group("rebuild");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    group.bench_function(
        BenchmarkId::new("bulk_load_and_swap", index.len()),
        |bencher| bencher.iter(|| black_box(index.rebuild())),
    );
    group.finish();
}

/// Redis holding the same points, through one ordinary client connection.
struct RedisFleet {
    connection: redis::Connection,
    key: String,
    /// What a Redis-based dispatcher would keep beside the geo set to filter on.
    attributes: HashMap<String, FleetVehicle>,
    /// Radii at which every query point has at least 10, and at least 50, members.
    radius_10_km: f64,
    radius_50_km: f64,
}

impl RedisFleet {
    /// Connects and loads the fleet, or says why the comparison is skipped.
    fn connect(scenario: &Scenario, fresh: &FleetIndex) -> Option<Self> {
        let Ok(url) = std::env::var("REDIS_URL") else {
            println!(
                "\nREDIS_URL is not set: skipping the Redis GEOSEARCH comparison. Run \
                 `scripts/with-services cargo bench -p dispatcher --bench fleet_index` to \
                 include it.\n"
            );
            return None;
        };
        let client = redis::Client::open(url.as_str())
            .unwrap_or_else(|error| panic!("REDIS_URL={url} is not a Redis URL: {error}"));
        let mut connection = client
            .get_connection()
            .unwrap_or_else(|error| panic!("cannot connect to REDIS_URL={url}: {error}"));
        let key = format!("{REDIS_KEY_PREFIX}:{}", std::process::id());
        let started = Instant::now();
        redis::cmd("DEL")
            .arg(&key)
            .exec(&mut connection)
            .expect("DEL");
        for chunk in scenario.fleet.chunks(10_000) {
            let mut pipeline = redis::pipe();
            for members in chunk.chunks(500) {
                let command = pipeline.cmd("GEOADD").arg(&key);
                for vehicle in members {
                    command
                        .arg(vehicle.position.lon())
                        .arg(vehicle.position.lat())
                        .arg(vehicle.id.to_string());
                }
                command.ignore();
            }
            pipeline.exec(&mut connection).expect("GEOADD pipeline");
        }
        let loaded: usize = redis::cmd("ZCARD")
            .arg(&key)
            .query(&mut connection)
            .expect("ZCARD");
        assert_eq!(loaded, scenario.fleet.len(), "Redis holds every vehicle");
        println!(
            "redis: loaded {loaded} points with GEOADD pipelines in {:.2?}",
            started.elapsed()
        );

        let radius_for = |count: usize| -> f64 {
            let farthest_m = scenario
                .queries
                .iter()
                .map(|query| {
                    fresh.nearest(*query, count, f64::INFINITY, |_| true)[count - 1].distance_m
                })
                .fold(0.0, f64::max);
            (farthest_m / 1_000.0).ceil() + 1.0
        };
        let attributes = scenario
            .fleet
            .iter()
            .map(|vehicle| (vehicle.id.to_string(), *vehicle))
            .collect();
        Some(Self {
            connection,
            key,
            attributes,
            radius_10_km: radius_for(10),
            radius_50_km: radius_for(50),
        })
    }

    fn geosearch(&mut self, point: LatLon, radius_km: f64, count: usize) -> Vec<String> {
        redis::cmd("GEOSEARCH")
            .arg(&self.key)
            .arg("FROMLONLAT")
            .arg(point.lon())
            .arg(point.lat())
            .arg("BYRADIUS")
            .arg(radius_km)
            .arg("km")
            .arg("COUNT")
            .arg(count)
            .arg("ASC")
            .query(&mut self.connection)
            .expect("GEOSEARCH")
    }

    /// COUNT 50 and the dispatch filter on the client: what it takes to get (about) ten
    /// candidates out of Redis when 80 % are filtered out.
    fn geosearch_filtered(
        &mut self,
        point: LatLon,
        filter: impl Fn(&FleetVehicle) -> bool,
    ) -> Vec<FleetVehicle> {
        let radius_km = self.radius_50_km;
        let members = self.geosearch(point, radius_km, 50);
        members
            .iter()
            .filter_map(|member| self.attributes.get(member))
            .filter(|vehicle| filter(vehicle))
            .take(K)
            .copied()
            .collect()
    }

    fn bench(&mut self, criterion: &mut Criterion, scenario: &Scenario) {
        let filter = scenario.dispatchable();
        let mut group = criterion.benchmark_group("redis");
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let (radius_10_km, mut n) = (self.radius_10_km, 0);
        group.bench_function(
            BenchmarkId::new("geosearch_count10", format!("{radius_10_km}km")),
            |bencher| {
                bencher.iter(|| {
                    n += 1;
                    black_box(self.geosearch(scenario.query(n), radius_10_km, 10))
                })
            },
        );
        let radius_50_km = self.radius_50_km;
        group.bench_function(
            BenchmarkId::new(
                "geosearch_count50_client_filter",
                format!("{radius_50_km}km"),
            ),
            |bencher| {
                bencher.iter(|| {
                    n += 1;
                    black_box(self.geosearch_filtered(scenario.query(n), filter))
                })
            },
        );
        group.finish();
    }
}

impl Drop for RedisFleet {
    fn drop(&mut self) {
        let _ = redis::cmd("DEL").arg(&self.key).exec(&mut self.connection);
    }
}

/// Query latencies seen by a reader thread while another thread runs `work`.
fn reads_during<T>(
    index: &FleetIndex,
    scenario: &Scenario,
    work: impl FnOnce() -> T,
) -> (Samples, T) {
    let filter = scenario.dispatchable();
    let working = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut samples = Samples::default();
            let mut n = 0;
            while working.load(Ordering::Acquire) {
                n += 1;
                samples.time(|| {
                    black_box(index.nearest(scenario.query(n), K, MAX_DISTANCE_M, filter))
                });
            }
            samples
        });
        let result = work();
        working.store(false, Ordering::Release);
        (reader.join().expect("the reader finishes"), result)
    })
}

fn summary(
    scenario: &Scenario,
    fresh: &FleetIndex,
    worn: &FleetIndex,
    redis: Option<&mut RedisFleet>,
    samples: usize,
) {
    let filter = scenario.dispatchable();
    let passing = scenario
        .fleet
        .iter()
        .filter(|vehicle| filter(vehicle))
        .count();
    println!(
        "\n=== fleet index summary: {} vehicles over China, seed {SEED} ===",
        scenario.fleet.len()
    );
    println!(
        "filter (available, fresh, tow) passes {:.1} % of vehicles; per-call medians over {samples} calls",
        100.0 * passing as f64 / scenario.fleet.len() as f64
    );

    let mut nearest_fresh = Samples::default();
    let mut short = 0;
    for n in 0..samples {
        let found =
            nearest_fresh.time(|| fresh.nearest(scenario.query(n), K, MAX_DISTANCE_M, filter));
        short += usize::from(found.len() < K);
    }
    let mut nearest_worn = Samples::default();
    for n in 0..samples {
        nearest_worn.time(|| black_box(worn.nearest(scenario.query(n), K, MAX_DISTANCE_M, filter)));
    }
    let ours = nearest_fresh.median();
    println!(
        "nearest k=10, filter −80 %, bulk-loaded      median {}  p99 {}  (target ≤ 20 µs; {short} queries found < 10)",
        micros(ours),
        micros(nearest_fresh.percentile(0.99))
    );
    println!(
        "nearest k=10, filter −80 %, after 1M updates median {}  p99 {}",
        micros(nearest_worn.median()),
        micros(nearest_worn.percentile(0.99))
    );

    for (label, index) in [("after rebuild   ", fresh), ("after 1M updates", worn)] {
        fresh.rebuild();
        let mut moves = Moves::over(index, scenario);
        let mut updates = Samples::default();
        for _ in 0..samples {
            let update = moves.next_update();
            let outcome = updates.time(|| index.apply([update]));
            assert_eq!(outcome.applied, 1, "a move, not a stale fix");
        }
        let median = updates.median();
        println!(
            "update (moved vehicle), {label}    median {}  = {:>7.0}k updates/s (target ≥ 200k/s)",
            micros(median),
            1e-3 / median.as_secs_f64()
        );
    }

    const REBUILDS: usize = 20;
    let (mut reads, mut reports) = reads_during(fresh, scenario, || {
        (0..REBUILDS).map(|_| fresh.rebuild()).collect::<Vec<_>>()
    });
    reports.sort_by_key(|report| report.total);
    let report = reports[reports.len() / 2];
    let longest_swap = reports
        .iter()
        .map(|report| report.swap_lock_held)
        .max()
        .unwrap_or_default();
    println!(
        "rebuild of {} vehicles                        median {:>9.2} ms (snapshot {:.2} ms in chunks, bulk load {:.2} ms, swap under the write lock {:.3} ms, longest {:.3} ms)",
        report.vehicles,
        report.total.as_secs_f64() * 1e3,
        report.snapshot.as_secs_f64() * 1e3,
        report.bulk_load.as_secs_f64() * 1e3,
        report.swap_lock_held.as_secs_f64() * 1e3,
        longest_swap.as_secs_f64() * 1e3,
    );
    // The same reader beside an idle thread, then beside a thread applying fixes, for
    // comparison: on two shared cores, the scheduler alone makes a tail.
    let busy_for = report.total * REBUILDS as u32;
    let (mut idle_reads, ()) = reads_during(fresh, scenario, || std::thread::sleep(busy_for));
    let mut moves = Moves::over(fresh, scenario);
    let mut ingest = |batch_every: Duration| {
        let until = Instant::now() + busy_for;
        let mut next_batch = Instant::now();
        while Instant::now() < until {
            let batch: Vec<FleetUpdate> = (0..100).map(|_| moves.next_update()).collect();
            fresh.apply(batch);
            // Sleep rather than spin: the HTTP handlers that feed the index in production
            // leave the core to others between requests, and there are only two cores.
            next_batch += batch_every;
            if let Some(idle) = next_batch.checked_duration_since(Instant::now()) {
                std::thread::sleep(idle);
            }
        }
    };
    let (mut paced_reads, ()) =
        reads_during(fresh, scenario, || ingest(Duration::from_micros(500)));
    let (mut flat_out_reads, ()) = reads_during(fresh, scenario, || ingest(Duration::ZERO));
    for (label, samples) in [
        ("nearest, nothing else running", &mut idle_reads),
        ("nearest while rebuilding", &mut reads),
        (
            "nearest while 200k fixes/s arrive, 100/batch",
            &mut paced_reads,
        ),
        (
            "nearest while a writer applies fixes flat out",
            &mut flat_out_reads,
        ),
    ] {
        println!(
            "{label:<47} median {}  p99 {}  max {}",
            micros(samples.median()),
            micros(samples.percentile(0.99)),
            micros(samples.percentile(1.0))
        );
    }

    let Some(redis) = redis else {
        println!("redis: skipped (REDIS_URL not set)");
        return;
    };
    let mut count_10 = Samples::default();
    let mut members_10 = 0;
    for n in 0..samples {
        members_10 += count_10
            .time(|| redis.geosearch(scenario.query(n), redis.radius_10_km, 10))
            .len();
    }
    let mut count_50 = Samples::default();
    let mut short_50 = 0;
    for n in 0..samples {
        let found = count_50.time(|| redis.geosearch_filtered(scenario.query(n), filter));
        short_50 += usize::from(found.len() < K);
    }
    let (redis_10, redis_50) = (count_10.median(), count_50.median());
    println!(
        "redis GEOSEARCH BYRADIUS {} km COUNT 10 ASC    median {}  p99 {}  ({:.1} members per reply; unfiltered)",
        redis.radius_10_km,
        micros(redis_10),
        micros(count_10.percentile(0.99)),
        members_10 as f64 / samples as f64
    );
    println!(
        "redis GEOSEARCH BYRADIUS {} km COUNT 50 ASC + client filter  median {}  p99 {}  ({short_50} of {samples} queries got < 10 after filtering)",
        redis.radius_50_km,
        micros(redis_50),
        micros(count_50.percentile(0.99))
    );
    for (label, theirs) in [("COUNT 10", redis_10), ("COUNT 50 + filter", redis_50)] {
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        println!(
            "ratio ours/Redis {label:<18} {ratio:.3}  (ours is {:.1}× faster)",
            1.0 / ratio
        );
    }
}

fn main() {
    let benchmarking = benchmarking();
    let sizes = Sizes::for_this_run(benchmarking);
    let mut criterion = Criterion::default().configure_from_args();

    let scenario = Scenario::generate(&sizes);
    let started = Instant::now();
    let fresh = FleetIndex::from_vehicles(scenario.fleet.iter().copied());
    println!(
        "bulk load of {} vehicles: {:.2?}",
        fresh.len(),
        started.elapsed()
    );
    let worn = FleetIndex::from_vehicles(scenario.fleet.iter().copied());
    let started = Instant::now();
    apply_incremental_moves(&worn, &scenario, sizes.incremental_updates);
    println!(
        "{} incremental moves: {:.2?}",
        sizes.incremental_updates,
        started.elapsed()
    );
    let mut redis = RedisFleet::connect(&scenario, &fresh);

    bench_nearest(
        &mut criterion,
        &scenario,
        &[("after_bulk_load", &fresh), ("after_1m_updates", &worn)],
    );
    bench_update(&mut criterion, &scenario, &fresh, &worn);
    bench_rebuild(&mut criterion, &fresh);
    if let Some(redis) = redis.as_mut() {
        redis.bench(&mut criterion, &scenario);
    }
    criterion.final_summary();

    if benchmarking {
        summary(
            &scenario,
            &fresh,
            &worn,
            redis.as_mut(),
            sizes.summary_samples,
        );
    }
}
