//! [`Graph`]: a map from keys to tasks, with culling, fusion and memory-aware ordering.

use crate::task::{Operation, Task};
use crate::{GraphError, Key, Result};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A task graph: every key maps to the task that produces it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(
    bound(
        serialize = "O: Serialize + Clone",
        deserialize = "O: DeserializeOwned"
    ),
    into = "Vec<(Key, Task<O>)>",
    from = "Vec<(Key, Task<O>)>"
)]
pub struct Graph<O> {
    tasks: FxHashMap<Key, Task<O>>,
}

// Serialized as a list of (key, task) pairs, in key order, so any format (JSON included)
// can carry it and the bytes are deterministic.
impl<O> From<Graph<O>> for Vec<(Key, Task<O>)> {
    fn from(g: Graph<O>) -> Self {
        let mut v: Vec<(Key, Task<O>)> = g.tasks.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl<O> From<Vec<(Key, Task<O>)>> for Graph<O> {
    fn from(v: Vec<(Key, Task<O>)>) -> Self {
        Graph {
            tasks: v.into_iter().collect(),
        }
    }
}

impl<O> Default for Graph<O> {
    fn default() -> Self {
        Graph {
            tasks: FxHashMap::default(),
        }
    }
}

/// Counts that describe a graph, for "tasks before/after optimization" reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStats {
    /// Number of tasks.
    pub tasks: usize,
    /// Tasks without inputs.
    pub roots: usize,
    /// Input edges.
    pub edges: usize,
    /// Operation calls, counting each call inside a fused task.
    pub calls: usize,
    /// Longest chain of tasks.
    pub depth: usize,
}

impl<O: Operation> Graph<O> {
    /// An empty graph.
    pub fn new() -> Graph<O> {
        Graph::default()
    }

    /// An empty graph with room for `n` tasks.
    pub fn with_capacity(n: usize) -> Graph<O> {
        let mut tasks = FxHashMap::default();
        tasks.reserve(n);
        Graph { tasks }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds a task. A key is a deterministic name for a computation, so inserting a key that
    /// is already present keeps the existing task.
    pub fn insert(&mut self, key: Key, task: Task<O>) {
        self.tasks.entry(key).or_insert(task);
    }

    /// The task producing `key`.
    pub fn get(&self, key: &Key) -> Option<&Task<O>> {
        self.tasks.get(key)
    }

    /// The stored key equal to `key`, and its task.
    pub fn get_key_value(&self, key: &Key) -> Option<(&Key, &Task<O>)> {
        self.tasks.get_key_value(key)
    }

    /// True if the graph has a task for `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.tasks.contains_key(key)
    }

    /// All (key, task) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Task<O>)> {
        self.tasks.iter()
    }

    /// All keys, sorted (deterministic).
    pub fn sorted_keys(&self) -> Vec<&Key> {
        let mut keys: Vec<&Key> = self.tasks.keys().collect();
        keys.sort();
        keys
    }

    /// Adds every task of `other` (shared keys are the same computation and are kept once).
    pub fn merge(&mut self, other: &Graph<O>) {
        self.tasks.reserve(other.len());
        for (k, t) in &other.tasks {
            if !self.tasks.contains_key(k) {
                self.tasks.insert(k.clone(), t.clone());
            }
        }
    }

    /// Consumes the graph into its tasks.
    pub fn into_tasks(self) -> FxHashMap<Key, Task<O>> {
        self.tasks
    }

    /// Checks that every input exists and that the graph has no cycle.
    pub fn validate(&self) -> Result<()> {
        for (k, t) in &self.tasks {
            for i in &t.inputs {
                if !self.tasks.contains_key(i) {
                    return Err(GraphError::MissingDependency {
                        task: k.clone(),
                        missing: i.clone(),
                    });
                }
            }
        }
        self.topological_order().map(|_| ())
    }

    /// Keys in an order where every task comes after its inputs (sources first, ties by key).
    pub fn topological_order(&self) -> Result<Vec<Key>> {
        let mut waiting: FxHashMap<&Key, usize> = FxHashMap::default();
        let mut dependents: FxHashMap<&Key, Vec<&Key>> = FxHashMap::default();
        for (k, t) in &self.tasks {
            let mut n = 0;
            for i in distinct(&t.inputs) {
                if self.tasks.contains_key(i) {
                    n += 1;
                    dependents.entry(i).or_default().push(k);
                }
            }
            waiting.insert(k, n);
        }
        let mut ready: Vec<&Key> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| *k)
            .collect();
        ready.sort_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(self.tasks.len());
        while let Some(k) = ready.pop() {
            out.push(k.clone());
            if let Some(ds) = dependents.get(k) {
                for d in ds {
                    if let Some(n) = waiting.get_mut(d) {
                        *n -= 1;
                        if *n == 0 {
                            ready.push(d);
                        }
                    }
                }
            }
        }
        if out.len() != self.tasks.len() {
            let done: FxHashSet<&Key> = out.iter().collect();
            let stuck = self.sorted_keys().into_iter().find(|k| !done.contains(k));
            if let Some(k) = stuck {
                return Err(GraphError::Cycle(k.clone()));
            }
        }
        Ok(out)
    }

    /// The sub-graph needed to compute `outputs` (Dask's `cull`).
    ///
    /// ```
    /// # use gridflow_graph::{Graph, Key, Task, Operation};
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Op;
    /// # impl Operation for Op { fn label(&self) -> String { "op".into() } }
    /// let mut g = Graph::new();
    /// let (a, b, c) = (Key::new("a", &[]), Key::new("b", &[]), Key::new("c", &[]));
    /// g.insert(a.clone(), Task::new(Op, vec![]));
    /// g.insert(b.clone(), Task::new(Op, vec![a.clone()]));
    /// g.insert(c.clone(), Task::new(Op, vec![]));
    /// assert_eq!(g.cull(&[b]).unwrap().len(), 2);
    /// ```
    pub fn cull(&self, outputs: &[Key]) -> Result<Graph<O>> {
        Ok(self.compile(outputs, false)?.to_graph())
    }

    /// Counts of tasks, roots, edges, calls and depth.
    pub fn stats(&self) -> GraphStats {
        let depth = self.depths().values().copied().max().map_or(0, |d| d + 1);
        GraphStats {
            tasks: self.tasks.len(),
            roots: self.tasks.values().filter(|t| t.inputs.is_empty()).count(),
            edges: self.tasks.values().map(|t| t.inputs.len()).sum(),
            calls: self.tasks.values().map(|t| t.expr.calls()).sum(),
            depth,
        }
    }

    /// Longest path from a root to each task (roots are 0).
    pub fn depths(&self) -> FxHashMap<Key, usize> {
        let mut depth: FxHashMap<Key, usize> = FxHashMap::default();
        if let Ok(order) = self.topological_order() {
            for k in order {
                let d = self.tasks[&k]
                    .inputs
                    .iter()
                    .filter_map(|i| depth.get(i))
                    .map(|d| d + 1)
                    .max()
                    .unwrap_or(0);
                depth.insert(k, d);
            }
        }
        depth
    }

    /// For each key, the distinct keys that read its output.
    pub fn dependents(&self) -> FxHashMap<&Key, Vec<&Key>> {
        let mut out: FxHashMap<&Key, Vec<&Key>> = FxHashMap::default();
        for (k, t) in &self.tasks {
            out.entry(k).or_default();
            for i in distinct(&t.inputs) {
                out.entry(i).or_default().push(k);
            }
        }
        out
    }

    /// Culls to `outputs`, then fuses chains of tasks into single tasks (Dask's `fuse` plus
    /// blockwise fusion).
    ///
    /// A task is inlined into the one task that reads it when it is not among `outputs`,
    /// is read exactly once, and the reader either has no other input (a linear chain such
    /// as read → decode → scale → mask) or works block by block ([`Operation::is_blockwise`]),
    /// so `a * 2 + b` becomes one task per block. Reductions keep their inputs as separate
    /// tasks so the tree stays parallel.
    pub fn fuse(&self, outputs: &[Key]) -> Result<Graph<O>> {
        Ok(self.compile(outputs, true)?.to_graph())
    }

    /// Cull, then fuse: what executors run. Returns the optimized graph.
    pub fn optimize(&self, outputs: &[Key]) -> Result<Graph<O>> {
        self.fuse(outputs)
    }
}

/// The distinct keys of a list, in first-seen order.
pub(crate) fn distinct(keys: &[Key]) -> Vec<&Key> {
    if keys.len() <= 16 {
        keys.iter()
            .enumerate()
            .filter(|(i, k)| !keys[..*i].contains(k))
            .map(|(_, k)| k)
            .collect()
    } else {
        let mut seen: FxHashSet<&Key> = FxHashSet::default();
        keys.iter().filter(|k| seen.insert(k)).collect()
    }
}
