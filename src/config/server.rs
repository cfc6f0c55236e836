//! The `server:` section: this gateway's name and where it keeps its state.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Shown in `/status` and carried as the origin of posts that enter the system here.
    #[serde(default = "default_name")]
    pub name: String,
    /// SQLite database, room identities and keys live here.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: default_name(),
            state_dir: default_state_dir(),
        }
    }
}

fn default_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meshroom-gw".to_string())
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/meshroom-gw")
}

/// State directory for the embedded default: the user's state dir, else `./meshroom-state`.
pub fn user_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("meshroom-gw");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/meshroom-gw");
    }
    PathBuf::from("./meshroom-state")
}
