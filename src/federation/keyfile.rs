//! This server's Noise static key, kept in the state directory with mode 0600.
//!
//! The file holds the 32 private bytes as hex on one line. It is created on first start; a
//! file readable by others is tightened to 0600 with a warning, and a damaged file is an error
//! that names the path (never a silently regenerated identity, which peers would not notice
//! but an operator should).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};

use super::handshake::StaticKey;

pub fn load_or_create(path: &Path) -> anyhow::Result<StaticKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let meta =
                fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "{} was readable by others; setting mode 0600",
                    path.display()
                );
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot chmod {}", path.display()))?;
            }
            let mut private = [0u8; 32];
            if hex::decode_to_slice(text.trim(), &mut private).is_err() {
                bail!(
                    "{} is not a federation static key (64 hex digits); move it away to create a new one",
                    path.display()
                );
            }
            StaticKey::from_private(&private).map_err(|e| anyhow::anyhow!("{e}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = StaticKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{}", hex::encode(key.private))
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(
                "created federation static key {} (public {})",
                path.display(),
                hex::encode(key.public)
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reloaded_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federation.key");
        let a = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.public, b.public);
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federation.key");
        fs::write(&path, "not hex").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("federation.key"));
    }
}
