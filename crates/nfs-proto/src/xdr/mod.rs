//! XDR (RFC 4506) encoding and decoding over byte slices.
//!
//! The reader borrows: opaques and strings come back as slices of the input, so decoding a
//! directory listing allocates nothing. Every length read from the wire is checked against the
//! bytes that remain (and against a caller's maximum) before it is used, so a hostile peer cannot
//! make us allocate or read out of bounds. The writer appends to a caller-owned, reused `Vec`.

use std::fmt;

/// Why a decode failed. Small and `Copy` so hot paths can return it cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdrError {
    /// The input ended before the item did.
    Truncated { needed: usize, remaining: usize },
    /// A variable-length item is longer than the protocol (or the caller) allows.
    TooLong { len: u32, max: u32 },
    /// A boolean that is neither 0 nor 1.
    BadBool(u32),
    /// An enum or union discriminant that the protocol does not define.
    BadDiscriminant(u32),
    /// Bytes were left over after a complete item was decoded.
    TrailingBytes(usize),
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            XdrError::Truncated { needed, remaining } => {
                write!(
                    f,
                    "truncated XDR: needed {needed} bytes, {remaining} remain"
                )
            }
            XdrError::TooLong { len, max } => {
                write!(f, "XDR length {len} exceeds the limit of {max}")
            }
            XdrError::BadBool(v) => write!(f, "XDR boolean has value {v}"),
            XdrError::BadDiscriminant(v) => write!(f, "unknown XDR discriminant {v}"),
            XdrError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after XDR item"),
        }
    }
}

impl std::error::Error for XdrError {}

pub type XdrResult<T> = Result<T, XdrError>;

/// Bytes of padding that follow an item of `len` bytes to reach a 4-byte boundary.
#[inline]
pub const fn pad_len(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// Where `part`, a slice of `whole`, lies in it; `None` if it does not lie within it. (A
/// validated view over a reply's bytes keeps this to be attached again to a copy of them.)
pub fn span_within(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// A cursor over XDR bytes that hands out borrowed slices.
#[derive(Debug, Clone)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        XdrReader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not yet consumed.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> XdrResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(XdrError::TrailingBytes(n)),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> XdrResult<&'a [u8]> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(XdrError::Truncated {
                needed: n,
                remaining,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub fn u32(&mut self) -> XdrResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn i32(&mut self) -> XdrResult<i32> {
        Ok(self.u32()? as i32)
    }

    #[inline]
    pub fn u64(&mut self) -> XdrResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    #[inline]
    pub fn i64(&mut self) -> XdrResult<i64> {
        Ok(self.u64()? as i64)
    }

    #[inline]
    pub fn bool(&mut self) -> XdrResult<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::BadBool(v)),
        }
    }

    /// Fixed-length opaque of `len` bytes plus its padding.
    #[inline]
    pub fn opaque_fixed(&mut self, len: usize) -> XdrResult<&'a [u8]> {
        let data = self.take(len)?;
        self.take(pad_len(len))?;
        Ok(data)
    }

    /// Variable-length opaque of at most `max` bytes (the length is checked before use).
    #[inline]
    pub fn opaque(&mut self, max: u32) -> XdrResult<&'a [u8]> {
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        self.opaque_fixed(len as usize)
    }

    /// An XDR string: the same wire form as a variable opaque. Returned as bytes, because NFS
    /// names need not be UTF-8.
    #[inline]
    pub fn string(&mut self, max: u32) -> XdrResult<&'a [u8]> {
        self.opaque(max)
    }

    /// An `optional-data` discriminant (`*T` in XDR): true when a value follows.
    #[inline]
    pub fn option_flag(&mut self) -> XdrResult<bool> {
        self.bool()
    }

    /// An array length, checked against `max` and against the bytes left, given that each
    /// element takes at least `min_elem_bytes` on the wire.
    pub fn array_len(&mut self, max: u32, min_elem_bytes: usize) -> XdrResult<u32> {
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        let needed = (len as usize).saturating_mul(min_elem_bytes);
        if needed > self.remaining() {
            return Err(XdrError::Truncated {
                needed,
                remaining: self.remaining(),
            });
        }
        Ok(len)
    }
}

/// Appends XDR to a reused buffer. Encoding cannot fail; lengths over `u32::MAX` are a caller bug.
#[derive(Debug)]
pub struct XdrWriter<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> XdrWriter<'b> {
    #[inline]
    pub fn new(buf: &'b mut Vec<u8>) -> Self {
        XdrWriter { buf }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Access to the underlying buffer, e.g. to patch a length written earlier.
    #[inline]
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    #[inline]
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    #[inline]
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }

    #[inline]
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    #[inline]
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.u64(v as u64)
    }

    #[inline]
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(v as u32)
    }

    #[inline]
    pub fn opaque_fixed(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(&[0u8; 3][..pad_len(data.len())]);
        self
    }

    #[inline]
    pub fn opaque(&mut self, data: &[u8]) -> &mut Self {
        debug_assert!(data.len() <= u32::MAX as usize);
        self.u32(data.len() as u32);
        self.opaque_fixed(data)
    }

    #[inline]
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        self.opaque(s)
    }
}

/// A type with an XDR wire form that can be written.
pub trait XdrEncode {
    fn encode(&self, w: &mut XdrWriter<'_>);

    /// Convenience: encode into a fresh buffer (tests, cold paths).
    fn to_xdr(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut XdrWriter::new(&mut v));
        v
    }
}

/// A type that can be read from XDR, possibly borrowing from the input.
pub trait XdrDecode<'a>: Sized {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self>;

    /// Decode from a whole buffer, rejecting trailing bytes.
    fn from_xdr(buf: &'a [u8]) -> XdrResult<Self> {
        let mut r = XdrReader::new(buf);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut buf = Vec::new();
        XdrWriter::new(&mut buf)
            .u32(0x01020304)
            .i32(-2)
            .u64(0x0102030405060708)
            .bool(true);
        assert_eq!(
            buf,
            [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1]
        );
        let mut r = XdrReader::new(&buf);
        assert_eq!(r.u32(), Ok(0x01020304));
        assert_eq!(r.i32(), Ok(-2));
        assert_eq!(r.u64(), Ok(0x0102030405060708));
        assert_eq!(r.bool(), Ok(true));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn opaque_is_padded_to_four_bytes() {
        // RFC 4506 section 4.10: length, data, zero padding to a multiple of four.
        let mut buf = Vec::new();
        XdrWriter::new(&mut buf).opaque(b"abcde");
        assert_eq!(buf, [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        let mut r = XdrReader::new(&buf);
        assert_eq!(r.opaque(16), Ok(&b"abcde"[..]));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn lengths_are_checked_before_use() {
        let buf = [0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4];
        assert_eq!(
            XdrReader::new(&buf).opaque(u32::MAX),
            Err(XdrError::Truncated {
                needed: 0xffff_fff0,
                remaining: 4
            })
        );
        assert_eq!(
            XdrReader::new(&buf).opaque(1024),
            Err(XdrError::TooLong {
                len: 0xffff_fff0,
                max: 1024
            })
        );
        // an array claiming more elements than the remaining bytes could hold
        let buf = [0, 0, 0, 100, 0, 0, 0, 0];
        assert!(matches!(
            XdrReader::new(&buf).array_len(1000, 4),
            Err(XdrError::Truncated { .. })
        ));
    }

    #[test]
    fn bad_bool_and_trailing_bytes_are_errors() {
        assert_eq!(
            XdrReader::new(&[0, 0, 0, 2]).bool(),
            Err(XdrError::BadBool(2))
        );
        let mut r = XdrReader::new(&[0, 0, 0, 1, 9]);
        r.u32().unwrap();
        assert_eq!(r.finish(), Err(XdrError::TrailingBytes(1)));
    }

    #[test]
    fn missing_padding_is_truncation() {
        let buf = [0, 0, 0, 1, b'x'];
        assert!(matches!(
            XdrReader::new(&buf).opaque(8),
            Err(XdrError::Truncated { .. })
        ));
    }
}
