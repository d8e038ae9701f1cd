//! [`Compiled`]: a graph culled, fused and ordered on dense integer ids.
//!
//! Compiling has two halves. Indexing finds the tasks the outputs need and numbers them
//! (an [`Indexed`] graph): a [`Graph`] hashes each key once for that, while a caller that
//! already numbers its tasks (a graph made of layers of blocks) implements [`DenseTasks`]
//! and skips hashing. Fusion and ordering then work on vectors of ids, so optimizing a
//! graph of 100,000 tasks costs a few milliseconds. The result, a [`Program`], borrows the
//! tasks: no expression is copied, and a task that others were fused into gets its merged
//! expression built when it is about to run (or once, by [`Program::into_compiled`]).

use crate::graph::Graph;
use crate::task::{Expr, Operation, Task};
use crate::{GraphError, Key, Result};
use rustc_hash::FxHashMap;
use std::borrow::Cow;

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
    /// Each task's estimated peak bytes ([`Operation::peak_bytes`]), where known.
    pub peak_bytes: Vec<Option<u64>>,
}

/// A store of tasks numbered densely by their owner, so that compiling needs no hash map
/// (see [`Indexed::from_dense`]).
///
/// A chunked array's graph is made of layers whose blocks are in a known order, so the id
/// of a block's key is the layer's first id plus the block's position: no hashing.
pub trait DenseTasks<'g, O> {
    /// Every id is below this.
    fn universe(&self) -> usize;

    /// The id of the task producing `key`, or `None` if there is none.
    fn id_of(&mut self, key: &Key) -> Option<u32>;

    /// The key and the task of an id returned by [`DenseTasks::id_of`].
    fn task(&self, id: u32) -> (&'g Key, &'g Task<O>);
}

/// The tasks that some outputs need (a culled graph), numbered `0..len()` in
/// breadth-first order from the outputs, with their inputs resolved to those numbers.
pub struct Indexed<'g, O> {
    keys: Vec<&'g Key>,
    tasks: Vec<&'g Task<O>>,
    /// `raw[starts[i]..starts[i + 1]]`: task `i`'s input ids, in the order of its inputs.
    starts: Vec<u32>,
    raw: Vec<u32>,
    outputs: Vec<u32>,
    tasks_before: usize,
}

impl<'g, O: Operation> Indexed<'g, O> {
    /// An empty index with room for `n` tasks.
    fn with_capacity(n: usize, tasks_before: usize) -> Indexed<'g, O> {
        let mut starts = Vec::with_capacity(n + 1);
        starts.push(0);
        Indexed {
            keys: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
            starts,
            raw: Vec::with_capacity(n),
            outputs: Vec::new(),
            tasks_before,
        }
    }

    /// Culls a densely numbered store to what `outputs` need. `tasks_before` is the number
    /// of tasks in the store (reported as [`Compiled::tasks_before`]).
    ///
    /// Breadth-first from the outputs, like [`Graph::compile`], so both number tasks alike.
    pub fn from_dense(
        outputs: &[Key],
        tasks: &mut impl DenseTasks<'g, O>,
        tasks_before: usize,
    ) -> Result<Indexed<'g, O>> {
        let universe = tasks.universe();
        // Store id -> dense id (u32::MAX: not reached yet).
        let mut local = vec![u32::MAX; universe];
        let mut global: Vec<u32> = Vec::with_capacity(universe);
        let mut ix = Indexed::with_capacity(universe, tasks_before);
        for o in outputs {
            let g = tasks
                .id_of(o)
                .filter(|&g| (g as usize) < universe)
                .ok_or_else(|| GraphError::MissingOutput(o.clone()))?;
            if local[g as usize] == u32::MAX {
                local[g as usize] = global.len() as u32;
                global.push(g);
            }
            ix.outputs.push(local[g as usize]);
        }
        let mut at = 0;
        while at < global.len() {
            let (key, task) = tasks.task(global[at]);
            ix.keys.push(key);
            ix.tasks.push(task);
            for i in &task.inputs {
                let Some(g) = tasks.id_of(i).filter(|&g| (g as usize) < universe) else {
                    return Err(GraphError::MissingDependency {
                        task: key.clone(),
                        missing: i.clone(),
                    });
                };
                if local[g as usize] == u32::MAX {
                    local[g as usize] = global.len() as u32;
                    global.push(g);
                }
                ix.raw.push(local[g as usize]);
            }
            ix.starts.push(ix.raw.len() as u32);
            at += 1;
        }
        Ok(ix)
    }

    /// Number of tasks the outputs need.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no task is needed.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn raw_inputs(&self, id: usize) -> &[u32] {
        &self.raw[self.starts[id] as usize..self.starts[id + 1] as usize]
    }

    /// Optionally fuses the tasks (see [`Graph::fuse`]) and orders them for low memory use
    /// (see [`Graph::order`]).
    pub fn compile(self, fuse: bool) -> Result<Compiled<O>> {
        Ok(self.program(fuse)?.into_compiled())
    }

    /// Like [`Indexed::compile`], but borrowing the tasks instead of copying their
    /// expressions: what executors run (see [`Program`]).
    pub fn program(self, fuse: bool) -> Result<Program<'g, O>> {
        let n = self.len();

        // 1. Each task's distinct inputs in first-seen order (`x + x` reads x once), as
        //    offsets into one vector; `stamp` marks ids already seen for the current task.
        let mut dstarts: Vec<u32> = Vec::with_capacity(n + 1);
        let mut dids: Vec<u32> = Vec::with_capacity(self.raw.len());
        let mut stamp = vec![u32::MAX; n];
        dstarts.push(0);
        for t in 0..n {
            for &i in self.raw_inputs(t) {
                if stamp[i as usize] != t as u32 {
                    stamp[i as usize] = t as u32;
                    dids.push(i);
                }
            }
            dstarts.push(dids.len() as u32);
        }
        drop(stamp);
        let distinct = |t: usize| &dids[dstarts[t] as usize..dstarts[t + 1] as usize];

        // 2. Readers of each task, in increasing id order (same layout).
        let (rstarts, readers) = readers_table(&dstarts, &dids);
        let readers_of = |t: usize| &readers[rstarts[t] as usize..rstarts[t + 1] as usize];

        // 3. Topological order (Kahn), needed by fusion and to detect cycles.
        let mut waiting: Vec<u32> = (0..n).map(|t| dstarts[t + 1] - dstarts[t]).collect();
        let mut ready: Vec<u32> = (0..n as u32)
            .filter(|&i| waiting[i as usize] == 0)
            .collect();
        let mut topo: Vec<u32> = Vec::with_capacity(n);
        while let Some(k) = ready.pop() {
            topo.push(k);
            for &d in readers_of(k as usize) {
                waiting[d as usize] -= 1;
                if waiting[d as usize] == 0 {
                    ready.push(d);
                }
            }
        }
        if topo.len() != n {
            let stuck = waiting.iter().position(|&w| w > 0).unwrap_or(0);
            return Err(GraphError::Cycle(self.keys[stuck].clone()));
        }
        drop(waiting);

        // 4. Fusion. Whether a task can be inlined into its reader depends only on the
        //    graph as given (the reader's other inputs cannot read it, or it would have two
        //    readers), so it is decided here without copying expressions: only the input
        //    lists of readers that absorb tasks change, and merged expressions are built
        //    from `absorbed` when asked for. `absorbed[t]` is the task t was inlined into
        //    (u32::MAX: none).
        let mut absorbed = vec![u32::MAX; n];
        // Input lists that differ from `distinct` after fusion (`None`: unchanged).
        let mut merged: Vec<Option<Vec<u32>>> = vec![None; n];
        if fuse {
            let mut protected = vec![false; n];
            for &o in &self.outputs {
                protected[o as usize] = true;
            }
            for &t in &topo {
                let tu = t as usize;
                let [d] = readers_of(tu) else { continue };
                if protected[tu] {
                    continue;
                }
                let du = *d as usize;
                let expr = &self.tasks[du].expr;
                let uses: usize = self
                    .raw_inputs(du)
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| **i == t)
                    .map(|(slot, _)| expr.uses_of(slot))
                    .sum();
                if uses != 1 {
                    continue;
                }
                let linear = distinct(du).len() == 1;
                let blockwise = match expr {
                    Expr::Call { op, .. } => op.is_blockwise(),
                    Expr::Input(_) => true,
                };
                if !(linear || blockwise) {
                    continue;
                }
                absorbed[tu] = *d;
                // The reader's inputs become its other inputs, then the inlined task's
                // inputs not already there (the order `Compiled` has always used).
                let inner = merged[tu].take();
                let inner: &[u32] = inner.as_deref().unwrap_or_else(|| distinct(tu));
                let outer = match merged[du].take() {
                    // A chain link (the reader's only input): no list to edit.
                    None if linear => inner.to_vec(),
                    prior => {
                        let mut outer = prior.unwrap_or_else(|| distinct(du).to_vec());
                        outer.retain(|&i| i != t);
                        for &i in inner {
                            if !outer.contains(&i) {
                                outer.push(i);
                            }
                        }
                        outer
                    }
                };
                merged[du] = Some(outer);
            }
        }
        let live = |t: u32| absorbed[t as usize] == u32::MAX;
        let inputs_of = |t: u32| -> &[u32] {
            match &merged[t as usize] {
                Some(v) => v,
                None => distinct(t as usize),
            }
        };

        // 5. Memory-aware order over the remaining tasks: depth-first from the outputs,
        //    smallest subtree first, emitting in post-order.
        let mut size = vec![0u64; n];
        for &t in &topo {
            if live(t) {
                let s: u64 = inputs_of(t).iter().map(|&i| size[i as usize]).sum();
                size[t as usize] = (1 + s).min(u64::MAX / 4);
            }
        }
        drop(topo);
        let mut position = vec![u32::MAX; n];
        let mut order: Vec<u32> = Vec::with_capacity(n);
        let mut stack: Vec<(u32, bool)> = Vec::new();
        let mut ins: Vec<u32> = Vec::new();
        for &o in &self.outputs {
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
                if !live(k) {
                    continue;
                }
                ins.clear();
                ins.extend(
                    inputs_of(k)
                        .iter()
                        .copied()
                        .filter(|&i| live(i) && position[i as usize] == u32::MAX),
                );
                ins.sort_by(|&a, &b| {
                    size[b as usize]
                        .cmp(&size[a as usize])
                        .then_with(|| self.keys[b as usize].cmp(self.keys[a as usize]))
                });
                stack.extend(ins.iter().map(|&i| (i, false)));
            }
        }

        // 6. Renumber by priority: inputs and readers by new id, one vector each.
        let mut istarts: Vec<u32> = Vec::with_capacity(order.len() + 1);
        let mut inputs: Vec<u32> = Vec::new();
        let mut plain: Vec<bool> = Vec::with_capacity(order.len());
        istarts.push(0);
        for &old in &order {
            let list = inputs_of(old);
            inputs.extend(list.iter().map(|&i| position[i as usize]));
            istarts.push(inputs.len() as u32);
            // Nothing inlined and no input read twice: the task's own expression runs as is.
            plain.push(
                merged[old as usize].is_none() && list.len() == self.raw_inputs(old as usize).len(),
            );
        }
        let (rstarts, readers) = readers_table(&istarts, &inputs);
        let outputs = self.outputs.iter().map(|&o| position[o as usize]).collect();
        let mut program = Program {
            ix: self,
            order,
            position,
            absorbed,
            plain,
            istarts,
            inputs,
            rstarts,
            readers,
            outputs,
            lowered: FxHashMap::default(),
            peak: Vec::new(),
        };
        program.lower();
        Ok(program)
    }
}

/// A compiled graph that borrows the tasks it was made from (see [`Indexed::program`]):
/// tasks in priority order (id = position), inputs and readers as ids. The expression of a
/// task that others were fused into is built when asked for ([`Runnable::expr`]), so an
/// executor builds it on the thread that runs the task, just before running it.
pub struct Program<'g, O> {
    ix: Indexed<'g, O>,
    /// Indexed id of each task.
    order: Vec<u32>,
    /// New id of each indexed task (u32::MAX: culled or fused away).
    position: Vec<u32>,
    /// For each indexed task, the task it was fused into (u32::MAX: none).
    absorbed: Vec<u32>,
    /// True when a task's expression is its original one, unchanged.
    plain: Vec<bool>,
    /// `inputs[istarts[i]..istarts[i + 1]]`: task i's distinct inputs.
    istarts: Vec<u32>,
    inputs: Vec<u32>,
    /// `readers[rstarts[i]..rstarts[i + 1]]`: the tasks that read task i.
    rstarts: Vec<u32>,
    readers: Vec<u32>,
    outputs: Vec<u32>,
    /// Lowered expressions of the tasks that [`Operation::lower`] rewrote, by new id.
    lowered: FxHashMap<u32, Expr<O>>,
    /// Estimated peak bytes by new id (empty: none known).
    peak: Vec<Option<u64>>,
}

/// What an executor needs of a compiled graph: implemented by [`Compiled`] and [`Program`].
/// Ids are `0..len()`, in priority order; ids passed in must be below `len()`.
pub trait Runnable<O: Operation> {
    /// Number of tasks.
    fn len(&self) -> usize;

    /// True when there is nothing to run.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of a task (for errors and progress).
    fn key(&self, id: usize) -> &Key;

    /// What a task computes; `Input(i)` reads `inputs(id)[i]`.
    fn expr(&self, id: usize) -> Cow<'_, Expr<O>>;

    /// A task's inputs by position (may repeat an id).
    fn inputs(&self, id: usize) -> &[u32];

    /// A task's distinct inputs.
    fn distinct_inputs(&self, id: usize) -> &[u32];

    /// The distinct tasks that read a task's output.
    fn dependents(&self, id: usize) -> &[u32];

    /// Ids of the requested outputs, in the order requested.
    fn outputs(&self) -> &[u32];

    /// Tasks in the graph before culling and fusion.
    fn tasks_before(&self) -> usize;

    /// A task's estimated peak bytes ([`Operation::peak_bytes`]), if known.
    fn peak_bytes(&self, _id: usize) -> Option<u64> {
        None
    }
}

impl<O: Operation> Program<'_, O> {
    /// The lowering pass: each task whose top operation [`Operation::lowers`] gets its
    /// (fused) expression lowered now, so that the plan, not the executor, decides how it
    /// runs; the estimated peak bytes of every lowered task are recorded.
    fn lower(&mut self) {
        let mut peak: Vec<Option<u64>> = Vec::new();
        for id in 0..self.order.len() {
            let old = self.order[id] as usize;
            if !self.ix.tasks[old].op().is_some_and(Operation::lowers) {
                continue;
            }
            let expr = self.expr(id);
            let Some(low) = O::lower(&expr) else {
                continue;
            };
            if peak.is_empty() {
                peak = vec![None; self.order.len()];
            }
            peak[id] = O::peak_bytes(&low);
            self.lowered.insert(id as u32, low);
        }
        self.peak = peak;
    }

    /// The expression of a task others were fused into (or that reads an input twice).
    fn build(&self, id: usize) -> Expr<O> {
        let list = &self.inputs[self.istarts[id] as usize..self.istarts[id + 1] as usize];
        // Input lists are short; a long one gets a map from id to position.
        let map: Option<FxHashMap<u32, usize>> =
            (list.len() > 32).then(|| list.iter().enumerate().map(|(p, &i)| (i, p)).collect());
        let build = Build {
            ix: &self.ix,
            absorbed: &self.absorbed,
            leaf: &|old: u32| {
                let new = self.position[old as usize];
                match &map {
                    Some(m) => m.get(&new).copied(),
                    None => list.iter().position(|&i| i == new),
                }
            },
            leaves: list.len(),
        };
        build.expr(self.order[id])
    }

    /// Copies the expressions into a [`Compiled`] graph (for inspection and drawing).
    pub fn into_compiled(self) -> Compiled<O> {
        let m = self.order.len();
        let mut out = Compiled {
            keys: Vec::with_capacity(m),
            exprs: Vec::with_capacity(m),
            inputs: Vec::with_capacity(m),
            distinct_inputs: Vec::with_capacity(m),
            dependents: Vec::with_capacity(m),
            outputs: self.outputs.clone(),
            tasks_before: self.ix.tasks_before,
            peak_bytes: (0..m).map(|id| self.peak_bytes(id)).collect(),
        };
        for id in 0..m {
            out.keys.push(self.key(id).clone());
            out.exprs.push(self.expr(id).into_owned());
            out.inputs.push(self.inputs(id).to_vec());
            out.distinct_inputs.push(self.inputs(id).to_vec());
            out.dependents.push(self.dependents(id).to_vec());
        }
        out
    }
}

impl<O: Operation> Runnable<O> for Program<'_, O> {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn key(&self, id: usize) -> &Key {
        self.ix.keys[self.order[id] as usize]
    }

    fn expr(&self, id: usize) -> Cow<'_, Expr<O>> {
        if let Some(e) = self.lowered.get(&(id as u32)) {
            Cow::Borrowed(e)
        } else if self.plain[id] {
            Cow::Borrowed(&self.ix.tasks[self.order[id] as usize].expr)
        } else {
            Cow::Owned(self.build(id))
        }
    }

    fn inputs(&self, id: usize) -> &[u32] {
        &self.inputs[self.istarts[id] as usize..self.istarts[id + 1] as usize]
    }

    fn distinct_inputs(&self, id: usize) -> &[u32] {
        self.inputs(id)
    }

    fn dependents(&self, id: usize) -> &[u32] {
        &self.readers[self.rstarts[id] as usize..self.rstarts[id + 1] as usize]
    }

    fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    fn tasks_before(&self) -> usize {
        self.ix.tasks_before
    }

    fn peak_bytes(&self, id: usize) -> Option<u64> {
        self.peak.get(id).copied().flatten()
    }
}

impl<O: Operation> Runnable<O> for Compiled<O> {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn key(&self, id: usize) -> &Key {
        &self.keys[id]
    }

    fn expr(&self, id: usize) -> Cow<'_, Expr<O>> {
        Cow::Borrowed(&self.exprs[id])
    }

    fn inputs(&self, id: usize) -> &[u32] {
        &self.inputs[id]
    }

    fn distinct_inputs(&self, id: usize) -> &[u32] {
        &self.distinct_inputs[id]
    }

    fn dependents(&self, id: usize) -> &[u32] {
        &self.dependents[id]
    }

    fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    fn tasks_before(&self) -> usize {
        self.tasks_before
    }

    fn peak_bytes(&self, id: usize) -> Option<u64> {
        self.peak_bytes.get(id).copied().flatten()
    }
}

/// What building a fused task's expression needs.
struct Build<'a, 'g, O> {
    ix: &'a Indexed<'g, O>,
    absorbed: &'a [u32],
    /// Position in the task's input list of an input (by indexed id).
    leaf: &'a dyn Fn(u32) -> Option<usize>,
    /// Length of the task's input list (an index past it reads as missing at run time).
    leaves: usize,
}

impl<O: Operation> Build<'_, '_, O> {
    /// Task `t`'s expression with the tasks inlined into it substituted, and other inputs
    /// referring to their position in the task's input list.
    fn expr(&self, t: u32) -> Expr<O> {
        let raw = self.ix.raw_inputs(t as usize);
        self.ix.tasks[t as usize].expr.map_inputs_ref(&mut |i| {
            let Some(&id) = raw.get(i) else {
                // A malformed expression (input past the end): keep it out of range.
                return Expr::Input(self.leaves + i);
            };
            if self.absorbed[id as usize] == t {
                self.expr(id)
            } else {
                Expr::Input((self.leaf)(id).unwrap_or(self.leaves + i))
            }
        })
    }
}

impl<O: Operation> Graph<O> {
    /// The tasks `outputs` need, numbered (hashing each key once); see [`Indexed`].
    pub fn indexed(&self, outputs: &[Key]) -> Result<Indexed<'_, O>> {
        let mut ids: FxHashMap<&Key, u32> = FxHashMap::default();
        ids.reserve(self.len());
        let mut ix = Indexed::with_capacity(self.len(), self.len());
        // Breadth-first from the outputs; each task is looked up once, and a missing input
        // is reported with the task that reads it.
        let mut queue: Vec<&Key> = Vec::new();
        let mut reader: Vec<u32> = Vec::new();
        for o in outputs {
            let Some((key, _)) = self.get_key_value(o) else {
                return Err(GraphError::MissingOutput(o.clone()));
            };
            let next = queue.len() as u32;
            let id = *ids.entry(key).or_insert_with(|| {
                queue.push(key);
                reader.push(next);
                next
            });
            ix.outputs.push(id);
        }
        while ix.tasks.len() < queue.len() {
            let at = ix.tasks.len();
            let Some((key, t)) = self.get_key_value(queue[at]) else {
                return Err(GraphError::MissingDependency {
                    task: queue[reader[at] as usize].clone(),
                    missing: queue[at].clone(),
                });
            };
            ix.keys.push(key);
            ix.tasks.push(t);
            for i in &t.inputs {
                let next = queue.len() as u32;
                let id = *ids.entry(i).or_insert_with(|| {
                    queue.push(i);
                    reader.push(at as u32);
                    next
                });
                ix.raw.push(id);
            }
            ix.starts.push(ix.raw.len() as u32);
        }
        Ok(ix)
    }

    /// Culls the graph to what `outputs` need, optionally fuses it (see [`Graph::fuse`]), and
    /// orders it for low memory use (see [`Graph::order`]), all on dense ids.
    pub fn compile(&self, outputs: &[Key], fuse: bool) -> Result<Compiled<O>> {
        self.indexed(outputs)?.compile(fuse)
    }
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
        let mut g = Graph::with_capacity(self.len());
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

/// The readers of every task, from every task's inputs (`inputs[starts[t]..starts[t + 1]]`
/// are task `t`'s): the same offsets-and-ids layout, each task's readers in increasing id.
fn readers_table(starts: &[u32], inputs: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let n = starts.len().saturating_sub(1);
    let mut rstarts = vec![0u32; n + 1];
    for &i in inputs {
        rstarts[i as usize + 1] += 1;
    }
    for t in 0..n {
        rstarts[t + 1] += rstarts[t];
    }
    let mut fill = rstarts.clone();
    let mut readers = vec![0u32; inputs.len()];
    for t in 0..n {
        for &i in &inputs[starts[t] as usize..starts[t + 1] as usize] {
            readers[fill[i as usize] as usize] = t as u32;
            fill[i as usize] += 1;
        }
    }
    (rstarts, readers)
}
