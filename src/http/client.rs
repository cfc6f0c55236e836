//! A minimal HTTP/1.1 client for the CLI (`status`, `post`), on the hyper the server already
//! brings, so the CLI adds no HTTP stack of its own.

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
