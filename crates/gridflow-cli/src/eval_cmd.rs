//! `gridflow eval` and `gridflow info`.

use crate::common::{Executor, json_number, plot, to_json};
use crate::eval::{Env, Val, eval};
use crate::out::{note, outln};
use anyhow::{Context, Result, anyhow, bail};
use gridflow_dataset::{DataArray, Dataset, ToNetcdfOptions, ToZarrOptions, open_dataset};
use gridflow_store::{WriteMode, staging};
use serde_json::json;
use std::path::PathBuf;

/// Options of `gridflow eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The expression, e.g. 'ds.tas.mean("time")'.
    pub expr: String,
    /// The data to bind to `ds`: a Zarr store (local path, http(s)://, s3://, gs://, az://,
    /// abfs://), a kerchunk reference file (JSON, recognised by content), a local netCDF file,
    /// or a glob of netCDF files ('run_*.nc', combined by their coordinates).
    #[arg(long, conflicts_with = "catalog")]
    pub store: Option<String>,
    /// An intake-esm catalog (JSON) whose search leaves the dataset bound to `ds`.
    #[arg(long)]
    pub catalog: Option<String>,
    /// A catalog search term, one per column: `--search variable_id=tas --search
    /// member_id=r1i1p1f1,r2i1p1f1` (comma: any of several values; see the syntax below).
    #[arg(long, value_name = "COL=VALUE")]
    pub search: Vec<String>,
    /// How the search is read.
    #[command(flatten)]
    pub search_options: crate::catalog_cmd::SearchOptions,
    /// How to reach remote stores.
    #[command(flatten)]
    pub storage: crate::common::StorageArgs,
    /// The group of --store to open.
    #[command(flatten)]
    pub group: crate::group_arg::GroupArg,
    /// Which dataset of the search result (when it leaves several).
    #[arg(long)]
    pub key: Option<String>,
    /// Print the result as JSON: name, dims, shape, dtype, coords, attrs, values (a scalar
    /// as {"value": ...}). JSON has no NaN or infinity: they are the strings "NaN",
    /// "Infinity" and "-Infinity"; missing datetimes (NaT) are null.
    #[arg(long)]
    pub json: bool,
    /// Write the result to a Zarr store (lazily and in parallel, any size), or to a
    /// netCDF-4 file when the name ends in .nc / .nc4 (computed in memory first, then
    /// written through a temporary file renamed into place).
    #[arg(short = 'o', long = "output", value_name = "OUT.zarr|OUT.nc")]
    pub output: Option<PathBuf>,
    /// Replace an existing output store (-o), plot or graph file. A local store is swapped
    /// in atomically once complete; only Zarr stores and files are ever replaced. On object
    /// stores (s3://, gs://, az://) it deletes the old store first (not atomic).
    #[arg(long)]
    pub overwrite: bool,
    /// Plot a 1-d (line) or 2-d lat/lon (map) result to a PNG or SVG file.
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
    /// Draw the optimized task graph to an SVG file, without computing.
    #[arg(long, value_name = "OUT.svg")]
    pub graph: Option<PathBuf>,
    /// Worker threads of the local executor (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory budget of the local executor, e.g. 4GB or 512MiB (default: half the RAM);
    /// task graphs count against it too (about 1 KiB per task).
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Compute on the cluster whose scheduler is at this address (tcp://HOST:PORT).
    #[arg(long, value_name = "ADDRESS", conflicts_with = "cluster")]
    pub scheduler: Option<String>,
    /// Compute on a cluster started for the run: local[:N_WORKERS[xTHREADS]] (e.g.
    /// local:2x1) on this machine, slurm:N_JOBS[,partition=P,account=A,cores=C,memory=M,
    /// walltime=W,processes=N,interface=I] in Slurm jobs, or ssh:HOST,HOST,... (scheduler
    /// on the first host); stopped at the end.
    #[arg(long, value_name = "local[:NxT]|slurm:N[,...]|ssh:HOSTS")]
    pub cluster: Option<String>,
    /// Serve the live dashboard while computing: at HOST:PORT (default :8787, a free port
    /// when taken; :0 for any). With --cluster local the scheduler serves it; otherwise
    /// this process does, from the local executor.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = ":8787")]
    pub dashboard: Option<String>,
    /// Credentials for --scheduler.
    #[command(flatten)]
    pub auth: crate::common::ClientAuthArgs,
}

/// Opens the dataset named by `--store` or `--catalog/--search/--key`.
fn open_source(args: &EvalArgs) -> Result<Option<Dataset>> {
    if let Some(url) = &args.store {
        return Ok(Some(
            open_dataset(url, &args.group.open_options(&args.storage)?)
                .with_context(|| format!("opening {url}"))?,
        ));
    }
    if let Some(cat) = &args.catalog {
        args.group.refuse_for("--catalog")?;
        let found = crate::catalog_cmd::search_and_open_key(
            std::path::Path::new(cat),
            &args.search,
            &args.search_options,
            &args.storage,
            args.key.as_deref(),
            &crate::common::open_options(&args.storage)?,
        )?;
        note!("dataset {} ({} catalog rows)", found.key, found.rows);
        return Ok(Some(found.dataset));
    }
    if !args.search.is_empty() || args.key.is_some() {
        bail!("--search and --key need --catalog");
    }
    args.group.refuse_for("an expression without --store")?;
    Ok(None)
}

/// Runs `gridflow eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    // First: it sets the graph budget that opening and evaluating count against.
    let exec = Executor::new(args.threads, args.memory_limit.as_deref())?
        .with_dashboard(args.dashboard.clone())
        .with_cluster(
            args.scheduler.as_deref(),
            args.cluster.as_deref(),
            &args.auth,
        )?
        .serve_local_dashboard()?;
    let expr = gridflow_expr::parse(&args.expr).map_err(|e| anyhow!("{}", e.render(&args.expr)))?;
    let ds = open_source(args)?;
    let value = eval(&expr, &Env { ds }).map_err(|e| anyhow!("{}", e.render(&args.expr)))?;
    let result = match value {
        Val::Array(a) => Result_::Array(a),
        Val::Dataset(d) => Result_::Dataset(d),
        Val::Num(x) => {
            if !args.json && !x.is_finite() {
                // Python's spelling, as the repr of the other results.
                let text = if x.is_nan() {
                    "nan"
                } else if x > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                return Ok(outln!("{text}")?);
            }
            return print_scalar(json_number(x), args.json);
        }
        Val::Int(i) => return print_scalar(json!(i), args.json),
        Val::Bool(b) => return print_scalar(json!(b), args.json),
        Val::Str(s) => return print_scalar(json!(s), args.json),
        Val::Groups(_) | Val::DatasetGroups(..) => {
            bail!("the result is a GroupBy: finish it with a reduction such as .mean()")
        }
        Val::Weighted(_) => {
            bail!("the result is a Weighted: finish it with .mean(dims) or .sum(dims)")
        }
        Val::Rolling(_) => bail!("the result is a Rolling: finish it with .mean() or .sum()"),
        other => bail!("the result is {}, not an array", kind_name(&other)),
    };
    let out_ds = match (&args.output, &result) {
        (None, _) => None,
        // Zarr reserves names starting with "__", so xarray's placeholder name cannot be used
        (Some(out), Result_::Array(a)) if a.name().is_none() => bail!(
            "the result has no name to store it under in {}: name it first, e.g. (...).rename(\"x\")",
            out.display()
        ),
        (Some(_), Result_::Array(a)) => Some(Dataset::from_dataarray(a)?),
        (Some(_), Result_::Dataset(d)) => Some(d.clone()),
    };
    let mut zarr_options = ToZarrOptions {
        mode: if args.overwrite {
            WriteMode::Overwrite
        } else {
            WriteMode::Create
        },
        ..ToZarrOptions::default()
    };
    args.storage.apply(&mut zarr_options.store)?;
    preflight(args, &result, out_ds.as_ref(), &zarr_options)?;
    if let Some(path) = &args.graph {
        let svg = match &result {
            Result_::Array(a) => a.data().to_svg()?,
            Result_::Dataset(d) => {
                let first = d
                    .data_vars()
                    .keys()
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("the dataset has no data variables"))?;
                d.get(&first)?.data().to_svg()?
            }
        };
        staging::write_file(path, svg.as_bytes(), args.overwrite)
            .with_context(|| format!("writing {}", path.display()))?;
        note!("drew the optimized task graph to {}", path.display());
        if args.output.is_none() && args.plot.is_none() && !args.json {
            return Ok(());
        }
    }
    if let (Some(out), Some(ds)) = (&args.output, &out_ds) {
        let url = out
            .to_str()
            .ok_or_else(|| anyhow!("the output path is not UTF-8"))?;
        let t = std::time::Instant::now();
        if is_netcdf_output(out) {
            for v in ds.data_vars().keys() {
                exec.check_fits(&ds.get(v)?, v)?;
            }
            ds.to_netcdf_with(url, &netcdf_options(args), &exec.executor("to_netcdf"))
        } else if exec.remote.is_some() {
            // Store-write tasks: each worker writes the chunks it computes.
            ds.to_zarr_with(url, &zarr_options, &exec.executor("to_zarr"))
        } else {
            ds.to_zarr(url, &zarr_options)
        }
        .with_context(|| format!("writing {}", out.display()))?;
        note!(
            "wrote {} in {:.2} s",
            out.display(),
            t.elapsed().as_secs_f64()
        );
        if args.plot.is_none() && !args.json {
            return Ok(());
        }
    }
    match result {
        Result_::Array(a) => {
            exec.check_fits(&a, "eval")?;
            let c = a.compute_with(&exec.executor("compute"))?;
            if let Some(p) = &args.plot {
                let title = args.expr.clone();
                plot(&c, &title, None, p, args.overwrite)?;
                note!("plotted {}", p.display());
            }
            if args.json {
                outln!("{}", serde_json::to_string(&to_json(&c)?)?)?;
            } else if args.plot.is_none() || args.output.is_some() {
                outln!("{c}")?;
            }
        }
        Result_::Dataset(d) => {
            for v in d.data_vars().keys() {
                exec.check_fits(&d.get(v)?, v)?;
            }
            let c = d.compute_with(&exec.executor("compute"))?;
            if args.json {
                let mut vars = serde_json::Map::new();
                for v in c.data_vars().keys() {
                    vars.insert(v.clone(), to_json(&c.get(v)?)?);
                }
                outln!(
                    "{}",
                    serde_json::to_string(&json!({"data_vars": vars, "attrs": c.attrs}))?
                )?;
            } else {
                outln!("{c}")?;
            }
        }
    }
    Ok(())
}

/// Checks every output before anything is computed or written: `--plot`'s format, that no
/// file or store is replaced without `--overwrite` (and nothing that is not one even with
/// it), that the parent directories exist, and that `-o` is none of the result's inputs.
fn preflight(
    args: &EvalArgs,
    result: &Result_,
    out_ds: Option<&Dataset>,
    zarr_options: &ToZarrOptions,
) -> Result<()> {
    if let Some(p) = &args.plot {
        if matches!(result, Result_::Dataset(_)) {
            bail!("--plot needs a DataArray result; select a variable, e.g. ds.tas...");
        }
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("png" | "svg")) {
            bail!(
                "--plot {}: unknown extension, expected .png or .svg",
                p.display()
            );
        }
        staging::check_output_file(p, args.overwrite)
            .with_context(|| format!("--plot {}", p.display()))?;
    }
    if let Some(g) = &args.graph {
        staging::check_output_file(g, args.overwrite)
            .with_context(|| format!("--graph {}", g.display()))?;
    }
    if let (Some(p), Some(g)) = (&args.plot, &args.graph)
        && staging::resolve_output(p)? == staging::resolve_output(g)?
    {
        bail!("--plot and --graph name the same file {}", p.display());
    }
    if let (Some(out), Some(ds)) = (&args.output, out_ds) {
        let url = out
            .to_str()
            .ok_or_else(|| anyhow!("the output path is not UTF-8"))?;
        if is_netcdf_output(out) {
            ds.check_to_netcdf(url, &netcdf_options(args))
        } else {
            ds.check_to_zarr(url, zarr_options)
        }
        .with_context(|| format!("-o {}", out.display()))?;
        let gridflow_store::StoreUrl::Local(local) = gridflow_store::StoreUrl::parse(url)? else {
            return Ok(());
        };
        let root = staging::resolve_output(&local)?;
        for f in args.plot.iter().chain(&args.graph) {
            if staging::resolve_output(f)?.starts_with(&root) {
                bail!(
                    "{} is inside the output store {}: write it elsewhere",
                    f.display(),
                    out.display()
                );
            }
        }
    }
    Ok(())
}

/// Whether `-o` names a netCDF file (by its extension) rather than a Zarr store.
fn is_netcdf_output(out: &std::path::Path) -> bool {
    out.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "nc" | "nc4" | "netcdf"))
}

fn netcdf_options(args: &EvalArgs) -> ToNetcdfOptions {
    ToNetcdfOptions {
        overwrite: args.overwrite,
        ..ToNetcdfOptions::default()
    }
}

enum Result_ {
    Array(DataArray),
    Dataset(Dataset),
}

fn kind_name(v: &Val) -> &'static str {
    match v {
        Val::Module(_) => "a module",
        Val::Func(..) | Val::Method(..) => "a function (call it with ())",
        Val::List(_) => "a list",
        Val::Tuple(_) => "a tuple",
        Val::Slice(..) => "a slice",
        Val::None => "None",
        _ => "a value",
    }
}

fn print_scalar(v: serde_json::Value, as_json: bool) -> Result<()> {
    if as_json {
        outln!("{}", json!({"value": v}))?;
    } else {
        outln!("{v}")?;
    }
    Ok(())
}

/// Runs `gridflow info`.
pub fn info(url: &str, as_json: bool, options: &gridflow_dataset::OpenOptions) -> Result<()> {
    let ds = open_dataset(url, options).with_context(|| format!("opening {url}"))?;
    if as_json {
        let vars: serde_json::Map<String, serde_json::Value> = ds
            .data_vars()
            .iter()
            .chain(ds.coords().iter())
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!({"dims": v.dims(), "shape": v.shape(), "dtype": v.dtype().name(),
                           "chunks": v.data().chunks().iter().map(|c| c.first().copied().unwrap_or(0)).collect::<Vec<_>>(),
                           "attrs": v.attrs}),
                )
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"dims": ds.dims().into_iter().map(|(k, n)| (k, json!(n))).collect::<serde_json::Map<String, serde_json::Value>>(), "variables": vars, "attrs": ds.attrs})
            )?
        )?;
    } else {
        outln!("{ds}")?;
    }
    Ok(())
}
