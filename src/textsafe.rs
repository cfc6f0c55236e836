//! Text from the radio, the TUN side or peers, made safe to show on a terminal: control
//! characters (C0 but newline and tab, DEL, C1) and ESC would let anyone who can post write
//! escape sequences to an operator's terminal. They are shown escaped (`\u{1b}`); the stored
//! text stays as it came.

use std::borrow::Cow;

/// Would `c` do something to a terminal rather than print?
pub fn is_unsafe(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `text` with every control character but newline and tab written as `\u{XX}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`escape`], newlines and tabs included: for one-line fields (names, table cells).
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_unsafe(c) || c == '\n' || c == '\t' || c == '\r')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_newline_and_tab_kept() {
        assert_eq!(escape("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[2Jb\u{0}c\u{7}d\ne\tf\u{7f}g\u{9b}h\r"),
            "a\\u{1b}[2Jb\\u{0}c\\u{7}d\ne\tf\\u{7f}g\\u{9b}h\\u{d}"
        );
        assert_eq!(escape_line("x\ny\tz\u{1b}"), "x\\ny\\tz\\u{1b}");
    }
}
