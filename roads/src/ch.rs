//! Contraction hierarchies over the edge graph: prepared by `fast_paths`, queried here.
//!
//! `fast_paths` answers one source (or a set) to one target; dispatch asks for one
//! customer and dozens of trucks at once. Its prepared graph is copied into [`Ch`] (the
//! same fields, read through serde), and [`Ch::many_to_one`] runs one backward upward
//! search from the target and then one forward upward search per source that stops as
//! soon as it cannot beat the best meeting found, so N sources cost one search plus N
//! short ones instead of N bidirectional queries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::graph::Graph;

const NONE: usize = usize::MAX;

/// An arc of the hierarchy, as `fast_paths` stores it: an original turn arc or a shortcut
/// that replaces two (`replaced_in_edge` in the backward list, then `replaced_out_edge`
/// in the forward list).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ChArc {
    base_node: usize,
    adj_node: usize,
    weight: usize,
    replaced_in_edge: usize,
    replaced_out_edge: usize,
}

/// A prepared hierarchy: `fast_paths::FastGraph`'s fields, in its order. Forward arcs
/// lead from a node to higher-ranked ones (`edges_fwd`, by the node's rank); backward arcs
/// lead into a node from higher-ranked ones (`edges_bwd`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ch {
    num_nodes: usize,
    ranks: Vec<usize>,
    edges_fwd: Vec<ChArc>,
    first_edge_ids_fwd: Vec<usize>,
    edges_bwd: Vec<ChArc>,
    first_edge_ids_bwd: Vec<usize>,
}

/// Why a hierarchy could not be prepared.
#[derive(Debug)]
pub(crate) struct PrepareError(pub String);

impl Ch {
    /// Prepares the hierarchy of a graph.
    pub(crate) fn prepare(graph: &Graph) -> Result<Ch, PrepareError> {
        let mut input = fast_paths::InputGraph::new();
        for edge in 0..graph.edges.len() as u32 {
            for (to, weight) in graph.arcs_from(edge) {
                input.add_edge(edge as usize, *to as usize, (*weight).max(1) as usize);
            }
        }
        input.freeze();
        let prepared = fast_paths::prepare(&input);
        let bytes = postcard::to_allocvec(&prepared)
            .map_err(|error| PrepareError(format!("copying the hierarchy: {error}")))?;
        let ch: Ch = postcard::from_bytes(&bytes)
            .map_err(|error| PrepareError(format!("copying the hierarchy: {error}")))?;
        // `fast_paths` numbers nodes up to the highest one with an arc; a graph whose last
        // edges have no arcs cannot happen after the component filter, but pad anyway.
        if ch.num_nodes < graph.edges.len() {
            return Err(PrepareError(format!(
                "the hierarchy has {} nodes for {} edges",
                ch.num_nodes,
                graph.edges.len()
            )));
        }
        ch.check()?;
        Ok(ch)
    }

    /// Checks the arrays' shapes, so that a corrupt cache is refused rather than indexed
    /// out of bounds.
    pub(crate) fn check(&self) -> Result<(), PrepareError> {
        let n = self.num_nodes;
        let bad = |what: &str| Err(PrepareError(format!("inconsistent hierarchy: {what}")));
        if self.ranks.len() != n
            || self.first_edge_ids_fwd.len() != n + 1
            || self.first_edge_ids_bwd.len() != n + 1
        {
            return bad("array lengths");
        }
        if self.ranks.iter().any(|rank| *rank >= n) {
            return bad("ranks");
        }
        for (firsts, arcs) in [
            (&self.first_edge_ids_fwd, &self.edges_fwd),
            (&self.first_edge_ids_bwd, &self.edges_bwd),
        ] {
            if firsts.windows(2).any(|pair| pair[0] > pair[1])
                || firsts.last().copied() != Some(arcs.len())
            {
                return bad("arc offsets");
            }
            for arc in arcs {
                let shortcut = arc.replaced_in_edge != NONE;
                if arc.base_node >= n
                    || arc.adj_node >= n
                    || (shortcut
                        && (arc.replaced_in_edge >= self.edges_bwd.len()
                            || arc.replaced_out_edge >= self.edges_fwd.len()))
                {
                    return bad("arcs");
                }
            }
        }
        Ok(())
    }

    /// Arcs of the hierarchy: original turns and shortcuts, both directions.
    pub(crate) fn arc_count(&self) -> usize {
        self.edges_fwd.len() + self.edges_bwd.len()
    }

    /// Bytes the hierarchy holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.edges_fwd.len() + self.edges_bwd.len()) * std::mem::size_of::<ChArc>()
            + (self.ranks.len() + self.first_edge_ids_fwd.len() + self.first_edge_ids_bwd.len())
                * std::mem::size_of::<usize>()
    }

    fn forward(&self, node: usize) -> &[ChArc] {
        let rank = self.ranks[node];
        &self.edges_fwd[self.first_edge_ids_fwd[rank]..self.first_edge_ids_fwd[rank + 1]]
    }

    fn forward_first(&self, node: usize) -> usize {
        self.first_edge_ids_fwd[self.ranks[node]]
    }

    fn backward(&self, node: usize) -> &[ChArc] {
        let rank = self.ranks[node];
        &self.edges_bwd[self.first_edge_ids_bwd[rank]..self.first_edge_ids_bwd[rank + 1]]
    }

    fn backward_first(&self, node: usize) -> usize {
        self.first_edge_ids_bwd[self.ranks[node]]
    }

    /// For each source (a set of start nodes with the weight already spent reaching
    /// each), the least weight to any target (a set of end nodes with a weight added on
    /// arrival) and the nodes of that path, source first. `None` where no target is
    /// reachable.
    pub(crate) fn many_to_one(
        &self,
        sources: &[Vec<(u32, u64)>],
        targets: &[(u32, u64)],
        searches: &mut Searches,
    ) -> Vec<Option<(u64, Vec<u32>)>> {
        let Searches { forward, backward } = searches;
        backward.reset(self.num_nodes);
        for (node, weight) in targets {
            backward.offer(*node as usize, *weight, NONE);
        }
        // The whole upward backward space of the targets.
        while let Some(Reverse((weight, node))) = backward.heap.pop() {
            let node = node as usize;
            if weight > backward.weight(node) {
                continue;
            }
            let first = self.backward_first(node);
            for (offset, arc) in self.backward(node).iter().enumerate() {
                backward.offer(arc.adj_node, weight + arc.weight as u64, first + offset);
            }
        }
        sources
            .iter()
            .map(|starts| {
                forward.reset(self.num_nodes);
                for (node, weight) in starts {
                    forward.offer(*node as usize, *weight, NONE);
                }
                let mut best = (u64::MAX, NONE);
                while let Some(Reverse((weight, node))) = forward.heap.pop() {
                    if weight >= best.0 {
                        break;
                    }
                    let node = node as usize;
                    if weight > forward.weight(node) {
                        continue;
                    }
                    let to_target = backward.weight(node);
                    if to_target != u64::MAX && weight + to_target < best.0 {
                        best = (weight + to_target, node);
                    }
                    let first = self.forward_first(node);
                    for (offset, arc) in self.forward(node).iter().enumerate() {
                        forward.offer(arc.adj_node, weight + arc.weight as u64, first + offset);
                    }
                }
                (best.1 != NONE).then(|| (best.0, self.path(forward, backward, best.1)))
            })
            .collect()
    }

    /// The original nodes of the path through `meeting`.
    fn path(&self, forward: &Search, backward: &Search, meeting: usize) -> Vec<u32> {
        // Up from the source to the meeting node.
        let mut up = Vec::new();
        let mut node = meeting;
        while forward.parent(node) != NONE {
            let arc = forward.parent(node);
            up.push(arc);
            node = self.edges_fwd[arc].base_node;
        }
        let mut nodes = vec![node as u32];
        let mut stack = Vec::new();
        for arc in up.into_iter().rev() {
            self.unpack(&mut stack, (true, arc), &mut nodes);
        }
        // Down from the meeting node to the target.
        let mut node = meeting;
        while backward.parent(node) != NONE {
            let arc = backward.parent(node);
            self.unpack(&mut stack, (false, arc), &mut nodes);
            node = self.edges_bwd[arc].base_node;
        }
        nodes
    }

    /// Appends the heads of the original arcs an arc stands for, in path order.
    fn unpack(&self, stack: &mut Vec<(bool, usize)>, arc: (bool, usize), nodes: &mut Vec<u32>) {
        stack.clear();
        stack.push(arc);
        while let Some((forward, index)) = stack.pop() {
            let arc = if forward {
                self.edges_fwd[index]
            } else {
                self.edges_bwd[index]
            };
            if arc.replaced_in_edge == NONE {
                // A forward arc runs base → adj; a backward arc adj → base.
                nodes.push(if forward { arc.adj_node } else { arc.base_node } as u32);
            } else {
                // A shortcut a → b over m is (a → m) from the backward list, then (m → b)
                // from the forward list: pushed in reverse, popped in order.
                stack.push((true, arc.replaced_out_edge));
                stack.push((false, arc.replaced_in_edge));
            }
        }
    }
}

/// The search state of one query, reused across queries.
#[derive(Debug, Default)]
pub(crate) struct Searches {
    forward: Search,
    backward: Search,
}

#[derive(Debug, Default)]
struct Search {
    weights: Vec<u64>,
    parents: Vec<usize>,
    stamps: Vec<u32>,
    stamp: u32,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Search {
    fn reset(&mut self, nodes: usize) {
        if self.stamps.len() != nodes {
            self.weights = vec![u64::MAX; nodes];
            self.parents = vec![NONE; nodes];
            self.stamps = vec![0; nodes];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.iter_mut().for_each(|stamp| *stamp = 0);
            self.stamp = 1;
        }
        self.heap.clear();
    }

    fn weight(&self, node: usize) -> u64 {
        if self.stamps[node] == self.stamp {
            self.weights[node]
        } else {
            u64::MAX
        }
    }

    fn parent(&self, node: usize) -> usize {
        if self.stamps[node] == self.stamp {
            self.parents[node]
        } else {
            NONE
        }
    }

    fn offer(&mut self, node: usize, weight: u64, parent: usize) {
        if weight < self.weight(node) {
            self.stamps[node] = self.stamp;
            self.weights[node] = weight;
            self.parents[node] = parent;
            self.heap.push(Reverse((weight, node as u32)));
        }
    }
}
