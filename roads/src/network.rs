//! A loaded road network: the graph, its hierarchy and the snapping index, with the
//! queries dispatch and tracking ask.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use domain::LatLon;
use rstar::RTree;
use rstar::primitives::{GeomWithData, Line};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::RoadError;
use crate::ch::{Ch, Searches};
use crate::geometry::{Plane, angle_between_deg, bearing_deg, haversine_m};
use crate::graph::{BuildStats, Graph};
use crate::profile::Profile;

/// How far a point may lie from the nearest drivable road and still snap to it, unless
/// the caller says otherwise ([`RoadNetwork::with_snap_max_m`]).
pub const DEFAULT_SNAP_MAX_M: f64 = 200.0;

/// Candidate segments looked at when snapping with a heading.
const SNAP_CANDIDATES: usize = 16;

/// Metres a segment that the heading contradicts counts as farther away.
const WRONG_WAY_PENALTY_M: f64 = 100.0;

/// The cache file's first bytes: the format and its version.
const CACHE_MAGIC: &[u8] = b"rescue-roads/1\n";

/// Where a truck is: its position and, when its device reports one, its heading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Origin {
    pub position: LatLon,
    /// Degrees clockwise from north.
    pub heading_deg: Option<f64>,
}

impl Origin {
    /// A position without a heading.
    pub fn at(position: LatLon) -> Self {
        Origin {
            position,
            heading_deg: None,
        }
    }
}

/// Road time and distance from an origin to a destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoadEta {
    pub time_s: f64,
    pub distance_m: f64,
}

/// A route with its geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub time_s: f64,
    pub distance_m: f64,
    /// From the origin's snapped position to the destination's, along the roads.
    pub points: Vec<LatLon>,
}

/// A point placed on the nearest drivable road.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snap {
    pub piece: u32,
    /// Metres along the piece, in its way's node order.
    pub offset_m: f64,
    /// Metres from the point to the road.
    pub distance_m: f64,
    /// The point on the road.
    pub point: LatLon,
    /// The road's bearing there, in way order.
    pub bearing_deg: f64,
}

/// Sizes and times of a loaded network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkStats {
    pub file: PathBuf,
    pub build: BuildStats,
    pub pieces: usize,
    pub edges: usize,
    pub arcs: usize,
    pub shortcuts_and_arcs: usize,
    /// Bytes held by the graph, the hierarchy and the snapping index.
    pub memory_bytes: usize,
    /// Whether the prepared network came from the cache.
    pub from_cache: bool,
    /// Milliseconds to load (from the cache, or to read, build and prepare).
    pub load_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    piece: u32,
    /// Metres of the piece before the segment's first point.
    offset_m: f64,
    length_m: f64,
    /// The segment's ends, `(lat, lon)`.
    from: [f64; 2],
    to: [f64; 2],
}

type SegmentTree = RTree<GeomWithData<Line<[f64; 2]>, Segment>>;

/// What the cache holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    key: [u8; 32],
    graph: Graph,
    ch: Ch,
    build: BuildStats,
}

/// A road network, ready for queries from any thread.
pub struct RoadNetwork {
    graph: Graph,
    ch: Ch,
    plane: Plane,
    segments: SegmentTree,
    searches: Mutex<Vec<Searches>>,
    stats: NetworkStats,
    snap_max_m: f64,
}

impl std::fmt::Debug for RoadNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoadNetwork")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A directed place on the network: an edge and how far along it (0 at its start, 1 at
/// its end).
#[derive(Debug, Clone, Copy)]
struct Place {
    edge: u32,
    fraction: f64,
}

impl RoadNetwork {
    /// Loads the extract at `path` under `profile`: from the prepared cache in
    /// `cache_dir` when it holds this file and profile, otherwise by reading, building
    /// and preparing it (and then writing the cache).
    pub fn load(
        path: &Path,
        profile: &Profile,
        cache_dir: Option<&Path>,
    ) -> Result<Self, RoadError> {
        let started = Instant::now();
        let fail = |reason: String| RoadError::Network {
            file: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
        let key = cache_key(&bytes, profile);
        drop(bytes);
        let cache = cache_dir.map(|dir| cache_path(dir, path, &key));
        if let Some(cache) = &cache
            && let Some(stored) = read_cache(cache, &key)
        {
            let load_ms = started.elapsed().as_millis() as u64;
            return Ok(Self::assemble(path, stored, true, load_ms));
        }
        let extract = crate::osm::read(path, profile)?;
        let (graph, build) = Graph::build(&extract, profile, path)?;
        drop(extract);
        if graph.edges.len() < 2 {
            return Err(fail("no drivable way connects to another".into()));
        }
        let ch = Ch::prepare(&graph).map_err(|error| fail(error.0))?;
        let stored = Stored {
            key,
            graph,
            ch,
            build,
        };
        if let Some(cache) = &cache
            && let Err(error) = write_cache(cache, &stored)
        {
            tracing::warn!(cache = %cache.display(), %error, "the prepared road network could not be cached");
        }
        let load_ms = started.elapsed().as_millis() as u64;
        Ok(Self::assemble(path, stored, false, load_ms))
    }

    /// Builds and prepares a network from an extract in memory (hand-made graphs in
    /// tests, synthetic cities); `name` stands for its file in errors and stats.
    pub fn from_extract(
        extract: &crate::osm::Extract,
        profile: &Profile,
        name: &Path,
    ) -> Result<Self, RoadError> {
        let started = Instant::now();
        let (graph, build) = Graph::build(extract, profile, name)?;
        if graph.edges.len() < 2 {
            return Err(RoadError::Network {
                file: name.to_path_buf(),
                reason: "no drivable way connects to another".into(),
            });
        }
        let ch = Ch::prepare(&graph).map_err(|error| RoadError::Network {
            file: name.to_path_buf(),
            reason: error.0,
        })?;
        let stored = Stored {
            key: [0; 32],
            graph,
            ch,
            build,
        };
        Ok(Self::assemble(
            name,
            stored,
            false,
            started.elapsed().as_millis() as u64,
        ))
    }

    fn assemble(path: &Path, stored: Stored, from_cache: bool, load_ms: u64) -> Self {
        let Stored {
            graph, ch, build, ..
        } = stored;
        let mean_lat = if graph.points.is_empty() {
            0.0
        } else {
            graph.points.iter().map(|p| p[0]).sum::<f64>() / graph.points.len() as f64
        };
        let plane = Plane::around(mean_lat);
        let mut items = Vec::new();
        for (index, piece) in graph.pieces.iter().enumerate() {
            if piece.forward.is_none() && piece.backward.is_none() {
                continue;
            }
            let mut offset_m = 0.0;
            for pair in graph.piece_points(index as u32).windows(2) {
                let length_m = haversine_m(pair[0][0], pair[0][1], pair[1][0], pair[1][1]);
                items.push(GeomWithData::new(
                    Line::new(
                        plane.project(pair[0][0], pair[0][1]),
                        plane.project(pair[1][0], pair[1][1]),
                    ),
                    Segment {
                        piece: index as u32,
                        offset_m,
                        length_m,
                        from: pair[0],
                        to: pair[1],
                    },
                ));
                offset_m += length_m;
            }
        }
        let segment_count = items.len();
        let segments = RTree::bulk_load(items);
        let memory_bytes = graph.points.len() * std::mem::size_of::<[f64; 2]>()
            + graph.pieces.len() * std::mem::size_of::<crate::graph::Piece>()
            + graph.edges.len() * std::mem::size_of::<crate::graph::Edge>()
            + graph.arcs.len() * std::mem::size_of::<(u32, u32)>()
            + graph.first_arc.len() * 4
            + ch.memory_bytes()
            + segment_count * (std::mem::size_of::<GeomWithData<Line<[f64; 2]>, Segment>>() + 16);
        let stats = NetworkStats {
            file: path.to_path_buf(),
            pieces: graph.pieces.len(),
            edges: graph.edges.len(),
            arcs: graph.arcs.len(),
            shortcuts_and_arcs: ch.arc_count(),
            memory_bytes,
            from_cache,
            load_ms,
            build,
        };
        tracing::info!(
            file = %path.display(),
            edges = stats.edges,
            dropped_edges = stats.build.dropped_edges,
            restrictions = stats.build.restrictions,
            memory_mb = memory_bytes / 1_000_000,
            from_cache,
            load_ms,
            "road network loaded"
        );
        if stats.build.dropped_edges > 0 {
            tracing::info!(
                dropped_edges = stats.build.dropped_edges,
                "road edges outside the largest connected part of the network were left out"
            );
        }
        RoadNetwork {
            graph,
            ch,
            plane,
            segments,
            searches: Mutex::new(Vec::new()),
            stats,
            snap_max_m: DEFAULT_SNAP_MAX_M,
        }
    }

    /// The same network snapping points up to `metres` from a road.
    pub fn with_snap_max_m(mut self, metres: f64) -> Self {
        self.snap_max_m = metres.max(0.0);
        self
    }

    /// Sizes and load time.
    pub fn stats(&self) -> &NetworkStats {
        &self.stats
    }

    /// The graph, for tests and benchmarks.
    #[doc(hidden)]
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Places `point` on the nearest drivable road within the snapping distance; with a
    /// heading, a road the heading fits (or that may be driven that way) is preferred to
    /// a slightly nearer one it contradicts (the other carriageway of a motorway).
    pub fn snap(&self, point: LatLon, heading_deg: Option<f64>) -> Option<Snap> {
        let (lat, lon) = (point.lat(), point.lon());
        let query = self.plane.project(lat, lon);
        let reach = self.snap_max_m * 1.05 + 1.0;
        let mut best: Option<(f64, Snap)> = None;
        for (item, distance_2) in self
            .segments
            .nearest_neighbor_iter_with_distance_2(query)
            .take(if heading_deg.is_some() {
                SNAP_CANDIDATES
            } else {
                1
            })
        {
            if distance_2.sqrt() > reach {
                break;
            }
            let segment = item.data;
            let line = item.geom();
            let (a, b) = (line.from, line.to);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let length_2 = dx * dx + dy * dy;
            let fraction = if length_2 > 0.0 {
                (((query[0] - a[0]) * dx + (query[1] - a[1]) * dy) / length_2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let on_road = self
                .plane
                .unproject([a[0] + fraction * dx, a[1] + fraction * dy]);
            let distance_m = haversine_m(lat, lon, on_road.0, on_road.1);
            if distance_m > self.snap_max_m {
                continue;
            }
            let bearing = bearing_deg(
                segment.from[0],
                segment.from[1],
                segment.to[0],
                segment.to[1],
            );
            let piece = &self.graph.pieces[segment.piece as usize];
            let fits = |heading: f64| {
                (piece.forward.is_some() && angle_between_deg(bearing, heading) <= 90.0)
                    || (piece.backward.is_some()
                        && angle_between_deg((bearing + 180.0) % 360.0, heading) <= 90.0)
            };
            let score = distance_m
                + match heading_deg {
                    Some(heading) if !fits(heading) => WRONG_WAY_PENALTY_M,
                    _ => 0.0,
                };
            let Ok(point) = LatLon::new(on_road.0, on_road.1) else {
                continue;
            };
            let snap = Snap {
                piece: segment.piece,
                offset_m: (segment.offset_m + fraction * segment.length_m).min(piece.length_m),
                distance_m,
                point,
                bearing_deg: bearing,
            };
            if best
                .as_ref()
                .is_none_or(|(best_score, _)| score < *best_score)
            {
                best = Some((score, snap));
            }
        }
        best.map(|(_, snap)| snap)
    }

    /// The directions a snapped point may be driven in; with a heading, only those it
    /// fits, unless it fits none.
    fn places(&self, snap: &Snap, heading_deg: Option<f64>) -> Vec<Place> {
        let piece = &self.graph.pieces[snap.piece as usize];
        let along = if piece.length_m > 0.0 {
            (snap.offset_m / piece.length_m).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut places = Vec::with_capacity(2);
        let mut fitting = Vec::with_capacity(2);
        for (edge, fraction, bearing) in [
            (piece.forward, along, snap.bearing_deg),
            (
                piece.backward,
                1.0 - along,
                (snap.bearing_deg + 180.0) % 360.0,
            ),
        ] {
            let Some(edge) = edge else { continue };
            let place = Place { edge, fraction };
            places.push(place);
            if heading_deg.is_some_and(|heading| angle_between_deg(bearing, heading) <= 90.0) {
                fitting.push(place);
            }
        }
        if fitting.is_empty() { places } else { fitting }
    }

    fn time_ms(&self, edge: u32) -> f64 {
        f64::from(self.graph.edges[edge as usize].time_ms)
    }

    /// Road time and distance from each origin to `to`, in one call: `None` for an origin
    /// (or all, when `to` is the one) that does not snap within the snapping distance,
    /// or cannot reach it.
    pub fn etas_to(&self, to: LatLon, from: &[Origin]) -> Vec<Option<RoadEta>> {
        self.legs_to(to, from)
            .into_iter()
            .map(|leg| {
                leg.map(|leg| RoadEta {
                    time_s: leg.time_ms / 1000.0,
                    distance_m: leg.distance_m,
                })
            })
            .collect()
    }

    /// The fastest route from `from` to `to`, with its geometry.
    pub fn route(&self, from: Origin, to: LatLon) -> Option<Route> {
        let leg = self.legs_to(to, &[from]).pop().flatten()?;
        let mut points: Vec<[f64; 2]> = Vec::new();
        match &leg.path {
            None => self.along(
                leg.start.edge,
                leg.start.fraction,
                leg.end.fraction,
                &mut points,
            ),
            Some(path) => {
                self.along(leg.start.edge, leg.start.fraction, 1.0, &mut points);
                for edge in &path[..path.len() - 1] {
                    self.along(*edge, 0.0, 1.0, &mut points);
                }
                self.along(leg.end.edge, 0.0, leg.end.fraction, &mut points);
            }
        }
        points.dedup();
        Some(Route {
            time_s: leg.time_ms / 1000.0,
            distance_m: leg.distance_m,
            points: points
                .into_iter()
                .filter_map(|[lat, lon]| LatLon::new(lat, lon).ok())
                .collect(),
        })
    }

    /// Appends the points of `edge` between two fractions of its length.
    fn along(&self, edge: u32, from: f64, to: f64, out: &mut Vec<[f64; 2]>) {
        let Edge { piece, reversed } = self.edge(edge);
        let mut points = self.graph.piece_points(piece).to_vec();
        if reversed {
            points.reverse();
        }
        let length = self.graph.pieces[piece as usize].length_m;
        let (from_m, to_m) = (from * length, to * length);
        let mut walked = 0.0;
        let lerp =
            |a: [f64; 2], b: [f64; 2], t: f64| [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
        for pair in points.windows(2) {
            let step = haversine_m(pair[0][0], pair[0][1], pair[1][0], pair[1][1]);
            let (start, end) = (walked, walked + step);
            let t = |m: f64| {
                if step > 0.0 {
                    ((m - start) / step).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            };
            if end >= from_m && start <= to_m {
                out.push(if start >= from_m {
                    pair[0]
                } else {
                    lerp(pair[0], pair[1], t(from_m))
                });
                if end > to_m {
                    out.push(lerp(pair[0], pair[1], t(to_m)));
                    return;
                }
            }
            walked = end;
        }
        if let Some(last) = points.last() {
            out.push(*last);
        }
    }

    fn edge(&self, edge: u32) -> Edge {
        let edge = self.graph.edges[edge as usize];
        Edge {
            piece: edge.piece,
            reversed: edge.reversed,
        }
    }

    fn legs_to(&self, to: LatLon, from: &[Origin]) -> Vec<Option<Leg>> {
        let Some(target) = self.snap(to, None) else {
            return vec![None; from.len()];
        };
        let ends = self.places(&target, None);
        // Arriving on an end edge at fraction s costs all of the edge but (1 - s) of it;
        // `offset` keeps every target weight positive.
        let offset = ends
            .iter()
            .map(|end| self.time_ms(end.edge))
            .fold(0.0, f64::max)
            .round() as u64;
        let targets: Vec<(u32, u64)> = ends
            .iter()
            .map(|end| {
                let rest = ((1.0 - end.fraction) * self.time_ms(end.edge)).round() as u64;
                (end.edge, offset.saturating_sub(rest))
            })
            .collect();
        // Each origin starts with its first turn taken: from each place it can be in, onto
        // each edge that place leads to, having driven the rest of its own edge.
        let mut starts_of = Vec::with_capacity(from.len());
        let mut sources = Vec::with_capacity(from.len());
        for origin in from {
            let places = self
                .snap(origin.position, origin.heading_deg)
                .map(|snap| self.places(&snap, origin.heading_deg))
                .unwrap_or_default();
            let mut first: HashMap<u32, (u64, Place)> = HashMap::new();
            for place in &places {
                let rest = ((1.0 - place.fraction) * self.time_ms(place.edge)).round() as u64;
                for (next, weight) in self.graph.arcs_from(place.edge) {
                    let weight = rest + u64::from(*weight);
                    let entry = first.entry(*next).or_insert((u64::MAX, *place));
                    if weight < entry.0 {
                        *entry = (weight, *place);
                    }
                }
            }
            sources.push(
                first
                    .iter()
                    .map(|(edge, (weight, _))| (*edge, *weight))
                    .collect(),
            );
            starts_of.push((places, first));
        }
        let answers = {
            let mut searches = self
                .searches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop()
                .unwrap_or_default();
            let answers = self.ch.many_to_one(&sources, &targets, &mut searches);
            self.searches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(searches);
            answers
        };
        answers
            .into_iter()
            .zip(starts_of)
            .map(|(answer, (places, first))| {
                let mut best: Option<Leg> = None;
                // Along the same edge, forward: no turn at all.
                for start in &places {
                    for end in &ends {
                        if start.edge == end.edge && end.fraction >= start.fraction {
                            let share = end.fraction - start.fraction;
                            best = better(
                                best,
                                Leg {
                                    time_ms: share * self.time_ms(start.edge),
                                    distance_m: share * self.graph.edge_length_m(start.edge),
                                    start: *start,
                                    end: *end,
                                    path: None,
                                },
                            );
                        }
                    }
                }
                if let Some((weight, path)) = answer
                    && let (Some(first_edge), Some(last_edge)) = (path.first(), path.last())
                    && let Some((_, start)) = first.get(first_edge)
                    && let Some(end) = ends.iter().find(|end| end.edge == *last_edge)
                {
                    let between: f64 = path[..path.len() - 1]
                        .iter()
                        .map(|edge| self.graph.edge_length_m(*edge))
                        .sum();
                    let distance_m = (1.0 - start.fraction) * self.graph.edge_length_m(start.edge)
                        + between
                        + end.fraction * self.graph.edge_length_m(end.edge);
                    best = better(
                        best,
                        Leg {
                            time_ms: weight.saturating_sub(offset) as f64,
                            distance_m,
                            start: *start,
                            end: *end,
                            path: Some(path),
                        },
                    );
                }
                best
            })
            .collect()
    }

    /// The hierarchy's least weight from each source edge to `target`, with the path's
    /// edges, for the test against plain Dijkstra.
    #[doc(hidden)]
    pub fn hierarchy_weights(&self, sources: &[u32], target: u32) -> Vec<Option<(u64, Vec<u32>)>> {
        let sources: Vec<Vec<(u32, u64)>> = sources.iter().map(|s| vec![(*s, 0)]).collect();
        let mut searches = Searches::default();
        self.ch.many_to_one(&sources, &[(target, 0)], &mut searches)
    }
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    piece: u32,
    reversed: bool,
}

/// One origin's way to the destination.
#[derive(Debug, Clone)]
struct Leg {
    time_ms: f64,
    distance_m: f64,
    start: Place,
    end: Place,
    /// The edges after the start's, the end's last; `None` along the start's own edge.
    path: Option<Vec<u32>>,
}

fn better(best: Option<Leg>, leg: Leg) -> Option<Leg> {
    match best {
        Some(best) if best.time_ms <= leg.time_ms => Some(best),
        _ => Some(leg),
    }
}

/// The cache key: the extract's bytes, the profile and the cache format.
fn cache_key(bytes: &[u8], profile: &Profile) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(CACHE_MAGIC);
    hash.update(bytes);
    hash.update(toml::to_string(profile).unwrap_or_default().as_bytes());
    hash.finalize().into()
}

fn cache_path(dir: &Path, file: &Path, key: &[u8; 32]) -> PathBuf {
    let stem = file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("network")
        .trim_end_matches(".pbf")
        .trim_end_matches(".osm");
    let hex: String = key[..8].iter().map(|byte| format!("{byte:02x}")).collect();
    dir.join(format!("{stem}.{hex}.roads"))
}

fn read_cache(cache: &Path, key: &[u8; 32]) -> Option<Stored> {
    let bytes = std::fs::read(cache).ok()?;
    let body = bytes.strip_prefix(CACHE_MAGIC)?;
    match postcard::from_bytes::<Stored>(body) {
        Ok(stored) if stored.key == *key && stored.ch.check().is_ok() && stored.graph.check() => {
            Some(stored)
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(cache = %cache.display(), %error, "the road network cache is unreadable; preparing again");
            None
        }
    }
}

fn write_cache(cache: &Path, stored: &Stored) -> std::io::Result<()> {
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = postcard::to_allocvec(stored).map_err(std::io::Error::other)?;
    let partial = cache.with_extension("roads.partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(CACHE_MAGIC)?;
    file.write_all(&body)?;
    file.sync_all()?;
    std::fs::rename(&partial, cache)
}
