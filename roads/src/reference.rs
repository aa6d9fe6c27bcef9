//! Plain Dijkstra on the edge graph: the reference the hierarchy is tested against, and
//! the baseline its speed is measured against.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::graph::Graph;

/// The least weight (ms) from edge `from` to every edge (`u64::MAX` where unreachable),
/// with the same weights the hierarchy uses: arriving on an edge costs driving it.
pub fn weights_from(graph: &Graph, from: u32) -> Vec<u64> {
    let mut weights = vec![u64::MAX; graph.edges.len()];
    let mut heap = BinaryHeap::new();
    weights[from as usize] = 0;
    heap.push(Reverse((0u64, from)));
    while let Some(Reverse((weight, edge))) = heap.pop() {
        if weight > weights[edge as usize] {
            continue;
        }
        for (to, arc) in graph.arcs_from(edge) {
            let next = weight + u64::from(*arc);
            if next < weights[*to as usize] {
                weights[*to as usize] = next;
                heap.push(Reverse((next, *to)));
            }
        }
    }
    weights
}
