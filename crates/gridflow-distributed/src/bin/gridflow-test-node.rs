//! A scheduler or worker for the executor conformance suite's operations
//! (`gridflow_runtime::conformance::TestOp`): what the distributed crate's tests start as
//! worker processes. `gridflow-test-node worker ADDRESS --nthreads 2`.

use gridflow_runtime::conformance::TestOp;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match gridflow_distributed::node::main::<TestOp>(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridflow-test-node: {e}");
            ExitCode::FAILURE
        }
    }
}
