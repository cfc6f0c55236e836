//! `meshroom-gw acl ROOM [set KEY ROLE | remove KEY]`: lists or edits a room's MeshCore access
//! list through the running gateway's loopback HTTP endpoint, so the change applies at once and
//! is stored where the rooms read it.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use serde_json::Value;

use super::http::{base_url, request};

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Give a key a role: guest, read-only, read-write or admin (or 0-3).
    Set {
        /// The member's public key, 64 hex digits.
        key: String,
        role: String,
    },
    /// Remove a key's entry (a prefix that names one entry is enough).
    Remove { key: String },
}

pub async fn acl(
    room: String,
    action: Option<AclCommand>,
    url: Option<String>,
    config_path: Option<&Path>,
    timeout_s: f64,
) -> anyhow::Result<()> {
    let base = base_url(url, config_path)?;
    let limit = super::http::timeout(timeout_s);
    let encoded = percent_encoding::utf8_percent_encode(&room, percent_encoding::NON_ALPHANUMERIC);
    let url = format!("{base}/rooms/{encoded}/acl");
    let answer = match &action {
        None => request("GET", &url, &[], None, limit).await?,
        Some(change) => {
            let body = match change {
                AclCommand::Set { key, role } => serde_json::json!({"key": key, "role": role}),
                AclCommand::Remove { key } => serde_json::json!({"key": key, "remove": true}),
            };
            request(
                "POST",
                &url,
                &[("content-type", "application/json")],
                Some(body.to_string()),
                limit,
            )
            .await?
        }
    };
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if !(200..300).contains(&answer.status) {
        let msg = v["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(answer.body);
        bail!("{msg} ({})", answer.status);
    }
    let entries = v["acl"].as_array().cloned().unwrap_or_default();
    match action {
        Some(AclCommand::Set { key, .. }) => println!("set {key} in {room}"),
        Some(AclCommand::Remove { key }) => println!("removed {key} from {room}"),
        None => {}
    }
    println!("{} ACL entries in {room}:", entries.len());
    for e in entries {
        println!(
            "  {:<10} {}",
            e["role"].as_str().unwrap_or("?"),
            e["key"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
