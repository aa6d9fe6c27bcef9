//! Path simulation: trucks driving through a city-sized area. Pure: time is passed in,
//! randomness comes from a seeded generator, no I/O.
//!
//! The model is simple but plausible for a street grid: a truck drives to a waypoint
//! along one axis and then the other (blocks, not straight lines), at a cruising speed
//! picked per leg, stops now and then (lights, traffic), parks for a while between
//! waypoints, and when given a job drives to the customer. Distances use a local flat-earth
//! approximation, exact to well under 1 % within a city.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::{SimRng, normal};

/// Metres per degree of latitude (mean Earth radius 6 371 km).
pub const METRES_PER_DEGREE: f64 = 111_195.0;

/// Highest speed a simulated truck reaches, km/h.
pub const MAX_SPEED_KMH: f64 = 90.0;

/// Closer than this to its waypoint, a truck has arrived, metres.
const ARRIVED_M: f64 = 0.01;

/// A WGS-84 position, `lat, lon` in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

impl Point {
    /// Metres east and north from `self` to `other`.
    pub fn offset_to_m(self, other: Point) -> (f64, f64) {
        let mean_lat = ((self.lat + other.lat) / 2.0).to_radians();
        let east_m = (other.lon - self.lon) * METRES_PER_DEGREE * mean_lat.cos();
        let north_m = (other.lat - self.lat) * METRES_PER_DEGREE;
        (east_m, north_m)
    }

    /// Distance to `other`, metres (local approximation).
    pub fn distance_m(self, other: Point) -> f64 {
        let (east_m, north_m) = self.offset_to_m(other);
        east_m.hypot(north_m)
    }

    /// The point `east_m` east and `north_m` north of `self`.
    pub fn moved_m(self, east_m: f64, north_m: f64) -> Point {
        let lat = self.lat + north_m / METRES_PER_DEGREE;
        let lon = self.lon + east_m / (METRES_PER_DEGREE * self.lat.to_radians().cos());
        Point { lat, lon }
    }
}

/// The simulated area: a disc around a centre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    /// Centre, `[lat, lon]`.
    pub center: [f64; 2],
    /// Radius, km.
    pub radius_km: f64,
}

impl Default for City {
    /// Shanghai, 25 km around People's Square.
    fn default() -> Self {
        City {
            center: [31.2304, 121.4737],
            radius_km: 25.0,
        }
    }
}

impl City {
    /// The centre as a point.
    pub fn centre(&self) -> Point {
        Point {
            lat: self.center[0],
            lon: self.center[1],
        }
    }

    /// Radius in metres.
    pub fn radius_m(&self) -> f64 {
        self.radius_km * 1000.0
    }

    /// Whether `point` lies inside the disc.
    pub fn contains(&self, point: Point) -> bool {
        self.centre().distance_m(point) <= self.radius_m()
    }

    /// A point uniformly distributed over the disc.
    pub fn uniform_point(&self, rng: &mut SimRng) -> Point {
        let radius_m = self.radius_m() * rng.random::<f64>().sqrt();
        let angle = rng.random::<f64>() * std::f64::consts::TAU;
        self.centre()
            .moved_m(radius_m * angle.cos(), radius_m * angle.sin())
    }

    /// A point normally distributed around `around` (σ = `sigma_m` per axis), redrawn
    /// until it falls inside the disc.
    pub fn point_near(&self, rng: &mut SimRng, around: Point, sigma_m: f64) -> Point {
        for _ in 0..32 {
            let point = around.moved_m(normal(rng) * sigma_m, normal(rng) * sigma_m);
            if self.contains(point) {
                return point;
            }
        }
        self.centre()
    }

    /// A GeoJSON polygon (lon, lat order) of the square around the disc, with 10 % margin:
    /// a provider's service area covering the whole city.
    pub fn service_area(&self) -> serde_json::Value {
        let centre = self.centre();
        let half_m = self.radius_m() * 1.1;
        let south_west = centre.moved_m(-half_m, -half_m);
        let north_east = centre.moved_m(half_m, half_m);
        let (west, south, east, north) = (
            south_west.lon,
            south_west.lat,
            north_east.lon,
            north_east.lat,
        );
        serde_json::json!({
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]
        })
    }
}

/// What a truck is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activity {
    /// Driving to a waypoint of its own choosing.
    Cruising,
    /// Standing still for this many more seconds.
    Parked { remaining_s: f64 },
    /// Driving to a customer; stays there once arrived, until released.
    ToJob,
    /// Standing still wherever it is, until told otherwise (a truck that stalled).
    Halted,
}

/// One simulated position report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Where.
    pub position: Point,
    /// Ground speed, km/h.
    pub speed_kmh: f64,
    /// Course over ground, degrees clockwise from north, `[0, 360)`.
    pub heading_deg: f64,
}

/// A simulated truck.
#[derive(Debug, Clone)]
pub struct Truck {
    position: Point,
    target: Point,
    /// Whether the current leg goes east–west first (then north–south).
    east_west_first: bool,
    cruise_kmh: f64,
    speed_kmh: f64,
    heading_deg: f64,
    activity: Activity,
}

impl Truck {
    /// A truck parked somewhere near `depot`.
    pub fn new(city: &City, depot: Point, rng: &mut SimRng) -> Truck {
        let position = city.point_near(rng, depot, 4_000.0);
        let mut truck = Truck {
            position,
            target: position,
            east_west_first: rng.random_bool(0.5),
            cruise_kmh: 35.0,
            speed_kmh: 0.0,
            heading_deg: rng.random_range(0.0..360.0),
            activity: Activity::Parked {
                remaining_s: rng.random_range(0.0..120.0),
            },
        };
        if rng.random_bool(0.6) {
            truck.new_leg(city, rng);
        }
        truck
    }

    /// Where the truck is.
    #[cfg(test)]
    pub fn position(&self) -> Point {
        self.position
    }

    /// What it is doing.
    #[cfg(test)]
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Sends the truck to a customer at `destination`.
    pub fn drive_to_job(&mut self, destination: Point) {
        self.target = destination;
        self.activity = Activity::ToJob;
        self.cruise_kmh = 45.0;
    }

    /// Ends a job: the truck parks for a moment, then cruises again.
    /// Drives straight away from `customer` (both grid axes away from it, so the distance
    /// only grows): a truck that took the job and heads the wrong way.
    pub fn drive_away_from(&mut self, customer: Point) {
        let (east_m, north_m) = customer.offset_to_m(self.position);
        let length_m = east_m.hypot(north_m);
        let (east, north) = if length_m < 1.0 {
            (1.0, 0.0)
        } else {
            (east_m / length_m, north_m / length_m)
        };
        self.target = self.position.moved_m(east * 30_000.0, north * 30_000.0);
        self.east_west_first = east.abs() >= north.abs();
        self.activity = Activity::ToJob;
        self.cruise_kmh = 60.0;
    }

    /// Stops where it is and stays there.
    pub fn halt(&mut self) {
        self.activity = Activity::Halted;
    }

    pub fn release(&mut self) {
        self.activity = Activity::Parked { remaining_s: 30.0 };
    }

    fn new_leg(&mut self, city: &City, rng: &mut SimRng) {
        // Mostly short hops across town, sometimes a long drive.
        let sigma_m = if rng.random_bool(0.2) {
            12_000.0
        } else {
            3_000.0
        };
        self.target = city.point_near(rng, self.position, sigma_m);
        self.east_west_first = rng.random_bool(0.5);
        self.cruise_kmh = rng.random_range(25.0..60.0);
        self.activity = Activity::Cruising;
    }

    /// Moves the truck on by `dt_s` seconds and returns its new position, speed and heading.
    pub fn advance(&mut self, dt_s: f64, city: &City, rng: &mut SimRng) -> Sample {
        let dt_s = dt_s.max(0.0);
        match self.activity {
            Activity::Parked { remaining_s } => {
                self.speed_kmh = 0.0;
                if remaining_s <= dt_s {
                    self.new_leg(city, rng);
                } else {
                    self.activity = Activity::Parked {
                        remaining_s: remaining_s - dt_s,
                    };
                }
            }
            Activity::Halted => self.speed_kmh = 0.0,
            Activity::Cruising | Activity::ToJob => self.drive(dt_s, city, rng),
        }
        Sample {
            position: self.position,
            speed_kmh: self.speed_kmh,
            heading_deg: self.heading_deg,
        }
    }

    fn drive(&mut self, dt_s: f64, city: &City, rng: &mut SimRng) {
        if self.position.distance_m(self.target) <= ARRIVED_M {
            self.speed_kmh = 0.0;
            self.arrive(city, rng);
            return;
        }
        // Traffic: a stop now and then, otherwise around the cruising speed.
        let stopped = rng.random_bool((0.08 * dt_s).min(0.5));
        self.speed_kmh = if stopped {
            0.0
        } else {
            (self.cruise_kmh * rng.random_range(0.8..1.15)).min(MAX_SPEED_KMH)
        };
        let mut budget_m = self.speed_kmh / 3.6 * dt_s;
        // Along the grid: finish one axis, then the other.
        while budget_m > 0.0 {
            let (east_m, north_m) = self.position.offset_to_m(self.target);
            let along_east = match (east_m.abs() > ARRIVED_M, north_m.abs() > ARRIVED_M) {
                (false, false) => {
                    self.arrive(city, rng);
                    return;
                }
                (true, false) => true,
                (false, true) => false,
                (true, true) => self.east_west_first,
            };
            let remaining_m = if along_east { east_m } else { north_m };
            let step_m = remaining_m.abs().min(budget_m) * remaining_m.signum();
            if along_east {
                self.position = self.position.moved_m(step_m, 0.0);
                self.heading_deg = if step_m >= 0.0 { 90.0 } else { 270.0 };
            } else {
                self.position = self.position.moved_m(0.0, step_m);
                self.heading_deg = if step_m >= 0.0 { 0.0 } else { 180.0 };
            }
            budget_m -= step_m.abs();
        }
    }

    /// At the waypoint (the reported speed stays that of the last move; the next sample
    /// reports standing still).
    fn arrive(&mut self, city: &City, rng: &mut SimRng) {
        match self.activity {
            // On scene: stays until released.
            Activity::ToJob => {}
            _ => {
                if rng.random_bool(0.5) {
                    self.activity = Activity::Parked {
                        remaining_s: rng.random_range(10.0..300.0),
                    };
                } else {
                    self.new_leg(city, rng);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    fn fleet(seed: u64, trucks: usize) -> (City, Vec<Truck>, SimRng) {
        let city = City::default();
        let mut rng = stream(seed, "sim-test");
        let trucks = (0..trucks)
            .map(|_| {
                let depot = city.uniform_point(&mut rng);
                Truck::new(&city, depot, &mut rng)
            })
            .collect();
        (city, trucks, rng)
    }

    #[test]
    fn trucks_stay_inside_the_providers_service_area() {
        let (city, mut trucks, mut rng) = fleet(11, 200);
        let radius_m = city.radius_m();
        for _ in 0..600 {
            for truck in &mut trucks {
                let sample = truck.advance(5.0, &city, &mut rng);
                // Waypoints lie in the disc; an L-shaped leg between two of them stays in
                // the disc's bounding square, which the service area covers with a margin.
                let (east_m, north_m) = city.centre().offset_to_m(sample.position);
                assert!(
                    east_m.abs() <= radius_m + 1.0 && north_m.abs() <= radius_m + 1.0,
                    "{:?}",
                    sample.position
                );
            }
        }
    }

    #[test]
    fn consecutive_positions_never_imply_an_impossible_speed() {
        let (city, mut trucks, mut rng) = fleet(12, 100);
        for _ in 0..300 {
            for truck in &mut trucks {
                let before = truck.position();
                let sample = truck.advance(2.0, &city, &mut rng);
                let implied_kmh = before.distance_m(sample.position) / 2.0 * 3.6;
                assert!(implied_kmh <= MAX_SPEED_KMH + 0.1, "{implied_kmh} km/h");
                assert!(
                    implied_kmh <= sample.speed_kmh + 0.1,
                    "moved faster than it reported"
                );
                assert!((0.0..360.0).contains(&sample.heading_deg));
            }
        }
    }

    #[test]
    fn trucks_move_along_the_grid_with_a_matching_heading() {
        let (city, mut trucks, mut rng) = fleet(13, 50);
        let mut moves = 0;
        for _ in 0..200 {
            for truck in &mut trucks {
                let before = truck.position();
                let sample = truck.advance(1.0, &city, &mut rng);
                let (east_m, north_m) = before.offset_to_m(sample.position);
                if east_m.hypot(north_m) < 1.0 {
                    continue;
                }
                moves += 1;
                // A one-second step turns at most one corner: its last part follows the heading.
                let heading_east = (sample.heading_deg.to_radians()).sin();
                let heading_north = (sample.heading_deg.to_radians()).cos();
                assert!(
                    east_m * heading_east + north_m * heading_north > 0.0,
                    "moved ({east_m:.1}, {north_m:.1}) m with heading {}",
                    sample.heading_deg
                );
            }
        }
        assert!(moves > 1_000, "trucks barely moved: {moves} moves");
    }

    #[test]
    fn a_truck_sent_to_a_job_arrives_and_stays_there() {
        let (city, mut trucks, mut rng) = fleet(14, 1);
        let truck = &mut trucks[0];
        let customer = city.centre().moved_m(3_000.0, -2_000.0);
        truck.drive_to_job(customer);
        for _ in 0..3_600 {
            truck.advance(1.0, &city, &mut rng);
        }
        assert!(truck.position().distance_m(customer) < 1.0);
        assert_eq!(truck.activity(), Activity::ToJob);
        let sample = truck.advance(10.0, &city, &mut rng);
        assert_eq!(sample.speed_kmh, 0.0);
        truck.release();
        assert!(matches!(truck.activity(), Activity::Parked { .. }));
    }

    #[test]
    fn the_same_seed_drives_the_same_paths() {
        let run = |seed| {
            let (city, mut trucks, mut rng) = fleet(seed, 20);
            let mut path = Vec::new();
            for _ in 0..50 {
                for truck in &mut trucks {
                    path.push(truck.advance(3.0, &city, &mut rng).position);
                }
            }
            path
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn the_service_area_is_a_closed_polygon_around_the_city() {
        let city = City::default();
        let area = city.service_area();
        let ring = area["coordinates"][0].as_array().unwrap();
        assert_eq!(ring.first(), ring.last());
        let west = ring[0][0].as_f64().unwrap();
        let east = ring[1][0].as_f64().unwrap();
        assert!(west < city.center[1] && city.center[1] < east);
    }

    #[test]
    fn a_runaway_truck_only_gets_farther_and_a_halted_one_stays_put() {
        let (city, mut trucks, mut rng) = fleet(8, 30);
        let customers: Vec<Point> = trucks
            .iter()
            .map(|truck| truck.position().moved_m(700.0, -300.0))
            .collect();
        for (truck, customer) in trucks.iter_mut().zip(&customers) {
            truck.drive_away_from(*customer);
        }
        let mut distances: Vec<f64> = trucks
            .iter()
            .zip(&customers)
            .map(|(truck, customer)| truck.position().distance_m(*customer))
            .collect();
        for _ in 0..60 {
            for ((truck, customer), distance) in
                trucks.iter_mut().zip(&customers).zip(&mut distances)
            {
                let now = truck
                    .advance(1.0, &city, &mut rng)
                    .position
                    .distance_m(*customer);
                assert!(now >= *distance - 1e-6, "{now} < {distance}");
                *distance = now;
            }
        }
        assert!(
            distances.iter().all(|d| *d > 760.0 + 200.0),
            "{distances:?}"
        );
        let truck = &mut trucks[0];
        truck.halt();
        let before = truck.position();
        for _ in 0..10 {
            let sample = truck.advance(1.0, &city, &mut rng);
            assert_eq!((sample.position, sample.speed_kmh), (before, 0.0));
        }
    }
}
