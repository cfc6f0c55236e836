//! A minimal HTTP/1.1 client for the CLI (`status`, `post`), on the hyper the server already
//! brings, so the CLI adds no HTTP stack of its own.

use std::path::Path;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one request to `url` (`http://host:port/path`) and reads the whole answer.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<Answer> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority} (is the gateway running?)"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await.context("request failed")?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    if status == 0 {
        bail!("no answer");
    }
    Ok(Answer { status, body })
}

/// The base URL to reach the gateway that `config` describes.
pub fn base_url(explicit: Option<String>, config_path: Option<&Path>) -> String {
    if let Some(url) = explicit {
        return url.trim_end_matches('/').to_string();
    }
    let listen = crate::config::resolve_with(config_path, &|_| Vec::new())
        .map(|l| l.config.http.listen)
        .unwrap_or_else(|_| crate::config::HttpConfig::default().listen);
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}", listen.port())
}
