//! The room hub: the centre of the gateway. Every post enters here from exactly one side, is
//! deduplicated, stamped by the room clock, committed, and fanned out to every other side.
pub mod post;
pub use post::{Author, AuthorKind, NewPost, Post, PostId, Via};
