//! HTTP with warp: `/status`, `/metrics`, reading and posting room history on loopback, and
//! room for other sides' routes (federation). One listener serves all of it.
//!
//! `/status`, `/metrics` and history reads answer only clients in `http.status_allow`; posting
//! answers only loopback clients. A private room's history and posting need its PSK in the
//! `X-Room-Psk` header.

pub mod serve;

pub use serve::{serve, Edge, EdgeSource};
pub mod acl;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

pub use crate::remote::canonical;
use crate::remote::remote;
pub mod dashboard;
pub mod events;

use crate::hub::{Author, AuthorKind, Hub, HubError, NewPost, Submitted, Via};
use crate::status::StatusBoard;

/// Header carrying a private room's PSK on the local endpoints.
pub const PSK_HEADER: &str = "x-room-psk";
/// Largest request body accepted by the post endpoint (a post's text is far shorter; the rest
/// is room for JSON quoting).
pub const MAX_BODY: usize = 16 * 1024;
/// Largest `limit` a history read answers with.
pub const MAX_HISTORY_LIMIT: usize = 10_000;

/// What the routes need.
#[derive(Clone)]
pub struct HttpState {
    pub hub: Hub,
    pub board: StatusBoard,
    /// Networks allowed to read status; replaced on reload.
    pub status_allow: Arc<RwLock<Vec<IpNet>>>,
    /// Turns true when the gateway stops: open `/events` streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl HttpState {
    fn allowed(&self, remote: Option<SocketAddr>) -> bool {
        let Some(addr) = remote else { return false };
        allowed_by(&self.status_allow, addr.ip())
    }
}

/// Is `ip` in one of the `allow` networks?
pub fn allowed_by(allow: &RwLock<Vec<IpNet>>, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    allow
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|net| net.contains(&ip))
}

fn is_loopback(remote: Option<SocketAddr>) -> bool {
    remote.is_some_and(|a| canonical(a.ip()).is_loopback())
}

/// A JSON error answer: `{"error": "…"}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({ "error": message.into() })),
        status,
    )
    .into_response()
}

/// 405 with the `Allow` header naming the methods the path answers.
fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this endpoint answers {allow} only"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a post is at most {MAX_BODY} bytes"),
    )
}

/// GET, and HEAD (hyper sends a HEAD answer's headers without its body).
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// All routes of the gateway's own HTTP side; `extra` (e.g. federation) is tried first.
///
/// Statuses mean what HTTP says: 404 only for unknown paths, 405 with `Allow` for a known path
/// asked with the wrong method, 413 for a body over [`MAX_BODY`], 400 for a malformed query or
/// body; every refusal carries a JSON body `{"error": "…"}`.
pub fn routes(
    state: HttpState,
    extra: Option<BoxedFilter<(Response,)>>,
) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let status = warp::path!("status")
        .and(get_or_head())
        .and(remote())
        .and(with_state.clone())
        .map(|remote, state: HttpState| {
            if !state.allowed(remote) {
                return error(StatusCode::FORBIDDEN, "this network may not read /status");
            }
            warp::reply::json(&state.board.status()).into_response()
        });
    let metrics = warp::path!("metrics")
        .and(get_or_head())
        .and(remote())
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
        .and(get_or_head())
        .and(remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_state.clone())
        .then(
            |room: String, remote, psk: Option<String>, query: String, state: HttpState| async move {
                if !state.allowed(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "this network may not read room history",
                    );
                }
                let q = match HistoryQuery::parse(&query) {
                    Ok(q) => q,
                    Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
                };
                let room = match check_room(&state.hub, &decode(&room), psk.as_deref()) {
                    Ok(configured) => configured,
                    Err(resp) => return *resp,
                };
                let posts = match q.after {
                    Some(after) => {
                        let after = crate::post::after_cursor_us(after);
                        state.hub.history_after(&room, after, q.limit).await
                    }
                    None => state.hub.recent(&room, q.limit).await,
                };
                match posts {
                    Ok(posts) => warp::reply::json(&posts).into_response(),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            },
        );
    let post = warp::path!("rooms" / String / "posts")
        .and(warp::post())
        .and(remote())
        .and(warp::header::optional::<String>(PSK_HEADER))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state)
        .then(
            |room: String,
             remote,
             psk: Option<String>,
             ctype: Option<String>,
             length: Option<u64>,
             body,
             state: HttpState| async move {
                if !is_loopback(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "posting is allowed from this host only",
                    );
                }
                if length.is_some_and(|l| l > MAX_BODY as u64) {
                    return too_large();
                }
                let room = match check_room(&state.hub, &decode(&room), psk.as_deref()) {
                    Ok(configured) => configured,
                    Err(resp) => return *resp,
                };
                let body = match read_bounded(body).await {
                    Ok(b) => b,
                    Err(resp) => return resp,
                };
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
    // Known paths asked with a method they do not answer.
    let wrong_method = warp::path!("status")
        .map(|| method_not_allowed("GET, HEAD"))
        .or(warp::path!("metrics").map(|| method_not_allowed("GET, HEAD")))
        .unify()
        .or(warp::path!("rooms" / String / "posts")
            .map(|_room: String| method_not_allowed("GET, HEAD, POST")))
        .unify();
    let ours = status
        .or(metrics)
        .unify()
        .or(history)
        .unify()
        .or(post)
        .unify()
        .or(dashboard::routes(state.clone()))
        .unify()
        .or(events::route(state.clone()))
        .unify()
        .or(acl::routes(state.clone()))
        .unify()
        .or(wrong_method)
        .unify();
    let all = match extra {
        Some(extra) => extra.or(ours).unify().boxed(),
        None => ours.boxed(),
    };
    all.recover(|rej: warp::Rejection| async move { Ok::<_, Infallible>(rejection(&rej)) })
        .unify()
        .boxed()
}

/// The answer to a request no route took.
fn rejection(rej: &warp::Rejection) -> Response {
    use warp::reject;
    if rej.is_not_found() {
        error(StatusCode::NOT_FOUND, "no such endpoint")
    } else if rej.find::<reject::PayloadTooLarge>().is_some() {
        too_large()
    } else if rej.find::<reject::LengthRequired>().is_some() {
        error(StatusCode::LENGTH_REQUIRED, "send a Content-Length")
    } else if let Some(e) = rej.find::<reject::InvalidHeader>() {
        error(StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rej.find::<reject::MissingHeader>() {
        error(StatusCode::BAD_REQUEST, e.to_string())
    } else if rej.find::<reject::MethodNotAllowed>().is_some() {
        error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
    } else {
        error(StatusCode::BAD_REQUEST, "bad request")
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes, whether it came with a length or
/// chunked; 413 beyond that (without reading the rest).
async fn read_bounded<S, B>(body: S) -> Result<bytes::Bytes, Response>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.remaining() > MAX_BODY {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// `?limit=N&after=TS` of a history read.
#[derive(Debug, PartialEq, Eq)]
struct HistoryQuery {
    limit: usize,
    after: Option<u64>,
}

impl HistoryQuery {
    /// Parses the raw query; unknown keys are ignored, a malformed number is an error.
    fn parse(raw: &str) -> Result<HistoryQuery, String> {
        let mut q = HistoryQuery {
            limit: 100,
            after: None,
        };
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match key {
                "limit" => {
                    q.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            format!(
                                "limit must be a whole number from 1 to {MAX_HISTORY_LIMIT}, not `{value}`"
                            )
                        })?
                        .min(MAX_HISTORY_LIMIT)
                }
                "after" => {
                    q.after = Some(value.parse::<u64>().map_err(|_| {
                        format!("after must be a room timestamp (a whole number), not `{value}`")
                    })?)
                }
                _ => {}
            }
        }
        Ok(q)
    }
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
        if content_type.is_some_and(is_json) {
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

/// `application/json`, in any case, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The room's configured spelling (any case is accepted in the URL), or the error response.
fn check_room(hub: &Hub, room: &str, psk: Option<&str>) -> Result<String, Box<Response>> {
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
    Ok(info.name)
}
