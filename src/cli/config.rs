//! `meshroom-gw check-config`: loads the configuration exactly as `run` would (the same
//! `settings::load`), prints every problem with its file, line, column and key, and exits 2.

use std::path::Path;

use super::EXIT_CONFIG;

pub fn check_config(path: Option<&Path>) -> i32 {
    match crate::settings::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: OK ({}, {})",
                loaded.source,
                counted(loaded.settings.config.rooms.len(), "room"),
                counted(loaded.settings.config.peers.len(), "peer")
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_CONFIG
        }
    }
}

/// "1 room", "2 rooms", "0 peers".
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
