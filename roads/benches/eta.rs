//! One customer × 50 trucks, road time and distance, on every corpus extract and on a
//! synthetic network of about 1M routing nodes; with preparation, cache load and memory.
//!
//! ```text
//! cargo bench -p roads --bench eta
//! ROADS_BENCH_SYNTHETIC_NODES=0 cargo bench -p roads --bench eta   # corpus only
//! ```
//!
//! Each city gets 200 seeded queries: a customer and 50 trucks at random road points (a
//! random piece of the graph, a random point on it, moved up to 25 m off the road). The
//! baseline in the same run is the same question asked one truck at a time (50 calls,
//! each a backward and a forward search on the same hierarchy), which is what dispatch
//! would do without the one-to-many search.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use domain::LatLon;
use roads::synthetic::{GridCity, SplitMix64};
use roads::{Origin, Profile, RoadNetwork};

const TRUCKS: usize = 50;
const QUERIES: usize = 200;

/// A random point near a random road of the network.
fn road_point(network: &RoadNetwork, rng: &mut SplitMix64) -> LatLon {
    let graph = network.graph();
    loop {
        let piece = rng.below(graph.pieces.len()) as u32;
        let points = graph.piece_points(piece);
        let index = rng.below(points.len());
        let [lat, lon] = points[index];
        let (dlat, dlon) = ((rng.unit() - 0.5) * 0.0009, (rng.unit() - 0.5) * 0.0009);
        if let Ok(point) = LatLon::new(lat + dlat * 0.5, lon + dlon * 0.5)
            && network.snap(point, None).is_some()
        {
            return point;
        }
    }
}

struct Query {
    customer: LatLon,
    trucks: Vec<Origin>,
}

fn queries(network: &RoadNetwork, seed: u64) -> Vec<Query> {
    let mut rng = SplitMix64(seed);
    (0..QUERIES)
        .map(|_| Query {
            customer: road_point(network, &mut rng),
            trucks: (0..TRUCKS)
                .map(|_| Origin::at(road_point(network, &mut rng)))
                .collect(),
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn extract(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.osm.pbf"))
}

struct Row {
    name: String,
    edges: usize,
    prepare: Duration,
    cache_load: Option<Duration>,
    memory_mb: f64,
    ours: Duration,
    baseline: Duration,
}

fn measure(
    c: &mut Criterion,
    name: &str,
    network: &RoadNetwork,
    prepare: Duration,
    cache_load: Option<Duration>,
) -> Row {
    let queries = queries(network, 0x0e7a ^ network.graph().edges.len() as u64);
    let mut group = c.benchmark_group(format!("eta_{name}"));
    group.sample_size(20);
    let mut next = 0;
    group.bench_function("one_customer_50_trucks", |b| {
        b.iter(|| {
            let query = &queries[next % queries.len()];
            next += 1;
            black_box(network.etas_to(query.customer, &query.trucks))
        })
    });
    group.finish();
    let ours = median(
        queries
            .iter()
            .map(|query| {
                let started = Instant::now();
                black_box(network.etas_to(query.customer, &query.trucks));
                started.elapsed()
            })
            .collect(),
    );
    let baseline = median(
        queries
            .iter()
            .map(|query| {
                let started = Instant::now();
                for truck in &query.trucks {
                    black_box(network.etas_to(query.customer, std::slice::from_ref(truck)));
                }
                started.elapsed()
            })
            .collect(),
    );
    Row {
        name: name.to_owned(),
        edges: network.stats().edges,
        prepare,
        cache_load,
        memory_mb: network.stats().memory_bytes as f64 / 1e6,
        ours,
        baseline,
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    let cache = std::env::temp_dir().join(format!("roads-bench-{}", std::process::id()));
    for city in ["helsinki", "kouvola", "monaco", "andorra", "liechtenstein"] {
        let path = extract(city);
        let started = Instant::now();
        let network = RoadNetwork::load(&path, &Profile::default(), Some(&cache)).expect("loads");
        let prepare = started.elapsed();
        let started = Instant::now();
        let cached = RoadNetwork::load(&path, &Profile::default(), Some(&cache)).expect("loads");
        let cache_load = started.elapsed();
        assert!(cached.stats().from_cache);
        rows.push(measure(&mut c, city, &cached, prepare, Some(cache_load)));
        drop(network);
    }
    let _ = std::fs::remove_dir_all(&cache);
    let synthetic: usize = std::env::var("ROADS_BENCH_SYNTHETIC_NODES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000);
    if synthetic > 0 {
        let city = GridCity::with_routing_nodes(synthetic);
        let started = Instant::now();
        let network = RoadNetwork::from_extract(
            &city.extract(),
            &Profile::default(),
            Path::new("synthetic-grid"),
        )
        .expect("the synthetic city builds");
        let prepare = started.elapsed();
        rows.push(measure(
            &mut c,
            &format!("synthetic_{}k", synthetic / 1000),
            &network,
            prepare,
            None,
        ));
    }
    c.final_summary();
    println!(
        "\n| network | routing nodes | prepare | cache load | memory | 1 × {TRUCKS} one-to-many (median) | {TRUCKS} × 1-to-1 (median) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} s | {} | {:.1} MB | {:.3} ms | {:.3} ms | {:.1}× |",
            row.name,
            row.edges,
            row.prepare.as_secs_f64(),
            row.cache_load
                .map(|load| format!("{:.0} ms", load.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "–".into()),
            row.memory_mb,
            row.ours.as_secs_f64() * 1000.0,
            row.baseline.as_secs_f64() * 1000.0,
            row.baseline.as_secs_f64() / row.ours.as_secs_f64(),
        );
    }
}
