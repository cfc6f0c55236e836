//! The TUN side's IO shell: opens the device, then runs three tasks around the sans-IO
//! [`Bridge`] and [`Membership`] until the gateway stops:
//! - **device → hub**: reads packets, turns room datagrams into posts (submitted concurrently,
//!   so the hub's group commit can batch a burst), passes IGMP reports on;
//! - **hub → device**: writes every committed post of another side as one datagram to its
//!   room's group, and an IGMP general query every `igmp_query_interval_s`;
//! - **membership**: reads `/proc/net/igmp` at once after an IGMP report and once per query
//!   cycle (never on a short poll, so an idle gateway sleeps), and publishes each room's `ip`
//!   participants.
//!
//! When the device cannot be created (no `/dev/net/tun`, no CAP_NET_ADMIN) in `auto` mode, the
//! gateway runs without this side and says so once in the log and under `tun` in `/status`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{TunConfig, TunMode};
use crate::hub::{AuthorKind, Hub, HubError, Participant, RoomInfo, Submitted};
use crate::side::SideContext;
use crate::tun::bridge::{Bridge, BridgeRoom, FromDevice};
use crate::tun::counters::{Counters, DropReason};
use crate::tun::device::{DeviceSetup, TunDevice};
use crate::tun::group::RoomEndpoint;
use crate::tun::igmp::GroupReport;
use crate::tun::membership::Membership;
use crate::tun::proc_igmp;
use crate::tun::seal::SealKey;
use crate::tun::status::{TunStatus, TunStatusSource};

/// Datagrams from the host in flight to the hub at once.
const MAX_IN_FLIGHT: usize = 512;
/// Max response time announced in our queries, in tenths of a second.
const QUERY_MAX_RESPONSE_TENTHS: u16 = 10;
const PROC_NET_IGMP: &str = "/proc/net/igmp";

/// Starts the TUN side as the configuration asks. Returns the task to await at shutdown (it
/// removes the route and address), or `None` when the side does not run. Errors only when
/// `tun.enabled: on` and the device cannot be had.
pub async fn spawn(
    ctx: SideContext,
    endpoints: Vec<RoomEndpoint>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let cfg = ctx.config.tun.clone();
    if cfg.enabled == TunMode::Off {
        ctx.status.absent(
            "tun",
            json!({"device": cfg.device, "state": "off", "reason": "tun.enabled is off"}),
        );
        tracing::info!("TUN side off (tun.enabled: off)");
        return Ok(None);
    }
    let setup = DeviceSetup {
        name: cfg.device.clone(),
        kernel_address: cfg.address,
        range: cfg.range,
        mtu: cfg.mtu,
    };
    let device = match TunDevice::open(setup).await {
        Ok(d) => d,
        // `auto` runs without the side whatever the reason (no TUN support, no permission, the
        // name taken by another interface or gateway); `unavailable` vs `failed` tells which.
        Err(e) if cfg.enabled == TunMode::Auto => {
            tracing::warn!(
                "running without the TUN side: {e}; rooms are not visible as multicast groups on this host"
            );
            let state = if e.is_unavailable() {
                "unavailable"
            } else {
                "failed"
            };
            ctx.status.absent(
                "tun",
                json!({"device": cfg.device, "state": state, "reason": e.to_string()}),
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot create TUN device {} (set tun.enabled: auto to run without it)",
                cfg.device
            )))
        }
    };
    tracing::info!(
        device = %cfg.device,
        address = %cfg.address,
        range = %cfg.range,
        "TUN side up: rooms are multicast groups on {}",
        cfg.device
    );
    for ep in &endpoints {
        tracing::info!(room = %ep.room, group = %ep.group, port = ep.port, "room on the host");
    }

    let counters = Arc::new(Counters::default());
    let bridge = Arc::new(BridgeCell::new(&ctx.hub, &cfg, &endpoints));
    let status = Arc::new(TunStatus::new(
        &cfg,
        &endpoints,
        device.ipv6_disabled(),
        counters.clone(),
    ));
    ctx.status
        .register(Arc::new(TunStatusSource(status.clone())));

    let (reports_tx, reports_rx) = mpsc::channel(64);
    let io = device.io.clone();
    let inbound = tokio::spawn(device_to_hub(
        io.clone(),
        ctx.hub.clone(),
        bridge.clone(),
        counters.clone(),
        reports_tx,
        cfg.mtu,
    ));
    let outbound = tokio::spawn(hub_to_device(
        io,
        ctx.hub.subscribe(),
        bridge.clone(),
        counters.clone(),
        cfg.source,
        cfg.igmp_query_interval_s,
        ctx.shutdown.clone(),
    ));
    let members = tokio::spawn(track_members(
        ctx.hub.clone(),
        Membership::new(&cfg.device, &endpoints),
        reports_rx,
        bridge,
        status,
        Duration::from_secs(u64::from(cfg.igmp_query_interval_s.max(1))),
        ctx.shutdown.clone(),
    ));

    let hub = ctx.hub.clone();
    let mut shutdown = ctx.shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        stopped(&mut shutdown).await;
        inbound.abort();
        let _ = outbound.await;
        let _ = members.await;
        for ep in &endpoints {
            hub.participants()
                .set_side(&ep.room, AuthorKind::Ip, Vec::new());
        }
        let name = device.setup.name.clone();
        device.close().await;
        tracing::info!(device = %name, "TUN side stopped; device, address and route removed");
    })))
}

/// Resolves when the gateway stops (or its stop signal is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it must not live in a spawned task's state.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The bridge, rebuilt when a room's PSK changes (SIGHUP reload).
struct BridgeCell {
    current: RwLock<Arc<Bridge>>,
    /// PSK of each room the current bridge was built with.
    psks: RwLock<HashMap<String, Option<String>>>,
    source: Ipv4Addr,
    endpoints: Vec<RoomEndpoint>,
    mtu: u16,
}

impl BridgeCell {
    fn new(hub: &Hub, cfg: &TunConfig, endpoints: &[RoomEndpoint]) -> Self {
        let psks = Self::psks(&hub.rooms());
        let bridge = Self::build(cfg.source, endpoints, cfg.mtu, &psks);
        BridgeCell {
            current: RwLock::new(Arc::new(bridge)),
            psks: RwLock::new(psks),
            source: cfg.source,
            endpoints: endpoints.to_vec(),
            mtu: cfg.mtu,
        }
    }

    fn psks(rooms: &[RoomInfo]) -> HashMap<String, Option<String>> {
        rooms
            .iter()
            .map(|r| {
                let psk = r.psk.as_ref().map(|p| p.expose().to_string());
                (r.name.clone(), psk)
            })
            .collect()
    }

    fn build(
        source: Ipv4Addr,
        endpoints: &[RoomEndpoint],
        mtu: u16,
        psks: &HashMap<String, Option<String>>,
    ) -> Bridge {
        let rooms = endpoints
            .iter()
            .map(|ep| BridgeRoom {
                endpoint: ep.clone(),
                seal: psks
                    .get(&ep.room)
                    .and_then(|p| p.as_deref())
                    .map(|psk| SealKey::derive(psk, &ep.room)),
            })
            .collect();
        Bridge::new(source, rooms, mtu, crate::hub::MAX_TEXT_BYTES)
    }

    fn get(&self) -> Arc<Bridge> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-derives the seal keys if a room's PSK changed.
    fn refresh(&self, rooms: &[RoomInfo]) {
        let psks = Self::psks(rooms);
        let mut known = self.psks.write().unwrap_or_else(|p| p.into_inner());
        if *known == psks {
            return;
        }
        let bridge = Self::build(self.source, &self.endpoints, self.mtu, &psks);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(bridge);
        *known = psks;
        tracing::info!("TUN side: room PSKs changed, seal keys re-derived");
    }
}

async fn device_to_hub(
    io: Arc<tun::AsyncDevice>,
    hub: Hub,
    bridge: Arc<BridgeCell>,
    counters: Arc<Counters>,
    reports: mpsc::Sender<Vec<GroupReport>>,
    mtu: u16,
) {
    // Room for a whole packet at the device MTU and a little more, so an over-long packet is
    // seen as such rather than cut.
    let mut buf = vec![0u8; usize::from(mtu) + 64];
    let mut in_flight = FuturesUnordered::new();
    loop {
        if in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(result) = in_flight.next().await {
                account(&counters, result);
            }
            continue;
        }
        tokio::select! {
            Some(result) = in_flight.next(), if !in_flight.is_empty() => account(&counters, result),
            read = io.recv(&mut buf) => {
                let n = match read {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the TUN device failed; host datagrams are no longer read");
                        return;
                    }
                };
                let Some(packet) = buf.get(..n) else { continue };
                match bridge.get().from_device(packet, hub.now(), &counters) {
                    FromDevice::Post(post) => {
                        let hub = hub.clone();
                        in_flight.push(async move { hub.submit(post).await });
                    }
                    FromDevice::Membership(groups) => {
                        // A full queue only delays a recount until the next poll.
                        let _ = reports.try_send(groups);
                    }
                    FromDevice::Nothing => {}
                }
            }
        }
    }
}

fn account(counters: &Counters, result: Result<Submitted, HubError>) {
    match result {
        Ok(Submitted::Accepted(_)) => Counters::bump(&counters.datagrams_in),
        Ok(Submitted::Duplicate(_)) => counters.count_drop(DropReason::Duplicate),
        Err(e) => {
            counters.count_drop(DropReason::Rejected);
            tracing::debug!(error = %e, "hub refused a post from the host");
        }
    }
}

async fn hub_to_device(
    io: Arc<tun::AsyncDevice>,
    mut deliveries: broadcast::Receiver<crate::hub::Delivery>,
    bridge: Arc<BridgeCell>,
    counters: Arc<Counters>,
    source: Ipv4Addr,
    query_interval_s: u8,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut queries =
        tokio::time::interval(Duration::from_secs(u64::from(query_interval_s.max(1))));
    let query = crate::tun::packet::build_general_query(
        source,
        QUERY_MAX_RESPONSE_TENTHS,
        query_interval_s,
    );
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = queries.tick() => {
                match io.send(&query).await {
                    Ok(_) => Counters::bump(&counters.queries_out),
                    Err(e) => tracing::debug!(error = %e, "writing an IGMP query failed"),
                }
            }
            delivery = deliveries.recv() => {
                let delivery = match delivery {
                    Ok(d) => d,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "TUN side fell behind the hub; {missed} posts were not sent to the host");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if delivery.via.side == AuthorKind::Ip {
                    continue;
                }
                match bridge.get().to_device(&delivery.post, rand::random()) {
                    Ok(Some(packet)) => match io.send(&packet).await {
                        Ok(_) => Counters::bump(&counters.datagrams_out),
                        Err(e) => tracing::warn!(error = %e, room = %delivery.post.room, "writing a datagram to the TUN device failed"),
                    },
                    Ok(None) => {}
                    Err(reason) => {
                        counters.count_drop(reason);
                        tracing::debug!(room = %delivery.post.room, reason = reason.as_str(), "post not sent to the host");
                    }
                }
            }
        }
    }
}

async fn track_members(
    hub: Hub,
    mut membership: Membership,
    mut reports: mpsc::Receiver<Vec<GroupReport>>,
    bridge: Arc<BridgeCell>,
    status: Arc<TunStatus>,
    query_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let device = status.device.clone();
    let mut rooms = hub.watch_rooms();
    // Joins and leaves of a group's second and later sockets send no IGMP of their own, but
    // every host answers our query (each query cycle) with reports, which trigger a read; this
    // read per cycle is the safety net. So a room's `ip` count is at most one query interval
    // stale, and an idle gateway does not wake up for it in between.
    let mut poll = tokio::time::interval(query_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut proc_warned = false;
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = poll.tick() => {}
            // Every wake-up recounts: a report about a room's group is news worth reading the
            // file for at once; one about another group costs one small read.
            Some(groups) = reports.recv() => { membership.on_report(&groups); }
            // A reload: new PSKs apply to the very next datagram.
            Ok(()) = rooms.changed() => {
                let rooms = rooms.borrow_and_update().clone();
                bridge.refresh(&rooms);
                continue;
            }
        }
        match std::fs::read_to_string(PROC_NET_IGMP) {
            Ok(text) => membership.on_proc(&proc_igmp::group_users(&text, &device)),
            Err(e) => {
                if !proc_warned {
                    tracing::warn!(error = %e, "cannot read {PROC_NET_IGMP}: each room shows at most one host listener");
                    proc_warned = true;
                }
                membership.on_proc_unavailable();
            }
        }
        let now = hub.now();
        for (room, listeners) in membership.settle(now) {
            let list = listeners
                .into_iter()
                .map(|l| {
                    let mut p = Participant::new(AuthorKind::Ip, l.id, now);
                    p.since = l.since;
                    p
                })
                .collect();
            hub.participants().set_side(&room, AuthorKind::Ip, list);
        }
        status.set_listeners(membership.counts());
    }
}
