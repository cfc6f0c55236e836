//! Room access lists: which key has which role in a room, kept durably in the state store
//! (namespace `meshcore.acl.<room>`, key = the 64-hex public key, value = the role name), with
//! every change announced to the sides. Every role is kept (guest, read-only, read-write,
//! admin), and nothing is ever trimmed: the list is the operator's, not a cache.
//!
//! The MeshCore side applies the list to logins and changes it when an admin runs `setperm`
//! over the air; `meshroom-gw acl` changes it through the HTTP side. Neither knows the other:
//! both go through here.

use tokio::sync::broadcast;

use super::{HubError, StateStore};

/// Roles by permission value (the MeshCore permissions byte's low two bits).
pub const ROLES: [&str; 4] = ["guest", "read-only", "read-write", "admin"];

/// A role's name from its name or number (`guest`/0 … `admin`/3).
pub fn parse_role(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<usize>() {
        return ROLES.get(n).copied();
    }
    ROLES.iter().copied().find(|r| *r == s)
}

/// One change of a room's list; `role: None` = removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclChange {
    pub room: String,
    /// 64 hex digits, lower case.
    pub key: String,
    pub role: Option<&'static str>,
}

fn ns(room: &str) -> String {
    format!("meshcore.acl.{room}")
}

/// A 32-byte key as 64 lower-case hex digits, or `None`.
pub fn normalize_key(key: &str) -> Option<String> {
    let k = key.trim().to_ascii_lowercase();
    (k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())).then_some(k)
}

/// The hub's access lists.
#[derive(Clone)]
pub struct Acls {
    state: StateStore,
    changes: broadcast::Sender<AclChange>,
}

impl Acls {
    pub(crate) fn new(state: StateStore, changes: broadcast::Sender<AclChange>) -> Acls {
        Acls { state, changes }
    }

    /// A room's list, sorted by key: (key hex, role). Unreadable entries are skipped.
    pub fn list(&self, room: &str) -> Result<Vec<(String, &'static str)>, HubError> {
        let mut out: Vec<(String, &'static str)> = self
            .state
            .list(&ns(room))?
            .into_iter()
            .filter_map(|(k, v)| {
                let role = parse_role(std::str::from_utf8(&v).ok()?)?;
                Some((normalize_key(&k)?, role))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Sets (`Some(role)`) or removes (`None`) a key's role; returns once it is committed, then
    /// tells the sides. `key` must be 64 hex digits, `role` a role name or number.
    pub async fn set(&self, room: &str, key: &str, role: Option<&str>) -> Result<(), HubError> {
        let key = normalize_key(key)
            .ok_or_else(|| HubError::Invalid("a key is 64 hex digits".to_string()))?;
        let role = match role {
            Some(r) => Some(parse_role(r).ok_or_else(|| {
                HubError::Invalid(format!(
                    "unknown role `{r}`: guest, read-only, read-write or admin (0-3)"
                ))
            })?),
            None => None,
        };
        match role {
            Some(r) => {
                self.state
                    .put(&ns(room), &key, r.as_bytes().to_vec())
                    .await?
            }
            None => self.state.delete(&ns(room), &key).await?,
        }
        let _ = self.changes.send(AclChange {
            room: room.to_string(),
            key,
            role,
        });
        Ok(())
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AclChange> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_name_or_number_and_keys_by_64_hex_digits() {
        assert_eq!(parse_role("2"), Some("read-write"));
        assert_eq!(parse_role("Admin"), Some("admin"));
        assert_eq!(parse_role("4"), None);
        assert_eq!(parse_role("owner"), None);
        assert!(normalize_key(&"AB".repeat(32)).is_some_and(|k| k == "ab".repeat(32)));
        assert!(normalize_key("abcd").is_none());
    }
}
