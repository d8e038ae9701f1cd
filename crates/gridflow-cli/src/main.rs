//! The `gridflow` command-line tool.

// User input reaches most of this crate: no unchecked indexing, slicing or arithmetic.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::arithmetic_side_effects
    )
)]

mod catalog_cmd;
mod cluster_cmd;
mod common;
mod demo;
mod eval;
mod eval_cmd;
mod gateway_cmd;
mod group_arg;
mod out;
mod pyscalar;
mod sample;

use anyhow::Result;
use clap::{Parser, Subcommand};
use out::{note, outln};
use std::path::PathBuf;

/// Parallel, out-of-core analysis of chunked, labeled N-dimensional data (CMIP6-style Zarr
/// stores, intake-esm catalogs), in one binary.
#[derive(Parser)]
#[command(
    name = "gridflow",
    version,
    about = "Parallel, out-of-core analysis of chunked, labeled N-d data (CMIP6-style Zarr stores, intake-esm catalogs)",
    after_help = "Start with `gridflow demo`: it writes a sample CMIP6-like store and catalog and runs the tutorial.\nThen try `gridflow eval --help` for xarray-style expressions on your own stores.\n\nExit status: 0 on success, 1 on an error (said on stderr), 2 on a usage error, and 141, quietly,\nwhen standard output is a pipe whose reader stopped early (`gridflow ... | head -1`), as for\nother Unix tools.\n\nLimits on what files may make gridflow read (raise them for unusually large stores):\n  GRIDFLOW_LIMITS=metadata=64MiB,index=50000000,catalog=1GiB (the defaults; any subset)\n  metadata: largest .zmetadata/.zarray/zarr.json; index: most values of a coordinate loaded on open;\n  catalog: largest catalog JSON/CSV, also decompressed. Task graphs count against --memory-limit."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for this process's structured logs on stderr: a level (error, warn, info,
    /// debug, trace) or directives (gridflow_distributed=debug,info); default: GRIDFLOW_LOG,
    /// else RUST_LOG, else info.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tutorial end to end: write the sample CMIP6-like store and catalog (once),
    /// search the catalog, open the dataset, select the point nearest Milan, draw its task
    /// graph, compute and plot its time series and the time-mean map in parallel.
    Demo {
        /// Years of 3-hourly data in the sample (2880 steps and ~318 MB of float32 per year).
        #[arg(long, default_value_t = 1)]
        years: usize,
        /// Time steps instead of years (quick runs: e.g. --steps 240 is 30 days).
        #[arg(long)]
        steps: Option<usize>,
        /// Directory of the sample store and catalog (written if absent).
        #[arg(long, default_value = "gridflow-data")]
        data: PathBuf,
        /// Directory for the figures and the task-graph drawing.
        #[arg(long, default_value = "gridflow-demo")]
        out: PathBuf,
        /// Compute in this process on N threads instead of on a local cluster.
        #[arg(long, conflicts_with_all = ["scheduler", "cluster"])]
        threads: Option<usize>,
        /// Memory budget, e.g. 2GB, split between the workers (default: half the RAM).
        #[arg(long)]
        memory_limit: Option<String>,
        /// Run on the cluster whose scheduler is at this address (tcp://HOST:PORT).
        #[arg(long, value_name = "ADDRESS", conflicts_with = "cluster")]
        scheduler: Option<String>,
        /// The cluster started on this machine for the demo: local[:N_WORKERS[xTHREADS]]
        /// (default: local, sized from the cores as Dask's `Client()` is).
        #[arg(long, value_name = "local[:NxT]")]
        cluster: Option<String>,
        /// Credentials for --scheduler.
        #[command(flatten)]
        auth: common::ClientAuthArgs,
    },
    /// Search an intake-esm catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Write the embedded sample: a CMIP6-like 3-hourly tas Zarr store and an intake-esm
    /// catalog listing it.
    Sample {
        /// Years of 3-hourly data on the 360-day calendar (2880 steps, ~318 MB per year).
        #[arg(long, default_value_t = 1)]
        years: usize,
        /// Time steps instead of years (e.g. --steps 240 is 30 days).
        #[arg(long)]
        steps: Option<usize>,
        /// Directory for the store and the catalog.
        #[arg(long, default_value = "gridflow-data")]
        data: PathBuf,
    },
    /// Print the dataset repr of a Zarr store (local path, http(s)://, s3://, gs://, az://).
    #[command(after_help = common::storage_help())]
    Info {
        /// The store.
        url: String,
        /// Print the structure as JSON instead.
        #[arg(long)]
        json: bool,
        /// How to reach remote stores.
        #[command(flatten)]
        storage: common::StorageArgs,
        /// The group to open.
        #[command(flatten)]
        group: group_arg::GroupArg,
    },
    /// Evaluate an xarray-style expression on a dataset; print, write or plot the result.
    ///
    /// The dataset is bound to `ds`; `np` holds NumPy-named functions (cos, sin, deg2rad,
    /// sqrt, abs, log, exp, where, isnan, maximum, ...); `da` holds Dask-array constructors
    /// (ones, zeros, full, arange, linspace, random.random) taking chunks=.
    ///
    /// Examples:
    ///   gridflow eval --store S 'ds.tas.sel(lat=45.5, lon=9.4, method="nearest").mean("time")'
    ///   gridflow eval --store S 'ds["tas"].groupby("time.month").mean()'
    ///   gridflow eval --store S '(ds.tas - 273.15).where(ds.tas > 280).mean()'
    ///   gridflow eval --store S 'ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(["lat", "lon"])'
    ///   gridflow eval --store S 'ds.tas.resample(time="1D").max()' -o daily_max.zarr
    ///   gridflow eval --store S 'ds.tas.sel(time=slice("1850-02", "1850-03")).isel(lat=0)'
    ///   gridflow eval 'da.ones((20000, 20000), chunks=(200, 200)).sum()'
    ///   gridflow eval --store gs://BUCKET/PATH.zarr 'ds.tas.isel(time=0).mean()'
    ///   gridflow eval --store az://data/tas.zarr --storage-option account_name=ACCOUNT 'ds.tas.mean()'
    #[command(verbatim_doc_comment, after_help = format!("{}\n\n{}", catalog_cmd::TERMS_HELP, common::storage_help()))]
    Eval(Box<eval_cmd::EvalArgs>),
    /// The gateway: without a subcommand, run the server (REST API and cluster routing on
    /// one port); with one, act as its client (`new`, `list`, `status`, `scale`, `adapt`,
    /// `stop`; `token` makes a user's API token). See docs/gateway.md.
    #[command(args_conflicts_with_subcommands = true)]
    Gateway {
        #[command(flatten)]
        serve: gateway_cmd::ServeArgs,
        #[command(subcommand)]
        command: Option<gateway_cmd::GatewayCommand>,
    },
    /// Start a cluster on Slurm, SSH hosts or Kubernetes and keep it up until Ctrl-C.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Run a scheduler of the distributed runtime; prints the address it listens on.
    Scheduler {
        /// Host (interface) to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (0: any free port).
        #[arg(long, default_value_t = 8786)]
        port: u16,
        /// Also write the address to this file (JSON: {"address": ...}).
        #[arg(long)]
        scheduler_file: Option<PathBuf>,
        /// Where to serve the dashboard: HOST:PORT, :PORT, :0 for any free port, or none.
        #[arg(long, default_value = ":8787", value_name = "HOST:PORT")]
        dashboard_address: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Run a worker of the distributed runtime, joining the scheduler at ADDRESS.
    Worker {
        /// The scheduler's address (tcp://HOST:PORT).
        address: String,
        /// Threads running tasks (default: one per core).
        #[arg(long)]
        nthreads: Option<usize>,
        /// Memory limit, e.g. 4GiB (reported to the scheduler; default: none).
        #[arg(long)]
        memory_limit: Option<String>,
        /// Directory for results spilled when memory runs short (with --memory-limit;
        /// default: one under the system's temporary directory).
        #[arg(long)]
        local_directory: Option<PathBuf>,
        /// Name shown in cluster information.
        #[arg(long)]
        name: Option<String>,
        /// Exit when nothing is heard from the scheduler for this many milliseconds
        /// (default 30000).
        #[arg(long)]
        heartbeat_timeout: Option<u64>,
        /// Where each thread records the task it runs, for a nanny (set by local clusters).
        #[arg(long, hide = true)]
        running_file: Option<PathBuf>,
        #[command(flatten)]
        deploy: WorkerDeployArgs,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

/// Where a worker listens and how long it lives (set by batch-system deployments).
#[derive(clap::Args)]
struct WorkerDeployArgs {
    /// Host (interface address) of the worker's data port, which peers and clients reach
    /// (default 127.0.0.1).
    #[arg(long)]
    host: Option<String>,
    /// Retire gracefully after this many seconds (results moved to other workers first),
    /// before a batch job's walltime ends.
    #[arg(long, value_name = "SECONDS")]
    lifetime: Option<u64>,
    /// Add up to this many seconds to --lifetime, so that workers started together do not
    /// retire together.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    lifetime_stagger: u64,
}

/// Who may connect (scheduler and workers). Without these, the environment's
/// GRIDFLOW_AUTH_TOKEN or GRIDFLOW_AUTH_TOKEN_FILE and GRIDFLOW_TLS_CA / _CERT / _KEY are used
/// (clients such as `eval --scheduler` read those); with none, only 127.0.0.1 is allowed.
#[derive(clap::Args)]
struct AuthArgs {
    /// The cluster's shared secret, proven by challenge-response (never sent). Visible to
    /// other users in the process list: prefer --auth-token-file or GRIDFLOW_AUTH_TOKEN.
    #[arg(long, value_name = "TOKEN", conflicts_with = "auth_token_file")]
    auth_token: Option<String>,
    /// A file holding the shared secret, readable only by its owner.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// The CA certificate for tls:// (mutual TLS, with --tls-cert and --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This node's certificate (chain) for tls://.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// This node's private key for tls://.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    tls_key: Option<PathBuf>,
}

impl AuthArgs {
    /// The credentials: the environment's, then these options over them.
    fn security(self) -> Result<gridflow_distributed::Security> {
        let mut s = gridflow_distributed::Security::from_env()?;
        if let Some(t) = self.auth_token {
            s = s.with_token(t.trim())?;
        } else if let Some(f) = self.auth_token_file {
            s = s.with_token_file(&f)?;
        }
        if let (Some(ca), Some(cert), Some(key)) = (self.tls_ca, self.tls_cert, self.tls_key) {
            s = s.with_tls(gridflow_distributed::TlsFiles { ca, cert, key })?;
        }
        Ok(s)
    }
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Print the dataset keys (and row counts) matching `col=value` terms; `col=v1,v2`
    /// matches any of several values, and values may be regular expressions as in
    /// intake-esm (`member_id=^r1.*`).
    #[command(after_help = format!("{}\n\n{}", catalog_cmd::TERMS_HELP, common::storage_help()))]
    Search {
        /// The catalog JSON (path, file://, http(s)://, s3://, gs://, az://).
        catalog: String,
        /// Search terms, `col=value` or `col=v1,v2` (see below).
        terms: Vec<String>,
        /// How the terms are read.
        #[command(flatten)]
        options: catalog_cmd::SearchOptions,
        /// Also print the unique values of every column.
        #[arg(long)]
        unique: bool,
        /// Print `{"rows": N, "keys": [...]}` (and `"unique"` with --unique).
        #[arg(long)]
        json: bool,
        /// How to reach remote catalogs.
        #[command(flatten)]
        storage: common::StorageArgs,
    },
}

/// Exit status when standard output is a pipe whose reader has gone (`gridflow ... | head
/// -1`): what a shell reports for Unix tools that SIGPIPE ends (128 + 13), without a
/// message.
const BROKEN_PIPE_STATUS: u8 = 141;

fn main() -> std::process::ExitCode {
    let result = match Cli::try_parse() {
        Ok(cli) => run_on_big_stack(cli),
        Err(e) => return usage(&e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let stdout = e.chain().find_map(|c| c.downcast_ref::<out::StdoutError>());
            if stdout.is_some_and(out::StdoutError::is_broken_pipe) {
                return std::process::ExitCode::from(BROKEN_PIPE_STATUS);
            }
            let text = format!("{e:#}");
            if text.starts_with("error") {
                note!("{text}");
            } else {
                note!("error: {text}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--help`, `--version` or a usage error: printed through the same fallible output as
/// everything else (clap's own printing ignores write errors).
fn usage(e: &clap::Error) -> std::process::ExitCode {
    let text = e.render().to_string();
    let text = text.trim_end();
    if !e.use_stderr() {
        return match outln!("{text}") {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) if err.is_broken_pipe() => std::process::ExitCode::from(BROKEN_PIPE_STATUS),
            Err(err) => {
                note!("error: {err}: {}", err.0);
                std::process::ExitCode::FAILURE
            }
        };
    }
    note!("{text}");
    std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// Stack for the command: a long chain of array operations (`x + 1 + 1 ...`, tens of
/// thousands of steps) recurses once per step when its task graph is fused and compiled,
/// which overflows the default 8 MiB main stack; only the pages used are committed.
const STACK_BYTES: usize = 256 << 20;

fn run_on_big_stack(cli: Cli) -> Result<()> {
    let worker = std::thread::Builder::new()
        .name("gridflow".into())
        .stack_size(STACK_BYTES)
        .spawn(move || run(cli));
    match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: the command panicked"))),
        Err(e) => Err(anyhow::anyhow!("starting the command's thread: {e}")),
    }
}

fn run(cli: Cli) -> Result<()> {
    let default = match cli.command {
        Command::Scheduler { .. } | Command::Worker { .. } => "info",
        _ => "warn",
    };
    gridflow_distributed::logging::init(cli.log_level.as_deref(), default)?;
    match cli.command {
        Command::Demo {
            years,
            steps,
            data,
            out,
            threads,
            memory_limit,
            scheduler,
            cluster,
            auth,
        } => {
            // As the tutorial's `Client()`: a local cluster unless told otherwise.
            let cluster = match (&threads, &scheduler, cluster) {
                (None, None, None) => Some("local".to_owned()),
                (_, _, c) => c,
            };
            let options = demo::Options {
                steps: sample_steps(years, steps)?,
                data,
                out,
                exec: common::Executor::new(threads, memory_limit.as_deref())?.with_cluster(
                    scheduler.as_deref(),
                    cluster.as_deref(),
                    &auth,
                )?,
            };
            demo::run(&options)?;
            options.exec.close()
        }
        Command::Catalog {
            command:
                CatalogCommand::Search {
                    catalog,
                    terms,
                    options,
                    unique,
                    json,
                    storage,
                },
        } => catalog_cmd::search(
            std::path::Path::new(&catalog),
            &terms,
            &options,
            &storage,
            unique,
            json,
        ),
        Command::Sample { years, steps, data } => {
            let s = sample::ensure_sample(&data, sample_steps(years, steps)?)?;
            outln!("store:   {}", s.store.display())?;
            outln!("catalog: {}", s.catalog.display())?;
            Ok(())
        }
        Command::Info {
            url,
            json,
            storage,
            group,
        } => eval_cmd::info(&url, json, &group.open_options(&storage)?),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Gateway { serve, command } => match command {
            None => gateway_cmd::serve(&serve),
            Some(c) => gateway_cmd::run(c),
        },
        Command::Cluster(c) => cluster_cmd::run(c),
        Command::Scheduler {
            host,
            port,
            scheduler_file,
            dashboard_address,
            auth,
        } => Ok(gridflow_distributed::node::run_scheduler_with(
            &host,
            port,
            scheduler_file.as_deref(),
            gridflow_distributed::scheduler::SchedulerOptions {
                security: auth.security()?,
                dashboard_address: Some(dashboard_address),
                ..Default::default()
            },
        )?),
        Command::Worker {
            address,
            nthreads,
            memory_limit,
            local_directory,
            name,
            heartbeat_timeout,
            running_file,
            deploy,
            auth,
        } => {
            // Workers run read tasks: the store's source kinds must be known here.
            gridflow_store::register();
            let mut o = gridflow_distributed::WorkerOptions {
                nthreads: nthreads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
                    .max(1),
                ..gridflow_distributed::WorkerOptions::default()
            };
            if let Some(m) = memory_limit {
                o.memory_limit = common::parse_size(&m)? as u64;
            }
            if let Some(n) = name {
                o.name = n;
            }
            o.local_directory = local_directory;
            o.running_file = running_file;
            o.security = Some(auth.security()?);
            if let Some(h) = deploy.host {
                o.host = h;
            }
            o.lifetime = deploy.lifetime.map(std::time::Duration::from_secs);
            o.lifetime_stagger = std::time::Duration::from_secs(deploy.lifetime_stagger);
            // SIGTERM (a pod stopped, a job cancelled) retires the worker gracefully.
            if let Some(sec) = &o.security {
                gridflow_deploy::retire_on_sigterm(&address, &o.name, sec.clone())?;
            }
            if let Some(ms) = heartbeat_timeout {
                o.heartbeat_timeout = std::time::Duration::from_millis(ms);
            }
            Ok(gridflow_distributed::worker::run::<gridflow_array::ArrayOp>(&address, o)?)
        }
    }
}

/// The sample's time steps from `--steps` or `--years`, at least one.
fn sample_steps(years: usize, steps: Option<usize>) -> Result<usize> {
    let n = match steps {
        Some(n) => n,
        None => years
            .checked_mul(sample::STEPS_PER_YEAR)
            .ok_or_else(|| anyhow::anyhow!("--years {years} is too many"))?,
    };
    if n == 0 {
        anyhow::bail!(
            "the sample needs at least one time step (--steps 1 or more, --years 1 or more)"
        );
    }
    Ok(n)
}
