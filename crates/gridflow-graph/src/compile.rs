//! [`Compiled`]: a graph culled, fused and ordered on dense integer ids.
//!
//! Keys are hashed once, when the graph is indexed; culling, fusion and ordering then work
//! on vectors, so optimizing a graph of 100,000 tasks costs a few milliseconds.

use crate::graph::Graph;
use crate::task::{Expr, Operation, Task};
use crate::{GraphError, Key, Result};
use rustc_hash::FxHashMap;

/// A graph ready to run: tasks in priority order (id = position), inputs as ids.
#[derive(Clone, Debug)]
pub struct Compiled<O> {
    /// Task keys; a task's id is its position, which is also its priority.
    pub keys: Vec<Key>,
    /// What each task computes.
    pub exprs: Vec<Expr<O>>,
    /// Each task's inputs by position (may repeat an id).
    pub inputs: Vec<Vec<u32>>,
    /// Each task's distinct inputs.
    pub distinct_inputs: Vec<Vec<u32>>,
    /// The distinct tasks that read each task's output.
    pub dependents: Vec<Vec<u32>>,
    /// Ids of the requested outputs, in the order requested.
    pub outputs: Vec<u32>,
    /// Tasks in the graph before culling and fusion.
    pub tasks_before: usize,
}

/// A task whose inputs are ids, each listed once (see [`Node::deduplicated`]).
struct Node<O> {
    expr: Expr<O>,
    inputs: Vec<u32>,
}

impl<O: Operation> Node<O> {
    /// A node whose input list names each id once (`x + x` reads one input twice).
    fn deduplicated(expr: Expr<O>, raw: &[u32]) -> Node<O> {
        let mut inputs: Vec<u32> = Vec::with_capacity(raw.len());
        let map: Vec<usize> = raw
            .iter()
            .map(|&id| match inputs.iter().position(|&x| x == id) {
                Some(p) => p,
                None => {
                    inputs.push(id);
                    inputs.len() - 1
                }
            })
            .collect();
        if inputs.len() == raw.len() {
            return Node { expr, inputs };
        }
        Node {
            expr: expr.map_inputs(&mut |i| Expr::Input(map[i])),
            inputs,
        }
    }

    /// Inlines `inner` (the task producing input `slot`) into this node.
    fn inline(self, slot: usize, inner: Node<O>) -> Node<O> {
        let mut inputs: Vec<u32> = Vec::with_capacity(self.inputs.len() + inner.inputs.len());
        let push = |id: u32, inputs: &mut Vec<u32>| match inputs.iter().position(|&x| x == id) {
            Some(p) => p,
            None => {
                inputs.push(id);
                inputs.len() - 1
            }
        };
        let outer_map: Vec<usize> = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &id)| if i == slot { 0 } else { push(id, &mut inputs) })
            .collect();
        let inner_map: Vec<usize> = inner
            .inputs
            .iter()
            .map(|&id| push(id, &mut inputs))
            .collect();
        let inner_expr = inner.expr.map_inputs(&mut |j| Expr::Input(inner_map[j]));
        // Callers only inline inputs used once, so this clone happens once.
        let expr = self.expr.map_inputs(&mut |i| {
            if i == slot {
                inner_expr.clone()
            } else {
                Expr::Input(outer_map[i])
            }
        });
        Node { expr, inputs }
    }
}

impl<O: Operation> Graph<O> {
    /// Culls the graph to what `outputs` need, optionally fuses it (see [`Graph::fuse`]), and
    /// orders it for low memory use (see [`Graph::order`]), all on dense ids.
    pub fn compile(&self, outputs: &[Key], fuse: bool) -> Result<Compiled<O>> {
        let tasks_before = self.len();
        // 1. Index the tasks the outputs need (cull), hashing each key once.
        let mut ids: FxHashMap<&Key, u32> = FxHashMap::default();
        let mut keys: Vec<&Key> = Vec::new();
        // Breadth-first from the outputs; each task is looked up once, and a missing input
        // is reported with the task that reads it.
        let mut reader: Vec<u32> = Vec::new();
        for o in outputs {
            if !self.contains(o) {
                return Err(GraphError::MissingOutput(o.clone()));
            }
            if !ids.contains_key(o) {
                ids.insert(o, keys.len() as u32);
                reader.push(keys.len() as u32);
                keys.push(o);
            }
        }
        let mut tasks: Vec<&Task<O>> = Vec::new();
        while tasks.len() < keys.len() {
            let at = tasks.len();
            let Some(t) = self.get(keys[at]) else {
                let task = keys[reader[at] as usize].clone();
                return Err(GraphError::MissingDependency {
                    task,
                    missing: keys[at].clone(),
                });
            };
            tasks.push(t);
            for i in &t.inputs {
                if !ids.contains_key(i) {
                    ids.insert(i, keys.len() as u32);
                    reader.push(at as u32);
                    keys.push(i);
                }
            }
        }
        let n = keys.len();
        let mut nodes: Vec<Option<Node<O>>> = tasks
            .iter()
            .map(|t| {
                let raw: Vec<u32> = t
                    .inputs
                    .iter()
                    .filter_map(|i| ids.get(i).copied())
                    .collect();
                Some(Node::deduplicated(t.expr.clone(), &raw))
            })
            .collect();
        let output_ids: Vec<u32> = outputs.iter().filter_map(|o| ids.get(o).copied()).collect();
        drop(ids);

        // 2. Topological order (Kahn), needed by fusion and to detect cycles.
        let dependents = dependents_of(&nodes, n);
        let topo = topological(&nodes, &dependents, &keys)?;

        // 3. Fusion.
        if fuse {
            let mut protected = vec![false; n];
            for &o in &output_ids {
                protected[o as usize] = true;
            }
            for &t in &topo {
                let tu = t as usize;
                if protected[tu] || dependents[tu].len() != 1 {
                    continue;
                }
                let d = dependents[tu][0] as usize;
                let Some(reader) = nodes[d].as_ref() else {
                    continue;
                };
                let Some(slot) = reader.inputs.iter().position(|&i| i == t) else {
                    continue;
                };
                if reader.expr.uses_of(slot) != 1 {
                    continue;
                }
                let linear = reader.inputs.len() == 1;
                let blockwise = match &reader.expr {
                    Expr::Call { op, .. } => op.is_blockwise(),
                    Expr::Input(_) => true,
                };
                if !(linear || blockwise) {
                    continue;
                }
                if let (Some(inner), Some(outer)) = (nodes[tu].take(), nodes[d].take()) {
                    nodes[d] = Some(outer.inline(slot, inner));
                }
            }
        }

        // 4. Memory-aware order over the remaining nodes: depth-first from the outputs,
        //    smallest subtree first, emitting in post-order.
        let live = |i: u32| nodes[i as usize].is_some();
        let mut size = vec![0u64; n];
        for &t in &topo {
            if let Some(node) = &nodes[t as usize] {
                let s: u64 = node.inputs.iter().map(|&i| size[i as usize]).sum();
                size[t as usize] = (1 + s).min(u64::MAX / 4);
            }
        }
        let mut position = vec![u32::MAX; n];
        let mut order: Vec<u32> = Vec::with_capacity(n);
        let mut stack: Vec<(u32, bool)> = Vec::new();
        for &o in &output_ids {
            if position[o as usize] != u32::MAX {
                continue;
            }
            stack.push((o, false));
            while let Some((k, expanded)) = stack.pop() {
                let ku = k as usize;
                if position[ku] != u32::MAX {
                    continue;
                }
                if expanded {
                    position[ku] = order.len() as u32;
                    order.push(k);
                    continue;
                }
                stack.push((k, true));
                let Some(node) = &nodes[ku] else { continue };
                let mut ins: Vec<u32> = node
                    .inputs
                    .iter()
                    .copied()
                    .filter(|&i| live(i) && position[i as usize] == u32::MAX)
                    .collect();
                ins.sort_by(|&a, &b| {
                    size[b as usize]
                        .cmp(&size[a as usize])
                        .then_with(|| keys[b as usize].cmp(keys[a as usize]))
                });
                stack.extend(ins.into_iter().map(|i| (i, false)));
            }
        }

        // 5. Renumber by priority.
        let mut out = Compiled {
            keys: Vec::with_capacity(order.len()),
            exprs: Vec::with_capacity(order.len()),
            inputs: Vec::with_capacity(order.len()),
            distinct_inputs: Vec::with_capacity(order.len()),
            dependents: vec![Vec::new(); order.len()],
            outputs: output_ids.iter().map(|&o| position[o as usize]).collect(),
            tasks_before,
        };
        for (new_id, &old) in order.iter().enumerate() {
            let Some(node) = nodes[old as usize].take() else {
                continue;
            };
            let inputs: Vec<u32> = node.inputs.iter().map(|&i| position[i as usize]).collect();
            let distinct = inputs.clone();
            for &i in &distinct {
                out.dependents[i as usize].push(new_id as u32);
            }
            out.keys.push(keys[old as usize].clone());
            out.exprs.push(node.expr);
            out.inputs.push(inputs);
            out.distinct_inputs.push(distinct);
        }
        Ok(out)
    }
}

fn dependents_of<O>(nodes: &[Option<Node<O>>], n: usize) -> Vec<Vec<u32>> {
    let mut dependents = vec![Vec::new(); n];
    for (id, node) in nodes.iter().enumerate() {
        if let Some(node) = node {
            for &i in &node.inputs {
                dependents[i as usize].push(id as u32);
            }
        }
    }
    dependents
}

fn topological<O>(
    nodes: &[Option<Node<O>>],
    dependents: &[Vec<u32>],
    keys: &[&Key],
) -> Result<Vec<u32>> {
    let n = nodes.len();
    let mut waiting: Vec<usize> = nodes
        .iter()
        .map(|nd| nd.as_ref().map_or(0, |nd| nd.inputs.len()))
        .collect();
    let mut ready: Vec<u32> = (0..n as u32)
        .filter(|&i| waiting[i as usize] == 0)
        .collect();
    let mut topo = Vec::with_capacity(n);
    while let Some(k) = ready.pop() {
        topo.push(k);
        for &d in &dependents[k as usize] {
            waiting[d as usize] -= 1;
            if waiting[d as usize] == 0 {
                ready.push(d);
            }
        }
    }
    if topo.len() != n {
        let stuck = (0..n).find(|&i| waiting[i] > 0).map_or(0, |i| i);
        return Err(GraphError::Cycle(keys[stuck].clone()));
    }
    Ok(topo)
}

impl<O: Operation> Compiled<O> {
    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Back to a keyed graph (for drawing and inspection).
    pub fn to_graph(&self) -> Graph<O> {
        let mut g = Graph::new();
        for (id, k) in self.keys.iter().enumerate() {
            let inputs = self.inputs[id]
                .iter()
                .map(|&i| self.keys[i as usize].clone())
                .collect();
            g.insert(
                k.clone(),
                Task {
                    expr: self.exprs[id].clone(),
                    inputs,
                },
            );
        }
        g
    }
}
