//! Operations for the crate's resilience tests (workers that die, slow tasks), run by the
//! `gridflow-test-node resil worker ...` processes: the conformance suite's [`TestOp`]s plus
//! a task that sleeps and one that kills its worker.

use gridflow_graph::Operation;
use gridflow_runtime::Execute;
use gridflow_runtime::conformance::{TestOp, buf, num};
use serde::{Deserialize, Serialize};

/// A [`TestOp`], a slow sum, or a task that aborts its worker process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ResilOp {
    /// A conformance-suite operation.
    Op(TestOp),
    /// Sleeps `ms` milliseconds, then sums its inputs' numbers plus `add` into a buffer
    /// of `bytes` bytes.
    Slow {
        /// Milliseconds to sleep.
        ms: u64,
        /// Added to the sum.
        add: u64,
        /// The result's size.
        bytes: usize,
    },
    /// Kills the worker process running it (`abort`, SIGABRT), every time.
    Abort,
}

impl Operation for ResilOp {
    fn label(&self) -> String {
        match self {
            ResilOp::Op(o) => o.label(),
            ResilOp::Slow { .. } => "slow".into(),
            ResilOp::Abort => "abort".into(),
        }
    }
    fn is_source(&self) -> bool {
        match self {
            ResilOp::Op(o) => o.is_source(),
            _ => false,
        }
    }
    fn is_blockwise(&self) -> bool {
        match self {
            ResilOp::Op(o) => o.is_blockwise(),
            _ => false,
        }
    }
}

impl Execute for ResilOp {
    type Value = Vec<u8>;
    type Error = String;
    fn execute(&self, inputs: &[&Vec<u8>]) -> Result<Vec<u8>, String> {
        match self {
            ResilOp::Op(o) => o.execute(inputs),
            ResilOp::Slow { ms, add, bytes } => {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                Ok(buf(
                    inputs.iter().map(|v| num(v)).sum::<u64>() + add,
                    *bytes,
                ))
            }
            ResilOp::Abort => std::process::abort(),
        }
    }
    fn nbytes(v: &Vec<u8>) -> usize {
        v.len()
    }
}
