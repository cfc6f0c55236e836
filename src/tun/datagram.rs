//! The payload of a room datagram: what a post looks like on the host, and what the host may send.
//!
//! **Out** (gateway → host): one line of JSON, terminated by `\n` so `socat` and `nc` print one
//! post per line:
//!
//! ```text
//! {"room":"general","id":"<32 hex>","author":{"kind":"radio","id":"<id>","name":"alice"},
//!  "origin":"gw1","author_ts":1764000000,"room_ts":1764000001,"text":"hello"}
//! ```
//! (shown wrapped; on the wire it is one line). `author.name` is omitted when unknown. Times are
//! Unix seconds: `author_ts` as the author's device said, `room_ts` from the room clock.
//!
//! **In** (host → gateway): either plain UTF-8 text (a trailing newline is ignored), or a JSON
//! object of the same shape in which only `text` is required. `author.name` (or a top-level
//! `name`) gives the author a display name; `id` (32 hex digits) keeps a post id, so a datagram
//! sent twice posts once; `author_ts` keeps the author's time; `room`, when present, must be
//! the room of the group the datagram was sent to. Anything that starts with `{` but is not
//! such an object is malformed and dropped, rather than posted as text by accident.

use serde::{Deserialize, Serialize};

use crate::hub::{AuthorKind, Post, PostId};
use crate::tun::counters::DropReason;

/// Longest display name taken from a datagram; longer names are cut at a character boundary.
pub const MAX_NAME_BYTES: usize = 64;

/// The JSON of one post as it leaves the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePost {
    pub room: String,
    pub id: PostId,
    pub author: WireAuthor,
    #[serde(default)]
    pub origin: String,
    pub author_ts: u64,
    pub room_ts: u64,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAuthor {
    pub kind: AuthorKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl WirePost {
    pub fn from_post(post: &Post) -> Self {
        WirePost {
            room: post.room.clone(),
            id: post.id,
            author: WireAuthor {
                kind: post.author.kind,
                id: post.author.id.clone(),
                name: post.author.name.clone(),
            },
            origin: post.origin.clone(),
            author_ts: post.author_ts,
            room_ts: post.room_ts,
            text: post.text.clone(),
        }
    }
}

/// The payload of the datagram that carries `post`: one JSON line.
pub fn encode_post(post: &Post) -> Vec<u8> {
    let mut line = serde_json::to_vec(&WirePost::from_post(post)).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Reads a datagram the gateway sent (for `tail` and tests).
pub fn decode_post(payload: &[u8]) -> Option<WirePost> {
    serde_json::from_slice(trim_line_end(payload)).ok()
}

/// A post a host program asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPost {
    pub text: String,
    pub name: Option<String>,
    pub id: Option<PostId>,
    pub author_ts: Option<u64>,
}

#[derive(Deserialize)]
struct InboundJson {
    text: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    author: Option<InboundAuthor>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    author_ts: Option<u64>,
}

#[derive(Deserialize)]
struct InboundAuthor {
    #[serde(default)]
    name: Option<String>,
}

/// Parses the payload a host program sent to `room`'s group. `max_text` bounds the text in
/// bytes (the hub's own limit applies after this).
pub fn parse_inbound(
    payload: &[u8],
    room: &str,
    max_text: usize,
) -> Result<InboundPost, DropReason> {
    let body = std::str::from_utf8(payload).map_err(|_| DropReason::NotUtf8)?;
    let body = body.trim_end_matches(['\n', '\r']);
    if body.trim_start().starts_with('{') {
        let json: InboundJson = serde_json::from_str(body).map_err(|_| DropReason::Malformed)?;
        if let Some(r) = &json.room {
            if r != room {
                return Err(DropReason::WrongRoom);
            }
        }
        let id = match json.id.as_deref() {
            None => None,
            Some(s) => Some(s.parse::<PostId>().map_err(|_| DropReason::Malformed)?),
        };
        let name = json
            .author
            .and_then(|a| a.name)
            .or(json.name)
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .map(|n| cut_at_char_boundary(n, MAX_NAME_BYTES));
        let text = check_text(json.text, max_text)?;
        Ok(InboundPost {
            text,
            name,
            id,
            author_ts: json.author_ts,
        })
    } else {
        Ok(InboundPost {
            text: check_text(body.to_string(), max_text)?,
            name: None,
            id: None,
            author_ts: None,
        })
    }
}

fn check_text(text: String, max_text: usize) -> Result<String, DropReason> {
    if text.trim().is_empty() {
        return Err(DropReason::Malformed);
    }
    if text.len() > max_text {
        return Err(DropReason::Oversized);
    }
    Ok(text)
}

fn cut_at_char_boundary(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn trim_line_end(payload: &[u8]) -> &[u8] {
    let mut end = payload.len();
    while end > 0 && matches!(payload.get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    payload.get(..end).unwrap_or(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Author;

    fn post() -> Post {
        Post {
            id: PostId([0xab; 16]),
            room: "general".into(),
            author: Author {
                kind: AuthorKind::Radio,
                id: "a1b2".into(),
                name: Some("alice".into()),
            },
            origin: "gw1".into(),
            author_ts: 1_764_000_000,
            room_ts: 1_764_000_001,
            room_us: 1_764_000_001_000_000,
            text: "hello\nworld \"quoted\"".into(),
            hops: 0,
        }
    }

    #[test]
    fn a_post_is_one_documented_json_line() {
        let bytes = encode_post(&post());
        let s = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(s.matches('\n').count(), 1, "exactly one line: {s}");
        assert!(s.ends_with('\n'));
        assert_eq!(
            s,
            "{\"room\":\"general\",\"id\":\"abababababababababababababababab\",\
             \"author\":{\"kind\":\"radio\",\"id\":\"a1b2\",\"name\":\"alice\"},\
             \"origin\":\"gw1\",\"author_ts\":1764000000,\"room_ts\":1764000001,\
             \"text\":\"hello\\nworld \\\"quoted\\\"\"}\n"
        );
        let back = decode_post(&bytes).unwrap();
        assert_eq!(back, WirePost::from_post(&post()));
    }

    #[test]
    fn an_author_without_a_name_omits_it() {
        let mut p = post();
        p.author.name = None;
        let s = String::from_utf8(encode_post(&p)).unwrap();
        assert!(
            s.contains("\"author\":{\"kind\":\"radio\",\"id\":\"a1b2\"}"),
            "{s}"
        );
    }

    #[test]
    fn plain_text_posts_with_the_newline_stripped() {
        let p = parse_inbound(b"hi there\n", "general", 1000).unwrap();
        assert_eq!(p.text, "hi there");
        assert_eq!(p.name, None);
        assert_eq!(p.id, None);
    }

    #[test]
    fn json_gives_a_name_and_keeps_an_id() {
        let p = parse_inbound(
            br#"{"text":"hi","author":{"name":" bob "},"id":"000102030405060708090a0b0c0d0e0f","author_ts":5}"#,
            "general",
            1000,
        )
        .unwrap();
        assert_eq!(p.text, "hi");
        assert_eq!(p.name.as_deref(), Some("bob"));
        assert_eq!(
            p.id.unwrap().to_string(),
            "000102030405060708090a0b0c0d0e0f"
        );
        assert_eq!(p.author_ts, Some(5));
        let p = parse_inbound(br#"{"text":"hi","name":"carol"}"#, "general", 1000).unwrap();
        assert_eq!(p.name.as_deref(), Some("carol"));
    }

    #[test]
    fn an_outgoing_line_parses_as_an_incoming_post() {
        let p = parse_inbound(&encode_post(&post()), "general", 1000).unwrap();
        assert_eq!(p.text, post().text);
        assert_eq!(p.name.as_deref(), Some("alice"));
        assert_eq!(p.id, Some(post().id));
    }

    #[test]
    fn bad_input_is_dropped_with_its_reason() {
        assert_eq!(
            parse_inbound(&[0xff, 0xfe, b'a'], "r", 100),
            Err(DropReason::NotUtf8)
        );
        assert_eq!(
            parse_inbound(b"{\"text\":", "r", 100),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            parse_inbound(b"{\"name\":\"x\"}", "r", 100),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            parse_inbound(b"{\"text\":\"a\",\"id\":\"zz\"}", "r", 100),
            Err(DropReason::Malformed)
        );
        assert_eq!(parse_inbound(b"  \n", "r", 100), Err(DropReason::Malformed));
        assert_eq!(parse_inbound(b"", "r", 100), Err(DropReason::Malformed));
        assert_eq!(
            parse_inbound(&[b'a'; 101], "r", 100),
            Err(DropReason::Oversized)
        );
        assert_eq!(
            parse_inbound(b"{\"text\":\"a\",\"room\":\"other\"}", "r", 100),
            Err(DropReason::WrongRoom)
        );
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = "é".repeat(40); // 80 bytes
        let json = format!("{{\"text\":\"t\",\"name\":\"{name}\"}}");
        let p = parse_inbound(json.as_bytes(), "r", 100).unwrap();
        let got = p.name.unwrap();
        assert!(got.len() <= MAX_NAME_BYTES);
        assert_eq!(got, "é".repeat(32));
    }
}
