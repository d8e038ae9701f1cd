//! The scheduler's HTTP endpoints for driving scaling from outside (an operator, a
//! Kubernetes autoscaler), served by the dashboard's server (`docs/deploy.md`):
//!
//! - `GET /api/v1/adaptive_target`: how many workers the pending work wants, with the
//!   figures behind it ([`crate::messages::AdaptiveTarget`] as JSON);
//! - `POST /api/v1/retire_workers` with `{"workers": ["name", ...]}` (and `"token"` when the
//!   cluster has one: the HTTP server has no other way to know who asks, and retiring is
//!   not read-only): answered `{"retired": [...]}` once they have left.
//!
//! Both go through an ordinary client connection to the scheduler, on a thread of their
//! own: handlers run on the dashboard runtime's blocking threads, where the client's own
//! runtime cannot be entered. The dashboard keeps serving other requests while a
//! retirement waits (seconds) for its workers to leave. Both are slow routes: at most the
//! router's slow limit run at once, more are answered 503.

use crate::dashboard::{Request, Response, Router};
use crate::{Client, DistError, Result, Security};

/// The routes, for the scheduler listening at `address` (`host:port`) with `security`.
pub(crate) fn routes(address: &str, security: &Security) -> Router {
    let address = format!("{}{address}", security.scheme());
    let (a2, s2) = (address.clone(), security.clone());
    let s1 = security.clone();
    Router::new()
        .route_slow(
            "GET",
            "/api/v1/adaptive_target",
            move |_req: &Request| match with_client(&address, &s1, |c| c.adaptive_target()) {
                Ok(t) => json(&t),
                Err(e) => Response::error(503, &format!("adaptive_target: {e}")),
            },
        )
        .route_slow("POST", "/api/v1/retire_workers", move |req: &Request| {
            retire(req, &a2, &s2)
        })
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => Response::json(s),
        Err(e) => Response::error(500, &format!("encoding the answer: {e}")),
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn retire(req: &Request, address: &str, security: &Security) -> Response {
    #[derive(serde::Deserialize)]
    struct Body {
        workers: Vec<String>,
        #[serde(default)]
        token: Option<String>,
    }
    let body: Body = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => {
            return Response::error(
                400,
                &format!("retire_workers: the body must be {{\"workers\": [\"name\", ...]}}: {e}"),
            );
        }
    };
    if let Some(want) = security.token() {
        let given = body.token.as_deref().unwrap_or_default().as_bytes();
        if !same_secret(given, want) {
            return Response::error(
                403,
                "retire_workers: this cluster has a token: give it as \"token\" in the body",
            );
        }
    }
    if body.workers.is_empty() {
        return Response::error(400, "retire_workers: no worker named (\"workers\": [])");
    }
    let names = body.workers;
    match with_client(address, security, move |c| c.retire_workers(&names)) {
        Ok(retired) => json(&serde_json::json!({ "retired": retired })),
        Err(DistError::Cluster(m)) if m.contains("no connected worker") => Response::error(400, &m),
        Err(e) => Response::error(503, &format!("retire_workers: {e}")),
    }
}

/// Runs `f` with a client of the scheduler, on a thread of its own (see the module's text).
fn with_client<T: Send + 'static>(
    address: &str,
    security: &Security,
    f: impl FnOnce(&Client) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (a, s) = (address.to_owned(), security.clone());
    std::thread::Builder::new()
        .name("gridflow-http-scaling".into())
        .spawn(move || Client::connect_with(&a, s).and_then(|c| f(&c)))
        .map_err(|e| DistError::io("starting the request's thread", e))?
        .join()
        .map_err(|_| DistError::Cluster("the request's thread failed".into()))?
}
