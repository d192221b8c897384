//! The entry record: one per file system object, shared by every output of the project
//! (`ls --json`, `scan` NDJSON/CSV, the SQLite database, `mock-nfsd --print-listing`).
//!
//! Paths are bytes: NFS names need not be UTF-8. Where a path is not valid UTF-8, `path` holds a
//! lossy rendering and `path_b64` the exact bytes (base64), so nothing is lost.

use base64::Engine as _;
use std::fmt;

/// The kind of object, as `fattr3.type` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryType {
    File,
    Dir,
    Symlink,
    Block,
    Char,
    Fifo,
    Socket,
    /// Not known: `--mode names` lists names without attributes where it can.
    Unknown,
}

impl EntryType {
    pub const ALL: [EntryType; 8] = [
        EntryType::File,
        EntryType::Dir,
        EntryType::Symlink,
        EntryType::Block,
        EntryType::Char,
        EntryType::Fifo,
        EntryType::Socket,
        EntryType::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::File => "file",
            EntryType::Dir => "dir",
            EntryType::Symlink => "symlink",
            EntryType::Block => "block",
            EntryType::Char => "char",
            EntryType::Fifo => "fifo",
            EntryType::Socket => "socket",
            EntryType::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EntryType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The character `ls -l` shows for this type.
    pub fn ls_char(self) -> char {
        match self {
            EntryType::File => '-',
            EntryType::Dir => 'd',
            EntryType::Symlink => 'l',
            EntryType::Block => 'b',
            EntryType::Char => 'c',
            EntryType::Fifo => 'p',
            EntryType::Socket => 's',
            EntryType::Unknown => '?',
        }
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Attributes of one entry, independent of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAttrs {
    pub kind: EntryType,
    pub size: u64,
    pub used: u64,
    /// The 12 permission bits (setuid, setgid, sticky, rwx for user, group, other).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub fileid: u64,
    pub fsid: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl EntryAttrs {
    /// What `--mode names` knows of an entry it did not look up: its fileid, nothing else.
    pub fn names_only(fileid: u64) -> Self {
        EntryAttrs {
            kind: EntryType::Unknown,
            size: 0,
            used: 0,
            mode: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            fileid,
            fsid: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }
}

/// One entry as every output writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Path relative to the listed or scanned root ("." for the root), as exact bytes.
    pub path: Vec<u8>,
    pub attrs: EntryAttrs,
    pub depth: u32,
    /// Symlink target, where it was read (`--readlink`).
    pub target: Option<Vec<u8>>,
    /// The owner and group names an NFSv4 server sent where they are not numbers
    /// (`alice@example.com`): `attrs.uid` / `attrs.gid` then hold the `--idmap` id, or
    /// 65534 (nobody, as a kernel mount shows them). `None` over v3 and for numeric owners.
    pub owner: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
}

/// Column names, in output order (CSV header, documentation).
pub const COLUMNS: [&str; 19] = [
    "path",
    "type",
    "size",
    "used",
    "mode",
    "nlink",
    "uid",
    "gid",
    "fileid",
    "fsid",
    "atime_ns",
    "mtime_ns",
    "ctime_ns",
    "depth",
    "path_b64",
    "target",
    "target_b64",
    "owner",
    "group",
];

/// Appends `bytes` as the contents of a JSON string (no quotes): lossy UTF-8, escaped.
pub fn json_escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fast path, nearly every name: valid UTF-8 with nothing to escape is copied as it is.
    if !bytes
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
        && std::str::from_utf8(bytes).is_ok()
    {
        out.extend_from_slice(bytes);
        return;
    }
    let lossy = String::from_utf8_lossy(bytes);
    for &b in lossy.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

fn push_num<N: itoa::Integer>(out: &mut Vec<u8>, key: &[u8], n: N) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A borrowed entry record: what the walker emits on the hot path without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub path: &'a [u8],
    pub attrs: &'a EntryAttrs,
    pub depth: u32,
    pub target: Option<&'a [u8]>,
    /// See [`EntryRecord::owner`].
    pub owner: Option<&'a [u8]>,
    pub group: Option<&'a [u8]>,
}

impl EntryRef<'_> {
    pub fn to_owned(&self) -> EntryRecord {
        EntryRecord {
            path: self.path.to_vec(),
            attrs: *self.attrs,
            depth: self.depth,
            target: self.target.map(<[u8]>::to_vec),
            owner: self.owner.map(<[u8]>::to_vec),
            group: self.group.map(<[u8]>::to_vec),
        }
    }

    /// Appends the record as one NDJSON line (with the trailing newline).
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        let a = &self.attrs;
        out.extend_from_slice(b"{\"path\":\"");
        json_escape_into(out, self.path);
        out.extend_from_slice(b"\",\"type\":\"");
        out.extend_from_slice(a.kind.as_str().as_bytes());
        out.push(b'"');
        push_num(out, b",\"size\":", a.size);
        push_num(out, b",\"used\":", a.used);
        push_num(out, b",\"mode\":", a.mode);
        push_num(out, b",\"nlink\":", a.nlink);
        push_num(out, b",\"uid\":", a.uid);
        push_num(out, b",\"gid\":", a.gid);
        push_num(out, b",\"fileid\":", a.fileid);
        push_num(out, b",\"fsid\":", a.fsid);
        push_num(out, b",\"atime_ns\":", a.atime_ns);
        push_num(out, b",\"mtime_ns\":", a.mtime_ns);
        push_num(out, b",\"ctime_ns\":", a.ctime_ns);
        push_num(out, b",\"depth\":", self.depth);
        if std::str::from_utf8(self.path).is_err() {
            out.extend_from_slice(b",\"path_b64\":\"");
            out.extend_from_slice(b64(self.path).as_bytes());
            out.push(b'"');
        }
        if let Some(t) = self.target {
            out.extend_from_slice(b",\"target\":\"");
            json_escape_into(out, t);
            out.push(b'"');
            if std::str::from_utf8(t).is_err() {
                out.extend_from_slice(b",\"target_b64\":\"");
                out.extend_from_slice(b64(t).as_bytes());
                out.push(b'"');
            }
        }
        // Only where there is a name: v3 scans and numeric owners have none, as they have
        // no target field where nothing was read.
        for (key, value) in [
            (&b",\"owner\":\""[..], self.owner),
            (b",\"group\":\"", self.group),
        ] {
            if let Some(v) = value {
                out.extend_from_slice(key);
                json_escape_into(out, v);
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// Appends the record as one CSV row (RFC 4180), columns as in [`COLUMNS`].
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        let a = &self.attrs;
        csv_field(out, &String::from_utf8_lossy(self.path));
        out.push(b',');
        out.extend_from_slice(a.kind.as_str().as_bytes());
        for n in [
            a.size,
            a.used,
            a.mode as u64,
            a.nlink as u64,
            a.uid as u64,
            a.gid as u64,
        ] {
            push_num(out, b",", n);
        }
        push_num(out, b",", a.fileid);
        push_num(out, b",", a.fsid);
        for n in [a.atime_ns, a.mtime_ns, a.ctime_ns] {
            push_num(out, b",", n);
        }
        push_num(out, b",", self.depth);
        out.push(b',');
        if std::str::from_utf8(self.path).is_err() {
            out.extend_from_slice(b64(self.path).as_bytes());
        }
        out.push(b',');
        if let Some(t) = self.target {
            csv_field(out, &String::from_utf8_lossy(t));
        }
        out.push(b',');
        if let Some(t) = self.target {
            if std::str::from_utf8(t).is_err() {
                out.extend_from_slice(b64(t).as_bytes());
            }
        }
        for value in [self.owner, self.group] {
            out.push(b',');
            if let Some(v) = value {
                csv_field(out, &String::from_utf8_lossy(v));
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Which content fields a scan writes (`--checksum`, `--file-type`): each output carries them
/// after the record's own fields, for every entry (`null` where there is no value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentFields {
    pub checksum: bool,
    pub mime: bool,
}

impl ContentFields {
    pub fn any(self) -> bool {
        self.checksum || self.mime
    }

    /// The CSV columns these fields add, in order.
    pub fn columns(self) -> impl Iterator<Item = &'static str> {
        [(self.checksum, "checksum"), (self.mime, "mime")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
    }
}

/// What reading a regular file found: its checksum (`blake3:<hex>`) and its MIME type. `None`
/// where there is none (not a regular file, unknown type, skipped, changed while read, error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryContent<'a> {
    pub checksum: Option<&'a str>,
    pub mime: Option<&'a str>,
}

impl EntryRef<'_> {
    /// [`EntryRef::write_ndjson`] with the content fields `fields` added.
    pub fn write_ndjson_content(
        &self,
        out: &mut Vec<u8>,
        fields: ContentFields,
        content: &EntryContent<'_>,
    ) {
        self.write_ndjson(out);
        // Reopen the object: drop the "}\n" just written.
        out.truncate(out.len() - 2);
        for (on, key, value) in [
            (fields.checksum, &b",\"checksum\":"[..], content.checksum),
            (fields.mime, b",\"mime\":", content.mime),
        ] {
            if !on {
                continue;
            }
            out.extend_from_slice(key);
            match value {
                Some(v) => {
                    out.push(b'"');
                    json_escape_into(out, v.as_bytes());
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// [`EntryRef::write_csv`] with the content columns of `fields` added (empty where none).
    pub fn write_csv_content(
        &self,
        out: &mut Vec<u8>,
        fields: ContentFields,
        content: &EntryContent<'_>,
    ) {
        self.write_csv(out);
        out.truncate(out.len() - 2);
        for (on, value) in [
            (fields.checksum, content.checksum),
            (fields.mime, content.mime),
        ] {
            if on {
                out.push(b',');
                if let Some(v) = value {
                    csv_field(out, v);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The CSV header line with the content columns of `fields`.
pub fn csv_header_content(fields: ContentFields) -> String {
    let mut s = COLUMNS.join(",");
    for c in fields.columns() {
        s.push(',');
        s.push_str(c);
    }
    s.push_str("\r\n");
    s
}

impl EntryRecord {
    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            path: &self.path,
            attrs: &self.attrs,
            depth: self.depth,
            target: self.target.as_deref(),
            owner: self.owner.as_deref(),
            group: self.group.as_deref(),
        }
    }

    /// Appends the record as one NDJSON line (with the trailing newline).
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        self.as_ref().write_ndjson(out)
    }

    /// Appends the record as one CSV row (RFC 4180), columns as in [`COLUMNS`].
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        self.as_ref().write_csv(out)
    }

    /// Parses one NDJSON line written by [`EntryRecord::write_ndjson`]; exact path bytes are
    /// recovered from `path_b64` where present.
    pub fn from_json(line: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        Self::from_json_value(&v)
    }

    /// [`EntryRecord::from_json`] of a line already parsed (whose content fields the caller
    /// may want too: see [`content_of_json`]).
    pub fn from_json_value(v: &serde_json::Value) -> Result<Self, String> {
        let num = |k: &str| -> Result<i64, String> {
            v.get(k)
                .and_then(|x| x.as_i64().or_else(|| x.as_u64().map(|u| u as i64)))
                .ok_or_else(|| format!("missing or non-numeric field `{k}`"))
        };
        let unum = |k: &str| -> Result<u64, String> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("missing or non-numeric field `{k}`"))
        };
        let bytes_of = |k: &str, k64: &str| -> Result<Option<Vec<u8>>, String> {
            if let Some(s) = v.get(k64).and_then(|x| x.as_str()) {
                return base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
            Ok(v.get(k)
                .and_then(|x| x.as_str())
                .map(|s| s.as_bytes().to_vec()))
        };
        let kind_str = v
            .get("type")
            .and_then(|x| x.as_str())
            .ok_or("missing field `type`")?;
        Ok(EntryRecord {
            path: bytes_of("path", "path_b64")?.ok_or("missing field `path`")?,
            attrs: EntryAttrs {
                kind: EntryType::parse(kind_str).ok_or_else(|| format!("bad type {kind_str}"))?,
                size: unum("size")?,
                used: unum("used")?,
                mode: unum("mode")? as u32,
                nlink: unum("nlink")? as u32,
                uid: unum("uid")? as u32,
                gid: unum("gid")? as u32,
                fileid: unum("fileid")?,
                fsid: unum("fsid")?,
                atime_ns: num("atime_ns")?,
                mtime_ns: num("mtime_ns")?,
                ctime_ns: num("ctime_ns")?,
            },
            depth: unum("depth")? as u32,
            target: bytes_of("target", "target_b64")?,
            owner: bytes_of("owner", "")?,
            group: bytes_of("group", "")?,
        })
    }
}

/// The content fields of a parsed NDJSON record (absent or null: none).
pub fn content_of_json(v: &serde_json::Value) -> EntryContent<'_> {
    EntryContent {
        checksum: v.get("checksum").and_then(|x| x.as_str()),
        mime: v.get("mime").and_then(|x| x.as_str()),
    }
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut s = COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Joins a parent path and a child name ("." is the root, so its children have no prefix).
pub fn join_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent == b"." || parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &[u8]) -> EntryRecord {
        EntryRecord {
            path: path.to_vec(),
            attrs: EntryAttrs {
                kind: EntryType::File,
                size: 1 << 40,
                used: 4096,
                mode: 0o4755,
                nlink: 2,
                uid: 4294967294,
                gid: 0,
                fileid: u64::MAX,
                fsid: 77,
                atime_ns: 0,
                mtime_ns: 2_147_483_648_000_000_000,
                ctime_ns: 4_102_444_800_123_456_789,
            },
            depth: 3,
            target: None,
            owner: None,
            group: None,
        }
    }

    #[test]
    fn ndjson_round_trips_including_invalid_utf8() {
        for path in [
            &b"a/b c/\xc3\xa9t\xc3\xa9"[..],
            b"x/\n\t\"\\\x01",
            b"bad\xff\xfename",
        ] {
            let mut rec = sample(path);
            rec.target = Some(b"../t\xff".to_vec());
            let mut line = Vec::new();
            rec.write_ndjson(&mut line);
            assert_eq!(line.last(), Some(&b'\n'));
            let text = std::str::from_utf8(&line).unwrap();
            assert_eq!(text.matches('\n').count(), 1, "one line per record");
            assert_eq!(EntryRecord::from_json(text.trim_end()).unwrap(), rec);
            assert_eq!(
                text.contains("path_b64"),
                std::str::from_utf8(path).is_err()
            );
        }
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        let mut out = Vec::new();
        sample(b"a,\"b\"\nc").write_csv(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("\"a,\"\"b\"\"\nc\",file,1099511627776,4096,2541,"));
        assert!(s.ends_with(",,,\r\n"));
        assert_eq!(csv_header().split(',').count(), COLUMNS.len());
    }

    #[test]
    fn content_fields_extend_ndjson_and_csv() {
        let rec = sample(b"dir/f,1");
        let both = ContentFields {
            checksum: true,
            mime: true,
        };
        let content = EntryContent {
            checksum: Some("blake3:00ff"),
            mime: None,
        };
        let mut line = Vec::new();
        rec.as_ref().write_ndjson_content(&mut line, both, &content);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["checksum"], "blake3:00ff");
        assert!(v["mime"].is_null());
        assert_eq!(
            EntryRecord::from_json(std::str::from_utf8(&line).unwrap().trim_end()).unwrap(),
            rec
        );
        let only_mime = ContentFields {
            checksum: false,
            mime: true,
        };
        let mut line = Vec::new();
        let png = EntryContent {
            checksum: None,
            mime: Some("image/png"),
        };
        rec.as_ref()
            .write_ndjson_content(&mut line, only_mime, &png);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["mime"], "image/png");
        assert!(v.get("checksum").is_none());

        let mut row = Vec::new();
        rec.as_ref().write_csv_content(&mut row, both, &content);
        let row = String::from_utf8(row).unwrap();
        assert!(row.ends_with(",,,blake3:00ff,\r\n"), "{row}");
        let header = csv_header_content(both);
        assert!(header.ends_with("target_b64,owner,group,checksum,mime\r\n"));
        assert_eq!(csv_header_content(ContentFields::default()), csv_header());
    }

    /// NFSv4 owner names are written where there are some, read back exactly, and absent
    /// (not null) where there are none, so v3 lines are unchanged.
    #[test]
    fn owner_names_round_trip_and_are_absent_when_none() {
        let mut rec = sample(b"d/f");
        rec.owner = Some(b"alice@example.com".to_vec());
        rec.group = Some(b"staff \"x\"@example.com".to_vec());
        let mut line = Vec::new();
        rec.write_ndjson(&mut line);
        let text = std::str::from_utf8(&line).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["owner"], "alice@example.com");
        assert_eq!(v["group"], "staff \"x\"@example.com");
        assert_eq!(EntryRecord::from_json(text.trim_end()).unwrap(), rec);
        let mut row = Vec::new();
        rec.write_csv(&mut row);
        let row = String::from_utf8(row).unwrap();
        assert!(
            row.ends_with(",,,alice@example.com,\"staff \"\"x\"\"@example.com\"\r\n"),
            "{row}"
        );
        rec.owner = None;
        rec.group = None;
        let mut line = Vec::new();
        rec.write_ndjson(&mut line);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(!text.contains("owner") && !text.contains("group"), "{text}");
        assert_eq!(EntryRecord::from_json(text.trim_end()).unwrap(), rec);
    }

    #[test]
    fn join_path_treats_dot_as_root() {
        assert_eq!(join_path(b".", b"a"), b"a");
        assert_eq!(join_path(b"a", b"b"), b"a/b");
    }
}
