//! The routing graph, edge-based so that turns can cost and be forbidden.
//!
//! A way is cut at its junctions into *pieces* (stretches between intersections, with
//! their geometry). Each direction a piece may be driven in is a directed *edge*, and the
//! edges are the graph's nodes: an *arc* from edge `a` to edge `b` is the turn from `a`
//! onto `b` at the junction between them, and costs the time to drive `b` (plus the U-turn
//! penalty when `b` is `a` backwards). A turn restriction removes arcs; a one-way piece
//! has one edge. Only the largest strongly connected set of edges is kept, so every edge
//! reaches every other.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::RoadError;
use crate::geometry::haversine_m;
use crate::osm::Extract;
use crate::profile::Profile;

/// A stretch of one way between two junctions, with its geometry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Piece {
    /// Its points are `points[first_point .. first_point + num_points]`, in way order.
    pub first_point: u32,
    pub num_points: u32,
    pub length_m: f64,
    /// The edge driving it in way order, if allowed.
    pub forward: Option<u32>,
    /// The edge driving it against way order, if allowed.
    pub backward: Option<u32>,
}

/// One direction of a piece: a node of the routing graph.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Edge {
    pub piece: u32,
    /// Driven against the way's node order.
    pub reversed: bool,
    /// Milliseconds to drive the whole piece (at least 1).
    pub time_ms: u32,
}

/// The graph: pieces with their points, edges, and turn arcs between edges.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Graph {
    /// `(lat, lon)`.
    pub points: Vec<[f64; 2]>,
    pub pieces: Vec<Piece>,
    pub edges: Vec<Edge>,
    /// The arcs leaving edge `e` are `arcs[first_arc[e] .. first_arc[e + 1]]`.
    pub first_arc: Vec<u32>,
    /// `(to edge, weight in ms)`.
    pub arcs: Vec<(u32, u32)>,
}

/// What building kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStats {
    pub ways: usize,
    pub restrictions: usize,
    pub edges: usize,
    pub arcs: usize,
    /// Edges outside the largest strongly connected component (islands, one-way traps,
    /// private estates cut off by access tags), left out.
    pub dropped_edges: usize,
    /// Way nodes without a position in the file.
    pub missing_nodes: usize,
}

impl Graph {
    /// The arcs leaving edge `edge`.
    pub fn arcs_from(&self, edge: u32) -> &[(u32, u32)] {
        let edge = edge as usize;
        &self.arcs[self.first_arc[edge] as usize..self.first_arc[edge + 1] as usize]
    }

    /// The points of a piece, in way order.
    pub fn piece_points(&self, piece: u32) -> &[[f64; 2]] {
        let piece = &self.pieces[piece as usize];
        &self.points[piece.first_point as usize..(piece.first_point + piece.num_points) as usize]
    }

    /// The length of the piece edge `edge` drives.
    pub fn edge_length_m(&self, edge: u32) -> f64 {
        self.pieces[self.edges[edge as usize].piece as usize].length_m
    }

    /// Whether the arrays fit together (a cache that does not is prepared again).
    pub(crate) fn check(&self) -> bool {
        let edges = self.edges.len();
        self.first_arc.len() == edges + 1
            && self.first_arc.windows(2).all(|pair| pair[0] <= pair[1])
            && self.first_arc.last().copied() == Some(self.arcs.len() as u32)
            && self.arcs.iter().all(|(to, _)| (*to as usize) < edges)
            && self
                .edges
                .iter()
                .all(|edge| (edge.piece as usize) < self.pieces.len())
            && self.pieces.iter().all(|piece| {
                piece.num_points >= 2
                    && (piece.first_point as usize + piece.num_points as usize) <= self.points.len()
                    && [piece.forward, piece.backward]
                        .iter()
                        .flatten()
                        .all(|edge| (*edge as usize) < edges)
            })
    }

    /// Builds the graph of an extract under `profile`.
    pub fn build(
        extract: &Extract,
        profile: &Profile,
        file: &std::path::Path,
    ) -> Result<(Graph, BuildStats), RoadError> {
        let mut stats = BuildStats {
            ways: extract.ways.len(),
            restrictions: extract.restrictions.len(),
            ..BuildStats::default()
        };
        // Ways cut where a node has no position.
        let mut runs: Vec<(usize, Vec<i64>)> = Vec::new();
        for (index, way) in extract.ways.iter().enumerate() {
            let mut run = Vec::new();
            for node in &way.nodes {
                if extract.nodes.contains_key(node) {
                    run.push(*node);
                } else {
                    stats.missing_nodes += 1;
                    if run.len() >= 2 {
                        runs.push((index, std::mem::take(&mut run)));
                    }
                    run.clear();
                }
            }
            if run.len() >= 2 {
                runs.push((index, run));
            }
        }
        // Junctions: ends of runs, nodes used more than once, restriction vias.
        let mut uses: HashMap<i64, u32> = HashMap::new();
        for (_, run) in &runs {
            for (position, node) in run.iter().enumerate() {
                let end = position == 0 || position + 1 == run.len();
                *uses.entry(*node).or_default() += if end { 2 } else { 1 };
            }
        }
        for restriction in &extract.restrictions {
            if let Some(count) = uses.get_mut(&restriction.via_node) {
                *count += 2;
            }
        }
        let junction = |node: &i64| uses.get(node).is_some_and(|count| *count >= 2);

        let mut graph = Graph::default();
        // Per edge: (from junction, to junction, way index).
        let mut ends: Vec<(i64, i64, usize)> = Vec::new();
        for (way_index, run) in &runs {
            let way = &extract.ways[*way_index];
            let speed_mps = way.speed_kmh / 3.6;
            let mut start = 0;
            for position in 1..run.len() {
                if !junction(&run[position]) && position + 1 != run.len() {
                    continue;
                }
                let nodes = &run[start..=position];
                start = position;
                let first_point = graph.points.len() as u32;
                let mut length_m = 0.0;
                for (index, node) in nodes.iter().enumerate() {
                    let (lat, lon) = extract.nodes[node];
                    if index > 0 {
                        let [plat, plon] = graph.points[graph.points.len() - 1];
                        length_m += haversine_m(plat, plon, lat, lon);
                    }
                    graph.points.push([lat, lon]);
                }
                let time_ms = ((length_m / speed_mps) * 1000.0).round().clamp(1.0, 4e9) as u32;
                let piece = graph.pieces.len() as u32;
                let (from, to) = (nodes[0], nodes[nodes.len() - 1]);
                let mut make = |reversed: bool| {
                    let id = graph.edges.len() as u32;
                    graph.edges.push(Edge {
                        piece,
                        reversed,
                        time_ms,
                    });
                    ends.push(if reversed {
                        (to, from, *way_index)
                    } else {
                        (from, to, *way_index)
                    });
                    id
                };
                let forward = way.direction.forward().then(|| make(false));
                let backward = way.direction.backward().then(|| make(true));
                graph.pieces.push(Piece {
                    first_point,
                    num_points: nodes.len() as u32,
                    length_m,
                    forward,
                    backward,
                });
            }
        }
        // Turns at each junction.
        let mut leaving: HashMap<i64, Vec<u32>> = HashMap::new();
        for (edge, (from, _, _)) in ends.iter().enumerate() {
            leaving.entry(*from).or_default().push(edge as u32);
        }
        let mut restrictions: HashMap<i64, Vec<&crate::osm::Restriction>> = HashMap::new();
        for restriction in &extract.restrictions {
            restrictions
                .entry(restriction.via_node)
                .or_default()
                .push(restriction);
        }
        let u_turn_ms = (profile.u_turn_penalty_s * 1000.0).round() as u32;
        let mut arcs: Vec<Vec<(u32, u32)>> = vec![Vec::new(); graph.edges.len()];
        for (edge, (_, via, way_index)) in ends.iter().enumerate() {
            let from_way = extract.ways[*way_index].id;
            let rules = restrictions.get(via).map(Vec::as_slice).unwrap_or(&[]);
            let only = rules
                .iter()
                .find(|rule| rule.only && rule.from_way == from_way)
                .map(|rule| rule.to_way);
            for next in leaving.get(via).map(Vec::as_slice).unwrap_or(&[]) {
                let to_way = extract.ways[ends[*next as usize].2].id;
                if only.is_some_and(|only| only != to_way)
                    || rules.iter().any(|rule| {
                        !rule.only && rule.from_way == from_way && rule.to_way == to_way
                    })
                {
                    continue;
                }
                let this = graph.edges[edge];
                let that = graph.edges[*next as usize];
                if *next as usize == edge {
                    continue; // a loop piece back onto itself
                }
                let u_turn = this.piece == that.piece && this.reversed != that.reversed;
                let weight = that
                    .time_ms
                    .saturating_add(if u_turn { u_turn_ms } else { 0 });
                arcs[edge].push((*next, weight));
            }
        }
        // Keep the largest strongly connected component.
        let component = largest_component(&arcs);
        let kept: usize = component.iter().filter(|keep| **keep).count();
        if kept == 0 {
            return Err(RoadError::Network {
                file: file.to_path_buf(),
                reason: "no drivable way connects to another".into(),
            });
        }
        stats.dropped_edges = graph.edges.len() - kept;
        let mut renumber = vec![u32::MAX; graph.edges.len()];
        let mut edges = Vec::with_capacity(kept);
        for (old, edge) in graph.edges.iter().enumerate() {
            if component[old] {
                renumber[old] = edges.len() as u32;
                edges.push(*edge);
            }
        }
        let mut first_arc = Vec::with_capacity(kept + 1);
        let mut flat = Vec::new();
        for (old, list) in arcs.iter().enumerate() {
            if !component[old] {
                continue;
            }
            first_arc.push(flat.len() as u32);
            for (to, weight) in list {
                if component[*to as usize] {
                    flat.push((renumber[*to as usize], *weight));
                }
            }
        }
        first_arc.push(flat.len() as u32);
        for piece in &mut graph.pieces {
            piece.forward = piece
                .forward
                .map(|edge| renumber[edge as usize])
                .filter(|edge| *edge != u32::MAX);
            piece.backward = piece
                .backward
                .map(|edge| renumber[edge as usize])
                .filter(|edge| *edge != u32::MAX);
        }
        graph.edges = edges;
        graph.first_arc = first_arc;
        graph.arcs = flat;
        stats.edges = graph.edges.len();
        stats.arcs = graph.arcs.len();
        Ok((graph, stats))
    }
}

/// Marks the nodes of the largest strongly connected component (Tarjan's algorithm,
/// iterative so that a long road cannot overflow the stack).
pub(crate) fn largest_component(arcs: &[Vec<(u32, u32)>]) -> Vec<bool> {
    const NONE: u32 = u32::MAX;
    let n = arcs.len();
    let mut index = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut component = vec![NONE; n];
    let mut sizes: Vec<usize> = Vec::new();
    let mut next_index = 0u32;
    // (node, position in its arc list)
    let mut work: Vec<(u32, usize)> = Vec::new();
    for root in 0..n as u32 {
        if index[root as usize] != NONE {
            continue;
        }
        work.push((root, 0));
        index[root as usize] = next_index;
        low[root as usize] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some((node, position)) = work.last_mut() {
            let v = *node as usize;
            if let Some((to, _)) = arcs[v].get(*position) {
                *position += 1;
                let w = *to as usize;
                if index[w] == NONE {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(*to);
                    on_stack[w] = true;
                    work.push((*to, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _)) = work.last() {
                let p = *parent as usize;
                low[p] = low[p].min(low[v]);
            }
            if low[v] == index[v] {
                let id = sizes.len() as u32;
                let mut size = 0;
                while let Some(member) = stack.pop() {
                    on_stack[member as usize] = false;
                    component[member as usize] = id;
                    size += 1;
                    if member as usize == v {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
    }
    let Some(largest) = sizes
        .iter()
        .enumerate()
        .max_by_key(|(_, size)| **size)
        .map(|(id, _)| id as u32)
    else {
        return vec![false; n];
    };
    component.iter().map(|id| *id == largest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_component_of_a_cycle_and_a_tail() {
        // 0 → 1 → 2 → 0 is a cycle; 3 → 0 is a tail; 4 ↔ 5 a smaller cycle.
        let arcs = vec![
            vec![(1, 1)],
            vec![(2, 1)],
            vec![(0, 1)],
            vec![(0, 1)],
            vec![(5, 1)],
            vec![(4, 1)],
        ];
        assert_eq!(
            largest_component(&arcs),
            vec![true, true, true, false, false, false]
        );
        assert!(largest_component(&[]).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000u32;
        let mut arcs: Vec<Vec<(u32, u32)>> = (0..n).map(|i| vec![((i + 1) % n, 1)]).collect();
        arcs.push(vec![(0, 1)]);
        let kept = largest_component(&arcs);
        assert_eq!(kept.iter().filter(|k| **k).count(), n as usize);
        assert!(!kept[n as usize]);
    }
}
