//! The road network on the real extracts of `tests/data` (OpenStreetMap, ODbL).

use std::path::{Path, PathBuf};

use domain::LatLon;
use roads::synthetic::SplitMix64;
use roads::{Origin, Profile, RoadError, RoadNetwork, reference};

const CITIES: [&str; 5] = ["helsinki", "kouvola", "monaco", "andorra", "liechtenstein"];

fn extract(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.osm.pbf"))
}

fn load(name: &str) -> RoadNetwork {
    RoadNetwork::load(&extract(name), &Profile::default(), None).expect("the extract loads")
}

/// 10,000 pairs per city (100 sources × 100 targets): the hierarchy's weight equals plain
/// Dijkstra's on the same graph, exactly, and its path is a real path of that weight.
#[test]
fn the_hierarchy_equals_dijkstra_on_every_corpus_city() {
    for city in CITIES {
        let network = load(city);
        let graph = network.graph();
        let edges = graph.edges.len();
        assert!(edges > 100, "{city}: {edges} edges");
        let mut rng = SplitMix64(0x5eed ^ edges as u64);
        let sources: Vec<u32> = (0..100).map(|_| rng.below(edges) as u32).collect();
        let targets: Vec<u32> = (0..100).map(|_| rng.below(edges) as u32).collect();
        let dijkstra: Vec<Vec<u64>> = sources
            .iter()
            .map(|source| reference::weights_from(graph, *source))
            .collect();
        let mut checked_paths = 0;
        for target in &targets {
            let answers = network.hierarchy_weights(&sources, *target);
            for (index, answer) in answers.iter().enumerate() {
                let expected = dijkstra[index][*target as usize];
                // The network keeps one strongly connected component: all pairs connect.
                assert_ne!(expected, u64::MAX, "{city}: {} → {target}", sources[index]);
                let (weight, path) = answer
                    .as_ref()
                    .unwrap_or_else(|| panic!("{city}: no path {} → {target}", sources[index]));
                assert_eq!(
                    *weight, expected,
                    "{city}: {} → {target}: hierarchy {weight}, Dijkstra {expected}",
                    sources[index]
                );
                assert_eq!(path.first(), Some(&sources[index]));
                assert_eq!(path.last(), Some(target));
                let mut sum = 0u64;
                for pair in path.windows(2) {
                    let arc = graph
                        .arcs_from(pair[0])
                        .iter()
                        .filter(|(to, _)| *to == pair[1])
                        .map(|(_, weight)| u64::from(*weight))
                        .min()
                        .unwrap_or_else(|| panic!("{city}: no arc {} → {}", pair[0], pair[1]));
                    sum += arc;
                }
                assert_eq!(sum, *weight, "{city}: the path's arcs add up to its weight");
                checked_paths += 1;
            }
        }
        assert_eq!(checked_paths, 10_000);
    }
}

#[test]
fn every_city_loads_with_its_largest_component_and_reports_its_size() {
    for city in CITIES {
        let network = load(city);
        let stats = network.stats();
        assert!(stats.edges > 0 && stats.arcs > 0, "{city}: {stats:?}");
        assert!(stats.memory_bytes > 0);
        assert!(!stats.from_cache);
        assert!(stats.build.ways > 0);
    }
}

/// The road is longer than the straight line, and routes arrive where they were asked.
#[test]
fn monaco_road_distances_are_longer_than_the_straight_line() {
    let network = load("monaco");
    let customer = LatLon::new(43.7384, 7.4246).unwrap(); // Monaco-Ville, on the Rock
    let trucks = [
        LatLon::new(43.7311, 7.4197).unwrap(), // Fontvieille
        LatLon::new(43.7400, 7.4270).unwrap(), // across the harbour mouth
        LatLon::new(43.7500, 7.4380).unwrap(), // Larvotto
    ];
    let origins: Vec<Origin> = trucks.iter().copied().map(Origin::at).collect();
    let etas = network.etas_to(customer, &origins);
    for (truck, eta) in trucks.iter().zip(&etas) {
        let eta = eta.expect("every truck reaches the customer");
        let straight = truck.distance_m(&customer);
        assert!(
            eta.distance_m >= straight * 0.98,
            "road {} m vs straight {straight} m",
            eta.distance_m
        );
        assert!(eta.time_s > 0.0 && eta.time_s.is_finite());
        let route = network.route(Origin::at(*truck), customer).unwrap();
        assert!((route.time_s - eta.time_s).abs() < 1e-6);
        let last = route.points.last().unwrap();
        assert!(last.distance_m(&customer) < 200.0);
        let drawn: f64 = route
            .points
            .windows(2)
            .map(|p| p[0].distance_m(&p[1]))
            .sum();
        assert!(
            (drawn - route.distance_m).abs() < 1.0 + route.distance_m * 0.01,
            "the polyline is {drawn} m, the route {} m",
            route.distance_m
        );
    }
}

/// On every one-way piece long enough: driving along it is the direct stretch, driving
/// against it means going around.
#[test]
fn one_way_streets_are_honoured_on_the_corpus() {
    let network = load("monaco");
    let graph = network.graph();
    let mut checked = 0;
    for piece in &graph.pieces {
        if !(piece.forward.is_some() && piece.backward.is_none() && piece.length_m > 120.0) {
            continue;
        }
        let points = &graph.points
            [piece.first_point as usize..(piece.first_point + piece.num_points) as usize];
        // The point `t` of the way along the piece.
        let at = |t: f64| {
            let goal = t * piece.length_m;
            let mut walked = 0.0;
            for pair in points.windows(2) {
                let step =
                    roads::geometry::haversine_m(pair[0][0], pair[0][1], pair[1][0], pair[1][1]);
                if walked + step >= goal && step > 0.0 {
                    let f = (goal - walked) / step;
                    return LatLon::new(
                        pair[0][0] + (pair[1][0] - pair[0][0]) * f,
                        pair[0][1] + (pair[1][1] - pair[0][1]) * f,
                    )
                    .unwrap();
                }
                walked += step;
            }
            let last = points[points.len() - 1];
            LatLon::new(last[0], last[1]).unwrap()
        };
        let (upstream, downstream) = (at(0.2), at(0.8));
        let (Some(a), Some(b)) = (network.snap(upstream, None), network.snap(downstream, None))
        else {
            continue;
        };
        if a.piece != b.piece {
            continue; // another road is nearer than this one
        }
        let along = network.etas_to(downstream, &[Origin::at(upstream)])[0].unwrap();
        let against = network.etas_to(upstream, &[Origin::at(downstream)])[0].unwrap();
        let stretch = 0.6 * piece.length_m;
        assert!(
            (along.distance_m - stretch).abs() < 0.02 * stretch + 2.0,
            "along: {} m for a {stretch} m stretch",
            along.distance_m
        );
        assert!(
            against.distance_m > stretch + 10.0,
            "against the one-way: {} m for a {stretch} m stretch",
            against.distance_m
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} one-way pieces checked");
}

#[test]
fn a_point_far_from_any_road_does_not_snap() {
    let network = load("monaco");
    let at_sea = LatLon::new(43.70, 7.47).unwrap();
    let on_land = LatLon::new(43.7384, 7.4246).unwrap();
    assert_eq!(network.snap(at_sea, None), None);
    assert_eq!(network.etas_to(at_sea, &[Origin::at(on_land)]), vec![None]);
    assert_eq!(network.etas_to(on_land, &[Origin::at(at_sea)]), vec![None]);
    assert!(network.route(Origin::at(at_sea), on_land).is_none());
    let tight = load("monaco").with_snap_max_m(0.5);
    let near = LatLon::new(43.7384, 7.4246).unwrap();
    if let Some(snap) = tight.snap(near, None) {
        assert!(snap.distance_m <= 0.5);
    }
}

#[test]
fn the_prepared_network_is_cached_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = extract("kouvola");
    let first = RoadNetwork::load(&path, &Profile::default(), Some(dir.path())).unwrap();
    assert!(!first.stats().from_cache);
    let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(cached.len(), 1, "one cache file");
    let second = RoadNetwork::load(&path, &Profile::default(), Some(dir.path())).unwrap();
    assert!(second.stats().from_cache);
    let customer = LatLon::new(60.53, 26.95).unwrap();
    let trucks = [
        Origin::at(LatLon::new(60.525, 26.94).unwrap()),
        Origin::at(LatLon::new(60.535, 26.96).unwrap()),
    ];
    assert_eq!(
        first.etas_to(customer, &trucks),
        second.etas_to(customer, &trucks)
    );
    // Another profile is another cache entry.
    let mut slower = Profile::default();
    slower.speeds.insert("residential".into(), 20.0);
    let third = RoadNetwork::load(&path, &slower, Some(dir.path())).unwrap();
    assert!(!third.stats().from_cache);
    // A damaged cache is prepared again, not trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap().path();
        let bytes = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
    }
    let fourth = RoadNetwork::load(&path, &Profile::default(), Some(dir.path())).unwrap();
    assert!(!fourth.stats().from_cache);
    assert_eq!(
        first.etas_to(customer, &trucks),
        fourth.etas_to(customer, &trucks)
    );
}

fn load_error(path: &Path, profile: &Profile) -> String {
    match RoadNetwork::load(path, profile, None) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(error @ RoadError::Network { .. }) => error.to_string(),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

#[test]
fn bad_files_stop_with_an_error_naming_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.osm.pbf");
    let error = load_error(&missing, &Profile::default());
    assert!(error.contains("missing.osm.pbf"), "{error}");

    let empty = dir.path().join("empty.osm.pbf");
    std::fs::write(&empty, b"").unwrap();
    let error = load_error(&empty, &Profile::default());
    assert!(
        error.contains("empty.osm.pbf") && error.contains("empty"),
        "{error}"
    );

    let text = dir.path().join("notes.osm.pbf");
    std::fs::write(&text, b"this is not a protocol buffer at all\n").unwrap();
    let error = load_error(&text, &Profile::default());
    assert!(
        error.contains("notes.osm.pbf") && error.contains("PBF"),
        "{error}"
    );

    let bytes = std::fs::read(extract("monaco")).unwrap();
    let truncated = dir.path().join("truncated.osm.pbf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let error = load_error(&truncated, &Profile::default());
    assert!(error.contains("truncated.osm.pbf"), "{error}");

    let mut nothing = Profile::default();
    nothing.speeds.clear();
    nothing.speeds.insert("raceway".into(), 100.0);
    let error = load_error(&extract("kouvola"), &nothing);
    assert!(
        error.contains("kouvola.osm.pbf") && error.contains("drivable"),
        "{error}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// No coordinate, however odd, makes a query panic, and whatever answers is a number.
    #[test]
    fn any_coordinates_are_answered_without_panicking(
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        near_lat in 43.70f64..43.78,
        near_lon in 7.35f64..7.50,
        heading in proptest::option::of(-720.0f64..720.0),
    ) {
        let network = monaco();
        let far = LatLon::new(lat, lon).unwrap();
        let near = LatLon::new(near_lat, near_lon).unwrap();
        let origins = [
            Origin { position: far, heading_deg: heading },
            Origin { position: near, heading_deg: heading },
        ];
        let answers = network.etas_to(near, &origins).into_iter().chain(network.etas_to(far, &origins));
        for eta in answers.flatten() {
            proptest::prop_assert!(eta.time_s.is_finite() && eta.time_s >= 0.0);
            proptest::prop_assert!(eta.distance_m.is_finite() && eta.distance_m >= 0.0);
        }
        let _ = network.route(origins[1], far);
    }
}

fn monaco() -> &'static RoadNetwork {
    static NETWORK: std::sync::OnceLock<RoadNetwork> = std::sync::OnceLock::new();
    NETWORK.get_or_init(|| load("monaco"))
}
