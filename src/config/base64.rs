//! Keys written in the file as base64 (a peer's static key, a private channel's key), as people
//! copy them from other tools. Small enough not to need a crate.

/// Standard or URL-safe base64 (padding optional) to bytes; `None` for anything else.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_standard_and_url_safe_with_or_without_padding() {
        assert_eq!(super::decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(super::decode("aGk"), Some(b"hi".to_vec()));
        assert_eq!(super::decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(super::decode("a*"), None);
    }
}
