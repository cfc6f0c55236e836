//! HTTP with warp: `/status`, `/metrics`, reading and posting room history on loopback, and
//! room for other sides' routes (federation). One listener serves all of it.
//!
//! `/status`, `/metrics` and history reads answer only clients in `http.status_allow`; posting
//! answers only loopback clients. A private room's history and posting need its PSK in the
//! `X-Room-Psk` header.

pub mod acl;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::hub::{Author, AuthorKind, Hub, HubError, NewPost, Submitted, Via};
use crate::status::StatusBoard;

/// Header carrying a private room's PSK on the local endpoints.
pub const PSK_HEADER: &str = "x-room-psk";
/// Largest request body accepted by the post endpoint.
const MAX_BODY: u64 = 16 * 1024;

/// What the routes need.
#[derive(Clone)]
pub struct HttpState {
    pub hub: Hub,
    pub board: StatusBoard,
    /// Networks allowed to read status; replaced on reload.
    pub status_allow: Arc<RwLock<Vec<IpNet>>>,
}

impl HttpState {
    fn allowed(&self, remote: Option<SocketAddr>) -> bool {
        let Some(addr) = remote else { return false };
        let ip = canonical(addr.ip());
        self.status_allow
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack listener) count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_loopback(remote: Option<SocketAddr>) -> bool {
    remote.is_some_and(|a| canonical(a.ip()).is_loopback())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({ "error": message.into() })),
        status,
    )
    .into_response()
}

/// All routes of the gateway's own HTTP side; `extra` (e.g. federation) is tried first.
pub fn routes(
    state: HttpState,
    extra: Option<BoxedFilter<(Response,)>>,
) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let status = warp::path!("status")
        .and(warp::get())
        .and(warp::addr::remote())
        .and(with_state.clone())
        .map(|remote, state: HttpState| {
            if !state.allowed(remote) {
                return error(StatusCode::FORBIDDEN, "this network may not read /status");
            }
            warp::reply::json(&state.board.status()).into_response()
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(warp::addr::remote())
        .and(with_state.clone())
        .map(|remote, state: HttpState| {
            if !state.allowed(remote) {
                return error(StatusCode::FORBIDDEN, "this network may not read /metrics");
            }
            warp::reply::with_header(
                state.board.metrics(),
                "content-type",
                "text/plain; version=0.0.4",
            )
            .into_response()
        });
    let history = warp::path!("rooms" / String / "posts")
        .and(warp::get())
        .and(warp::addr::remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::query::<HistoryQuery>())
        .and(with_state.clone())
        .then(
            |room: String, remote, psk: Option<String>, q: HistoryQuery, state: HttpState| async move {
                if !state.allowed(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "this network may not read room history",
                    );
                }
                let room = decode(&room);
                if let Err(resp) = check_room(&state.hub, &room, psk.as_deref()) {
                    return *resp;
                }
                let limit = q.limit.unwrap_or(100).min(10_000);
                let posts = match q.after {
                    Some(after) => state.hub.history_after(&room, after, limit).await,
                    None => state.hub.recent(&room, limit).await,
                };
                match posts {
                    Ok(posts) => warp::reply::json(&posts).into_response(),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            },
        );
    let post = warp::path!("rooms" / String / "posts")
        .and(warp::post())
        .and(warp::addr::remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(with_state)
        .then(
            |room: String,
             remote,
             psk: Option<String>,
             ctype: Option<String>,
             body: bytes::Bytes,
             state: HttpState| async move {
                if !is_loopback(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "posting is allowed from this host only",
                    );
                }
                let room = decode(&room);
                if let Err(resp) = check_room(&state.hub, &room, psk.as_deref()) {
                    return *resp;
                }
                let local = match LocalPost::parse(ctype.as_deref(), &body) {
                    Ok(p) => p,
                    Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
                };
                let name = local.author.filter(|a| !a.trim().is_empty());
                let new = NewPost {
                    id: None,
                    room,
                    author: Author {
                        kind: AuthorKind::Local,
                        id: name.clone().unwrap_or_else(|| "local".into()),
                        name,
                    },
                    origin: None,
                    author_ts: state.hub.now(),
                    text: local.text,
                    hops: 0,
                    via: Via::side(AuthorKind::Local),
                };
                match state.hub.submit(new).await {
                    Ok(Submitted::Accepted(p)) => warp::reply::with_status(
                        warp::reply::json(
                            &json!({"id": p.id, "room": p.room, "room_ts": p.room_ts}),
                        ),
                        StatusCode::CREATED,
                    )
                    .into_response(),
                    Ok(Submitted::Duplicate(id)) => {
                        warp::reply::json(&json!({"id": id, "duplicate": true})).into_response()
                    }
                    Err(HubError::UnknownRoom(r)) => {
                        error(StatusCode::NOT_FOUND, format!("no room named `{r}`"))
                    }
                    Err(HubError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            },
        );
    let ours = status
        .or(metrics)
        .unify()
        .or(history)
        .unify()
        .or(post)
        .unify()
        .or(acl::routes(state.clone()))
        .unify();
    let all = match extra {
        Some(extra) => extra.or(ours).unify().boxed(),
        None => ours.boxed(),
    };
    all.recover(|_rej: warp::Rejection| async move {
        Ok::<_, Infallible>(error(StatusCode::NOT_FOUND, "no such endpoint"))
    })
    .unify()
    .boxed()
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    after: Option<u64>,
}

/// Body of a local post: JSON `{"text": …, "author": …}` or the plain text itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalPost {
    text: String,
    #[serde(default)]
    author: Option<String>,
}

impl LocalPost {
    fn parse(content_type: Option<&str>, body: &[u8]) -> Result<LocalPost, String> {
        if content_type.is_some_and(|c| c.starts_with("application/json")) {
            return serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"));
        }
        let text =
            std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())?;
        Ok(LocalPost {
            text: text.trim_end_matches(['\r', '\n']).to_string(),
            author: None,
        })
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn check_room(hub: &Hub, room: &str, psk: Option<&str>) -> Result<(), Box<Response>> {
    let Some(info) = hub.room(room) else {
        let msg = format!("no room named `{room}`");
        return Err(Box::new(error(StatusCode::NOT_FOUND, msg)));
    };
    if let Some(expected) = &info.psk {
        if psk != Some(expected.expose()) {
            let msg = format!("room `{room}` is private: send its PSK in the X-Room-Psk header");
            return Err(Box::new(error(StatusCode::FORBIDDEN, msg)));
        }
    }
    Ok(())
}

/// Serves `routes` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: BoxedFilter<(Response,)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
