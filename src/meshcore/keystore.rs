//! Room identities on disk: one file per room in `<state_dir>/meshcore/`, holding the 64-byte
//! firmware-format private key as 128 hex digits (the form `set prv.key` and the companion
//! apps' import use). Created on first start with mode 0600; never logged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::wire::identity::{LocalIdentity, PRV_KEY_SIZE};

#[derive(Debug, Error)]
pub enum KeyStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: not a MeshCore private key (expected 128 hex digits)")]
    Malformed(PathBuf),
    #[error("{0}: the public key starts with 00 or FF, which MeshCore reserves")]
    ReservedHash(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The key file of a room: readable name plus a hash of the exact name, so two names that
/// sanitise alike never share a file.
pub fn key_path(dir: &Path, room: &str) -> PathBuf {
    let clean: String = room
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let tag = hex::encode(&Sha256::digest(room.as_bytes())[..4]);
    dir.join(format!("room-{clean}-{tag}.key"))
}

/// Reads a key file, tightening its mode to 0600 if it was wider.
pub fn load(path: &Path) -> Result<LocalIdentity, KeyStoreError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    let mut prv = [0u8; PRV_KEY_SIZE];
    hex::decode_to_slice(text.trim(), &mut prv)
        .map_err(|_| KeyStoreError::Malformed(path.to_path_buf()))?;
    let id = LocalIdentity::from_prv64(&prv);
    let h = id.public().hash_byte();
    if h == 0x00 || h == 0xFF {
        return Err(KeyStoreError::ReservedHash(path.to_path_buf()));
    }
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "room key file was readable by others; setting mode 0600");
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
    Ok(id)
}

/// Writes a key file with mode 0600 (through a temporary file, so a crash never leaves half
/// a key).
pub fn save(path: &Path, id: &LocalIdentity) -> Result<(), KeyStoreError> {
    let tmp = path.with_extension("key.tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(format!("{}\n", hex::encode(id.prv64())).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// The identity of every room, in order: loaded when its file exists, else created with a
/// hash byte that is neither 00/FF nor used by another room.
pub fn room_identities(
    state_dir: &Path,
    rooms: &[String],
    rng: &mut impl RngCore,
) -> Result<Vec<LocalIdentity>, KeyStoreError> {
    let dir = state_dir.join("meshcore");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let mut out: Vec<Option<LocalIdentity>> = Vec::with_capacity(rooms.len());
    for room in rooms {
        let path = key_path(&dir, room);
        out.push(if path.exists() {
            Some(load(&path)?)
        } else {
            None
        });
    }
    let mut taken: Vec<u8> = out
        .iter()
        .flatten()
        .map(|id| id.public().hash_byte())
        .collect();
    let mut result = Vec::with_capacity(rooms.len());
    for (room, existing) in rooms.iter().zip(out) {
        let id = match existing {
            Some(id) => id,
            None => {
                let id = LocalIdentity::generate(rng, &taken);
                save(&key_path(&dir, room), &id)?;
                tracing::info!(room = %room, public_key = %id.public(), "created the room's MeshCore identity");
                id
            }
        };
        taken.push(id.public().hash_byte());
        result.push(id);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_created_once_private_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let rooms: Vec<String> = (0..20).map(|i| format!("room {i}")).collect();
        let mut rng = rand::thread_rng();
        let first = room_identities(dir.path(), &rooms, &mut rng).unwrap();
        let mut hashes: Vec<u8> = first.iter().map(|i| i.public().hash_byte()).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), 20, "distinct hash bytes");
        assert!(!hashes.contains(&0) && !hashes.contains(&0xFF));
        let again = room_identities(dir.path(), &rooms, &mut rng).unwrap();
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.public(), b.public(), "kept across restarts");
        }
        let path = key_path(&dir.path().join("meshcore"), "room 0");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap().trim().len(), 128);
    }
}
