//! `gridflow gateway`: the gateway server (no subcommand, or `serve`) and its clients'
//! commands (`new`, `list`, `status`, `scale`, `adapt`, `stop`), plus `token` to make a
//! user's API token and the hash the configuration keeps.

use crate::out::outln;
use anyhow::{Context, Result};
use gridflow_gateway::{ClusterOptions, Config, Gateway, GatewayServer};
use std::path::PathBuf;

/// Options of the server.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// host:port to listen on (the REST API and cluster routing share it); overrides the
    /// configuration's `address`.
    #[arg(long)]
    pub address: Option<String>,
    /// The configuration (TOML or JSON): users, bounds, idle time-out, state directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How client commands reach the gateway.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// The gateway's host:port (default: $GRIDFLOW_GATEWAY_ADDRESS).
    #[arg(long, value_name = "HOST:PORT")]
    gateway: Option<String>,
    /// A file holding the API token (default: $GRIDFLOW_GATEWAY_TOKEN, else
    /// $JUPYTERHUB_API_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the gateway's JSON answer.
    #[arg(long)]
    json: bool,
}

/// The client commands.
#[derive(clap::Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway server (the same as `gridflow gateway` without a subcommand).
    Serve(ServeArgs),
    /// Print a new API token and the line to add to the configuration's users.
    Token {
        /// The user's name.
        user: String,
    },
    /// Create a cluster; prints its id, address and token.
    New {
        /// Workers.
        #[arg(long)]
        workers: Option<usize>,
        /// Threads per worker.
        #[arg(long)]
        threads: Option<usize>,
        /// Memory limit per worker, e.g. 2GiB.
        #[arg(long)]
        memory: Option<String>,
        /// Backend option KEY=VALUE (allowed by the gateway's administrator).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// Wait until the workers run.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List your clusters (an administrator's: everyone's).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a cluster with its workers (pending and failed ones with their reason).
    Status {
        /// The cluster's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Scale a cluster to N workers.
    Scale {
        /// The cluster's id.
        id: String,
        /// Workers wanted.
        workers: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Scale a cluster between MIN and MAX workers by its pending work.
    Adapt {
        /// The cluster's id.
        id: String,
        /// Fewest workers.
        minimum: usize,
        /// Most workers.
        maximum: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a cluster.
    Stop {
        /// The cluster's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs the server until the process is stopped.
pub fn serve(args: &ServeArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(f) => Config::from_file(f)?,
        None => Config::default(),
    };
    if let Some(a) = &args.address {
        config.address.clone_from(a);
    }
    if config.users.is_empty() && config.jupyterhub.is_none() {
        anyhow::bail!(
            "the gateway has no users: add [[users]] (name, token_sha256 from `gridflow \
             gateway token NAME`) or [jupyterhub] to the --config file"
        );
    }
    let server = GatewayServer::start(config)?;
    outln!("gridflow gateway at {}", server.url())?;
    server.wait();
    Ok(())
}

fn gateway(c: &ClientArgs) -> Result<Gateway> {
    let token = match &c.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading the API token from {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    // Unset ones come from the environment ($GRIDFLOW_GATEWAY_TOKEN, else JupyterHub's
    // $JUPYTERHUB_API_TOKEN), as the library's and Python's `Gateway` do.
    Gateway::from_env(c.gateway.as_deref(), token.as_deref()).map_err(Into::into)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

fn print_report(r: &gridflow_gateway::api::ClusterReport) -> Result<()> {
    outln!(
        "{}  owner {}  {} workers x {} threads  idle {:.0} s  {}",
        r.id,
        r.owner,
        r.spec.workers,
        r.spec.threads,
        r.idle_seconds,
        r.address
    )?;
    for w in &r.workers {
        outln!(
            "  {} (pid {}): {}",
            w.name,
            w.id,
            serde_json::to_string(&w.state)?
        )?;
    }
    Ok(())
}

/// Runs a gateway subcommand.
pub fn run(cmd: GatewayCommand) -> Result<()> {
    match cmd {
        GatewayCommand::Serve(args) => serve(&args),
        GatewayCommand::Token { user } => {
            let token = gridflow_gateway::auth::generate_token()?;
            let hash =
                gridflow_gateway::auth::hex(&gridflow_gateway::auth::sha256(token.as_bytes()));
            outln!("token (give it to {user}; it is not kept): {token}")?;
            outln!("configuration:\n[[users]]\nname = {user:?}\ntoken_sha256 = \"{hash}\"")?;
            Ok(())
        }
        GatewayCommand::New {
            workers,
            threads,
            memory,
            options,
            wait,
            client,
        } => {
            let g = gateway(&client)?;
            let mut o = ClusterOptions {
                workers,
                threads,
                memory: memory
                    .map(|m| crate::common::parse_size(&m).map(|b| b as u64))
                    .transpose()?,
                ..ClusterOptions::default()
            };
            for kv in options {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--option {kv}: expected KEY=VALUE"))?;
                o.backend.insert(k.to_owned(), v.to_owned());
            }
            let c = g.new_cluster(&o)?;
            if wait {
                c.wait_for_workers(c.report().spec.workers, std::time::Duration::from_secs(120))?;
            }
            let r = g.cluster_report(c.id())?;
            if client.json {
                return print_json(&r);
            }
            outln!("cluster {}", r.id)?;
            outln!("address {}", r.address)?;
            outln!(
                "token   {} (connect with GRIDFLOW_AUTH_TOKEN set to it)",
                r.token.as_deref().unwrap_or("")
            )?;
            Ok(())
        }
        GatewayCommand::List { client } => {
            let list = gateway(&client)?.list_clusters()?;
            if client.json {
                return print_json(&list);
            }
            for r in &list {
                print_report(r)?;
            }
            Ok(())
        }
        GatewayCommand::Status { id, client } => {
            let r = gateway(&client)?.cluster_report(&id)?;
            if client.json {
                return print_json(&r);
            }
            print_report(&r)
        }
        GatewayCommand::Scale {
            id,
            workers,
            client,
        } => {
            let r = gateway(&client)?.scale_cluster(&id, workers)?;
            if client.json {
                return print_json(&r);
            }
            print_report(&r)
        }
        GatewayCommand::Adapt {
            id,
            minimum,
            maximum,
            client,
        } => {
            let r = gateway(&client)?.adapt_cluster(&id, minimum, maximum)?;
            if client.json {
                return print_json(&r);
            }
            print_report(&r)
        }
        GatewayCommand::Stop { id, client } => {
            gateway(&client)?.stop_cluster(&id)?;
            if client.json {
                return print_json(&serde_json::json!({"stopped": id}));
            }
            outln!("stopped {id}")?;
            Ok(())
        }
    }
}
