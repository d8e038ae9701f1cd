//! Memory-aware static ordering of a graph (after Dask's `order`).
//!
//! The goal: finish the branches that free memory before starting new input tasks. We do a
//! depth-first walk from the outputs, visiting a task's inputs smallest-subtree first, and
//! emit tasks in post-order. A reduction tree is then computed one group at a time: the
//! inputs of one combine are loaded, reduced and released before the next group starts,
//! instead of loading every chunk first (breadth-first).

use crate::graph::{Graph, distinct};
use crate::task::Operation;
use crate::{Key, Result};
use rustc_hash::{FxHashMap, FxHashSet};

impl<O: Operation> Graph<O> {
    /// The tasks `outputs` need, in a memory-friendly execution order (a task's position is
    /// its priority; executors run ready tasks lowest position first).
    ///
    /// Outputs are walked in the order given; a task's inputs are visited smallest subtree
    /// first, ties broken by key, so the order is deterministic.
    pub fn order(&self, outputs: &[Key]) -> Result<Vec<Key>> {
        Ok(self.compile(outputs, false)?.keys)
    }

    /// The largest number of task outputs held in memory at once when the graph is run
    /// one task at a time in `order` (outputs stay held to the end). A measure of how
    /// memory-friendly an order is.
    pub fn peak_held(&self, order: &[Key], outputs: &[Key]) -> usize {
        let mut remaining: FxHashMap<&Key, usize> = FxHashMap::default();
        for (k, ds) in self.dependents() {
            remaining.insert(k, ds.len());
        }
        let keep: FxHashSet<&Key> = outputs.iter().collect();
        let (mut held, mut peak) = (0usize, 0usize);
        for k in order {
            held += 1;
            peak = peak.max(held);
            if let Some(t) = self.get(k) {
                for i in distinct(&t.inputs) {
                    if let Some(r) = remaining.get_mut(i) {
                        *r -= 1;
                        if *r == 0 && !keep.contains(i) {
                            held -= 1;
                        }
                    }
                }
            }
        }
        peak
    }
}
