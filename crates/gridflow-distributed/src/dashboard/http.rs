//! A small HTTP/1.1 server over tokio for the dashboard: GET and POST with a
//! `Content-Length` body, one request per connection (`Connection: close`), and
//! server-sent event streams. Written here rather than pulled in (hyper, axum) because the
//! dashboard needs nothing more, and it keeps the scheduler's build lean.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 << 10;
/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// A client has this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP request as the handlers see it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (after `?`), undecoded.
    pub query: String,
    /// The body (empty for GET).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of query parameter `name`, if present (no percent-decoding: the
    /// dashboard's parameters are numbers and plain names).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// What a handler answers.
pub enum Response {
    /// A whole body.
    Full {
        /// The status code.
        status: u16,
        /// Its `Content-Type`.
        content_type: &'static str,
        /// The body.
        body: Vec<u8>,
    },
    /// A server-sent event stream: `next` is called every `every` and its `Some(data)`
    /// sent as one event; the stream ends when it returns `None` or the client leaves.
    Events {
        /// How often to produce an event.
        every: Duration,
        /// Produces the next event's data (one line of JSON).
        next: Box<dyn FnMut() -> Option<String> + Send + Sync>,
    },
}

impl Response {
    /// A 200 JSON answer.
    pub fn json(body: String) -> Response {
        Response::Full {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }

    /// A 200 answer of `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response::Full {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// An error answer: `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message }).to_string();
        Response::Full {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }
}

/// A request handler.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// How many slow handlers ([`Router::route_slow`]) may run at once by default.
const DEFAULT_SLOW_LIMIT: usize = 8;

/// Blocking threads for the other handlers (quick: they read published snapshots).
const FAST_THREADS: usize = 8;

/// One registered route.
#[derive(Clone)]
struct Route {
    method: &'static str,
    path: String,
    handler: Handler,
    /// May wait long (on the cluster): counted against the router's slow limit.
    slow: bool,
}

/// Routes by method and exact path (a route ending in `/*` matches every path under it).
#[derive(Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// How many slow handlers a server of this router runs at once.
    slow_limit: usize,
}

impl Default for Router {
    fn default() -> Router {
        Router {
            routes: Vec::new(),
            slow_limit: DEFAULT_SLOW_LIMIT,
        }
    }
}

/// What a request is routed to.
enum Lookup {
    /// A handler, and whether it is slow.
    Handler(Handler, bool),
    /// An answer without a handler (404, 405).
    Answer(Response),
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| {
                format!(
                    "{} {}{}",
                    r.method,
                    r.path,
                    if r.slow { " (slow)" } else { "" }
                )
            }))
            .finish()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route; later routes do not override earlier ones for the same path.
    pub fn route(
        mut self,
        method: &'static str,
        path: impl Into<String>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Router {
        self.routes.push(Route {
            method,
            path: path.into(),
            handler: Arc::new(handler),
            slow: false,
        });
        self
    }

    /// Adds a route whose handler may wait long (it asks the cluster something, such as a
    /// retirement that waits for workers to leave). Each holds a blocking thread while it
    /// runs, so at most the router's slow limit run at once ([`Router::slow_limit`]); a
    /// request beyond it is answered 503 at once rather than queued without bound.
    pub fn route_slow(
        mut self,
        method: &'static str,
        path: impl Into<String>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Router {
        self.routes.push(Route {
            method,
            path: path.into(),
            handler: Arc::new(handler),
            slow: true,
        });
        self
    }

    /// Sets how many slow handlers may run at once (at least 1; default 8).
    pub fn slow_limit(mut self, n: usize) -> Router {
        self.slow_limit = n.max(1);
        self
    }

    /// Blocking threads a server of this router needs at most: one per slow handler that
    /// may run, and a few for the quick ones.
    pub fn blocking_threads(&self) -> usize {
        self.slow_limit + FAST_THREADS
    }

    /// Adds every route of `other` after this router's own; the smaller slow limit holds.
    pub fn merge(mut self, other: Router) -> Router {
        self.routes.extend(other.routes);
        self.slow_limit = self.slow_limit.min(other.slow_limit);
        self
    }

    fn matches(pattern: &str, path: &str) -> bool {
        match pattern.strip_suffix("/*") {
            Some(base) => path.starts_with(base) && path.len() > base.len(),
            None => pattern == path,
        }
    }

    /// Answers `req` on this thread (slow handlers too, without the limit): 404 for an
    /// unknown path, 405 for a known path with another method.
    pub fn handle(&self, req: &Request) -> Response {
        match self.lookup(req) {
            Lookup::Handler(h, _) => h(req),
            Lookup::Answer(r) => r,
        }
    }

    fn lookup(&self, req: &Request) -> Lookup {
        let mut known_path = false;
        for r in &self.routes {
            if Router::matches(&r.path, &req.path) {
                known_path = true;
                if r.method == req.method || (r.method == "GET" && req.method == "HEAD") {
                    return Lookup::Handler(r.handler.clone(), r.slow);
                }
            }
        }
        Lookup::Answer(if known_path {
            Response::error(
                405,
                &format!("{} is not allowed on {}", req.method, req.path),
            )
        } else {
            Response::error(404, &format!("no page at {}", req.path))
        })
    }
}

/// Serves `router` on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, router: Arc<Router>) {
    let slow = Arc::new(tokio::sync::Semaphore::new(router.slow_limit));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (router, slow) = (router.clone(), slow.clone());
        tokio::spawn(async move {
            let _ = connection(stream, &router, slow).await;
        });
    }
}

/// Why a request could not be read: answered with this status and message.
struct BadRequest(u16, String);

async fn read_request(s: &mut TcpStream) -> Result<Request, BadRequest> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(BadRequest(431, "request head too large".into()));
        }
        let mut chunk = [0u8; 4096];
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| BadRequest(400, format!("reading the request: {e}")))?;
        if n == 0 {
            return Err(BadRequest(400, "connection closed mid-request".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| BadRequest(400, "request head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest(400, format!("malformed request line {line:?}")));
    };
    let mut length = 0usize;
    for h in lines {
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v
                .trim()
                .parse()
                .map_err(|_| BadRequest(400, format!("bad Content-Length {:?}", v.trim())))?;
        }
    }
    if length > MAX_BODY {
        return Err(BadRequest(
            413,
            format!("body of {length} bytes is too large"),
        ));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| BadRequest(400, format!("reading the request body: {e}")))?;
        if n == 0 {
            return Err(BadRequest(400, "connection closed mid-body".into()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Serves one request; `slow`: permits for slow handlers, shared by the server's
/// connections.
async fn connection(
    mut s: TcpStream,
    router: &Arc<Router>,
    slow: Arc<tokio::sync::Semaphore>,
) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let req = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut s)).await {
        Ok(Ok(r)) => r,
        Ok(Err(BadRequest(status, msg))) => {
            return write_full(&mut s, &Response::error(status, &msg), false).await;
        }
        Err(_) => return Ok(()),
    };
    let head_only = req.method == "HEAD";
    let (handler, is_slow) = match router.lookup(&req) {
        Lookup::Handler(h, is_slow) => (h, is_slow),
        Lookup::Answer(r) => return write_full(&mut s, &r, head_only).await,
    };
    // A slow handler holds a blocking thread until it is done: beyond the limit the
    // request is refused now (the caller may try again) rather than piling up threads.
    let permit = if is_slow {
        match slow.try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let busy = Response::error(
                    503,
                    &format!(
                        "the dashboard is busy: {} slow request(s) (retirements, adaptive \
                         targets) are already running, the most it runs at once; try {} \
                         {} again when one has finished",
                        router.slow_limit, req.method, req.path
                    ),
                );
                return write_full(&mut s, &busy, head_only).await;
            }
        }
    } else {
        None
    };
    // Handlers are plain functions and some take long (a retirement waits for workers to
    // leave): they run on the runtime's blocking threads, so this server's one event-loop
    // thread keeps answering other requests (pages, `/metrics`) meanwhile.
    let answer = match tokio::task::spawn_blocking(move || {
        let _permit = permit;
        handler(&req)
    })
    .await
    {
        Ok(a) => a,
        Err(e) => Response::error(500, &format!("the request's handler failed: {e}")),
    };
    match answer {
        r @ Response::Full { .. } => write_full(&mut s, &r, head_only).await,
        Response::Events { every, mut next } => {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                  Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            )
            .await?;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(data) = next() else {
                    return Ok(());
                };
                let mut ev = Vec::with_capacity(data.len() + 8);
                for line in data.split('\n') {
                    ev.extend_from_slice(b"data: ");
                    ev.extend_from_slice(line.as_bytes());
                    ev.push(b'\n');
                }
                ev.push(b'\n');
                // A client that left ends the stream here.
                s.write_all(&ev).await?;
            }
        }
    }
}

async fn write_full(s: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    let Response::Full {
        status,
        content_type,
        body,
    } = r
    else {
        return Ok(());
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        reason(*status),
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    if !head_only {
        s.write_all(body).await?;
    }
    s.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::{Response, Router, serve};
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// `GET path` on `addr`: the status code and the whole answer.
    fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {out:?}"));
        (status, out)
    }

    fn wait_until(what: &str, ok: impl Fn() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < Duration::from_secs(20), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn slow_handlers_beyond_the_limit_are_refused_and_others_still_answer() {
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (st, rel) = (started.clone(), release.clone());
        let router = Router::new()
            .slow_limit(2)
            .route_slow("GET", "/slow", move |_| {
                st.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                while !rel.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(20) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Response::json("\"slow\"".into())
            })
            .route("GET", "/fast", |_| Response::json("\"fast\"".into()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let blocking = router.blocking_threads();
        // The dashboard's set-up: one event-loop thread, blocking threads bounded.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(blocking)
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(l, Arc::new(router)).await;
            });
        });

        let waiting: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || get(addr, "/slow")))
            .collect();
        wait_until("two slow handlers running", || {
            started.load(Ordering::SeqCst) == 2
        });
        // The limit is reached: a third is refused at once, saying why.
        let (status, body) = get(addr, "/slow");
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("busy") && body.contains("2 slow request"),
            "{body}"
        );
        assert_eq!(started.load(Ordering::SeqCst), 2, "the third never ran");
        // Other handlers are not held up.
        let (status, body) = get(addr, "/fast");
        assert_eq!(status, 200, "{body}");

        release.store(true, Ordering::SeqCst);
        for w in waiting {
            let (status, body) = w.join().unwrap();
            assert_eq!(status, 200, "{body}");
        }
        // Their slots are free again.
        let (status, body) = get(addr, "/slow");
        assert_eq!(status, 200, "{body}");
        assert_eq!(started.load(Ordering::SeqCst), 3);
    }
}
