//! A minimal HTTP/1.1 client for the CLI (`status`, `post`), on the hyper the server already
//! brings, so the CLI adds no HTTP stack of its own.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// How long the CLI waits for a gateway by default (connecting, then the whole answer).
pub const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// The `--timeout` value as a duration (a bad value falls back to the default).
pub fn timeout(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::from_secs_f64(seconds.min(86_400.0))
    } else {
        Duration::from_secs_f64(DEFAULT_TIMEOUT_S)
    }
}

/// Sends one request to `url` (`http://host:port/path`) and reads the whole answer, giving
/// up after `limit` for connecting and again for the answer.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
    limit: Duration,
) -> anyhow::Result<Answer> {
    let secs = limit.as_secs_f64();
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or(rest).to_string();
    let connect = tokio::time::timeout(limit, tokio::net::TcpStream::connect(authority.clone()));
    let stream = match connect.await {
        Ok(r) => {
            r.with_context(|| format!("cannot connect to {authority} (is the gateway running?)"))?
        }
        Err(_) => bail!("cannot connect to {authority}: no answer within {secs} s (see --timeout)"),
    };
    match tokio::time::timeout(limit, exchange(stream, method, url, headers, body)).await {
        Ok(r) => r,
        Err(_) => bail!("{authority} accepted the connection but did not answer within {secs} s (see --timeout)"),
    }
}

async fn exchange(
    stream: tokio::net::TcpStream,
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

/// The configuration the CLI talks about: an explicit `--config` that cannot be read or has
/// errors is an error (never a silent fallback to another gateway's address).
pub fn load_config(config_path: Option<&Path>) -> anyhow::Result<crate::config::Config> {
    crate::config::resolve(config_path)
        .map(|l| l.config)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The base URL to reach the gateway that `config` describes.
pub fn base_url(explicit: Option<String>, config_path: Option<&Path>) -> anyhow::Result<String> {
    let config = load_config(config_path)?;
    if let Some(url) = explicit {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let listen = config.http.listen;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    Ok(format!("http://{host}:{}", listen.port()))
}
