//! RFC 5531 section 11 record marking: each record is a sequence of fragments, each preceded by
//! a 4-byte header whose high bit marks the last fragment and whose low 31 bits give its length.
//!
//! [`RecordAssembler`] is sans-IO: bytes go in as they arrive from a socket, whole records come
//! out. A single-fragment record (the common case) is handed out as a slice of the receive
//! buffer; only multi-fragment records are copied into an assembly buffer. Fragment and record
//! sizes are checked against limits before anything is allocated for them.

use thiserror::Error;

/// The default largest fragment (and record) we accept: 4 MiB.
pub const DEFAULT_RECORD_BYTES_MAX: u32 = 4 << 20;

const LAST_FRAGMENT: u32 = 0x8000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("RPC record fragment of {len} bytes exceeds the limit of {max}")]
    FragmentTooLarge { len: u32, max: u32 },
    #[error("RPC record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge { len: u64, max: u32 },
}

/// Writes a last-fragment record header for a body of `len` bytes.
#[inline]
pub fn record_header(len: usize) -> [u8; 4] {
    debug_assert!(len < LAST_FRAGMENT as usize);
    (LAST_FRAGMENT | len as u32).to_be_bytes()
}

/// Reserves room for a record header at the end of `buf` and returns where the record starts;
/// pass that to [`end_record`] once the body has been appended.
#[inline]
pub fn begin_record(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    start
}

/// Patches the header reserved by [`begin_record`] with the body's length (one fragment).
#[inline]
pub fn end_record(buf: &mut [u8], start: usize) {
    let len = buf.len() - start - 4;
    buf[start..start + 4].copy_from_slice(&record_header(len));
}

/// Reassembles records from a byte stream.
#[derive(Debug)]
pub struct RecordAssembler {
    /// Raw stream bytes; `buf[head..]` is not yet consumed.
    buf: Vec<u8>,
    head: usize,
    /// Body of a multi-fragment record gathered so far.
    assembled: Vec<u8>,
    /// Whether `assembled` holds the start of a record whose last fragment has not arrived.
    assembling: bool,
    /// Set once a record has been handed out from `assembled`; cleared on the next call.
    handed_out_assembled: bool,
    record_bytes_max: u32,
}

impl RecordAssembler {
    /// `record_bytes_max` bounds both a single fragment and a reassembled record.
    pub fn new(record_bytes_max: u32) -> Self {
        RecordAssembler {
            buf: Vec::new(),
            head: 0,
            assembled: Vec::new(),
            assembling: false,
            handed_out_assembled: false,
            record_bytes_max,
        }
    }

    /// Bytes received but not yet returned as part of a record.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.head + self.assembled.len()
    }

    /// Drops all state, e.g. after the connection was reset.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.assembled.clear();
        self.assembling = false;
        self.handed_out_assembled = false;
    }

    /// Drops consumed bytes, moving the unconsumed tail only when it is no longer than what
    /// was consumed, so each byte is moved O(1) times on average.
    fn compact(&mut self) {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > 0 && self.head >= self.buf.len() - self.head {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete record, `Ok(None)` when more bytes are needed, or an error
    /// when the stream violates the limits (the connection should then be closed).
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, RecordError> {
        if self.handed_out_assembled {
            self.assembled.clear();
            self.handed_out_assembled = false;
        }
        loop {
            let avail = self.buf.len() - self.head;
            if avail < 4 {
                return Ok(None);
            }
            let h = &self.buf[self.head..self.head + 4];
            let header = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let last = header & LAST_FRAGMENT != 0;
            let len = header & !LAST_FRAGMENT;
            if len > self.record_bytes_max {
                return Err(RecordError::FragmentTooLarge {
                    len,
                    max: self.record_bytes_max,
                });
            }
            let total = self.assembled.len() as u64 + len as u64;
            if total > self.record_bytes_max as u64 {
                return Err(RecordError::RecordTooLarge {
                    len: total,
                    max: self.record_bytes_max,
                });
            }
            if avail - 4 < len as usize {
                return Ok(None);
            }
            let body_start = self.head + 4;
            let body_end = body_start + len as usize;
            self.head = body_end;
            if last && !self.assembling {
                // Fast path: the whole record is one fragment; lend it out in place.
                return Ok(Some(&self.buf[body_start..body_end]));
            }
            self.assembled
                .extend_from_slice(&self.buf[body_start..body_end]);
            self.assembling = true;
            if last {
                self.assembling = false;
                self.handed_out_assembled = true;
                return Ok(Some(&self.assembled));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(asm: &mut RecordAssembler) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = asm.next_record().unwrap() {
            out.push(r.to_vec());
        }
        out
    }

    #[test]
    fn single_fragment_records_split_across_pushes() {
        let mut stream = Vec::new();
        for body in [&b"hello"[..], b"", b"world!!"] {
            stream.extend_from_slice(&record_header(body.len()));
            stream.extend_from_slice(body);
        }
        for chunk in 1..stream.len() {
            let mut asm = RecordAssembler::new(1024);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                asm.push(piece);
                got.extend(records(&mut asm));
            }
            assert_eq!(got, vec![b"hello".to_vec(), vec![], b"world!!".to_vec()]);
            assert_eq!(asm.buffered(), 0);
        }
    }

    #[test]
    fn multi_fragment_record_is_joined() {
        // RFC 5531 section 11: only the last fragment has the high bit set.
        let mut stream = Vec::new();
        stream.extend_from_slice(&3u32.to_be_bytes());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&2u32.to_be_bytes());
        stream.extend_from_slice(b"de");
        stream.extend_from_slice(&(0x8000_0000u32 | 1).to_be_bytes());
        stream.extend_from_slice(b"f");
        stream.extend_from_slice(&record_header(1));
        stream.extend_from_slice(b"g");
        let mut asm = RecordAssembler::new(1024);
        asm.push(&stream[..9]);
        assert!(asm.next_record().unwrap().is_none());
        asm.push(&stream[9..]);
        assert_eq!(records(&mut asm), vec![b"abcdef".to_vec(), b"g".to_vec()]);
    }

    #[test]
    fn oversized_fragment_header_is_an_error_not_an_allocation() {
        let mut asm = RecordAssembler::new(DEFAULT_RECORD_BYTES_MAX);
        asm.push(&0xffff_ffffu32.to_be_bytes());
        assert_eq!(
            asm.next_record(),
            Err(RecordError::FragmentTooLarge {
                len: 0x7fff_ffff,
                max: DEFAULT_RECORD_BYTES_MAX
            })
        );
        assert!(asm.buffered() < 16);
    }

    #[test]
    fn many_small_fragments_cannot_exceed_the_record_limit() {
        let mut asm = RecordAssembler::new(10);
        for _ in 0..3 {
            asm.push(&4u32.to_be_bytes());
            asm.push(b"abcd");
        }
        assert!(matches!(
            asm.next_record(),
            Err(RecordError::RecordTooLarge { len: 12, max: 10 })
        ));
    }

    #[test]
    fn begin_end_record_frames_a_body() {
        let mut buf = b"xx".to_vec();
        let start = begin_record(&mut buf);
        buf.extend_from_slice(b"body");
        end_record(&mut buf, start);
        assert_eq!(&buf[2..6], &[0x80, 0, 0, 4]);
    }
}
