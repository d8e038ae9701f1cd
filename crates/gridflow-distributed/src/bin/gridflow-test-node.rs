//! A scheduler or worker for the executor conformance suite's operations
//! (`gridflow_runtime::conformance::TestOp`): what the distributed crate's tests start as
//! worker processes. `gridflow-test-node worker ADDRESS --nthreads 2`; with `resil` first,
//! the nodes run [`gridflow_distributed::testing::ResilOp`]s (slow tasks, tasks that kill
//! their worker).

use gridflow_runtime::conformance::TestOp;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = gridflow_distributed::logging::init(None, "warn") {
        eprintln!("gridflow-test-node: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = match args.split_first() {
        Some((first, rest)) if first == "resil" => {
            gridflow_distributed::node::main::<gridflow_distributed::testing::ResilOp>(rest)
        }
        _ => gridflow_distributed::node::main::<TestOp>(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridflow-test-node: {e}");
            ExitCode::FAILURE
        }
    }
}
