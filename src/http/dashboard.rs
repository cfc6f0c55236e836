//! `GET /`: the operator's dashboard — one page, its script and style embedded in the binary
//! (hand-written, nothing fetched from elsewhere). The page reads `/status` (rooms, people here
//! and at peers, radio, charts), room history, and `/events` for live posts; a private room's
//! texts are fetched only with the PSK the operator types in, which the page keeps in the
//! browser's memory and sends as `X-Room-Psk` (or `psk=` for the event stream). The post box is
//! shown to loopback clients only, as `POST /rooms/NAME/posts` answers only them.

use std::net::SocketAddr;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{error, is_loopback, HttpState};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Security headers for every dashboard answer: nothing but this origin, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let reply = warp::reply::with_header(body, "content-type", content_type);
    let reply = warp::reply::with_header(reply, "cache-control", "no-cache");
    warp::reply::with_header(reply, "x-content-type-options", "nosniff").into_response()
}

/// The page for a client: the post box is offered to loopback clients only.
pub fn index_html(can_post: bool) -> String {
    INDEX.replace(
        "data-can-post=\"false\"",
        if can_post {
            "data-can-post=\"true\""
        } else {
            "data-can-post=\"false\""
        },
    )
}

/// `GET /`, `GET /assets/app.js`, `GET /assets/style.css`, for networks in `http.status_allow`.
pub fn routes(state: HttpState) -> BoxedFilter<(Response,)> {
    let allowed = {
        let state = state.clone();
        crate::remote::remote().and_then(move |remote: Option<SocketAddr>| {
            let ok = state.allowed(remote);
            async move {
                if ok {
                    Ok(remote)
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
    };
    let index = warp::path::end()
        .and(warp::get())
        .and(crate::remote::remote())
        .map({
            let state = state.clone();
            move |remote: Option<SocketAddr>| {
                if !state.allowed(remote) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "this network may not read the dashboard",
                    );
                }
                let page = index_html(is_loopback(remote));
                let reply = warp::reply::html(page);
                let reply = warp::reply::with_header(reply, "content-security-policy", CSP);
                let reply = warp::reply::with_header(reply, "x-frame-options", "DENY");
                let reply = warp::reply::with_header(reply, "referrer-policy", "no-referrer");
                warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
            }
        });
    let js = warp::path!("assets" / "app.js")
        .and(warp::get())
        .and(allowed.clone())
        .map(|_| asset(APP_JS, "text/javascript; charset=utf-8"));
    let css = warp::path!("assets" / "style.css")
        .and(warp::get())
        .and(allowed)
        .map(|_| asset(STYLE_CSS, "text/css; charset=utf-8"));
    index.or(js).unify().or(css).unify().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_offers_posting_only_when_told_and_fetches_nothing_from_outside() {
        assert!(index_html(true).contains("data-can-post=\"true\""));
        assert!(index_html(false).contains("data-can-post=\"false\""));
        for text in [INDEX, APP_JS, STYLE_CSS] {
            for bad in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "fetch(\"http",
                "//cdn",
            ] {
                assert!(!text.contains(bad), "{bad}");
            }
        }
    }
}
