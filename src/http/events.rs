//! `GET /events`: a Server-Sent Events stream of committed posts and status changes, for the
//! dashboard and for scripts (`curl -N`).
//!
//! - Without `room`, the posts of every public room; with `?room=NAME`, that room only — and a
//!   private room needs its PSK (`X-Room-Psk` header, or `psk=` in the query for browsers,
//!   whose `EventSource` cannot send headers).
//! - Events: `ready` once (server and rooms streamed), `post` per committed post (the post as
//!   JSON, plus `via`, the side it came in on), `status` when who is in a room changes here or
//!   at a peer (debounced; fetch `/status`). A comment every 15 s keeps proxies from timing out.
//! - One dispatcher task reads the hub's broadcast (which never waits for anyone), serialises
//!   each post once and offers it, without waiting, to the bounded queue ([`QUEUE`] events) of
//!   each subscriber that may see its room. A client that lets its queue fill is dropped, so a
//!   stalled reader costs at most that queue and never slows the hub; subscribers of other
//!   rooms are not even woken. A client that went away is noticed at the next event or
//!   keepalive and its slot freed.
//! - At most [`MAX_SUBSCRIBERS`] at once; beyond, 503.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::{error, HttpState, PSK_HEADER};
use crate::hub::{Delivery, Hub, Rooms};
use crate::status::{Metrics, StatusSource};

/// Concurrent `/events` subscribers at most.
pub const MAX_SUBSCRIBERS: usize = 256;
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

/// One client of `/events`.
struct Subscriber {
    scope: Scope,
    visible: HashSet<String>,
    tx: mpsc::Sender<Event>,
    _slot: Slot,
}

impl Subscriber {
    /// Offers an event without waiting; false when the client is gone or stalled (drop it).
    fn offer(&self, e: Event, figures: &Figures) -> bool {
        match self.tx.try_send(e) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                figures.dropped_slow.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("/events: dropping a subscriber that stopped reading");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The subscribers and the one task that feeds them.
struct Dispatch {
    hub: Hub,
    shutdown: tokio::sync::watch::Receiver<bool>,
    figures: Arc<Figures>,
    subscribers: Mutex<Vec<Subscriber>>,
    started: Once,
}

impl Dispatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers `make()` to every subscriber for which `wants` holds, dropping those that fail.
    fn offer_all(&self, wants: impl Fn(&Subscriber) -> bool, mut make: impl FnMut() -> Event) {
        let figures = &self.figures;
        self.lock()
            .retain(|s| !wants(s) || s.offer(make(), figures));
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
    let dispatch = Arc::new(Dispatch {
        hub: state.hub.clone(),
        shutdown: state.shutdown.clone(),
        figures: figures.clone(),
        subscribers: Mutex::new(Vec::new()),
        started: Once::new(),
    });
    warp::path!("events")
        .and(warp::get())
        .and(crate::remote::remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::query::<EventsQuery>())
        .map(
            move |remote: Option<SocketAddr>, header_psk: Option<String>, q: EventsQuery| {
                if !state.allowed(remote) {
                    return error(StatusCode::FORBIDDEN, "this network may not read /events");
                }
                let psk = header_psk.or(q.psk).unwrap_or_default();
                // The query is already percent-decoded by warp.
                let scope = match q.room {
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
                if *state.shutdown.borrow() {
                    return error(StatusCode::SERVICE_UNAVAILABLE, "the gateway is stopping");
                }
                let Some(slot) = Slot::take(&figures) else {
                    figures.refused_full.fetch_add(1, Ordering::Relaxed);
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("too many /events subscribers (at most {MAX_SUBSCRIBERS})"),
                    );
                };
                figures.served.fetch_add(1, Ordering::Relaxed);
                dispatch.started.call_once(|| {
                    tokio::spawn(run(dispatch.clone()));
                });
                let (tx, rx) = mpsc::channel::<Event>(QUEUE);
                let visible = scope.visible(&state.hub.watch_rooms().borrow());
                let mut names: Vec<&String> = visible.iter().collect();
                names.sort();
                let ready = json!({ "server": state.hub.server_name(), "rooms": names });
                // A fresh queue has room for the first event.
                let _ = tx.try_send(Event::default().event("ready").data(ready.to_string()));
                dispatch.lock().push(Subscriber {
                    scope,
                    visible,
                    tx,
                    _slot: slot,
                });
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
                });
                let reply = warp::sse::reply(stream).into_response();
                warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
            },
        )
        .boxed()
}

/// A post as the `data` of a `post` event, serialised once for all subscribers.
fn post_data(d: &Delivery) -> Option<String> {
    let mut v = serde_json::to_value(&*d.post).ok()?;
    v["via"] = json!(d.via.side.as_str());
    Some(v.to_string())
}

/// The dispatcher: hub → every subscriber's queue. Runs until the gateway stops.
async fn run(dispatch: Arc<Dispatch>) {
    let hub = dispatch.hub.clone();
    let mut posts = hub.subscribe();
    let mut shutdown = dispatch.shutdown.clone();
    let mut rooms = hub.watch_rooms();
    let mut local = hub.participants().watch();
    let mut remote = hub.participants().watch_remote();
    local.mark_unchanged();
    remote.mark_unchanged();
    let mut status_due: Option<tokio::time::Instant> = None;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = status_due;
        tokio::select! {
            d = posts.recv() => match d {
                Ok(d) => {
                    let room = d.post.room.as_str();
                    let mut data = None;
                    let id = d.post.id.to_string();
                    dispatch.offer_all(
                        |s| s.visible.contains(room),
                        || {
                            let data = data.get_or_insert_with(|| post_data(&d).unwrap_or_default());
                            Event::default().event("post").id(id.clone()).data(data.clone())
                        },
                    );
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // The dispatcher itself fell behind the hub: say so (clients may re-read
                    // history) and go on.
                    let data = json!({ "missed": n }).to_string();
                    dispatch.offer_all(|_| true, || Event::default().event("lagged").data(data.clone()));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    dispatch.lock().clear();
                    return;
                }
            },
            Ok(()) = rooms.changed() => {
                let list = rooms.borrow_and_update().clone();
                for s in dispatch.lock().iter_mut() {
                    s.visible = s.scope.visible(&list);
                }
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
                dispatch.offer_all(|_| true, || {
                    Event::default().event("status").data(r#"{"changed":"participants"}"#)
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => {
                // Ending every stream lets the HTTP server's graceful shutdown finish.
                dispatch.lock().clear();
                return;
            }
            _ = keepalive.tick() => {
                dispatch.offer_all(|_| true, || Event::default().comment("keepalive"));
            }
        }
    }
}
