//! The `scheduler` and `worker` commands, for programs that run cluster nodes of their own
//! operation type (the `gridflow` binary parses its options with clap and calls
//! [`run_scheduler`] and [`crate::worker::run`] itself).

use crate::auth::{Security, TlsFiles};
use crate::scheduler::{self, SchedulerOptions, write_scheduler_file};
use crate::worker::{self, WorkerOptions};
use crate::{DistError, Result};
use gridflow_runtime::{Execute, WireValue};
use std::path::Path;

/// Runs a scheduler on `host:port` (port 0: any free port), printing the address chosen and
/// writing it to `scheduler_file` if given, until the process is stopped; credentials come
/// from the environment ([`Security::from_env`]).
pub fn run_scheduler(host: &str, port: u16, scheduler_file: Option<&Path>) -> Result<()> {
    let options = SchedulerOptions {
        security: Security::from_env()?,
        ..SchedulerOptions::default()
    };
    run_scheduler_with(host, port, scheduler_file, options)
}

/// [`run_scheduler`] with these options. Refuses a host other than loopback without
/// authentication.
pub fn run_scheduler_with(
    host: &str,
    port: u16,
    scheduler_file: Option<&Path>,
    options: SchedulerOptions,
) -> Result<()> {
    options.security.check_listen(host)?;
    let listener = scheduler::bind(host, port)?;
    let address = listener
        .local_addr()
        .map_err(|e| DistError::io("reading the scheduler's address", e))?;
    let address = format!("{}{address}", options.security.scheme());
    if let Some(f) = scheduler_file {
        write_scheduler_file(f, &address)?;
    }
    println!("gridflow scheduler at {address}");
    scheduler::run(listener, options, |link| {
        println!("gridflow dashboard at {link}")
    })
}

/// The credentials given by `--auth-token`, `--auth-token-file` and `--tls-ca/--tls-cert/
/// --tls-key`, else by the environment.
fn security<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Security> {
    let mut s = Security::from_env()?;
    if let Some(t) = get("auth-token") {
        s = s.with_token(t)?;
    } else if let Some(f) = get("auth-token-file") {
        s = s.with_token_file(Path::new(f))?;
    }
    match (get("tls-ca"), get("tls-cert"), get("tls-key")) {
        (Some(ca), Some(cert), Some(key)) => {
            s = s.with_tls(TlsFiles {
                ca: ca.into(),
                cert: cert.into(),
                key: key.into(),
            })?;
        }
        (None, None, None) => {}
        _ => return Err(usage("--tls-ca, --tls-cert and --tls-key go together")),
    }
    Ok(s)
}

fn usage(what: &str) -> DistError {
    DistError::Cluster(format!(
        "{what}\nusage: scheduler [--host H] [--port P] [--scheduler-file F] \
         [--heartbeat-timeout MS] [--allowed-failures N] [--dashboard-address HOST:PORT|none] [AUTH]\n       \
         worker ADDRESS [--nthreads N] [--memory-limit BYTES] [--name NAME] [--local-directory D] \
         [--heartbeat-interval MS] [--heartbeat-timeout MS] [--host H] \
         [--lifetime S] [--lifetime-stagger S] [AUTH]\n\
         AUTH: [--auth-token T | --auth-token-file F] [--tls-ca F --tls-cert F --tls-key F]"
    ))
}

/// Parses and runs `scheduler ...` or `worker ...` (arguments after the program name).
pub fn main<O>(args: &[String]) -> Result<()>
where
    O: Execute,
    O::Value: WireValue,
{
    let Some((cmd, rest)) = args.split_first() else {
        return Err(usage("no command"));
    };
    let mut positional = Vec::new();
    let mut opts: Vec<(&str, &str)> = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let v = it
                .next()
                .ok_or_else(|| usage(&format!("--{name} needs a value")))?;
            opts.push((name, v.as_str()));
        } else {
            positional.push(a.as_str());
        }
    }
    let get = |k: &str| opts.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let num = |k: &str| -> Result<Option<u64>> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| usage(&format!("--{k} {v:?} is not a whole number")))
            })
            .transpose()
    };
    match cmd.as_str() {
        "scheduler" => {
            let port = num("port")?.unwrap_or(8786);
            let port = u16::try_from(port).map_err(|_| usage("--port is above 65535"))?;
            let mut o = SchedulerOptions {
                security: security(get)?,
                ..SchedulerOptions::default()
            };
            if let Some(ms) = num("heartbeat-timeout")? {
                o.heartbeat_timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(n) = num("allowed-failures")? {
                o.allowed_failures = u32::try_from(n).unwrap_or(u32::MAX).max(1);
            }
            o.dashboard_address = Some(get("dashboard-address").unwrap_or(":8787").to_owned());
            run_scheduler_with(
                get("host").unwrap_or("127.0.0.1"),
                port,
                get("scheduler-file").map(Path::new),
                o,
            )
        }
        "worker" => {
            let [address] = positional.as_slice() else {
                return Err(usage("worker needs the scheduler's ADDRESS"));
            };
            let mut o = WorkerOptions::default();
            if let Some(n) = num("nthreads")? {
                o.nthreads = usize::try_from(n).unwrap_or(1).max(1);
            }
            if let Some(m) = num("memory-limit")? {
                o.memory_limit = m;
            }
            if let Some(n) = get("name") {
                o.name = n.to_owned();
            }
            o.security = Some(security(get)?);
            if let Some(d) = get("local-directory") {
                o.local_directory = Some(d.into());
            }
            if let Some(f) = get("running-file") {
                o.running_file = Some(f.into());
            }
            if let Some(ms) = num("heartbeat-interval")? {
                o.heartbeat_interval = std::time::Duration::from_millis(ms);
            }
            if let Some(ms) = num("heartbeat-timeout")? {
                o.heartbeat_timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(h) = get("host") {
                o.host = h.to_owned();
            }
            if let Some(s) = num("lifetime")? {
                o.lifetime = Some(std::time::Duration::from_secs(s));
            }
            if let Some(s) = num("lifetime-stagger")? {
                o.lifetime_stagger = std::time::Duration::from_secs(s);
            }
            worker::run::<O>(address, o)
        }
        other => Err(usage(&format!("unknown command {other:?}"))),
    }
}
