//! What the subcommands share: the local executor settings, progress bars, JSON output,
//! plots and memory checks.

use crate::out::{note, outln};
use anyhow::{Context, Result, anyhow, bail};
use gridflow_array::{ArrayOp, LocalExecutor};
use gridflow_dataset::{DataArray, IndexValues, ValueKind};
use gridflow_plot::{DateParts, LinePlot, MapPlot};
use gridflow_runtime::Progress;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Parses a memory size: `"2GB"`, `"512MiB"`, `"1.5 GiB"`, `"800M"`, or bytes.
pub fn parse_size(s: &str) -> Result<usize> {
    Ok(gridflow_runtime::parse_size(s)?)
}

/// The environment variable that raises (or lowers) the limits on what metadata may make
/// gridflow read: `GRIDFLOW_LIMITS=metadata=256MB,index=100000000,catalog=4GB`.
pub const LIMITS_ENV: &str = "GRIDFLOW_LIMITS";

/// Limits on what files and metadata may make gridflow read or allocate (the task graph
/// is bounded by `--memory-limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest Zarr metadata document (`.zmetadata`, `.zarray`, `zarr.json`), bytes.
    pub metadata_bytes: u64,
    /// Most values of one coordinate loaded into memory on open.
    pub index_values: usize,
    /// Largest catalog JSON or CSV (also decompressed), bytes.
    pub catalog_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            metadata_bytes: gridflow_store::storage::DEFAULT_MAX_METADATA_BYTES,
            index_values: gridflow_dataset::cf::DEFAULT_MAX_INDEX_VALUES,
            catalog_bytes: gridflow_catalog::catalog::DEFAULT_MAX_CATALOG_BYTES,
        }
    }
}

impl Limits {
    /// Parses `metadata=SIZE,index=N,catalog=SIZE` (any subset; sizes as `--memory-limit`).
    pub fn parse(text: &str) -> Result<Limits> {
        let mut l = Limits::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("{LIMITS_ENV}: {item:?} is not NAME=VALUE"))?;
            let size = || {
                parse_size(value)
                    .map(|n| n as u64)
                    .with_context(|| format!("{LIMITS_ENV}: {key}"))
            };
            match key.trim() {
                "metadata" => l.metadata_bytes = size()?,
                "catalog" => l.catalog_bytes = size()?,
                "index" => {
                    l.index_values = value.trim().parse().with_context(|| {
                        format!("{LIMITS_ENV}: index={value:?} is not a count of values")
                    })?;
                }
                other => {
                    bail!("{LIMITS_ENV}: unknown limit {other:?} (known: metadata, index, catalog)")
                }
            }
        }
        Ok(l)
    }

    /// From `GRIDFLOW_LIMITS` (defaults when unset).
    pub fn from_env() -> Result<Limits> {
        match std::env::var(LIMITS_ENV) {
            Ok(v) => Limits::parse(&v),
            Err(_) => Ok(Limits::default()),
        }
    }

    /// Store options (read-write as before) with the metadata cap.
    pub fn store_options(&self) -> gridflow_store::StoreOptions {
        gridflow_store::StoreOptions {
            max_metadata_bytes: self.metadata_bytes,
            ..gridflow_store::StoreOptions::default()
        }
    }

    /// Dataset open options with these limits.
    pub fn open_options(&self) -> gridflow_dataset::OpenOptions {
        gridflow_dataset::OpenOptions {
            store: self.store_options(),
            decode: gridflow_dataset::DecodeOptions {
                max_index_values: self.index_values,
                ..gridflow_dataset::DecodeOptions::default()
            },
            ..gridflow_dataset::OpenOptions::default()
        }
    }

    /// Catalog open options with these limits.
    pub fn catalog_options(&self) -> gridflow_catalog::OpenOptions {
        gridflow_catalog::OpenOptions {
            store: self.store_options(),
            max_bytes: self.catalog_bytes,
            ..gridflow_catalog::OpenOptions::default()
        }
    }
}

/// `--storage-option KEY=VALUE`: how to reach remote stores and catalogs, shared by `eval`,
/// `info` and `catalog search` (the names of [`gridflow_store::StoreOptions::set`]).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StorageArgs {
    /// How to reach s3://, gs://, az:// stores and catalogs, e.g. anon=true,
    /// endpoint=http://127.0.0.1:4443, region=eu-west-1, profile=NAME,
    /// account_name=NAME (repeat; every name under `gridflow eval --help`).
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    pub storage_options: Vec<String>,
}

impl StorageArgs {
    /// Sets the options on `store`.
    pub fn apply(&self, store: &mut gridflow_store::StoreOptions) -> Result<()> {
        store
            .set_pairs(&self.storage_options)
            .map_err(|e| anyhow!("--storage-option: {e}"))
    }
}

/// The URL schemes and storage options, for `--help`.
pub fn storage_help() -> String {
    let mut text = String::from(
        "Stores and catalogs: a local path, file:///abs, http(s)://host/path, s3://bucket/path, \
gs://bucket/path (Google Cloud Storage), az://container/path or \
abfs[s]://container@account.dfs.core.windows.net/path (Azure Blob Storage). Credentials come from \
the usual variables and files (AWS_*, ~/.aws; GOOGLE_APPLICATION_CREDENTIALS, gcloud's default \
credentials; AZURE_STORAGE_ACCOUNT_NAME/_KEY/_SAS_TOKEN...); gs:// and az:// without any are \
read anonymously (public buckets). --storage-option KEY=VALUE (repeat):\n",
    );
    for (key, stores, what) in gridflow_store::clouds::STORAGE_OPTIONS {
        text.push_str(&format!("  {key:<24} {stores:<9} {what}\n"));
    }
    text
}

/// Dataset open options with the limits of `GRIDFLOW_LIMITS` and the storage options.
pub fn open_options(storage: &StorageArgs) -> Result<gridflow_dataset::OpenOptions> {
    let mut o = Limits::from_env()?.open_options();
    storage.apply(&mut o.store)?;
    Ok(o)
}

/// Catalog open options with the limits of `GRIDFLOW_LIMITS` and the storage options.
pub fn catalog_options(storage: &StorageArgs) -> Result<gridflow_catalog::OpenOptions> {
    let mut o = Limits::from_env()?.catalog_options();
    storage.apply(&mut o.store)?;
    Ok(o)
}

/// The memory this process may use in bytes: the machine's total, or less when a cgroup
/// or a Slurm allocation limits the process.
pub fn total_memory() -> usize {
    usize::try_from(gridflow_distributed::machine::available_memory()).unwrap_or(usize::MAX)
}

/// Where computations run: the local executor (`threads`, default: the cores) or a cluster
/// (`--scheduler ADDRESS`, `--cluster local[:N[xT]]`), with a memory budget (default: half
/// the machine's memory) and a progress bar on stderr when it is a terminal.
/// How a client proves itself to a running scheduler (`--scheduler`): the environment's
/// GRIDFLOW_AUTH_TOKEN / GRIDFLOW_AUTH_TOKEN_FILE / GRIDFLOW_TLS_* / GRIDFLOW_GATEWAY_CA,
/// with these options over them.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClientAuthArgs {
    /// A file holding the cluster's shared secret, readable only by its owner (the
    /// cluster's token from `gridflow gateway new`, say).
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// The CA certificate (PEM) a TLS gateway's certificate is checked against, for
    /// gateway+tls:// addresses (default: the system's trusted roots).
    #[arg(long, value_name = "FILE")]
    pub gateway_ca: Option<std::path::PathBuf>,
}

impl ClientAuthArgs {
    /// The credentials: the environment's, then these options over them.
    pub fn security(&self) -> Result<gridflow_distributed::Security> {
        let mut s = gridflow_distributed::Security::from_env()?;
        if let Some(f) = &self.auth_token_file {
            s = s.with_token_file(f)?;
        }
        if let Some(ca) = &self.gateway_ca {
            s = s.with_gateway_ca(ca)?;
        }
        Ok(s)
    }
}

pub struct Executor {
    /// The cluster's client, when computing on one (else the local thread pool).
    pub remote: Option<Remote>,
    /// Worker threads.
    pub threads: usize,
    /// Memory budget for held results, bytes.
    pub memory_limit: usize,
    /// Show progress bars.
    pub progress: bool,
    /// Where to serve the dashboard (`--dashboard`): a local cluster's scheduler serves it
    /// there; the local executor serves it from this process.
    pub dashboard_address: Option<String>,
    /// The local executor's dashboard and the observer feeding it.
    local_dashboard: Option<(
        gridflow_distributed::dashboard::Dashboard,
        std::sync::Arc<gridflow_distributed::dashboard::local::LocalObserver>,
    )>,
}

impl Executor {
    /// From command-line options.
    pub fn new(threads: Option<usize>, memory_limit: Option<&str>) -> Result<Executor> {
        let threads = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1);
        let memory_limit = match memory_limit {
            Some(s) => parse_size(s)?,
            None => total_memory() / 2,
        };
        // Building and compiling task graphs counts against the same budget.
        gridflow_array::set_graph_memory_limit(memory_limit);
        Ok(Executor {
            remote: None,
            threads,
            memory_limit,
            progress: std::io::stderr().is_terminal(),
            dashboard_address: None,
            local_dashboard: None,
        })
    }

    /// Serves the dashboard at `address` (`HOST:PORT`, `:0`; `None`: a local cluster's
    /// default, no dashboard for the local executor). Call before [`Executor::with_cluster`].
    pub fn with_dashboard(mut self, address: Option<String>) -> Executor {
        self.dashboard_address = address;
        self
    }

    /// For the local executor with `--dashboard`: starts the dashboard in this process and
    /// prints its link (a cluster's scheduler serves its own).
    pub fn serve_local_dashboard(mut self) -> Result<Executor> {
        use gridflow_distributed::dashboard::{self, Dashboard, Hub, Router};
        if self.remote.is_some() {
            return Ok(self);
        }
        let Some(spec) = &self.dashboard_address else {
            return Ok(self);
        };
        let Some((host, port)) = dashboard::parse_address(spec)? else {
            return Ok(self);
        };
        let hub = std::sync::Arc::new(Hub::new());
        hub.log(format!(
            "local executor: {} thread(s) in this process",
            self.threads
        ));
        let d = Dashboard::start(&host, port, true, hub.clone(), Router::new())
            .with_context(|| format!("starting the dashboard on {spec}"))?;
        let observer = std::sync::Arc::new(dashboard::local::LocalObserver::new(hub));
        observer.publish_now();
        note!("dashboard: {}", d.link());
        self.local_dashboard = Some((d, observer));
        Ok(self)
    }

    /// Computes on a cluster: `scheduler` is a running scheduler's address, `cluster`
    /// `local[:N_WORKERS[xTHREADS]]` starts one on this machine (closed when this value
    /// is dropped).
    pub fn with_cluster(
        mut self,
        scheduler: Option<&str>,
        cluster: Option<&str>,
        auth: &ClientAuthArgs,
    ) -> Result<Executor> {
        self.remote = match (scheduler, cluster) {
            (Some(_), Some(_)) => bail!("give --scheduler or --cluster, not both"),
            (Some(addr), None) => Some(Remote {
                client: gridflow_distributed::Client::connect_with(addr, auth.security()?)
                    .with_context(|| format!("connecting to the scheduler at {addr}"))?,
                _cluster: None,
                kind: "remote",
            }),
            (None, Some(spec)) if !spec.starts_with("local") => {
                let (cluster, client) = crate::cluster_cmd::start_for_run(spec)?;
                Some(Remote {
                    client,
                    _cluster: Some(cluster),
                    kind: if spec.starts_with("ssh") {
                        "ssh"
                    } else {
                        "slurm"
                    },
                })
            }
            (None, Some(spec)) => {
                let (n, t) = parse_local_cluster(spec)?;
                let per_worker = self.memory_limit.checked_div(n).unwrap_or(0) as u64;
                let mut options = gridflow_distributed::LocalClusterOptions {
                    n_workers: n,
                    threads_per_worker: t,
                    memory_limit: per_worker,
                    ..Default::default()
                };
                if let Some(a) = &self.dashboard_address {
                    options.dashboard_address = Some(a.clone());
                }
                let cluster = gridflow_distributed::LocalCluster::with_options(options)
                    .context("starting the local cluster")?;
                let client = cluster
                    .client()
                    .context("connecting to the local cluster")?;
                note!(
                    "cluster {}: {n} worker(s) x {t} thread(s), {} each",
                    cluster.address(),
                    human(per_worker as usize)
                );
                if let Some(link) = cluster.dashboard_link() {
                    note!("dashboard: {link}");
                }
                Some(Remote {
                    client,
                    _cluster: Some(Box::new(cluster)),
                    kind: "local",
                })
            }
            (None, None) => None,
        };
        Ok(self)
    }

    /// Stops the local cluster this process started, if any, saying so.
    pub fn close(self) -> Result<()> {
        if let Some(Remote {
            client,
            _cluster: Some(cluster),
            kind,
        }) = self.remote
        {
            let n = client.workers().map_or(0, |w| w.len());
            drop(client);
            cluster.close()?;
            outln!("Closed the {kind} cluster ({n} worker process(es) stopped).")?;
        }
        Ok(())
    }

    /// The executor to compute on, its progress bar labelled `label`.
    pub fn executor(&self, label: &'static str) -> Box<dyn gridflow_array::Executor<ArrayOp> + '_> {
        if let Some(r) = &self.remote {
            r.client.set_progress(if self.progress {
                Some(std::sync::Arc::new(progress_bar(label)))
            } else {
                None
            });
            return Box::new(&r.client);
        }
        let mut s = LocalExecutor::threads(self.threads).with_memory_limit(self.memory_limit);
        if let Some((_, observer)) = &self.local_dashboard {
            s = s.with_observer(observer.clone());
        }
        if self.progress {
            Box::new(s.with_progress(progress_bar(label)))
        } else {
            Box::new(s)
        }
    }

    /// Refuses results that would not fit in memory, saying so.
    pub fn check_fits(&self, da: &DataArray, what: &str) -> Result<()> {
        let data = da.data();
        let total = data.nbytes();
        let chunk = data.max_chunk_nbytes();
        if chunk > self.memory_limit {
            bail!(
                "{what}: one chunk of the result holds {}, more than the memory limit of {}; rechunk it smaller (.chunk(...)) or reduce it first",
                human(chunk),
                human(self.memory_limit)
            );
        }
        if total > self.memory_limit {
            bail!(
                "{what}: the result holds {} ({:?} {}), more than the memory limit of {}; reduce it first (e.g. .mean(\"time\")) or write it to a store with -o OUT.zarr",
                human(total),
                data.shape(),
                data.dtype(),
                human(self.memory_limit)
            );
        }
        Ok(())
    }
}

/// A connection to a cluster, and the cluster itself when this process started it.
pub struct Remote {
    /// The client.
    pub client: gridflow_distributed::Client,
    /// The cluster started by `--cluster` (local, Slurm, SSH; stopped on drop).
    _cluster: Option<Box<dyn gridflow_distributed::Cluster>>,
    /// What the cluster is (`local`, `slurm`, `ssh`), for messages.
    kind: &'static str,
}

/// Parses `local`, `local:N` or `local:NxT` into (workers, threads per worker). `local`
/// alone sizes like Dask's `Client()` (see `gridflow_distributed::machine::default_layout`).
pub fn parse_local_cluster(spec: &str) -> Result<(usize, usize)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let bad = || {
        anyhow::anyhow!(
            "--cluster {spec:?}: expected local, local:N_WORKERS or local:N_WORKERSxTHREADS (e.g. local:2x1)"
        )
    };
    let Some(rest) = spec.strip_prefix("local") else {
        return Err(bad());
    };
    if rest.is_empty() {
        return Ok(gridflow_distributed::machine::default_layout(cores));
    }
    let rest = rest.strip_prefix(':').ok_or_else(bad)?;
    let (n, t) = match rest.split_once('x') {
        Some((n, t)) => (n, Some(t)),
        None => (rest, None),
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    let t: usize = match t {
        Some(t) => t.parse().map_err(|_| bad())?,
        None => 1,
    };
    if n == 0 || t == 0 {
        bail!("--cluster {spec:?}: workers and threads must be at least 1");
    }
    Ok((n, t))
}

/// Bytes as `1.2 GiB`.
pub fn human(n: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u: usize = 0;
    while v >= 1024.0 && u.saturating_add(1) < units.len() {
        v /= 1024.0;
        u = u.saturating_add(1);
    }
    match units.get(u) {
        Some(unit) if u > 0 => format!("{v:.1} {unit}"),
        _ => format!("{n} B"),
    }
}

/// A progress bar on stderr.
pub fn progress_bar(label: &'static str) -> impl Fn(Progress) + Send + Sync + 'static {
    move |p: Progress| {
        let width = 30;
        let filled = p
            .done
            .saturating_mul(width)
            .checked_div(p.total)
            .unwrap_or(width)
            .min(width);
        if p.done == p.total || p.done.is_multiple_of(8) {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r  {label} [{}{}] {}/{} tasks",
                "#".repeat(filled),
                ".".repeat(width.saturating_sub(filled)),
                p.done,
                p.total
            );
            if p.done == p.total {
                let _ = writeln!(err);
            }
        }
    }
}

/// A float as JSON: JSON has no NaN or infinities, so they are the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"` (the spellings of JavaScript, Python's `json` module and
/// pandas), keeping the three apart; everything else is a number.
pub fn json_number(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// Values of a computed array as JSON: numbers (NaN and infinities as in [`json_number`]),
/// booleans, ISO datetimes (missing ones as null) or strings.
fn json_values(da: &DataArray) -> Result<Vec<Value>> {
    let vals = da.to_f64_vec()?;
    Ok(match da.variable().kind() {
        ValueKind::Time(cal) => vals
            .iter()
            .map(|&t| {
                if t as i64 == gridflow_dataset::NAT {
                    Value::Null
                } else {
                    json!(cal.format_iso(t as i64))
                }
            })
            .collect(),
        ValueKind::Strings(table) => vals
            .iter()
            .map(|&c| json!(table.get(c as usize).cloned().unwrap_or_default()))
            .collect(),
        ValueKind::Numeric if da.dtype() == gridflow_array::DType::Bool => {
            vals.iter().map(|&v| json!(v != 0.0)).collect()
        }
        ValueKind::Numeric if da.dtype().is_int() => {
            let c = da.data().compute()?.astype(gridflow_array::DType::I64);
            match c {
                gridflow_array::Chunk::I64(a) => a.iter().map(|&v| json!(v)).collect(),
                _ => vals.iter().map(|&v| json_number(v)).collect(),
            }
        }
        ValueKind::Numeric => vals.iter().map(|&v| json_number(v)).collect(),
    })
}

fn dtype_name(da: &DataArray) -> String {
    match da.variable().kind() {
        ValueKind::Time(cal) => format!("datetime ({})", cal.name()),
        ValueKind::Strings(_) => "str".into(),
        ValueKind::Numeric => da.dtype().name().to_owned(),
    }
}

/// A computed data array as the JSON document `gridflow eval --json` prints.
pub fn to_json(da: &DataArray) -> Result<Value> {
    let mut coords = serde_json::Map::new();
    for name in da.coords().keys() {
        let c = da.coord(name)?;
        coords.insert(
            name.clone(),
            json!({"dims": c.dims(), "dtype": dtype_name(&c), "values": json_values(&c)?}),
        );
    }
    Ok(json!({
        "name": da.name(),
        "dims": da.dims(),
        "shape": da.shape(),
        "dtype": dtype_name(da),
        "coords": coords,
        "attrs": da.attrs(),
        "values": json_values(da)?,
    }))
}

fn date_parts(cal: gridflow_dataset::cftime::Calendar, t: i64) -> DateParts {
    let d = cal.from_ticks(t);
    DateParts {
        year: d.year(),
        month: d.month(),
        day: d.day(),
        hour: d.hour(),
        minute: d.minute(),
    }
}

fn label_with_units(da: &DataArray) -> String {
    let name = da.name().unwrap_or("value");
    match da.attrs().get("units").and_then(Value::as_str) {
        Some(u) => format!("{name} [{u}]"),
        None => name.to_owned(),
    }
}

/// Plots a computed 1-d (line, datetime axis in its calendar) or 2-d lat/lon (map) array to
/// a PNG or SVG file (by its extension), written whole through a temporary file; an existing
/// file is replaced only when `overwrite`.
pub fn plot(
    da: &DataArray,
    title: &str,
    units_from: Option<&DataArray>,
    path: &Path,
    overwrite: bool,
) -> Result<()> {
    let svg = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => false,
        Some("svg") => true,
        _ => bail!(
            "cannot plot to {}: unknown extension, expected .png or .svg",
            path.display()
        ),
    };
    let label_src = units_from.unwrap_or(da);
    let y_label = {
        let mut d = label_src.clone();
        if let Some(n) = da.name() {
            d = d.rename(n);
        }
        label_with_units(&d)
    };
    match da.dims() {
        [dim] => {
            let y = da.to_f64_vec()?;
            let mut plot;
            match da.indexes().get(dim).map(|i| i.values().clone()) {
                Some(IndexValues::Time { ticks, calendar }) => {
                    let t0 = ticks.first().copied().unwrap_or(0);
                    let x: Vec<f64> = ticks
                        .iter()
                        .map(|&t| t.saturating_sub(t0) as f64 / 86_400e6)
                        .collect();
                    plot = LinePlot::new(title, x, y)
                        .with_time_axis(ticks.iter().map(|&t| date_parts(calendar, t)).collect());
                    plot = plot.with_x_label(format!("{dim} ({} calendar)", calendar.name()));
                }
                Some(IndexValues::Float(v)) => {
                    plot = LinePlot::new(title, v.to_vec(), y).with_x_label(dim);
                }
                Some(IndexValues::Int(v)) => {
                    plot = LinePlot::new(title, v.iter().map(|&i| i as f64).collect(), y)
                        .with_x_label(dim);
                }
                _ => {
                    let x = (0..y.len()).map(|i| i as f64).collect();
                    plot = LinePlot::new(title, x, y).with_x_label(dim);
                }
            }
            let plot = plot.with_y_label(&y_label);
            let (w, h) = (LinePlot::DEFAULT_WIDTH, LinePlot::DEFAULT_HEIGHT);
            let bytes = if svg {
                plot.to_svg(w, h)?.into_bytes()
            } else {
                plot.to_png(w, h)?
            };
            write_file(path, &bytes, overwrite)?;
        }
        [a, b] => {
            let (latd, lond) = if is_lat(a) && is_lon(b) {
                (a.clone(), b.clone())
            } else if is_lon(a) && is_lat(b) {
                (b.clone(), a.clone())
            } else {
                bail!("can plot 2-d results with lat/lon dimensions only, not ({a}, {b})");
            };
            let ordered = da.transpose(&[latd.as_str(), lond.as_str()])?;
            let lat = da
                .coord(&latd)
                .and_then(|c| c.to_f64_vec())
                .with_context(|| format!("no {latd} coordinate to plot"))?;
            let lon = da
                .coord(&lond)
                .and_then(|c| c.to_f64_vec())
                .with_context(|| format!("no {lond} coordinate to plot"))?;
            let values = ordered.to_f64_vec()?;
            let map = MapPlot::new(title, lat, lon, values).with_colorbar_label(&y_label);
            let (w, h) = (MapPlot::DEFAULT_WIDTH, MapPlot::DEFAULT_HEIGHT);
            let bytes = if svg {
                map.to_svg(w, h)?.into_bytes()
            } else {
                map.to_png(w, h)?
            };
            write_file(path, &bytes, overwrite)?;
        }
        dims => bail!(
            "can plot 1-d (line) or 2-d lat/lon (map) results; this one has dims {dims:?} — select or reduce first"
        ),
    }
    Ok(())
}

/// Writes a whole file through a temporary sibling renamed in place (an existing file is
/// replaced only when `overwrite`).
pub fn write_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    gridflow_store::staging::write_file(path, bytes, overwrite)
        .with_context(|| format!("writing {}", path.display()))
}

fn is_lat(d: &str) -> bool {
    matches!(d, "lat" | "latitude" | "y" | "rlat" | "nav_lat")
}

fn is_lon(d: &str) -> bool {
    matches!(d, "lon" | "longitude" | "x" | "rlon" | "nav_lon")
}
