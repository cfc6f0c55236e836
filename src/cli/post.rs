//! `meshroom-gw post`: posts into a room of a running gateway through its local HTTP endpoint.

use std::path::Path;

use anyhow::bail;
use serde_json::Value;

use super::http::base_url;

pub async fn post(
    room: String,
    author: Option<String>,
    url: Option<String>,
    text: String,
    config_path: Option<&Path>,
    timeout_s: f64,
) -> anyhow::Result<()> {
    let base = base_url(url, config_path)?;
    // A private room's PSK comes from the configuration (never from the command line, where
    // other users could read it in the process list) or from MESHROOM_PSK.
    let psk = std::env::var("MESHROOM_PSK").ok().or_else(|| {
        super::http::load_config(config_path)
            .ok()
            .and_then(|c| c.room(&room).map(|r| r.psk.expose().to_string()))
            .filter(|p| !p.is_empty())
    });
    let body = serde_json::json!({ "text": text, "author": author }).to_string();
    let encoded = percent_encoding::utf8_percent_encode(&room, percent_encoding::NON_ALPHANUMERIC);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(p) = psk.as_deref() {
        headers.push((crate::http::PSK_HEADER, p));
    }
    let answer = super::http::request(
        "POST",
        &format!("{base}/rooms/{encoded}/posts"),
        &headers,
        Some(body),
        super::http::timeout(timeout_s),
    )
    .await?;
    if !(200..300).contains(&answer.status) {
        let msg = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(answer.body);
        bail!("posting to `{room}` failed ({}): {msg}", answer.status);
    }
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    println!("posted to {room} as {}", v["id"].as_str().unwrap_or("?"));
    Ok(())
}
