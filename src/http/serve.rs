//! Connection management of the shared listener: `/status`, posting and `/federation` all come
//! in here, and with federation it faces the internet.
//!
//! warp's routes are served through hyper's HTTP/1 connection builder with a timer, so that
//! - a client has `header_timeout_s` to send a complete request head, from connecting and
//!   again after every answer (the idle keep-alive limit);
//! - a request, its body included, is answered within `request_timeout_s` (408 otherwise);
//! - the connections held at once are bounded: a total that fits the open-file limit (raised
//!   to its hard limit at start), a smaller cap per remote address, and a reserved pool that
//!   only `http.status_allow` networks and configured peers' addresses may use — so a flood of
//!   anonymous sockets never starves `/status` nor a peer's link. Over its cap a connection is
//!   closed as soon as it is accepted (the accept loop never stops draining the backlog).
//!
//! A slot is held by the socket itself, so a connection upgraded to a WebSocket (`/federation`)
//! still counts until the socket closes.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::config::Config;
use crate::ratelog::{repeated, Throttle};
use crate::remote::{canonical, ClientAddr};
use crate::status::{Metrics, StatusSource};

/// File descriptors kept out of the connection budget: the database, the TUN device, the
/// radio, outgoing peer links, log files, the runtime's own.
const FD_HEADROOM: usize = 128;
/// How often configured peers' host names are resolved again.
const PEER_RESOLVE_EVERY: Duration = Duration::from_secs(300);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(3);

static CAP_REACHED: Throttle = Throttle::per_minute();
static ACCEPT_FAILED: Throttle = Throttle::per_minute();

/// The bounds the listener enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections from anyone.
    pub anonymous: usize,
    /// Connections kept for allowed networks and peers (they use the anonymous pool too once
    /// this one is full).
    pub reserved: usize,
    pub per_address: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Limits {
    /// From the configuration and the open-file limit `nofile`.
    pub fn new(config: &crate::config::HttpConfig, nofile: u64) -> Limits {
        let budget = usize::try_from(nofile)
            .unwrap_or(usize::MAX)
            .saturating_sub(FD_HEADROOM)
            .max(16);
        let total = config.max_connections.clamp(2, budget);
        let reserved = config.reserved_connections.clamp(1, total / 2);
        let secs = |s: f64, fallback: f64| {
            Duration::from_secs_f64(if s.is_finite() && s > 0.0 {
                s
            } else {
                fallback
            })
        };
        Limits {
            anonymous: total - reserved,
            reserved,
            per_address: config.max_connections_per_address.max(1),
            header_timeout: secs(config.header_timeout_s, 10.0),
            request_timeout: secs(config.request_timeout_s, 30.0),
        }
    }
}

/// Figures of the listener, for `/status` ("http") and `/metrics`.
#[derive(Debug, Default)]
pub struct EdgeFigures {
    pub accepted: AtomicU64,
    pub refused_full: AtomicU64,
    pub refused_per_address: AtomicU64,
    pub accept_errors: AtomicU64,
    pub request_timeouts: AtomicU64,
}

#[derive(Debug, Default)]
struct Pools {
    anonymous: usize,
    reserved: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Anonymous,
    Reserved,
}

/// The listener's admission state.
pub struct Edge {
    limits: Limits,
    status_allow: Arc<RwLock<Vec<IpNet>>>,
    /// Configured peers' addresses (resolved from their host names).
    peer_addrs: RwLock<HashSet<IpAddr>>,
    peer_hosts: Vec<String>,
    pools: Mutex<Pools>,
    pub figures: EdgeFigures,
    nofile: u64,
}

impl Edge {
    /// Raises the open-file limit and sizes the pools from it.
    pub fn new(config: &Config, status_allow: Arc<RwLock<Vec<IpNet>>>) -> Arc<Edge> {
        let nofile = raise_nofile_limit();
        let limits = Limits::new(&config.http, nofile);
        Self::with_limits(
            limits,
            status_allow,
            config.peers.iter().map(|p| p.host.clone()).collect(),
            nofile,
        )
    }

    pub fn with_limits(
        limits: Limits,
        status_allow: Arc<RwLock<Vec<IpNet>>>,
        peer_hosts: Vec<String>,
        nofile: u64,
    ) -> Arc<Edge> {
        let peer_addrs = peer_hosts
            .iter()
            .filter_map(|h| h.parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        Arc::new(Edge {
            limits,
            status_allow,
            peer_addrs: RwLock::new(peer_addrs),
            peer_hosts,
            pools: Mutex::default(),
            figures: EdgeFigures::default(),
            nofile,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// May `ip` use the reserved pool?
    pub fn privileged(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        super::allowed_by(&self.status_allow, ip)
            || self
                .peer_addrs
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&ip)
    }

    /// A slot for a new connection from `ip`, or why not.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let ip = canonical(ip);
        let privileged = self.privileged(ip);
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let pool = if privileged && pools.reserved < self.limits.reserved {
            Pool::Reserved
        } else {
            if pools.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_address {
                return Err(Refusal::PerAddress);
            }
            if pools.anonymous >= self.limits.anonymous {
                return Err(Refusal::Full);
            }
            Pool::Anonymous
        };
        match pool {
            Pool::Reserved => pools.reserved += 1,
            Pool::Anonymous => pools.anonymous += 1,
        }
        *pools.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            edge: self.clone(),
            ip,
            pool,
        })
    }

    /// Connections open now: (anonymous pool, reserved pool).
    pub fn open(&self) -> (usize, usize) {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        (pools.anonymous, pools.reserved)
    }

    async fn resolve_peers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let names: Vec<String> = self
            .peer_hosts
            .iter()
            .filter(|h| h.parse::<IpAddr>().is_err())
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        loop {
            let mut found = HashSet::new();
            for host in &names {
                let lookup = tokio::net::lookup_host((host.as_str(), 0));
                if let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    found.extend(addrs.map(|a| canonical(a.ip())));
                }
            }
            {
                let mut known = self.peer_addrs.write().unwrap_or_else(|p| p.into_inner());
                known.retain(|ip| self.peer_hosts.iter().any(|h| h.parse() == Ok(*ip)));
                known.extend(found);
            }
            tokio::select! {
                _ = tokio::time::sleep(PEER_RESOLVE_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    PerAddress,
}

/// One admitted connection; dropping it frees the place.
struct Slot {
    edge: Arc<Edge>,
    ip: IpAddr,
    pool: Pool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pools = self.edge.pools.lock().unwrap_or_else(|p| p.into_inner());
        match self.pool {
            Pool::Reserved => pools.reserved = pools.reserved.saturating_sub(1),
            Pool::Anonymous => pools.anonymous = pools.anonymous.saturating_sub(1),
        }
        if let Some(n) = pools.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                pools.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A socket that holds its slot for as long as it lives (through a WebSocket upgrade too).
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// `/status` "http" and the `meshroom_http_*` metrics.
pub struct EdgeSource(pub Arc<Edge>);

impl StatusSource for EdgeSource {
    fn key(&self) -> &'static str {
        "http"
    }

    fn status(&self) -> serde_json::Value {
        let e = &self.0;
        let (anonymous, reserved) = e.open();
        let f = &e.figures;
        json!({
            "open_files_limit": e.nofile,
            "connections": {
                "open": anonymous + reserved,
                "open_reserved": reserved,
                "max": e.limits.anonymous + e.limits.reserved,
                "max_reserved": e.limits.reserved,
                "max_per_address": e.limits.per_address,
            },
            "accepted": f.accepted.load(Ordering::Relaxed),
            "refused_full": f.refused_full.load(Ordering::Relaxed),
            "refused_per_address": f.refused_per_address.load(Ordering::Relaxed),
            "accept_errors": f.accept_errors.load(Ordering::Relaxed),
            "request_timeouts": f.request_timeouts.load(Ordering::Relaxed),
            "header_timeout_s": e.limits.header_timeout.as_secs_f64(),
            "request_timeout_s": e.limits.request_timeout.as_secs_f64(),
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let e = &self.0;
        let (anonymous, reserved) = e.open();
        let f = &e.figures;
        out.gauge(
            "meshroom_http_connections",
            "HTTP connections open now",
            &[("pool", "anonymous")],
            anonymous as f64,
        );
        out.gauge(
            "meshroom_http_connections",
            "HTTP connections open now",
            &[("pool", "reserved")],
            reserved as f64,
        );
        let counters = [
            ("accepted", &f.accepted),
            ("refused_full", &f.refused_full),
            ("refused_per_address", &f.refused_per_address),
            ("accept_error", &f.accept_errors),
            ("request_timeout", &f.request_timeouts),
        ];
        for (what, v) in counters {
            out.counter(
                "meshroom_http_connection_events_total",
                "HTTP listener events: accepted, refused (full, per address), accept errors, request timeouts",
                &[("event", what)],
                v.load(Ordering::Relaxed),
            );
        }
    }
}

/// Serves `routes` on `listener` under `edge`'s bounds until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: BoxedFilter<(Response,)>,
    edge: Arc<Edge>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(edge.clone().resolve_peers(stop_rx.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    // warp's filter service is a tower one; hyper wants its own trait.
    let routes = Arc::new(hyper_util::service::TowerToHyperService::new(
        warp::service(routes),
    ));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                edge.figures.accept_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = ACCEPT_FAILED.hit() {
                    tracing::warn!("HTTP: cannot accept a connection: {e}{}", repeated(n));
                }
                // Out of file descriptors (or similar): give the others a moment to close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match edge.admit(addr.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                let counter = match why {
                    Refusal::Full => &edge.figures.refused_full,
                    Refusal::PerAddress => &edge.figures.refused_per_address,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = CAP_REACHED.hit() {
                    let what = match why {
                        Refusal::Full => "all connection places are taken",
                        Refusal::PerAddress => "an address is at its connection cap",
                    };
                    tracing::warn!(
                        remote = %addr,
                        "HTTP: {what}; closing new connections at once (see /status http){}",
                        repeated(n)
                    );
                }
                drop(stream);
                continue;
            }
        };
        edge.figures.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        conns.spawn(connection(
            io,
            addr,
            routes.clone(),
            edge.clone(),
            stop_rx.clone(),
        ));
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
}

async fn connection<R>(
    io: TokioIo<Counted>,
    addr: SocketAddr,
    routes: Arc<R>,
    edge: Arc<Edge>,
    mut stop: watch::Receiver<bool>,
) where
    R: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = Response,
            Error = Infallible,
        > + Send
        + Sync
        + 'static,
    R::Future: Send + 'static,
{
    let limits = edge.limits.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ClientAddr(addr));
        let answer = routes.call(req);
        let edge = edge.clone();
        async move {
            match tokio::time::timeout(limits.request_timeout, answer).await {
                Ok(resp) => resp,
                Err(_) => {
                    edge.figures
                        .request_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    let mut resp = super::error(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request took too long to arrive",
                    );
                    resp.headers_mut().insert(
                        warp::http::header::CONNECTION,
                        warp::http::HeaderValue::from_static("close"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                // Timeouts, resets and garbage from clients: nothing an operator must act on.
                tracing::debug!(remote = %addr, "HTTP connection ended: {e}");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, conn).await;
}
