//! `GET /events`: a Server-Sent Events stream of committed posts and status changes, for the
//! dashboard and for scripts (`curl -N`).
//!
//! - Without `room`, the posts of every public room; with `?room=NAME`, that room only — and a
//!   private room needs its PSK (`X-Room-Psk` header, or `psk=` in the query for browsers,
//!   whose `EventSource` cannot send headers).
//! - Events: `ready` once (server and rooms streamed), `post` per committed post (the post as
//!   JSON, plus `via`, the side it came in on), `status` when who is in a room changes here or
//!   at a peer (debounced; fetch `/status`). A comment every 15 s keeps proxies from timing out.
//! - Each subscriber has its own task reading the hub's broadcast (which never waits for
//!   anyone) into a bounded queue of [`QUEUE`] events; a client that lets its queue fill is
//!   dropped, so a stalled reader costs at most that queue and never slows the hub.
//! - At most [`MAX_SUBSCRIBERS`] at once; beyond, 503.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::{decode, error, HttpState, PSK_HEADER};
use crate::hub::{Delivery, Hub, Rooms};
use crate::status::{Metrics, StatusSource};

/// Concurrent `/events` subscribers at most.
pub const MAX_SUBSCRIBERS: usize = 64;
/// Events queued per subscriber before it counts as stalled and is dropped.
pub const QUEUE: usize = 256;
/// Quiet time before a `status` event goes out after membership changes.
const STATUS_DEBOUNCE: Duration = Duration::from_millis(300);
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Figures {
    subscribers: AtomicUsize,
    served: AtomicU64,
    refused_full: AtomicU64,
    dropped_slow: AtomicU64,
}

/// The `events` entry of `/status`.
struct EventsStatus(Arc<Figures>);

impl StatusSource for EventsStatus {
    fn key(&self) -> &'static str {
        "events"
    }

    fn status(&self) -> Value {
        let f = &self.0;
        json!({
            "subscribers": f.subscribers.load(Ordering::Relaxed),
            "max_subscribers": MAX_SUBSCRIBERS,
            "served": f.served.load(Ordering::Relaxed),
            "refused_full": f.refused_full.load(Ordering::Relaxed),
            "dropped_slow": f.dropped_slow.load(Ordering::Relaxed),
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let f = &self.0;
        out.gauge(
            "meshroom_events_subscribers",
            "Clients streaming /events now.",
            &[],
            f.subscribers.load(Ordering::Relaxed) as f64,
        );
        out.counter(
            "meshroom_events_dropped_slow_total",
            "/events clients dropped for not reading.",
            &[],
            f.dropped_slow.load(Ordering::Relaxed),
        );
        out.counter(
            "meshroom_events_refused_full_total",
            "/events requests refused because the subscriber limit was reached.",
            &[],
            f.refused_full.load(Ordering::Relaxed),
        );
    }
}

/// Holds one subscriber slot; gives it back when the subscriber's task ends.
struct Slot(Arc<Figures>);

impl Slot {
    fn take(f: &Arc<Figures>) -> Option<Slot> {
        f.subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(f.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    room: Option<String>,
    psk: Option<String>,
}

/// Which rooms a subscriber sees, re-checked when the room list changes (a PSK may change).
enum Scope {
    Public,
    Room { name: String, psk: String },
}

impl Scope {
    fn visible(&self, rooms: &Rooms) -> HashSet<String> {
        rooms
            .iter()
            .filter(|r| match self {
                Scope::Public => !r.is_private(),
                Scope::Room { name, psk } => {
                    r.name == *name
                        && r.psk
                            .as_ref()
                            .is_none_or(|expected| expected.expose() == psk)
                }
            })
            .map(|r| r.name.clone())
            .collect()
    }
}

/// The `/events` route; registers its `/status` entry on `state.board`.
pub fn route(state: HttpState) -> BoxedFilter<(Response,)> {
    let figures = Arc::new(Figures::default());
    state
        .board
        .register(Arc::new(EventsStatus(figures.clone())));
    warp::path!("events")
        .and(warp::get())
        .and(warp::addr::remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::query::<EventsQuery>())
        .map(
            move |remote: Option<SocketAddr>, header_psk: Option<String>, q: EventsQuery| {
                if !state.allowed(remote) {
                    return error(StatusCode::FORBIDDEN, "this network may not read /events");
                }
                let psk = header_psk.or(q.psk).unwrap_or_default();
                let scope = match q.room.map(|r| decode(&r)) {
                    None => Scope::Public,
                    Some(name) => {
                        let Some(info) = state.hub.room(&name) else {
                            return error(StatusCode::NOT_FOUND, format!("no room named `{name}`"));
                        };
                        if info.psk.as_ref().is_some_and(|p| p.expose() != psk) {
                            let msg = format!(
                                "room `{name}` is private: send its PSK in the X-Room-Psk header or psk= in the query"
                            );
                            return error(StatusCode::FORBIDDEN, msg);
                        }
                        Scope::Room { name, psk }
                    }
                };
                let Some(slot) = Slot::take(&figures) else {
                    figures.refused_full.fetch_add(1, Ordering::Relaxed);
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("too many /events subscribers (at most {MAX_SUBSCRIBERS})"),
                    );
                };
                figures.served.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel::<Event>(QUEUE);
                tokio::spawn(pump(state.hub.clone(), scope, tx, slot));
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
                });
                let reply = warp::sse::reply(stream).into_response();
                warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
            },
        )
        .boxed()
}

fn post_event(d: &Delivery) -> Option<Event> {
    let mut v = serde_json::to_value(&*d.post).ok()?;
    v["via"] = json!(d.via.side.as_str());
    Some(
        Event::default()
            .event("post")
            .id(d.post.id.to_string())
            .data(v.to_string()),
    )
}

/// One subscriber: hub → bounded queue. Ends when the client goes away, falls [`QUEUE`] events
/// behind, or the hub closes.
async fn pump(hub: Hub, scope: Scope, tx: mpsc::Sender<Event>, slot: Slot) {
    let mut posts = hub.subscribe();
    let mut rooms = hub.watch_rooms();
    let mut visible = scope.visible(&rooms.borrow_and_update());
    let mut local = hub.participants().watch();
    let mut remote = hub.participants().watch_remote();
    local.mark_unchanged();
    remote.mark_unchanged();
    let mut status_due: Option<tokio::time::Instant> = None;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let mut names: Vec<&String> = visible.iter().collect();
    names.sort();
    let ready = json!({ "server": hub.server_name(), "rooms": names });
    let send = |tx: &mpsc::Sender<Event>, e: Event| match tx.try_send(e) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            slot.0.dropped_slow.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("/events: dropping a subscriber that stopped reading");
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    };
    if !send(&tx, Event::default().event("ready").data(ready.to_string())) {
        return;
    }
    loop {
        let due = status_due;
        tokio::select! {
            d = posts.recv() => match d {
                Ok(d) => {
                    if visible.contains(&d.post.room) {
                        if let Some(e) = post_event(&d) {
                            if !send(&tx, e) {
                                return;
                            }
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // This task, not the client, fell behind the hub: say so and go on.
                    let e = Event::default().event("lagged").data(json!({"missed": n}).to_string());
                    if !send(&tx, e) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Ok(()) = rooms.changed() => {
                visible = scope.visible(&rooms.borrow_and_update());
            }
            Ok(()) = local.changed(), if due.is_none() => {
                status_due = Some(tokio::time::Instant::now() + STATUS_DEBOUNCE);
            }
            Ok(()) = remote.changed(), if due.is_none() => {
                status_due = Some(tokio::time::Instant::now() + STATUS_DEBOUNCE);
            }
            _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {
                status_due = None;
                local.mark_unchanged();
                remote.mark_unchanged();
                let e = Event::default().event("status").data(r#"{"changed":"participants"}"#);
                if !send(&tx, e) {
                    return;
                }
            }
            _ = keepalive.tick() => {
                if !send(&tx, Event::default().comment("keepalive")) {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}
