//! Bounds-checked byte reader and writer for federation frames.
//!
//! Every read is checked: frames come from the network, and a short or lying frame must become a
//! [`Malformed`] error that ends the link, never a panic.

use thiserror::Error;

/// A frame that does not parse. The link that sent it is ended and the event counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed federation frame: {0}")]
pub struct Malformed(pub &'static str);

/// Reads fields from the front of a byte slice.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < n {
            return Err(Malformed(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Malformed> {
        let b = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A UTF-8 string with a u16 length prefix, at most `max` bytes.
    pub fn string(&mut self, max: usize, what: &'static str) -> Result<String, Malformed> {
        let len = usize::from(self.u16(what)?);
        if len > max {
            return Err(Malformed(what));
        }
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Malformed(what))
    }

    pub fn finish(self, what: &'static str) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed(what))
        }
    }
}

/// Appends fields to a buffer. Lengths are checked by the caller through [`Writer::string`]
/// returning `false` when a field does not fit its prefix.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }

    /// Writes a u16-prefixed string, truncated at a char boundary to `max` bytes so an
    /// over-long field can never produce a frame the other side must reject.
    pub fn string(&mut self, s: &str, max: usize) {
        let mut end = s.len().min(max).min(usize::from(u16::MAX));
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let len = u16::try_from(end).unwrap_or(u16::MAX);
        self.u16(len);
        self.out.extend_from_slice(&s.as_bytes()[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_malformed_not_a_panic() {
        let mut r = Reader::new(&[0x00]);
        assert_eq!(r.u16("x"), Err(Malformed("x")));
        let mut r = Reader::new(&[0x00, 0x05, b'a']);
        assert!(r.string(100, "s").is_err());
    }

    #[test]
    fn strings_round_trip_and_truncate_on_char_boundary() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.string("héllo", 2);
        let mut r = Reader::new(&buf);
        assert_eq!(r.string(10, "s").as_deref(), Ok("h"));
        assert!(r.finish("end").is_ok());
    }
}
