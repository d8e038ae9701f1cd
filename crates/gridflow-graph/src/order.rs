//! Memory-aware static ordering of a graph (after Dask's `order`).
//!
//! The goal: finish the branches that free memory before starting new input tasks. We do a
//! depth-first walk from the outputs, visiting a task's inputs smallest-subtree first, and
//! emit tasks in post-order. A reduction tree is then computed one group at a time: the
//! inputs of one combine are loaded, reduced and released before the next group starts,
//! instead of loading every chunk first (breadth-first).

use crate::graph::{Graph, distinct};
use crate::task::Operation;
use crate::{GraphError, Key, Result};
use rustc_hash::{FxHashMap, FxHashSet};

impl<O: Operation> Graph<O> {
    /// A priority for every task: position in a memory-friendly execution order.
    ///
    /// Executors run ready tasks lowest priority first. Outputs are walked in the order
    /// given; ties between inputs are broken by subtree size, then by key, so the order is
    /// deterministic.
    pub fn order(&self, outputs: &[Key]) -> Result<Vec<Key>> {
        let topo = self.topological_order()?;
        // Approximate subtree sizes: 1 + sum over distinct inputs (capped to avoid overflow
        // on wide DAGs; only the relative size matters).
        let mut size: FxHashMap<&Key, u64> = FxHashMap::default();
        for k in &topo {
            let t = &self.get_task(k)?;
            let s = 1 + distinct(&t.inputs)
                .iter()
                .map(|i| size.get(i).copied().unwrap_or(0))
                .sum::<u64>();
            size.insert(k, s.min(u64::MAX / 4));
        }
        let mut emitted: FxHashSet<&Key> = FxHashSet::default();
        let mut out: Vec<Key> = Vec::with_capacity(self.len());
        let mut roots: Vec<&Key> = Vec::new();
        for o in outputs {
            if !self.contains(o) {
                return Err(GraphError::MissingOutput(o.clone()));
            }
            roots.push(o);
        }
        // Tasks nobody asked for (if the graph was not culled) come last, by key.
        let mut rest: Vec<&Key> = topo.iter().collect();
        rest.sort();
        roots.extend(rest);

        // Iterative DFS: (key, expanded?)
        let mut stack: Vec<(&Key, bool)> = Vec::new();
        for r in roots {
            if emitted.contains(r) {
                continue;
            }
            stack.push((r, false));
            while let Some((k, expanded)) = stack.pop() {
                if emitted.contains(k) {
                    continue;
                }
                if expanded {
                    emitted.insert(k);
                    out.push(k.clone());
                    continue;
                }
                stack.push((k, true));
                let t = self.get_task(k)?;
                let mut inputs: Vec<&Key> = distinct(&t.inputs)
                    .into_iter()
                    .filter(|i| !emitted.contains(i))
                    .collect();
                // Visit smallest subtree first: push in reverse so it is popped first.
                inputs.sort_by(|a, b| {
                    let (sa, sb) = (
                        size.get(a).copied().unwrap_or(0),
                        size.get(b).copied().unwrap_or(0),
                    );
                    sb.cmp(&sa).then_with(|| b.cmp(a))
                });
                for i in inputs {
                    stack.push((i, false));
                }
            }
        }
        Ok(out)
    }

    fn get_task(&self, k: &Key) -> Result<&crate::Task<O>> {
        self.get(k)
            .ok_or_else(|| GraphError::MissingOutput(k.clone()))
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
