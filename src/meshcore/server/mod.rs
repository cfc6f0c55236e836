//! The room server, sans-IO: every room on one radio as a MeshCore room server — frames and
//! time in, [`engine::Action`]s out; it never reads a clock, a file or the radio.
//!
//! - [`engine`]: the entry point, dispatching frames to rooms and returning actions;
//! - `room`: one room (login, posts, pushes, PATH learning, adverts, status requests);
//! - [`roster`]: a room's clients and the wrong-password guard;
//! - [`acl`]: who may do what (admin password, `allow_read_only`, the room's access list);
//! - [`admin`]: the over-the-air admin CLI (TXT_MSG CLI_DATA);
//! - [`history`]: the window of posts a room can push;
//! - [`dedup`]: the ring of recently seen packet hashes;
//! - [`channel`]: a room's group channel (history from the air, bridging onto it);
//! - [`counters`]: what the side counts for `/status` and `/metrics`.
pub mod acl;
pub mod admin;
pub mod channel;
pub mod counters;
pub mod dedup;
pub mod engine;
pub mod history;
pub(crate) mod room;
pub mod roster;
