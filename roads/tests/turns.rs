//! One-way streets, turn restrictions and U-turns on hand-made networks, where the right
//! answer can be worked out by hand.

use std::collections::HashMap;
use std::path::Path;

use domain::LatLon;
use roads::osm::{Extract, Restriction, Way};
use roads::profile::Direction;
use roads::{Origin, Profile, RoadNetwork};

/// Degrees of latitude for about 111 m.
const STEP: f64 = 0.001;

fn node(extract: &mut Extract, id: i64, lat: f64, lon: f64) {
    extract.nodes.insert(id, (lat, lon));
}

fn way(extract: &mut Extract, id: i64, nodes: &[i64], direction: Direction) {
    extract.ways.push(Way {
        id,
        nodes: nodes.to_vec(),
        speed_kmh: 36.0, // 10 m/s
        direction,
    });
}

fn point(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap()
}

/// A square block: A(1) south-west, B(2) north-west, C(3) north-east, D(4) south-east.
/// The west side A → B is one-way northbound; the other sides are two-way.
fn block() -> RoadNetwork {
    let mut extract = Extract {
        nodes: HashMap::new(),
        ..Extract::default()
    };
    let (lat, lon) = (60.0, 25.0);
    let east = STEP * 2.0; // about 111 m at latitude 60, as long as a north-south side
    node(&mut extract, 1, lat, lon);
    node(&mut extract, 2, lat + STEP, lon);
    node(&mut extract, 3, lat + STEP, lon + east);
    node(&mut extract, 4, lat, lon + east);
    way(&mut extract, 10, &[1, 2], Direction::Forward);
    way(&mut extract, 11, &[2, 3], Direction::Both);
    way(&mut extract, 12, &[3, 4], Direction::Both);
    way(&mut extract, 13, &[4, 1], Direction::Both);
    RoadNetwork::from_extract(&extract, &Profile::default(), Path::new("block")).unwrap()
}

#[test]
fn a_one_way_street_is_driven_only_its_way() {
    let network = block();
    let (lat, lon) = (60.0, 25.0);
    let south = point(lat + STEP * 0.1, lon);
    let north = point(lat + STEP * 0.9, lon);
    let side = STEP * 111_195.0;
    let along = network.etas_to(north, &[Origin::at(south)])[0].unwrap();
    assert!((along.distance_m - 0.8 * side).abs() < 1.0, "{along:?}");
    assert!(
        (along.time_s - along.distance_m / 10.0).abs() < 0.01,
        "{along:?}"
    );
    // Southbound on the west side means the long way round: north to B, east to C, south
    // to D, west to A, then north again.
    let against = network.etas_to(south, &[Origin::at(north)])[0].unwrap();
    let around = 0.1 * side + 3.0 * side + 0.1 * side;
    assert!(
        (against.distance_m - around).abs() < 0.05 * around,
        "against: {against:?}, around: {around}"
    );
}

/// A cross: X(0) in the middle, arms west W(1), east E(2), north N(3), south S(4), each a
/// two-way dead end.
fn cross(restrictions: &[Restriction]) -> RoadNetwork {
    let mut extract = Extract::default();
    let (lat, lon) = (60.0, 25.0);
    node(&mut extract, 100, lat, lon);
    node(&mut extract, 101, lat, lon - 2.0 * STEP);
    node(&mut extract, 102, lat, lon + 2.0 * STEP);
    node(&mut extract, 103, lat + STEP, lon);
    node(&mut extract, 104, lat - STEP, lon);
    way(&mut extract, 1, &[101, 100], Direction::Both); // west arm
    way(&mut extract, 2, &[100, 102], Direction::Both); // east arm
    way(&mut extract, 3, &[100, 103], Direction::Both); // north arm
    way(&mut extract, 4, &[104, 100], Direction::Both); // south arm
    extract.restrictions = restrictions.to_vec();
    RoadNetwork::from_extract(&extract, &Profile::default(), Path::new("cross")).unwrap()
}

#[test]
fn a_no_turn_restriction_is_honoured() {
    let (lat, lon) = (60.0, 25.0);
    // From halfway up the south arm, heading north, to halfway along the west arm.
    let from = Origin {
        position: point(lat - STEP / 2.0, lon),
        heading_deg: Some(0.0),
    };
    let to = point(lat, lon - STEP);
    let free = cross(&[]).etas_to(to, &[from])[0].unwrap();
    let arm = STEP * 111_195.0;
    assert!((free.distance_m - arm).abs() < 2.0, "{free:?}");
    let no_left = Restriction {
        from_way: 4,
        via_node: 100,
        to_way: 1,
        only: false,
    };
    let restricted = cross(&[no_left]).etas_to(to, &[from])[0].unwrap();
    // The way round: into an arm to its dead end, U-turn, back to X, then west.
    let u_turn_s = Profile::default().u_turn_penalty_s;
    assert!(
        restricted.time_s >= free.time_s + u_turn_s,
        "restricted {restricted:?} vs free {free:?}"
    );
    assert!(restricted.distance_m > free.distance_m + 2.0 * arm * 0.9);
}

#[test]
fn an_only_restriction_forbids_every_other_turn() {
    let (lat, lon) = (60.0, 25.0);
    let from = Origin {
        position: point(lat - STEP / 2.0, lon),
        heading_deg: Some(0.0),
    };
    let only_straight = Restriction {
        from_way: 4,
        via_node: 100,
        to_way: 3,
        only: true,
    };
    let network = cross(&[only_straight]);
    let free = cross(&[]);
    let east = point(lat, lon + STEP);
    let north = point(lat + STEP / 2.0, lon);
    let to_east = network.etas_to(east, &[from])[0].unwrap();
    let to_east_free = free.etas_to(east, &[from])[0].unwrap();
    assert!(to_east.time_s >= to_east_free.time_s + Profile::default().u_turn_penalty_s);
    let to_north = network.etas_to(north, &[from])[0].unwrap();
    let to_north_free = free.etas_to(north, &[from])[0].unwrap();
    assert!((to_north.time_s - to_north_free.time_s).abs() < 1e-9);
}

#[test]
fn the_heading_picks_the_direction_a_truck_is_driving() {
    let (lat, lon) = (60.0, 25.0);
    let network = cross(&[]);
    // On the north arm, halfway; the customer at the junction's south arm.
    let position = point(lat + STEP / 2.0, lon);
    let customer = point(lat - STEP / 2.0, lon);
    let southbound = Origin {
        position,
        heading_deg: Some(180.0),
    };
    let northbound = Origin {
        position,
        heading_deg: Some(0.0),
    };
    let etas = network.etas_to(customer, &[southbound, northbound, Origin::at(position)]);
    let (south, north, unknown) = (etas[0].unwrap(), etas[1].unwrap(), etas[2].unwrap());
    // Northbound it must reach the dead end and turn.
    assert!(north.time_s >= south.time_s + Profile::default().u_turn_penalty_s);
    assert!(
        (unknown.time_s - south.time_s).abs() < 1e-9,
        "without a heading, the faster way"
    );
}
