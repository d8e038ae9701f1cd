//! Tasks: an operation value applied to the outputs of other tasks.

use crate::Key;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// An operation that a task applies: plain data, serializable, so the same graph can run
/// on a thread pool or be sent to remote workers, drawn, hashed and inspected.
pub trait Operation: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// A short human label for drawings, progress and errors (`"sum-chunk"`, `"add"`).
    fn label(&self) -> String;

    /// True when the operation works block by block (elementwise), so that fusion may inline
    /// every single-use input chain into it, not only a linear chain.
    fn is_blockwise(&self) -> bool {
        false
    }

    /// True when the operation creates or loads data without inputs (a read, `ones`...).
    /// Executors hold such tasks back while memory is over budget.
    fn is_source(&self) -> bool {
        false
    }

    /// True when a task whose top operation is this one may be rewritten by
    /// [`Operation::lower`]: compiling asks only those tasks, so the others cost nothing.
    fn lowers(&self) -> bool {
        false
    }

    /// Lowering, the last compile pass: rewrites a task's expression (after fusion) into an
    /// equivalent one that is cheaper to run (a selection moved to the read, a chain over a
    /// read streamed slab by slab), or `None` to keep it. The result is part of the plan:
    /// it is what executors run and what drawings show.
    fn lower(_expr: &Expr<Self>) -> Option<Expr<Self>> {
        None
    }

    /// The most bytes a task is estimated to hold at once while running `expr` (its result
    /// included, its inputs not), if known: executors admit tasks against their memory
    /// budget with it.
    fn peak_bytes(_expr: &Expr<Self>) -> Option<u64> {
        None
    }
}

/// What a task computes: an operation applied to arguments that are either the task's
/// inputs (by position in [`Task::inputs`]) or nested expressions (after fusion).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "O: Serialize", deserialize = "O: DeserializeOwned"))]
pub enum Expr<O> {
    /// The value of input `i` of the task.
    Input(usize),
    /// `op(args...)`.
    Call {
        /// The operation.
        op: O,
        /// Its arguments, in order.
        args: Vec<Expr<O>>,
    },
}

impl<O: Operation> Expr<O> {
    /// The labels of the operations in this expression, innermost first
    /// (`read+scale+sum-chunk` for a fused chain).
    pub fn label(&self) -> String {
        let mut labels = Vec::new();
        self.collect_labels(&mut labels);
        if labels.is_empty() {
            "alias".to_owned()
        } else {
            labels.join("+")
        }
    }

    fn collect_labels(&self, out: &mut Vec<String>) {
        if let Expr::Call { op, args } = self {
            for a in args {
                a.collect_labels(out);
            }
            out.push(op.label());
        }
    }

    /// Number of operation calls in the expression.
    pub fn calls(&self) -> usize {
        match self {
            Expr::Input(_) => 0,
            Expr::Call { args, .. } => 1 + args.iter().map(Expr::calls).sum::<usize>(),
        }
    }

    /// True if any operation in the expression is a source.
    pub fn has_source(&self) -> bool {
        match self {
            Expr::Input(_) => false,
            Expr::Call { op, args } => op.is_source() || args.iter().any(Expr::has_source),
        }
    }

    /// How many times input `i` is referenced.
    pub fn uses_of(&self, i: usize) -> usize {
        match self {
            Expr::Input(j) => usize::from(*j == i),
            Expr::Call { args, .. } => args.iter().map(|a| a.uses_of(i)).sum(),
        }
    }

    /// A copy with input references replaced through `f` (operations are cloned).
    pub(crate) fn map_inputs_ref(&self, f: &mut impl FnMut(usize) -> Expr<O>) -> Expr<O> {
        match self {
            Expr::Input(i) => f(*i),
            Expr::Call { op, args } => Expr::Call {
                op: op.clone(),
                args: args.iter().map(|a| a.map_inputs_ref(f)).collect(),
            },
        }
    }
}

/// A unit of work in a graph: an expression over the outputs of `inputs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "O: Serialize", deserialize = "O: DeserializeOwned"))]
pub struct Task<O> {
    /// What to compute.
    pub expr: Expr<O>,
    /// The keys whose outputs the expression reads, by position.
    pub inputs: Vec<Key>,
}

impl<O: Operation> Task<O> {
    /// `op(inputs...)`.
    ///
    /// ```
    /// # use gridflow_graph::{Key, Task, Operation};
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Add;
    /// # impl Operation for Add { fn label(&self) -> String { "add".into() } }
    /// let t = Task::new(Add, vec![Key::new("x-1", &[0]), Key::new("y-2", &[0])]);
    /// assert_eq!(t.inputs.len(), 2);
    /// ```
    pub fn new(op: O, inputs: Vec<Key>) -> Task<O> {
        let args = (0..inputs.len()).map(Expr::Input).collect();
        Task {
            expr: Expr::Call { op, args },
            inputs,
        }
    }

    /// A task that passes another task's output through unchanged (no copy).
    pub fn alias(of: Key) -> Task<O> {
        Task {
            expr: Expr::Input(0),
            inputs: vec![of],
        }
    }

    /// The top-level operation, or `None` for an alias.
    pub fn op(&self) -> Option<&O> {
        match &self.expr {
            Expr::Call { op, .. } => Some(op),
            Expr::Input(_) => None,
        }
    }

    /// Label for drawings and errors.
    pub fn label(&self) -> String {
        self.expr.label()
    }

    /// True if the task has no inputs and loads or creates data.
    pub fn is_source(&self) -> bool {
        self.inputs.is_empty() && self.expr.has_source()
    }
}
