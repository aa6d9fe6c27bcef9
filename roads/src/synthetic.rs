//! Synthetic road networks for benchmarks and simulations: a grid of local streets with a
//! sparser grid of arterials and a few motorways, as an [`Extract`] the profile reads like
//! a real one. Synthetic, and said to be wherever its figures are reported.

use crate::osm::{Extract, Way};
use crate::profile::Direction;

/// The shape of a grid city.
#[derive(Debug, Clone, Copy)]
pub struct GridCity {
    /// Intersections west to east and south to north.
    pub columns: usize,
    pub rows: usize,
    /// Metres between neighbouring intersections.
    pub spacing_m: f64,
    /// Every n-th street is an arterial (`primary`, 50 km/h).
    pub arterial_every: usize,
    /// Every n-th street is a fast road: two one-way carriageways at 90 km/h, joined to
    /// every street that crosses it.
    pub motorway_every: usize,
    /// The south-west corner.
    pub origin: (f64, f64),
}

impl GridCity {
    /// About `nodes` routing nodes (directed street stretches): a square grid.
    pub fn with_routing_nodes(nodes: usize) -> Self {
        // Each intersection has about two streets leaving east and north, each driven both
        // ways: four directed stretches per intersection.
        let side = ((nodes as f64 / 4.0).sqrt().ceil() as usize).max(2);
        GridCity {
            columns: side,
            rows: side,
            spacing_m: 100.0,
            arterial_every: 8,
            motorway_every: 64,
            origin: (47.0, 8.0),
        }
    }

    /// The extract of the city.
    pub fn extract(&self) -> Extract {
        let mut extract = Extract::default();
        let metres_per_degree_lat = 111_195.0;
        let metres_per_degree_lon = metres_per_degree_lat * self.origin.0.to_radians().cos();
        let id = |column: usize, row: usize| (row * self.columns + column) as i64 + 1;
        for row in 0..self.rows {
            for column in 0..self.columns {
                extract.nodes.insert(
                    id(column, row),
                    (
                        self.origin.0 + row as f64 * self.spacing_m / metres_per_degree_lat,
                        self.origin.1 + column as f64 * self.spacing_m / metres_per_degree_lon,
                    ),
                );
            }
        }
        let mut way_id = 0;
        let mut street = |extract: &mut Extract, nodes: Vec<i64>, index: usize| {
            let fast =
                self.motorway_every > 0 && index % self.motorway_every == self.motorway_every / 2;
            let (speed_kmh, directions) = if fast {
                (90.0, vec![Direction::Forward, Direction::Backward])
            } else if self.arterial_every > 0 && index.is_multiple_of(self.arterial_every) {
                (50.0, vec![Direction::Both])
            } else {
                (25.0, vec![Direction::Both])
            };
            for direction in directions {
                way_id += 1;
                extract.ways.push(Way {
                    id: way_id,
                    nodes: nodes.clone(),
                    speed_kmh,
                    direction,
                });
            }
        };
        for row in 0..self.rows {
            let nodes = (0..self.columns).map(|column| id(column, row)).collect();
            street(&mut extract, nodes, row);
        }
        for column in 0..self.columns {
            let nodes = (0..self.rows).map(|row| id(column, row)).collect();
            street(&mut extract, nodes, column);
        }
        extract
    }
}

/// A small seeded generator (splitmix64) for synthetic positions and test pairs, so that a
/// run can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
