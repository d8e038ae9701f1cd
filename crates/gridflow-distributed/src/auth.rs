//! Who may connect: a shared secret proven by challenge–response (never sent), and `tls://`
//! addresses with rustls (mutual TLS from a CA's certificate and each node's certificate and
//! key). Every connection — to the scheduler and to a worker's data port — goes through
//! [`connect`] on one side and [`accept`] on the other; see `docs/protocol.md`.
//!
//! The challenge–response runs in both directions: the listener proves to the connector that
//! it knows the secret too, so a worker or client never hands work or data to an impostor.

use crate::frame::{encode, read_frame_limited, read_preamble, write_frame, write_preamble};
use crate::{DistError, Result};
use ring::hmac;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Environment variable holding the shared secret.
pub const TOKEN_ENV: &str = "GRIDFLOW_AUTH_TOKEN";
/// Environment variable naming a file holding the shared secret.
pub const TOKEN_FILE_ENV: &str = "GRIDFLOW_AUTH_TOKEN_FILE";
/// Environment variables naming the CA certificate, this node's certificate and its key
/// (PEM files) for `tls://` addresses.
pub const TLS_ENV: [&str; 3] = ["GRIDFLOW_TLS_CA", "GRIDFLOW_TLS_CERT", "GRIDFLOW_TLS_KEY"];
/// The environment variable naming the PEM file of the CA(s) a TLS gateway's certificate
/// is checked against (`gateway+tls://` addresses); unset: the system's trusted roots.
pub const GATEWAY_CA_ENV: &str = "GRIDFLOW_GATEWAY_CA";

/// How long a peer may take over the handshake (preamble, TLS, challenge–response): a peer
/// that says nothing cannot hold a connection open.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest handshake frame: nonces and proofs are tens of bytes, so an unauthenticated peer
/// cannot make the listener buffer more than this.
const MAX_HANDSHAKE_FRAME: u32 = 4096;
const NONCE: usize = 32;

/// A byte stream to a peer: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection after the handshake.
pub type Stream = Box<dyn Io>;

/// The PEM files of a TLS node: every node (scheduler, worker, client) has a certificate
/// signed by the CA, and accepts only peers whose certificate the CA signed.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// This node's certificate (chain).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

struct Tls {
    files: TlsFiles,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
}

/// What a node proves and demands: the shared secret, TLS, both or neither.
#[derive(Clone, Default)]
pub struct Security {
    token: Option<Arc<[u8]>>,
    tls: Option<Arc<Tls>>,
    /// How a TLS gateway's certificate is checked (`None`: the system's roots).
    gateway_ca: Option<(PathBuf, Arc<rustls::ClientConfig>)>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.debug_struct("Security")
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("tls", &self.tls.as_ref().map(|t| &t.files))
            .field("gateway_ca", &self.gateway_ca())
            .finish()
    }
}

fn auth_error(peer: &str, detail: impl Into<String>) -> DistError {
    DistError::Auth {
        peer: peer.to_owned(),
        detail: detail.into(),
    }
}

impl Security {
    /// Neither a secret nor TLS (what a cluster on 127.0.0.1 may use).
    pub fn none() -> Security {
        Security::default()
    }

    /// Proves and demands this shared secret.
    pub fn with_token(mut self, token: impl AsRef<[u8]>) -> Result<Security> {
        let t = token.as_ref();
        if t.is_empty() {
            return Err(auth_error("this node", "the auth token is empty"));
        }
        self.token = Some(Arc::from(t));
        Ok(self)
    }

    /// Proves and demands the secret held in `path`, a file only its owner may read.
    pub fn with_token_file(self, path: &Path) -> Result<Security> {
        let t = read_token_file(path)?;
        self.with_token(t)
    }

    /// Uses TLS with these files (read now, so a bad file is reported at start-up).
    pub fn with_tls(mut self, files: TlsFiles) -> Result<Security> {
        self.tls = Some(Arc::new(Tls::load(files)?));
        Ok(self)
    }

    /// From the environment: [`TOKEN_ENV`] or [`TOKEN_FILE_ENV`], and the three [`TLS_ENV`]
    /// files (all or none).
    pub fn from_env() -> Result<Security> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut s = Security::none();
        if let Some(ca) = var(GATEWAY_CA_ENV) {
            s = s.with_gateway_ca(Path::new(&ca))?;
        }
        if let Some(t) = var(TOKEN_ENV) {
            s = s.with_token(t.trim())?;
        } else if let Some(f) = var(TOKEN_FILE_ENV) {
            s = s.with_token_file(Path::new(&f))?;
        }
        let tls: Vec<Option<String>> = TLS_ENV.iter().map(|k| var(k)).collect();
        match tls.as_slice() {
            [Some(ca), Some(cert), Some(key)] => {
                s = s.with_tls(TlsFiles {
                    ca: ca.into(),
                    cert: cert.into(),
                    key: key.into(),
                })?;
            }
            [None, None, None] => {}
            _ => {
                return Err(auth_error(
                    "this node",
                    format!("TLS needs all of {} set, or none", TLS_ENV.join(", ")),
                ));
            }
        }
        Ok(s)
    }

    /// Checks a TLS gateway's certificate (`gateway+tls://` addresses) against the CA(s)
    /// in PEM file `ca` instead of the system's trusted roots.
    pub fn with_gateway_ca(mut self, ca: &Path) -> Result<Security> {
        let config = gateway_client_config(Some(ca))?;
        self.gateway_ca = Some((ca.to_owned(), config));
        Ok(self)
    }

    /// The PEM file a TLS gateway's certificate is checked against, if not the system's
    /// roots.
    pub fn gateway_ca(&self) -> Option<&Path> {
        self.gateway_ca.as_ref().map(|(p, _)| p.as_path())
    }

    /// True when a shared secret is demanded.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// True when connections use TLS.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS files, if any (to hand them to worker processes).
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|t| &t.files)
    }

    /// The secret, to hand it to worker processes started by this one (through their
    /// environment, never their command line).
    pub fn token(&self) -> Option<&[u8]> {
        self.token.as_deref()
    }

    /// The scheme of this node's addresses: `tls://` or `tcp://`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "tls://"
        } else {
            "tcp://"
        }
    }

    /// Refuses to listen on an interface other than loopback without authentication: anyone
    /// who can reach the port could otherwise run code on the cluster.
    pub fn check_listen(&self, host: &str) -> Result<()> {
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback || self.token.is_some() || self.tls.is_some() {
            return Ok(());
        }
        Err(auth_error(
            host,
            format!(
                "refusing to listen on {host} without authentication: anyone reaching the port \
                 could run tasks; give an auth token (--auth-token, --auth-token-file or \
                 {TOKEN_ENV}) or TLS certificates (--tls-ca, --tls-cert, --tls-key), or listen \
                 on 127.0.0.1"
            ),
        ))
    }
}

/// A new random secret (32 bytes, hex), e.g. for a local cluster's processes.
pub fn generate_token() -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| auth_error("this node", "the system's random generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Reads a secret from a file that only its owner may read or write (mode 0600 or
/// stricter); surrounding white space is dropped.
pub fn read_token_file(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| DistError::io(format!("reading the auth token file {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(auth_error(
            "this node",
            format!(
                "the auth token file {} may be read by other users (mode {mode:04o}); \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    let text = std::fs::read(path)
        .map_err(|e| DistError::io(format!("reading the auth token file {}", path.display()), e))?;
    let t = text.trim_ascii().to_vec();
    if t.is_empty() {
        return Err(auth_error(
            "this node",
            format!("the auth token file {} is empty", path.display()),
        ));
    }
    Ok(t)
}

impl Tls {
    fn load(files: TlsFiles) -> Result<Tls> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, p: &Path, e: String| {
            auth_error(
                "this node",
                format!("reading the TLS {what} {}: {e}", p.display()),
            )
        };
        let certs = |p: &Path, what: &str| -> Result<Vec<CertificateDer<'static>>> {
            let v: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(p)
                .map_err(|e| bad(what, p, e.to_string()))?
                .collect();
            let v = v.map_err(|e| bad(what, p, e.to_string()))?;
            if v.is_empty() {
                return Err(bad(what, p, "no certificate in the file".into()));
            }
            Ok(v)
        };
        let ca = certs(&files.ca, "CA certificate")?;
        let chain = certs(&files.cert, "certificate")?;
        let key = || {
            PrivateKeyDer::from_pem_file(&files.key)
                .map_err(|e| bad("private key", &files.key, e.to_string()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in ca {
            roots
                .add(c)
                .map_err(|e| bad("CA certificate", &files.ca, e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_err = |e: rustls::Error| auth_error("this node", format!("TLS set-up: {e}"));
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key()?)
            .map_err(tls_err)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| auth_error("this node", format!("TLS set-up: {e}")))?;
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key()?)
            .map_err(tls_err)?;
        Ok(Tls {
            files,
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }
}

/// Splits `tcp://host:port`, `tls://host:port` or `host:port` into (TLS?, `host:port`).
pub fn parse_address(address: &str) -> (bool, &str) {
    if let Some(a) = address.strip_prefix("tls://") {
        (true, a)
    } else {
        (false, address.strip_prefix("tcp://").unwrap_or(address))
    }
}

/// Challenge from the listener, first frame after the preambles.
#[derive(Serialize, Deserialize)]
enum Challenge {
    /// No secret demanded.
    Open,
    /// Prove the secret over this nonce.
    Nonce(Vec<u8>),
}

/// The connector's answer: its own nonce (for the listener's proof) and its proof.
#[derive(Serialize, Deserialize)]
struct Response {
    nonce: Vec<u8>,
    proof: Option<Vec<u8>>,
}

/// The listener's verdict, with its own proof.
#[derive(Serialize, Deserialize)]
enum Verdict {
    Accepted { proof: Option<Vec<u8>> },
    Refused(String),
}

const CONNECTOR: &[u8] = b"gridflow-connector-v2";
const LISTENER: &[u8] = b"gridflow-listener-v2";

/// HMAC-SHA256 of the role and both nonces: each side's proof covers a nonce the other
/// chose, so a recorded proof is worth nothing later, and the roles differ so that one
/// side's proof cannot be echoed back as the other's.
fn proof_msg(role: &[u8], listener_nonce: &[u8], connector_nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(role.len() + 2 * NONCE);
    m.extend_from_slice(role);
    m.extend_from_slice(listener_nonce);
    m.extend_from_slice(connector_nonce);
    m
}

fn nonce(peer: &str) -> Result<Vec<u8>> {
    let mut n = vec![0u8; NONCE];
    ring::rand::SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| auth_error(peer, "the system's random generator failed"))?;
    Ok(n)
}

async fn send<W: AsyncWrite + Unpin, M: Serialize>(w: &mut W, peer: &str, m: &M) -> Result<()> {
    write_frame(w, peer, &encode(m)?, &[]).await?;
    w.flush()
        .await
        .map_err(|e| DistError::io(format!("{peer}: sending the handshake"), e))
}

async fn recv<R: AsyncRead + Unpin, M: serde::de::DeserializeOwned>(
    r: &mut R,
    peer: &str,
    during: &str,
) -> Result<M> {
    match read_frame_limited(r, peer, MAX_HANDSHAKE_FRAME).await? {
        Some(f) => f.decode(peer),
        None => Err(DistError::Closed {
            peer: peer.to_owned(),
            during: during.into(),
        }),
    }
}

/// The first bytes a client sends to a gateway's port to be routed to a cluster's
/// scheduler (see `docs/gateway.md`): these 4 bytes, the cluster id's length (u16 LE) and
/// the id. The gateway answers one status byte (0: routed; 1: refused, then a u16 LE
/// length and a UTF-8 message) and then relays bytes both ways.
pub const ROUTE_MAGIC: &[u8; 4] = b"GFRT";

/// Longest cluster id a routing preamble may carry.
pub const MAX_ROUTE_ID: usize = 256;

/// Where a `gateway://` address leads: `gateway://HOST:PORT/CLUSTER` is cluster `CLUSTER`'s
/// scheduler through the gateway at `HOST:PORT`; `gateway://HOST:PORT/CLUSTER/relay/DATA`
/// is a worker's data port `DATA`, reached through that scheduler (which relays the bytes,
/// as workers are not reachable from outside a gateway). `gateway+tls://` is the same
/// through a gateway whose port speaks TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRoute<'a> {
    /// Whether the gateway's port speaks TLS (`gateway+tls://`).
    pub tls: bool,
    /// The gateway's `host:port`.
    pub gateway: &'a str,
    /// The cluster's id.
    pub cluster: &'a str,
    /// A worker's data address, relayed by the scheduler.
    pub relay: Option<&'a str>,
}

/// Splits a `gateway://` address; `None` for any other address.
pub fn parse_gateway_address(address: &str) -> Option<GatewayRoute<'_>> {
    let (tls, rest) = match address.strip_prefix("gateway+tls://") {
        Some(r) => (true, r),
        None => (false, address.strip_prefix("gateway://")?),
    };
    let (gateway, rest) = rest.split_once('/')?;
    let (cluster, relay) = match rest.split_once("/relay/") {
        Some((c, r)) => (c, Some(r)),
        None => (rest.trim_end_matches('/'), None),
    };
    (!gateway.is_empty() && !cluster.is_empty()).then_some(GatewayRoute {
        tls,
        gateway,
        cluster,
        relay,
    })
}

/// The address of worker data port `data` relayed through the scheduler at `scheduler`,
/// when `scheduler` is a `gateway://` address (otherwise `data` itself).
pub fn relayed_data_address(scheduler: &str, data: &str) -> String {
    match parse_gateway_address(scheduler) {
        Some(r) => format!(
            "{}://{}/{}/relay/{data}",
            if r.tls { "gateway+tls" } else { "gateway" },
            r.gateway,
            r.cluster
        ),
        None => data.to_owned(),
    }
}

/// Opens a connection to a gridflow peer: TLS for `tls://` addresses, the preambles, then
/// the challenge–response. Errors name the peer and what to fix. A `gateway://` address is
/// routed by the gateway first (and, for a worker's data port, relayed by the scheduler).
pub async fn connect(address: &str, sec: &Security) -> Result<Stream> {
    let fut = async {
        if let Some(route) = parse_gateway_address(address) {
            return connect_routed(address, &route, sec).await;
        }
        let (_, hostport) = parse_address(address);
        let tcp = TcpStream::connect(hostport)
            .await
            .map_err(|e| DistError::io(format!("connecting to {address}"), e))?;
        let _ = tcp.set_nodelay(true);
        handshake(Box::new(tcp), address, sec).await
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| {
            auth_error(
                address,
                format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
            )
        })?
}

/// Through a gateway: the routing preamble, the handshake with the scheduler, and for a
/// relayed data port a `Hello::Relay` then the handshake with the worker over the same
/// bytes (the secret is proven end to end; the gateway and the scheduler only copy bytes).
async fn connect_routed(address: &str, route: &GatewayRoute<'_>, sec: &Security) -> Result<Stream> {
    use tokio::io::AsyncReadExt;
    if sec.tls.is_some() {
        return Err(auth_error(
            address,
            "TLS certificates cannot be used through a gateway: its clusters use their own \
             auth token",
        ));
    }
    let tcp = TcpStream::connect(route.gateway)
        .await
        .map_err(|e| DistError::io(format!("connecting to the gateway at {}", route.gateway), e))?;
    let _ = tcp.set_nodelay(true);
    let mut tcp: Stream = if route.tls {
        let config = match &sec.gateway_ca {
            Some((_, c)) => c.clone(),
            None => gateway_client_config(None)?,
        };
        Box::new(tls_to_gateway(config, route.gateway, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let id = route.cluster.as_bytes();
    if id.len() > MAX_ROUTE_ID {
        return Err(auth_error(address, "cluster id too long"));
    }
    let mut pre = Vec::with_capacity(6 + id.len());
    pre.extend_from_slice(ROUTE_MAGIC);
    pre.extend_from_slice(&(id.len() as u16).to_le_bytes());
    pre.extend_from_slice(id);
    let io = |e| DistError::io(format!("{address}: routing through the gateway"), e);
    tcp.write_all(&pre).await.map_err(io)?;
    let status = tcp.read_u8().await.map_err(io)?;
    if status != 0 {
        let n = tcp.read_u16_le().await.map_err(io)?;
        let mut msg = vec![0u8; usize::from(n)];
        tcp.read_exact(&mut msg).await.map_err(io)?;
        return Err(DistError::Cluster(format!(
            "the gateway at {} refused: {}",
            route.gateway,
            String::from_utf8_lossy(&msg)
        )));
    }
    let scheduler = format!(
        "{}://{}/{}",
        if route.tls { "gateway+tls" } else { "gateway" },
        route.gateway,
        route.cluster
    );
    let mut s = handshake(tcp, &scheduler, sec).await?;
    let Some(data) = route.relay else {
        return Ok(s);
    };
    send(
        &mut s,
        &scheduler,
        &crate::messages::Hello::Relay {
            address: data.to_owned(),
        },
    )
    .await?;
    match recv(&mut s, &scheduler, "asking the scheduler to relay").await? {
        crate::messages::Welcome::Accepted { .. } => {}
        crate::messages::Welcome::Refused(why) => {
            return Err(DistError::Cluster(format!(
                "{scheduler}: the scheduler will not relay to {data}: {why}"
            )));
        }
    }
    handshake(s, address, sec).await
}

/// The connector's handshake over an open byte stream: TLS for `tls://` addresses, the
/// preambles, the challenge–response.
async fn handshake(stream: Stream, address: &str, sec: &Security) -> Result<Stream> {
    let (tls, hostport) = match parse_gateway_address(address) {
        Some(r) => parse_address(r.relay.unwrap_or("")),
        None => parse_address(address),
    };
    let mut s: Stream = match (tls, &sec.tls) {
        (false, None) => stream,
        (true, Some(t)) => {
            let host = hostport
                .rsplit_once(':')
                .map_or(hostport, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| auth_error(address, format!("bad host name {host:?}: {e}")))?;
            let c = tokio_rustls::TlsConnector::from(t.client.clone())
                .connect(name, stream)
                .await
                .map_err(|e| {
                    auth_error(
                        address,
                        format!("TLS handshake failed: {e} (is the peer's certificate signed by the CA {}?)", t.files.ca.display()),
                    )
                })?;
            Box::new(c)
        }
        (true, None) => {
            return Err(auth_error(
                address,
                "a tls:// address, but this node has no TLS certificates (--tls-ca, \
                 --tls-cert, --tls-key or the GRIDFLOW_TLS_* variables)",
            ));
        }
        (false, Some(_)) => {
            return Err(auth_error(
                address,
                "this node uses TLS but the address is not tls://; refusing to send data \
                 in clear",
            ));
        }
    };
    write_preamble(&mut s, address).await?;
    read_preamble(&mut s, address).await.map_err(|e| match e {
        // A TLS listener answers a clear preamble with a TLS alert (0x15 0x03).
        DistError::BadMagic { got, .. } if got.first() == Some(&0x15) => auth_error(
            address,
            "the peer speaks TLS: use a tls:// address and give this node TLS certificates",
        ),
        e => e,
    })?;
    prove(&mut s, address, sec).await?;
    Ok(s)
}

/// The connector's side of the challenge–response.
async fn prove(s: &mut Stream, peer: &str, sec: &Security) -> Result<()> {
    let challenge: Challenge = recv(s, peer, "during the authentication").await?;
    let ours = nonce(peer)?;
    match (challenge, &sec.token) {
        (Challenge::Open, None) => {
            send(
                s,
                peer,
                &Response {
                    nonce: ours,
                    proof: None,
                },
            )
            .await?;
        }
        (Challenge::Open, Some(_)) => {
            return Err(auth_error(
                peer,
                "the peer does not demand an auth token but this node has one: refusing, as \
                 the peer cannot prove it knows the token (is the address right?)",
            ));
        }
        (Challenge::Nonce(theirs), token) => {
            let proof = token.as_ref().map(|t| {
                let key = hmac::Key::new(hmac::HMAC_SHA256, t);
                hmac::sign(&key, &proof_msg(CONNECTOR, &theirs, &ours))
                    .as_ref()
                    .to_vec()
            });
            send(
                s,
                peer,
                &Response {
                    nonce: ours.clone(),
                    proof,
                },
            )
            .await?;
            let verdict: Verdict = recv(s, peer, "waiting for the authentication verdict").await?;
            match verdict {
                Verdict::Refused(why) => return Err(auth_error(peer, format!("refused: {why}"))),
                Verdict::Accepted { proof } => {
                    let Some(t) = &token else {
                        return Err(auth_error(peer, "the peer demands an auth token"));
                    };
                    let key = hmac::Key::new(hmac::HMAC_SHA256, t);
                    let ok = proof.is_some_and(|p| {
                        hmac::verify(&key, &proof_msg(LISTENER, &theirs, &ours), &p).is_ok()
                    });
                    if !ok {
                        return Err(auth_error(
                            peer,
                            "the peer did not prove it knows the auth token: not the expected \
                             scheduler or worker",
                        ));
                    }
                }
            }
            return Ok(());
        }
    }
    let verdict: Verdict = recv(s, peer, "waiting for the authentication verdict").await?;
    match verdict {
        Verdict::Accepted { .. } => Ok(()),
        Verdict::Refused(why) => Err(auth_error(peer, format!("refused: {why}"))),
    }
}

/// The listener's side of a new connection: TLS if configured, the preambles, then the
/// challenge–response. A refused peer is told why before the connection closes.
pub async fn accept(tcp: TcpStream, peer: &str, sec: &Security) -> Result<Stream> {
    let _ = tcp.set_nodelay(true);
    let fut = async {
        let mut s: Stream = match &sec.tls {
            None => Box::new(tcp),
            Some(t) => Box::new(
                tokio_rustls::TlsAcceptor::from(t.server.clone())
                    .accept(tcp)
                    .await
                    .map_err(|e| auth_error(peer, format!("TLS handshake failed: {e}")))?,
            ),
        };
        write_preamble(&mut s, peer).await?;
        read_preamble(&mut s, peer).await?;
        challenge(&mut s, peer, sec).await?;
        Ok(s)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| auth_error(peer, format!("no handshake within {HANDSHAKE_TIMEOUT:?}")))?
}

async fn challenge(s: &mut Stream, peer: &str, sec: &Security) -> Result<()> {
    let Some(t) = &sec.token else {
        send(s, peer, &Challenge::Open).await?;
        let _: Response = recv(s, peer, "during the authentication").await?;
        return send(s, peer, &Verdict::Accepted { proof: None }).await;
    };
    let ours = nonce(peer)?;
    send(s, peer, &Challenge::Nonce(ours.clone())).await?;
    let r: Response = recv(s, peer, "during the authentication").await?;
    let refuse = |why: &str| (Verdict::Refused(why.to_owned()), auth_error(peer, why));
    let key = hmac::Key::new(hmac::HMAC_SHA256, t);
    let outcome = match &r.proof {
        _ if r.nonce.len() != NONCE => Err(refuse("malformed authentication response")),
        None => Err(refuse(
            "an auth token is required and none was given (--auth-token, --auth-token-file \
             or GRIDFLOW_AUTH_TOKEN)",
        )),
        Some(p) if hmac::verify(&key, &proof_msg(CONNECTOR, &ours, &r.nonce), p).is_err() => {
            Err(refuse("wrong auth token"))
        }
        Some(_) => Ok(()),
    };
    match outcome {
        Ok(()) => {
            let proof = hmac::sign(&key, &proof_msg(LISTENER, &ours, &r.nonce))
                .as_ref()
                .to_vec();
            send(s, peer, &Verdict::Accepted { proof: Some(proof) }).await
        }
        Err((verdict, err)) => {
            let _ = send(s, peer, &verdict).await;
            Err(err)
        }
    }
}

/// The TLS client configuration for a gateway's port: the CA(s) in PEM file `ca`, or the
/// system's trusted roots. Used by the runtime's connections and the gateway's own HTTP
/// client, so both trust the same certificates.
pub fn gateway_client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect())
                .map_err(|e| {
                    auth_error(
                        "the gateway",
                        format!("reading the gateway CA {}: {e}", p.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(auth_error(
                    "the gateway",
                    format!("the gateway CA {} holds no certificate", p.display()),
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    auth_error(
                        "the gateway",
                        format!("the gateway CA {}: {e}", p.display()),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(auth_error(
                    "the gateway",
                    format!(
                        "no trusted root certificates on this system to check a TLS \
                         gateway; set {GATEWAY_CA_ENV} to its CA's PEM file"
                    ),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| auth_error("the gateway", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// TLS to a gateway at `hostport`, its certificate checked for its host name.
async fn tls_to_gateway(
    config: Arc<rustls::ClientConfig>,
    hostport: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        auth_error(
            &format!("the gateway at {hostport}"),
            format!("bad host name {host:?}: {e}"),
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            auth_error(
                &format!("the gateway at {hostport}"),
                format!(
                    "TLS: {e} (is its certificate signed by {GATEWAY_CA_ENV} or a trusted root, \
                     and for {host}?)"
                ),
            )
        })
}
