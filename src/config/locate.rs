//! Maps between positions in a block-style YAML text and key paths such as `rooms[1].name`.
//!
//! The YAML library reports where a parse error happened (line and column) but not under which
//! key; our own validation knows the key but not the line. Config files are written in block
//! style, so indentation alone recovers the structure well enough to tell a person both.

/// A key path for every meaningful line: `(line, column of the key or item, path)`.
fn paths(text: &str) -> Vec<(usize, usize, String)> {
    struct Entry {
        column: usize,
        segment: String,
        items: usize,
    }
    let mut stack: Vec<Entry> = Vec::new();
    let mut root_items = 0usize;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let (dash, rest, rest_column) = match trimmed.strip_prefix('-') {
            Some(after) if after.is_empty() || after.starts_with(' ') => {
                let r = after.trim_start();
                (true, r, indent + 1 + (after.len() - r.len()))
            }
            _ => (false, trimmed, indent),
        };
        while stack.last().is_some_and(|e| e.column >= indent) {
            stack.pop();
        }
        let mut column = indent + 1;
        if dash {
            let counter = match stack.last_mut() {
                Some(parent) => &mut parent.items,
                None => &mut root_items,
            };
            let index = *counter;
            *counter += 1;
            stack.push(Entry {
                column: indent,
                segment: format!("[{index}]"),
                items: 0,
            });
        }
        if let Some(key) = key_of(rest) {
            if dash {
                out.push((
                    i + 1,
                    indent + 1,
                    join(stack.iter().map(|e| e.segment.as_str())),
                ));
            }
            stack.push(Entry {
                column: rest_column,
                segment: key.to_string(),
                items: 0,
            });
            column = rest_column + 1;
        }
        out.push((
            i + 1,
            column,
            join(stack.iter().map(|e| e.segment.as_str())),
        ));
    }
    out
}

fn key_of(rest: &str) -> Option<&str> {
    if rest.starts_with(['{', '[', '"', '\'']) && !rest.starts_with(['"', '\'']) {
        return None;
    }
    let colon = rest
        .find(": ")
        .or_else(|| rest.strip_suffix(':').map(|k| k.len()))?;
    let key = rest[..colon].trim().trim_matches(['"', '\'']);
    (!key.is_empty()).then_some(key)
}

fn join<'a>(segments: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for s in segments {
        if !out.is_empty() && !s.starts_with('[') {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

/// The key path of the node at `line` (1-based), e.g. `rooms[1].max_history`.
pub fn path_at(text: &str, line: usize) -> String {
    paths(text)
        .into_iter()
        .rev()
        .find(|(l, _, _)| *l <= line)
        .map(|(_, _, p)| p)
        .unwrap_or_default()
}

/// Line and column (1-based) of the key named by `path` (e.g. `rooms[2].psk`), or of its
/// nearest ancestor that appears in the text; `(1, 1)` when nothing matches.
pub fn position_of(text: &str, path: &str) -> (usize, usize) {
    let mut best = (1, 1);
    for (line, column, p) in paths(text) {
        if p == path {
            return (line, column);
        }
        if path.starts_with(&p) && path[p.len()..].starts_with(['.', '[']) {
            best = (line, column);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "rooms:\n  - name: \"A\"\n    psk: \"\"\n    max_history: 10\n  - name: \"B\"\n    max_history: 0\npeers:\n  - host: \"h\"\n    port: 7070\nhttp:\n  listen: x\n";

    #[test]
    fn paths_of_lines() {
        assert_eq!(path_at(SEED, 1), "rooms");
        assert_eq!(path_at(SEED, 2), "rooms[0].name");
        assert_eq!(path_at(SEED, 4), "rooms[0].max_history");
        assert_eq!(path_at(SEED, 5), "rooms[1].name");
        assert_eq!(path_at(SEED, 6), "rooms[1].max_history");
        assert_eq!(path_at(SEED, 9), "peers[0].port");
        assert_eq!(path_at(SEED, 11), "http.listen");
    }

    #[test]
    fn positions_of_paths() {
        assert_eq!(position_of(SEED, "rooms[1].max_history"), (6, 5));
        assert_eq!(position_of(SEED, "rooms[0].name"), (2, 5));
        assert_eq!(position_of(SEED, "peers[0].secret"), (8, 3));
        assert_eq!(position_of(SEED, "http.listen"), (11, 3));
    }
}
