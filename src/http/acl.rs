//! `/rooms/<room>/acl`: a room's MeshCore access list, for `meshroom-gw acl` on this host.
//! Loopback only (the list decides who administers a room). `GET` lists it; `POST` with JSON
//! `{"key": "<64 hex>", "role": "read-write"}` sets a role, `{"key": "<hex prefix>", "remove":
//! true}` removes an entry (a prefix must name exactly one entry). The change is stored in the
//! hub and applies to the running rooms at once.

use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{decode, error, is_loopback, HttpState};
use crate::hub::{Hub, HubError};

/// Largest body accepted.
const MAX_BODY: u64 = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    key: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    remove: bool,
}

fn list(hub: &Hub, room: &str) -> Response {
    match hub.acls().list(room) {
        Ok(entries) => {
            let entries: Vec<_> = entries
                .into_iter()
                .map(|(key, role)| json!({"key": key, "role": role}))
                .collect();
            warp::reply::json(&json!({"room": room, "acl": entries})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn change(hub: &Hub, room: &str, body: &[u8]) -> Response {
    let change: Change = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")),
    };
    let acls = hub.acls();
    let result = if change.remove {
        let prefix = change.key.trim().to_ascii_lowercase();
        let matches: Vec<String> = acls
            .list(room)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !prefix.is_empty() && k.starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => acls.set(room, one, None).await,
            [] => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no ACL entry of room `{room}` starts with `{prefix}`"),
                )
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`{prefix}` names several entries; give more of the key"),
                )
            }
        }
    } else {
        let Some(role) = change.role.as_deref() else {
            return error(StatusCode::BAD_REQUEST, "give a role, or \"remove\": true");
        };
        acls.set(room, &change.key, Some(role)).await
    };
    match result {
        Ok(()) => list(hub, room),
        Err(HubError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The ACL routes.
pub fn routes(state: HttpState) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || state.clone());
    warp::path!("rooms" / String / "acl")
        .and(
            warp::get()
                .map(|| None)
                .or(warp::post()
                    .and(warp::body::content_length_limit(MAX_BODY))
                    .and(warp::body::bytes())
                    .map(Some))
                .unify(),
        )
        .and(crate::remote::remote())
        .and(with_state)
        .then(
            |room: String, body: Option<bytes::Bytes>, remote, state: HttpState| async move {
                if !is_loopback(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "room access lists are managed from this host only",
                    );
                }
                let room = decode(&room);
                if state.hub.room(&room).is_none() {
                    return error(StatusCode::NOT_FOUND, format!("no room named `{room}`"));
                }
                match body {
                    None => list(&state.hub, &room),
                    Some(body) => change(&state.hub, &room, &body).await,
                }
            },
        )
        .boxed()
}
