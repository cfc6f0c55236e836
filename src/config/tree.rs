//! The configuration file as a tree of nodes that remember where they were written.
//!
//! Built from the YAML parser's events (the parser serde-saphyr itself reads with), before any
//! typed reading: the schema walk in [`super::schema`] checks this tree against the table of
//! keys and reports every mistake with its line and column, instead of stopping at the first.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// One node of the file and where it starts (1-based line and column).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: usize,
    pub column: usize,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar as written; `plain` when it had no quotes (so `~`, `42`, `true` keep their
    /// YAML meaning), false for quoted and block scalars (always text).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys in the order written, duplicates kept (the schema walk reports them).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A plain empty scalar, `~` or `null`: YAML's "nothing here".
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What a person would call this node, for "found …" in messages.
    pub fn describe(&self) -> String {
        match &self.value {
            _ if self.is_null() => "nothing (an empty value or `~`)".to_string(),
            Value::Scalar { text, plain: true } => format!("`{}`", shorten(text)),
            Value::Scalar { text, .. } => format!("the text \"{}\"", shorten(text)),
            Value::Seq(_) => "a list (lines starting with `- `)".to_string(),
            Value::Map(_) => "a group of `key: value` lines".to_string(),
        }
    }
}

fn shorten(text: &str) -> String {
    let one_line = text.lines().next().unwrap_or("");
    if one_line.chars().count() > 40 || one_line.len() < text.len() {
        format!("{}…", one_line.chars().take(40).collect::<String>())
    } else {
        one_line.to_string()
    }
}

/// A syntax error: where, and what in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads `text` into a tree; `Ok(None)` when the file holds no document at all (empty, or
/// only comments).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            line: e.marker().line().max(1),
            column: e.marker().col() + 1,
            message: syntax_message(&e.info(), text, e.marker().line()),
        })?;
        let line = span.start.line().max(1);
        let column = span.start.col() + 1;
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        line,
                        column,
                        message: "a second YAML document starts here (`---`); the configuration is one document".into(),
                    });
                }
            }
            Event::Scalar(value, style, anchor, _) => {
                let node = Node {
                    line,
                    column,
                    value: Value::Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                builder.anchor(anchor, &node);
                builder.push(node);
            }
            Event::Alias(id) => {
                let node = builder.anchors.iter().rev().find(|(a, _)| *a == id);
                let mut node = node.map(|(_, n)| n.clone()).ok_or(SyntaxError {
                    line,
                    column,
                    message: "this alias (`*name`) refers to no anchor (`&name`) above it".into(),
                })?;
                node.line = line;
                node.column = column;
                builder.push(node);
            }
            Event::SequenceStart(_, anchor, _) => builder.open(line, column, anchor, false),
            Event::MappingStart(_, anchor, _) => builder.open(line, column, anchor, true),
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            _ => {}
        }
    }
    Ok(builder.root)
}

/// The parser's messages, with the one a newcomer meets most (a tab) made plain.
fn syntax_message(info: &str, text: &str, line: usize) -> String {
    let has_tab = text
        .lines()
        .nth(line.saturating_sub(1))
        .is_some_and(|l| l.starts_with([' ', '\t']) && l.contains('\t'));
    if has_tab {
        return "a tab in the indentation: YAML indents with spaces only".into();
    }
    format!("not valid YAML here ({info}); check the indentation and the `key: value` layout above")
}

#[derive(Default)]
struct Builder {
    /// Open collections: (node, anchor, pending key of a mapping).
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
}

impl Builder {
    fn anchor(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
    }

    fn open(&mut self, line: usize, column: usize, anchor: usize, map: bool) {
        let value = if map {
            Value::Map(Vec::new())
        } else {
            Value::Seq(Vec::new())
        };
        self.stack.push((
            Node {
                line,
                column,
                value,
            },
            anchor,
            None,
        ));
    }

    fn close(&mut self) {
        if let Some((node, anchor, _)) = self.stack.pop() {
            self.anchor(anchor, &node);
            self.push(node);
        }
    }

    fn push(&mut self, node: Node) {
        let Some((parent, _, pending)) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        match &mut parent.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
            Value::Scalar { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_kept() {
        let root = parse("rooms:\n  - name: a\n    max_history: 5\n")
            .unwrap()
            .unwrap();
        let Value::Map(top) = &root.value else {
            panic!("a mapping")
        };
        assert_eq!((top[0].0.line, top[0].0.column), (1, 1));
        let Value::Seq(rooms) = &top[0].1.value else {
            panic!("a list")
        };
        let Value::Map(room) = &rooms[0].value else {
            panic!("a mapping")
        };
        assert_eq!((room[1].1.line, room[1].1.column), (3, 18));
    }

    #[test]
    fn empty_and_comment_only_files_have_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# nothing\n\n").unwrap(), None);
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let e = parse("rooms:\n  - name: a\n   bad: [\n").unwrap_err();
        assert!(e.line >= 3, "{e:?}");
    }
}
