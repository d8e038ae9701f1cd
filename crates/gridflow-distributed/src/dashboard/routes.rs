//! The dashboard's routes: pages, the JSON API, the event stream and `/metrics`.

use super::http::{Request, Response, Router};
use super::{Hub, metrics};
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("pages/page.html");
const SCRIPT: &str = include_str!("pages/dash.js");
const STYLE: &str = include_str!("pages/dash.css");

/// Task-stream events sent at most per request or stream frame: with tiny tasks the page
/// shows the most recent ones (as Dask's task stream keeps its last tasks), which keeps an
/// open page's cost (the browser's parsing and drawing, on the cluster's cores) small.
const EVENTS_PER_FRAME: usize = 500;

/// How often the live stream sends a frame.
const STREAM_EVERY: Duration = Duration::from_millis(250);

/// The single-pane pages: (dask-labextension's name, path, title, panes).
pub(crate) const PANES: &[(&str, &str, &str, &str)] = &[
    (
        "Individual Task Stream",
        "/individual-task-stream",
        "Task stream",
        "task-stream",
    ),
    (
        "Individual Progress",
        "/individual-progress",
        "Progress",
        "progress",
    ),
    (
        "Individual Worker Memory",
        "/individual-workers-memory",
        "Worker memory",
        "memory",
    ),
    (
        "Individual Workers",
        "/individual-workers",
        "Workers",
        "workers",
    ),
    (
        "Individual Task Graph",
        "/individual-graph",
        "Task graph",
        "graph",
    ),
    (
        "Individual Info",
        "/individual-info",
        "Cluster information and logs",
        "info logs",
    ),
];

fn page(title: &str, panes: &str) -> Response {
    let html = PAGE.replace("{{TITLE}}", title).replace("{{PANES}}", panes);
    Response::ok("text/html; charset=utf-8", html)
}

fn to_json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => Response::json(s),
        Err(e) => Response::error(500, &format!("encoding the answer: {e}")),
    }
}

fn number(req: &Request, name: &str, default: u64) -> Result<u64, Response> {
    match req.param(name) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            Response::error(
                400,
                &format!("query parameter {name}={v:?} is not a non-negative integer"),
            )
        }),
    }
}

/// One frame of the live stream (and `/api/v1/update`): the snapshot, new task-stream
/// events after `since` and recent logs.
fn frame(hub: &Hub, since: u64, logs: usize) -> serde_json::Value {
    let (events, next) = hub.events_since(since, EVENTS_PER_FRAME);
    serde_json::json!({
        "snapshot": &*hub.snapshot(),
        "events": events,
        "next": next,
        "logs": hub.logs(logs),
        "started_unix": hub.started_unix(),
    })
}

/// The built-in routes over `hub`.
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    let mut r = Router::new()
        .route("GET", "/", |_| {
            page(
                "gridflow dashboard",
                "progress task-stream memory workers graph info logs",
            )
        })
        .route("GET", "/status", |_| {
            page(
                "gridflow dashboard",
                "progress task-stream memory workers graph info logs",
            )
        })
        .route("GET", "/statics/dash.js", |_| {
            Response::ok("text/javascript; charset=utf-8", SCRIPT)
        })
        .route("GET", "/statics/dash.css", |_| {
            Response::ok("text/css; charset=utf-8", STYLE)
        })
        .route("GET", "/health", |_| Response::ok("text/plain", "ok"))
        // Browsers ask for it on every page; a 404 there is noise in their consoles.
        .route("GET", "/favicon.ico", |_| {
            Response::ok(
                "image/svg+xml",
                "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>\
                 <rect width='16' height='16' rx='3' fill='#263238'/>\
                 <rect x='3' y='9' width='3' height='4' fill='#4fc3f7'/>\
                 <rect x='7' y='5' width='3' height='8' fill='#81c784'/>\
                 <rect x='11' y='3' width='2' height='10' fill='#ffb74d'/></svg>",
            )
        })
        .route("GET", "/individual-plots.json", |_| {
            let map: serde_json::Map<String, serde_json::Value> = PANES
                .iter()
                .map(|(name, path, _, _)| ((*name).to_owned(), (*path).into()))
                .collect();
            to_json(&map)
        });
    for &(_, path, title, panes) in PANES {
        r = r.route("GET", path, move |_| page(title, panes));
    }
    let h = hub.clone();
    r = r.route("GET", "/metrics", move |_| {
        Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(&h.snapshot()),
        )
    });
    let h = hub.clone();
    r = r.route("GET", "/api/v1/snapshot", move |_| to_json(&*h.snapshot()));
    let h = hub.clone();
    r = r.route("GET", "/api/v1/workers", move |_| {
        to_json(&h.snapshot().workers)
    });
    let h = hub.clone();
    r = r.route("GET", "/api/v1/task_groups", move |_| {
        let s = h.snapshot();
        to_json(&serde_json::json!({"groups": s.groups, "edges": s.group_edges}))
    });
    let h = hub.clone();
    r = r.route("GET", "/api/v1/task_stream", move |req| {
        let since = match number(req, "since", 0) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let limit = match number(req, "limit", EVENTS_PER_FRAME as u64) {
            Ok(v) => v.min(super::STREAM_CAPACITY as u64) as usize,
            Err(e) => return e,
        };
        let (events, next) = h.events_since(since, limit);
        to_json(&serde_json::json!({"events": events, "next": next}))
    });
    let h = hub.clone();
    r = r.route("GET", "/api/v1/logs", move |req| {
        let limit = match number(req, "limit", 200) {
            Ok(v) => v as usize,
            Err(e) => return e,
        };
        to_json(&serde_json::json!({"logs": h.logs(limit)}))
    });
    let h = hub.clone();
    r = r.route("GET", "/api/v1/update", move |req| {
        match number(req, "since", 0) {
            Ok(since) => to_json(&frame(&h, since, 200)),
            Err(e) => e,
        }
    });
    let h = hub;
    r.route("GET", "/api/v1/stream", move |req| {
        let mut since = match number(req, "since", 0) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let h = h.clone();
        Response::Events {
            every: STREAM_EVERY,
            next: Box::new(move || {
                let f = frame(&h, since, 100);
                since = f["next"].as_u64().unwrap_or(since);
                Some(f.to_string())
            }),
        }
    })
}
