//! A worker for the deployment tests: runs the executor conformance suite's operations
//! (`gridflow_runtime::conformance::TestOp`) as `gridflow-deploy-test-node worker ADDRESS
//! ...`, so that the tests need not build the whole `gridflow` binary.

use gridflow_runtime::conformance::TestOp;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match gridflow_distributed::node::main::<TestOp>(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridflow-deploy-test-node: {e}");
            ExitCode::FAILURE
        }
    }
}
