//! Who may do what in a room: the admin password, `allow_read_only`, and the room's access list
//! (ACL) of keys with a role. Sans-IO; the service persists ACL changes in the hub.
//!
//! The firmware's rule (examples/simple_room_server/MyMesh.cpp, `onAnonDataRecv`): a blank
//! password from a key already in the ACL keeps that key's permissions; otherwise the admin
//! password gives admin (3), the room ("guest") password read-write (2), and any other password
//! a guest (0) when `allow.read.only` is on — else no reply at all. Its ACL is the list of clients
//! that logged in, which it trims, so read-write users fall out of it.
//!
//! Here the ACL is an explicit list an admin keeps (`setperm` over the air, `meshroom-gw acl`),
//! kept in full for every role and never trimmed. A key on the list gets its role whatever
//! password it sends (except the admin password, which always gives admin): that is how a room
//! that anyone may read lets only its members post.

use std::collections::BTreeMap;

use super::roster::Role;
use crate::meshcore::wire::identity::PublicKey;
use crate::meshcore::wire::message::MAX_PASSWORD_LEN;

/// A room's access rules as the engine applies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `None`: public room. `Some`: the room password (PSK), first 15 bytes.
    pub password: Option<Vec<u8>>,
    /// Gives admin (first 15 bytes compared; never equal to the PSK).
    pub admin_password: Option<Vec<u8>>,
    /// A wrong or empty password (private room), or any password (public room), gets a
    /// read-only guest login instead of nothing (private) or read-write (public).
    pub allow_read_only: bool,
    pub acl: BTreeMap<PublicKey, Role>,
}

/// The first 15 bytes: all a MeshCore login carries.
pub fn clip_password(p: Vec<u8>) -> Vec<u8> {
    let n = p.len().min(MAX_PASSWORD_LEN);
    p[..n].to_vec()
}

impl Access {
    /// The role a login gets, or `None` (no reply: a wrong password).
    ///
    /// `current`: the key's role if it is logged in already (a blank password keeps it, as the
    /// firmware's blank-password login does).
    pub fn login_role(
        &self,
        key: &PublicKey,
        password: &[u8],
        current: Option<Role>,
    ) -> Option<Role> {
        if !password.is_empty() && self.admin_password.as_deref() == Some(password) {
            return Some(Role::Admin);
        }
        if let Some(role) = self.acl.get(key) {
            return Some(*role);
        }
        if password.is_empty() {
            if let Some(role) = current {
                return Some(role);
            }
        }
        match &self.password {
            None if self.allow_read_only => Some(Role::Guest),
            None => Some(Role::ReadWrite),
            Some(pw) if pw.as_slice() == password => Some(Role::ReadWrite),
            Some(_) if self.allow_read_only => Some(Role::Guest),
            Some(_) => None,
        }
    }
}

impl Role {
    /// A permissions byte's role (its low two bits), as `setperm` and GET_ACCESS_LIST use it.
    pub fn from_permissions(p: u8) -> Role {
        match p & 3 {
            0 => Role::Guest,
            1 => Role::ReadOnly,
            2 => Role::ReadWrite,
            _ => Role::Admin,
        }
    }

    /// `guest`, `read-only`, `read-write`, `admin`, or the number 0–3.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "guest" | "0" => Some(Role::Guest),
            "read-only" | "readonly" | "ro" | "1" => Some(Role::ReadOnly),
            "read-write" | "readwrite" | "rw" | "2" => Some(Role::ReadWrite),
            "admin" | "3" => Some(Role::Admin),
            _ => None,
        }
    }

    /// May post (read-write and admin); guests and read-only members only read.
    pub fn may_post(self) -> bool {
        matches!(self, Role::ReadWrite | Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(password: Option<&str>, admin: Option<&str>, ro: bool) -> Access {
        Access {
            password: password.map(|p| p.as_bytes().to_vec()),
            admin_password: admin.map(|p| p.as_bytes().to_vec()),
            allow_read_only: ro,
            acl: BTreeMap::new(),
        }
    }

    #[test]
    fn roles_follow_the_firmware_order_with_the_acl_first() {
        let k = PublicKey([5; 32]);
        let public = access(None, Some("boss"), false);
        assert_eq!(public.login_role(&k, b"boss", None), Some(Role::Admin));
        assert_eq!(public.login_role(&k, b"x", None), Some(Role::ReadWrite));
        assert_eq!(public.login_role(&k, b"", None), Some(Role::ReadWrite));
        let readable = access(None, Some("boss"), true);
        assert_eq!(readable.login_role(&k, b"x", None), Some(Role::Guest));
        let private = access(Some("club"), Some("boss"), false);
        assert_eq!(private.login_role(&k, b"club", None), Some(Role::ReadWrite));
        assert_eq!(private.login_role(&k, b"nope", None), None);
        assert_eq!(private.login_role(&k, b"", None), None);
        assert_eq!(
            private.login_role(&k, b"", Some(Role::ReadWrite)),
            Some(Role::ReadWrite),
            "a blank password keeps a logged-in key's role"
        );
        let guests = access(Some("club"), None, true);
        assert_eq!(guests.login_role(&k, b"nope", None), Some(Role::Guest));
        let mut members = access(None, None, true);
        members.acl.insert(k, Role::ReadWrite);
        assert_eq!(members.login_role(&k, b"", None), Some(Role::ReadWrite));
        assert_eq!(
            members.login_role(&PublicKey([6; 32]), b"", None),
            Some(Role::Guest)
        );
    }
}
