//! The `gridflow` command-line tool.

mod demo;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Parallel, out-of-core analysis of chunked, labeled N-dimensional data.
#[derive(Parser)]
#[command(name = "gridflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tutorial: a CMIP6-like 3-hourly temperature field, a point time series and a
    /// time-mean map, computed in parallel on the local executor.
    Demo {
        /// Years of 3-hourly data on the 360-day calendar (2880 steps per year).
        #[arg(long, default_value_t = 2)]
        years: usize,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Memory budget for held results, in MiB.
        #[arg(long, default_value_t = 1024)]
        memory_limit_mib: usize,
        /// Where to write the task-graph drawing and results.
        #[arg(long, default_value = "gridflow-demo")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            years,
            threads,
            memory_limit_mib,
            out,
        } => demo::run(&demo::Options {
            years,
            threads,
            memory_limit_mib,
            out,
        }),
    }
}
