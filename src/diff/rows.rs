//! Rows on their way through the diff's external sorts: a sort key and a payload in one buffer
//! (one allocation per row), and the entry record encoded into the payload.

use crate::output::extsort::SortKey;
use crate::record::{EntryAttrs, EntryRecord, EntryRef, EntryType};
use std::cmp::Ordering;
use std::io;
use std::mem;

/// A key and a payload in one buffer, ordered by the key, then the payload (so equal keys
/// still sort the same way every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRow {
    /// The key's first 16 bytes (zero-padded), big-endian: most comparisons end here, without
    /// reaching into the heap.
    head: u128,
    bytes: Vec<u8>,
    key_len: u32,
}

fn head_of(key: &[u8]) -> u128 {
    let mut h = [0u8; 16];
    let n = key.len().min(16);
    h[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(h)
}

impl KeyedRow {
    /// A row whose key is `key`; the payload is appended to [`KeyedRow::payload_mut`].
    pub fn with_key(key: &[u8], payload_capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(key.len() + payload_capacity);
        bytes.extend_from_slice(key);
        KeyedRow {
            head: head_of(key),
            bytes,
            key_len: key.len() as u32,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.key_len as usize..]
    }

    /// The buffer, to append the payload to (the key is already in it).
    pub fn payload_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Ord for KeyedRow {
    fn cmp(&self, other: &Self) -> Ordering {
        // Heads in the same order as the keys, or equal (zero padding may tie a short key
        // with a longer one): then the keys decide.
        self.head
            .cmp(&other.head)
            .then_with(|| self.key().cmp(other.key()))
            .then_with(|| self.payload().cmp(other.payload()))
    }
}

impl PartialOrd for KeyedRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// On disk: the total length and the key length (big-endian u32 each), then the bytes.
impl SortKey for KeyedRow {
    fn memory_bytes(&self) -> usize {
        mem::size_of::<Self>() + self.bytes.capacity()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.key_len.to_be_bytes());
        out.extend_from_slice(&self.bytes);
    }

    fn read_from(input: &[u8]) -> Option<(Self, usize)> {
        let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
        let key_len = u32::from_be_bytes(input.get(4..8)?.try_into().ok()?);
        let bytes = input.get(8..8usize.checked_add(len)?)?.to_vec();
        if key_len as usize > bytes.len() {
            return None;
        }
        let head = head_of(&bytes[..key_len as usize]);
        Some((
            KeyedRow {
                head,
                bytes,
                key_len,
            },
            8 + len,
        ))
    }

    fn check_writable(&self) -> io::Result<()> {
        u32::try_from(self.bytes.len())
            .map(|_| ())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a diff row over 4 GiB"))
    }
}

/// The identity key of an entry: (fsid, fileid), big-endian so byte order is numeric order.
pub fn identity_key(attrs: &EntryAttrs) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&attrs.fsid.to_be_bytes());
    k[8..].copy_from_slice(&attrs.fileid.to_be_bytes());
    k
}

/// A path as a key that sorts depth-first: component by component, so that a directory comes
/// right before everything below it (`a`, `a/x`, `a-b`, while plain byte order gives `a`,
/// `a-b`, `a/x`). Names never hold NUL, so '/' becomes NUL.
pub fn tree_order_key(path: &[u8], out: &mut Vec<u8>) {
    out.extend(path.iter().map(|&b| if b == b'/' { 0 } else { b }));
}

/// Bytes of the fixed part of an encoded entry.
const FIXED_BYTES: usize = 1 + 8 * 2 + 4 * 4 + 8 * 2 + 8 * 3 + 4 + 4 + 4 + 4 + 4;
/// The length of a string the entry has not (a target, an owner or a group name).
const ABSENT: u32 = u32::MAX;

fn optional_len(s: Option<&[u8]>) -> u32 {
    s.map_or(ABSENT, |t| t.len() as u32)
}

/// Appends an entry: its attributes, depth, path, target and NFSv4 owner names (little-endian,
/// fixed widths, then the strings).
pub fn encode_entry(out: &mut Vec<u8>, e: &EntryRef<'_>) {
    let (a, strings) = (e.attrs, [e.target, e.owner, e.group]);
    out.reserve(
        FIXED_BYTES + e.path.len() + strings.iter().flatten().map(|s| s.len()).sum::<usize>(),
    );
    out.push(type_code(a.kind));
    out.extend_from_slice(&a.size.to_le_bytes());
    out.extend_from_slice(&a.used.to_le_bytes());
    out.extend_from_slice(&a.mode.to_le_bytes());
    out.extend_from_slice(&a.nlink.to_le_bytes());
    out.extend_from_slice(&a.uid.to_le_bytes());
    out.extend_from_slice(&a.gid.to_le_bytes());
    out.extend_from_slice(&a.fileid.to_le_bytes());
    out.extend_from_slice(&a.fsid.to_le_bytes());
    out.extend_from_slice(&a.atime_ns.to_le_bytes());
    out.extend_from_slice(&a.mtime_ns.to_le_bytes());
    out.extend_from_slice(&a.ctime_ns.to_le_bytes());
    out.extend_from_slice(&e.depth.to_le_bytes());
    out.extend_from_slice(&(e.path.len() as u32).to_le_bytes());
    for s in strings {
        out.extend_from_slice(&optional_len(s).to_le_bytes());
    }
    out.extend_from_slice(e.path);
    for s in strings.into_iter().flatten() {
        out.extend_from_slice(s);
    }
}

pub fn encode_record(out: &mut Vec<u8>, r: &EntryRecord) {
    encode_entry(out, &r.as_ref());
}

fn type_code(t: EntryType) -> u8 {
    EntryType::ALL.iter().position(|&x| x == t).unwrap_or(7) as u8
}

/// Reads an entry written by [`encode_entry`]; returns it and the bytes it took.
pub fn decode_entry(b: &[u8]) -> io::Result<(EntryRecord, usize)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt diff row");
    let fixed = b.get(..FIXED_BYTES).ok_or_else(bad)?;
    let mut at = 0usize;
    let mut take = |n: usize| {
        let s = &fixed[at..at + n];
        at += n;
        s
    };
    let u8_ = take(1)[0];
    let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let size = u64_(take(8));
    let used = u64_(take(8));
    let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
    let mode = u32_(take(4));
    let nlink = u32_(take(4));
    let uid = u32_(take(4));
    let gid = u32_(take(4));
    let fileid = u64_(take(8));
    let fsid = u64_(take(8));
    let atime_ns = u64_(take(8)) as i64;
    let mtime_ns = u64_(take(8)) as i64;
    let ctime_ns = u64_(take(8)) as i64;
    let depth = u32_(take(4));
    let path_len = u32_(take(4)) as usize;
    let lens = [u32_(take(4)), u32_(take(4)), u32_(take(4))];
    let kind = *EntryType::ALL.get(u8_ as usize).ok_or_else(bad)?;
    let mut end = FIXED_BYTES + path_len;
    let path = b.get(FIXED_BYTES..end).ok_or_else(bad)?.to_vec();
    let mut string = |len: u32| -> io::Result<Option<Vec<u8>>> {
        if len == ABSENT {
            return Ok(None);
        }
        let s = b.get(end..end + len as usize).ok_or_else(bad)?.to_vec();
        end += len as usize;
        Ok(Some(s))
    };
    let [target, owner, group] = [string(lens[0])?, string(lens[1])?, string(lens[2])?];
    Ok((
        EntryRecord {
            path,
            attrs: EntryAttrs {
                kind,
                size,
                used,
                mode,
                nlink,
                uid,
                gid,
                fileid,
                fsid,
                atime_ns,
                mtime_ns,
                ctime_ns,
            },
            depth,
            target,
            owner,
            group,
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let rec = EntryRecord {
            path: b"a/b\xff".to_vec(),
            attrs: EntryAttrs {
                kind: EntryType::Symlink,
                size: u64::MAX,
                used: 7,
                mode: 0o4755,
                nlink: 3,
                uid: 4_294_967_294,
                gid: 1,
                fileid: 1 << 63,
                fsid: 9,
                atime_ns: -5,
                mtime_ns: i64::MAX,
                ctime_ns: i64::MIN,
            },
            depth: 2,
            target: Some(b"../t".to_vec()),
            owner: Some(b"alice@example.com".to_vec()),
            group: Some(Vec::new()),
        };
        let mut out = vec![1, 2];
        encode_record(&mut out, &rec);
        out.push(99);
        let (back, used) = decode_entry(&out[2..]).unwrap();
        assert_eq!(back, rec);
        assert_eq!(out[2 + used], 99);
        let mut no_strings = rec.clone();
        no_strings.target = None;
        no_strings.owner = None;
        no_strings.group = None;
        for r in [&no_strings, &rec] {
            out.clear();
            encode_record(&mut out, r);
            assert_eq!(&decode_entry(&out).unwrap(), &(r.clone(), out.len()));
            assert!(decode_entry(&out[..out.len() - 1]).is_err());
        }
    }

    #[test]
    fn tree_order_puts_a_directory_before_its_subtree() {
        let mut paths: Vec<&[u8]> = vec![b"a-b", b"a/x", b"a", b"a/x/y", b"a.c", b"b"];
        paths.sort_by_key(|p| {
            let mut k = Vec::new();
            tree_order_key(p, &mut k);
            k
        });
        assert_eq!(
            paths,
            vec![&b"a"[..], b"a/x", b"a/x/y", b"a-b", b"a.c", b"b"]
        );
    }

    proptest::proptest! {
        #[test]
        fn keyed_rows_order_as_their_key_then_payload(
            a in proptest::collection::vec(0u8..4, 0..20),
            b in proptest::collection::vec(0u8..4, 0..20),
            pa in proptest::collection::vec(0u8..3, 0..3),
            pb in proptest::collection::vec(0u8..3, 0..3),
        ) {
            let row = |k: &[u8], p: &[u8]| {
                let mut r = KeyedRow::with_key(k, p.len());
                r.payload_mut().extend_from_slice(p);
                r
            };
            let (x, y) = (row(&a, &pa), row(&b, &pb));
            proptest::prop_assert_eq!(x.cmp(&y), (&a, &pa).cmp(&(&b, &pb)));
        }
    }

    #[test]
    fn keyed_rows_round_trip_and_order_by_key_first() {
        let mut a = KeyedRow::with_key(b"k1", 4);
        a.payload_mut().extend_from_slice(b"zz");
        let mut b = KeyedRow::with_key(b"k2", 4);
        b.payload_mut().extend_from_slice(b"aa");
        assert!(a < b);
        let mut disk = Vec::new();
        a.write_to(&mut disk);
        b.write_to(&mut disk);
        let (a2, n) = KeyedRow::read_from(&disk).unwrap();
        let (b2, m) = KeyedRow::read_from(&disk[n..]).unwrap();
        assert_eq!((a2.key(), a2.payload()), (&b"k1"[..], &b"zz"[..]));
        assert_eq!(b2, b);
        assert_eq!(n + m, disk.len());
        assert!(KeyedRow::read_from(&disk[..n - 1]).is_none());
    }
}
