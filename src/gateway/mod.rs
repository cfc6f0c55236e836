//! The running gateway: opens the store and hub, starts each side and the HTTP server, handles
//! signals (SIGTERM/SIGINT stop, SIGHUP reloads the rooms), and stops everything in order, telling
//! systemd when it is ready, reloading and stopping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

mod radio_link;

use crate::config::{self, Source};
use crate::http::{self, HttpState};
use crate::hub::Hub;
use crate::ops;
use crate::settings::{self, Prepared, Settings};
use crate::side::SideContext;
use crate::status::StatusBoard;
use crate::store::writer::system_clock;

/// How long in-flight work gets after SIGTERM before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(prepared: Prepared) -> anyhow::Result<()> {
    let Prepared {
        settings,
        source,
        warnings,
    } = prepared;
    let Settings {
        config,
        radio,
        meshcore,
        tun_rooms,
    } = settings;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match &source {
        Source::File(p) => tracing::info!("configuration from {}", p.display()),
        Source::Embedded => tracing::info!(
            "no configuration file (looked for {}): running the embedded default",
            config::DEFAULT_PATH
        ),
    }
    // Handlers first: a SIGHUP (`systemctl reload`) or SIGTERM that arrives while the sides start
    // must be handled, not take the default action and kill the process mid-start.
    let signals = Signals::install();
    let config = Arc::new(config);
    let hub = Hub::open(
        &config.server.name,
        &config.server.state_dir,
        &config.rooms,
        system_clock(),
    )
    .with_context(|| {
        format!(
            "cannot open the state in {}",
            config.server.state_dir.display()
        )
    })?;
    tracing::info!("state in {}", config.server.state_dir.display());
    for room in hub.rooms() {
        tracing::info!(
            room = %room.name,
            access = if room.is_private() { "private" } else { "public" },
            max_history = room.max_history,
            "serving room"
        );
    }

    let board = StatusBoard::new(hub.clone(), config.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = SideContext {
        config: config.clone(),
        hub: hub.clone(),
        status: board.clone(),
        shutdown: stop_rx.clone(),
    };
    let sides = start_sides(&ctx, radio.as_ref(), meshcore, tun_rooms).await?;
    let federation_route = crate::federation::spawn(&ctx)?;

    let status_allow = Arc::new(RwLock::new(config.http.status_allow.clone()));
    let http_state = HttpState {
        hub: hub.clone(),
        board: board.clone(),
        status_allow: status_allow.clone(),
        shutdown: stop_rx.clone(),
    };
    let listener = bind(config.http.listen).await?;
    tracing::info!(
        "HTTP on http://{}: / (dashboard), /events, /status, /metrics, /rooms/NAME/posts",
        config.http.listen
    );
    let routes = http::routes(http_state, federation_route);
    let mut http_stop = stop_rx.clone();
    let edge = http::Edge::new(&config, status_allow.clone());
    board.register(Arc::new(http::EdgeSource(edge.clone())));
    let server = tokio::spawn(http::serve(listener, routes, edge, async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));

    wait_for_signals(signals, &source, &hub, &board, &status_allow).await;
    tracing::info!("stopping");
    ops::notify::stopping();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = server.await;
        // Sides that clean up after themselves (the TUN side removes its route and address).
        for side in sides {
            let _ = side.await;
        }
    })
    .await;
    hub.close().await;
    tracing::info!("stopped; every accepted post is on disk");
    Ok(())
}

/// Starts the radio, TUN and federation sides as the configuration asks. Returns the tasks to
/// await at shutdown.
async fn start_sides(
    ctx: &SideContext,
    radio: Option<&crate::radio::settings::Resolved>,
    meshcore: crate::meshcore::server::engine::EngineConfig,
    tun_rooms: Vec<crate::tun::group::RoomEndpoint>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut sides = Vec::new();
    // A radio that cannot start (permissions, wiring) must not take the rooms down with it:
    // the reason goes to the log and to /status.
    let radio = match crate::radio::spawn(radio, &ctx.status, ctx.shutdown.clone()).await {
        Ok(radio) => radio,
        Err(e) => {
            tracing::error!("radio not started: {e:#}");
            ctx.status.absent(
                "radio",
                json!({"backend": ctx.config.radio.backend, "state": "not running", "reason": format!("{e:#}")}),
            );
            None
        }
    };
    // Every room is a MeshCore room server on the radio.
    match &radio {
        Some(radio) => {
            let link = radio_link::link(radio);
            let meshcore = crate::meshcore::service::spawn(ctx, meshcore, link).await?;
            sides.push(meshcore.task);
        }
        None => ctx.status.absent(
            "meshcore",
            json!({"state": "not running", "reason": "no radio"}),
        ),
    }
    sides.extend(crate::tun::spawn(ctx.clone(), tun_rooms).await?);
    Ok(sides)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (http.listen): is another gateway running?")
    })
}

/// The signals the gateway acts on, installed once at start.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// `None` if the handlers cannot be installed (then only Ctrl-C stops the gateway).
    fn install() -> Option<Signals> {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            _ => None,
        }
    }
}

async fn wait_for_signals(
    signals: Option<Signals>,
    source: &Source,
    hub: &Hub,
    board: &StatusBoard,
    status_allow: &Arc<RwLock<Vec<ipnet::IpNet>>>,
) {
    // HTTP listens and every side has started: the service is ready.
    ops::notify::ready(&format!("serving {} rooms", hub.rooms().len()));
    let Some(Signals {
        mut term,
        mut int,
        mut hup,
    }) = signals
    else {
        tracing::error!("cannot install signal handlers; stopping on Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                ops::notify::reloading();
                let outcome = reload(source, hub, board, status_allow).await;
                ops::notify::reloaded(outcome);
            }
        }
    }
}

/// SIGHUP: re-read the file and apply what can change without a restart. Returns a one-line
/// outcome for the service manager's status.
async fn reload(
    source: &Source,
    hub: &Hub,
    board: &StatusBoard,
    status_allow: &Arc<RwLock<Vec<ipnet::IpNet>>>,
) -> &'static str {
    let Source::File(path) = source else {
        tracing::info!("SIGHUP: running the embedded default; nothing to reload");
        return "serving the embedded default";
    };
    let path: PathBuf = path.clone();
    match settings::load_file(&path) {
        Err(e) => {
            tracing::error!("SIGHUP: keeping the running configuration: {e}");
            "reload failed: configuration has errors, the previous one keeps running"
        }
        Ok(prepared) => {
            for w in &prepared.warnings {
                tracing::warn!("{w}");
            }
            let config = prepared.settings.config;
            let changed = hub.reload_rooms(&config.rooms).await;
            *status_allow.write().unwrap_or_else(|p| p.into_inner()) =
                config.http.status_allow.clone();
            board.set_config(Arc::new(config));
            if changed.is_empty() {
                tracing::info!(
                    "SIGHUP: reloaded rooms and http.status_allow from {}",
                    path.display()
                );
                "reloaded"
            } else {
                tracing::warn!(
                    "SIGHUP: applied changes to existing rooms; rooms added or removed ({}) need a restart",
                    changed.join(", ")
                );
                "reloaded; rooms added or removed need a restart"
            }
        }
    }
}
