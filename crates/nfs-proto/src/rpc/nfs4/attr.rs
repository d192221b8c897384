//! `fattr4` (RFC 8881 section 5): the attribute bitmap and the values it announces, for exactly
//! the attributes nfs-walker's record needs, plus the few a server must send to common clients
//! (libnfs reads `type size fileid mode numlinks owner owner_group space_used time_*`).
//!
//! Values follow the bitmap in bit order, so an attribute whose encoding we do not know makes
//! every later one unreadable: the decoder rejects masks holding such bits instead of guessing.

use super::status::Nfsstat4;
use crate::record::{EntryAttrs, EntryType};
use crate::xdr::{XdrError, XdrReader, XdrResult, XdrWriter};

/// Attribute numbers (RFC 8881 section 5.6 and 5.7).
pub mod fattr4 {
    pub const SUPPORTED_ATTRS: u32 = 0;
    pub const TYPE: u32 = 1;
    pub const FH_EXPIRE_TYPE: u32 = 2;
    pub const CHANGE: u32 = 3;
    pub const SIZE: u32 = 4;
    pub const LINK_SUPPORT: u32 = 5;
    pub const SYMLINK_SUPPORT: u32 = 6;
    pub const NAMED_ATTR: u32 = 7;
    pub const FSID: u32 = 8;
    pub const UNIQUE_HANDLES: u32 = 9;
    pub const LEASE_TIME: u32 = 10;
    pub const RDATTR_ERROR: u32 = 11;
    pub const FILEHANDLE: u32 = 19;
    pub const FILEID: u32 = 20;
    pub const FS_LOCATIONS: u32 = 24;
    pub const MAXNAME: u32 = 29;
    pub const MODE: u32 = 33;
    pub const NUMLINKS: u32 = 35;
    pub const OWNER: u32 = 36;
    pub const OWNER_GROUP: u32 = 37;
    pub const RAWDEV: u32 = 41;
    pub const SPACE_USED: u32 = 45;
    pub const TIME_ACCESS: u32 = 47;
    pub const TIME_METADATA: u32 = 52;
    pub const TIME_MODIFY: u32 = 53;
    pub const MOUNTED_ON_FILEID: u32 = 55;
}

/// The longest file handle (`NFS4_FHSIZE`).
pub const NFS4_FHSIZE: usize = 128;
/// Owner and group strings longer than this are rejected (`user@domain` fits many times over).
pub const OWNER_BYTES_MAX: u32 = 1024;
/// Bitmap words accepted on the wire; every attribute RFC 8881 and its successors define fits in
/// three, so more is hostile.
pub const BITMAP_WORDS_MAX: u32 = 8;
/// The largest `attrlist4` accepted: a handful of fixed fields, a handle, two owners and
/// referral locations.
pub const ATTRLIST_BYTES_MAX: u32 = 64 << 10;
/// `fs_locations4` bounds: locations, servers per location and path components.
pub const FS_LOCATIONS_MAX: u32 = 64;
pub const PATH_COMPONENTS_MAX: u32 = 256;
pub const COMPONENT_BYTES_MAX: u32 = 1024;

/// A set of attributes. Every attribute we know has a number below 64, so one word holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrMask(pub u64);

impl AttrMask {
    pub const EMPTY: AttrMask = AttrMask(0);

    /// The attributes whose values this module can encode and decode.
    pub const KNOWN: AttrMask = AttrMask::of(&[
        fattr4::SUPPORTED_ATTRS,
        fattr4::TYPE,
        fattr4::FH_EXPIRE_TYPE,
        fattr4::CHANGE,
        fattr4::SIZE,
        fattr4::LINK_SUPPORT,
        fattr4::SYMLINK_SUPPORT,
        fattr4::NAMED_ATTR,
        fattr4::FSID,
        fattr4::UNIQUE_HANDLES,
        fattr4::LEASE_TIME,
        fattr4::RDATTR_ERROR,
        fattr4::FILEHANDLE,
        fattr4::FILEID,
        fattr4::FS_LOCATIONS,
        fattr4::MAXNAME,
        fattr4::MODE,
        fattr4::NUMLINKS,
        fattr4::OWNER,
        fattr4::OWNER_GROUP,
        fattr4::RAWDEV,
        fattr4::SPACE_USED,
        fattr4::TIME_ACCESS,
        fattr4::TIME_METADATA,
        fattr4::TIME_MODIFY,
        fattr4::MOUNTED_ON_FILEID,
    ]);

    /// What the entry record needs: one listing page asks exactly these (plus the handle of
    /// each entry, to descend, and `rdattr_error`, so one unreadable entry fails alone).
    pub const RECORD: AttrMask = AttrMask::of(&[
        fattr4::TYPE,
        fattr4::SIZE,
        fattr4::FSID,
        fattr4::RDATTR_ERROR,
        fattr4::FILEHANDLE,
        fattr4::FILEID,
        fattr4::FS_LOCATIONS,
        fattr4::MODE,
        fattr4::NUMLINKS,
        fattr4::OWNER,
        fattr4::OWNER_GROUP,
        fattr4::SPACE_USED,
        fattr4::TIME_ACCESS,
        fattr4::TIME_METADATA,
        fattr4::TIME_MODIFY,
        fattr4::MOUNTED_ON_FILEID,
    ]);

    pub const fn of(bits: &[u32]) -> AttrMask {
        let mut m = 0u64;
        let mut i = 0;
        while i < bits.len() {
            m |= 1 << bits[i];
            i += 1;
        }
        AttrMask(m)
    }

    #[inline]
    pub const fn has(self, bit: u32) -> bool {
        bit < 64 && self.0 & (1 << bit) != 0
    }

    #[inline]
    pub const fn with(self, bit: u32) -> AttrMask {
        AttrMask(self.0 | 1 << bit)
    }

    #[inline]
    pub const fn and(self, other: AttrMask) -> AttrMask {
        AttrMask(self.0 & other.0)
    }

    #[inline]
    pub const fn without(self, other: AttrMask) -> AttrMask {
        AttrMask(self.0 & !other.0)
    }

    /// Encodes the mask as a `bitmap4` (no trailing zero words).
    pub fn encode(self, w: &mut XdrWriter<'_>) {
        let lo = self.0 as u32;
        let hi = (self.0 >> 32) as u32;
        if hi != 0 {
            w.u32(2).u32(lo).u32(hi);
        } else if lo != 0 {
            w.u32(1).u32(lo);
        } else {
            w.u32(0);
        }
    }

    /// Decodes a `bitmap4`. Returns the mask of bits 0..64 and whether any higher bit was set
    /// (a request may name attributes we do not know; a value list may not).
    pub fn decode(r: &mut XdrReader<'_>) -> XdrResult<(AttrMask, bool)> {
        let words = r.array_len(BITMAP_WORDS_MAX, 4)?;
        let mut mask = 0u64;
        let mut beyond = false;
        for i in 0..words {
            let word = r.u32()? as u64;
            match i {
                0 => mask |= word,
                1 => mask |= word << 32,
                _ => beyond |= word != 0,
            }
        }
        Ok((AttrMask(mask), beyond))
    }
}

/// `nfs_ftype4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FileType4 {
    #[default]
    Reg,
    Dir,
    Blk,
    Chr,
    Lnk,
    Sock,
    Fifo,
    /// A named attribute directory (never listed by READDIR of a normal directory).
    AttrDir,
    NamedAttr,
}

impl FileType4 {
    pub fn from_u32(v: u32) -> XdrResult<Self> {
        Ok(match v {
            1 => FileType4::Reg,
            2 => FileType4::Dir,
            3 => FileType4::Blk,
            4 => FileType4::Chr,
            5 => FileType4::Lnk,
            6 => FileType4::Sock,
            7 => FileType4::Fifo,
            8 => FileType4::AttrDir,
            9 => FileType4::NamedAttr,
            other => return Err(XdrError::BadDiscriminant(other)),
        })
    }

    pub fn as_u32(self) -> u32 {
        match self {
            FileType4::Reg => 1,
            FileType4::Dir => 2,
            FileType4::Blk => 3,
            FileType4::Chr => 4,
            FileType4::Lnk => 5,
            FileType4::Sock => 6,
            FileType4::Fifo => 7,
            FileType4::AttrDir => 8,
            FileType4::NamedAttr => 9,
        }
    }

    pub fn to_entry_type(self) -> EntryType {
        match self {
            FileType4::Reg | FileType4::NamedAttr => EntryType::File,
            FileType4::Dir | FileType4::AttrDir => EntryType::Dir,
            FileType4::Blk => EntryType::Block,
            FileType4::Chr => EntryType::Char,
            FileType4::Lnk => EntryType::Symlink,
            FileType4::Sock => EntryType::Socket,
            FileType4::Fifo => EntryType::Fifo,
        }
    }

    pub fn from_entry_type(t: EntryType) -> Option<Self> {
        Some(match t {
            EntryType::File => FileType4::Reg,
            EntryType::Dir => FileType4::Dir,
            EntryType::Block => FileType4::Blk,
            EntryType::Char => FileType4::Chr,
            EntryType::Symlink => FileType4::Lnk,
            EntryType::Socket => FileType4::Sock,
            EntryType::Fifo => FileType4::Fifo,
            EntryType::Unknown => return None,
        })
    }
}

/// `nfstime4`: signed seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NfsTime4 {
    pub seconds: i64,
    pub nseconds: u32,
}

impl NfsTime4 {
    /// Nanoseconds since the epoch, saturating at the ends of `i64` (about 292 years away).
    #[inline]
    pub fn to_ns(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nseconds as i64)
    }

    pub fn from_ns(ns: i64) -> Self {
        NfsTime4 {
            seconds: ns.div_euclid(1_000_000_000),
            nseconds: ns.rem_euclid(1_000_000_000) as u32,
        }
    }

    fn decode(r: &mut XdrReader<'_>) -> XdrResult<Self> {
        Ok(NfsTime4 {
            seconds: r.i64()?,
            nseconds: r.u32()?,
        })
    }

    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.i64(self.seconds).u32(self.nseconds);
    }
}

/// `fsid4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid4 {
    pub major: u64,
    pub minor: u64,
}

impl Fsid4 {
    /// One number for the record's `fsid` column, as Linux folds `fsid4` into `st_dev`.
    #[inline]
    pub fn folded(self) -> u64 {
        self.major ^ self.minor.rotate_left(32)
    }
}

/// `fs_locations4`, validated and kept as its wire bytes: referrals are rare, and all the walk
/// does with one is name it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsLocations<'a> {
    xdr: &'a [u8],
}

fn skip_pathname(r: &mut XdrReader<'_>) -> XdrResult<()> {
    let n = r.array_len(PATH_COMPONENTS_MAX, 4)?;
    for _ in 0..n {
        r.string(COMPONENT_BYTES_MAX)?;
    }
    Ok(())
}

fn write_pathname(out: &mut String, r: &mut XdrReader<'_>) -> XdrResult<()> {
    let n = r.array_len(PATH_COMPONENTS_MAX, 4)?;
    if n == 0 {
        out.push('/');
    }
    for _ in 0..n {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(r.string(COMPONENT_BYTES_MAX)?));
    }
    Ok(())
}

impl<'a> FsLocations<'a> {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let start = r.rest();
        let before = r.position();
        skip_pathname(r)?;
        let locations = r.array_len(FS_LOCATIONS_MAX, 8)?;
        for _ in 0..locations {
            let servers = r.array_len(FS_LOCATIONS_MAX, 4)?;
            for _ in 0..servers {
                r.string(COMPONENT_BYTES_MAX)?;
            }
            skip_pathname(r)?;
        }
        Ok(FsLocations {
            xdr: &start[..r.position() - before],
        })
    }

    /// Builds the wire form of one location: `fs_root`, then `server:/rootpath`.
    pub fn encode_one(w: &mut XdrWriter<'_>, fs_root: &[&[u8]], server: &[u8], rootpath: &[&[u8]]) {
        w.u32(fs_root.len() as u32);
        for c in fs_root {
            w.string(c);
        }
        w.u32(1).u32(1).string(server).u32(rootpath.len() as u32);
        for c in rootpath {
            w.string(c);
        }
    }

    /// Whether the list names any location (an empty list is no referral).
    pub fn is_empty(&self) -> bool {
        let mut r = XdrReader::new(self.xdr);
        skip_pathname(&mut r).is_err() || r.u32().map_or(true, |n| n == 0)
    }

    /// "server:/path, server2:/path" for error messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut r = XdrReader::new(self.xdr);
        let _ = (|| -> XdrResult<()> {
            skip_pathname(&mut r)?;
            let locations = r.array_len(FS_LOCATIONS_MAX, 8)?;
            for i in 0..locations {
                if i > 0 {
                    out.push_str(", ");
                }
                let servers = r.array_len(FS_LOCATIONS_MAX, 4)?;
                for j in 0..servers {
                    if j > 0 {
                        out.push('|');
                    }
                    out.push_str(&String::from_utf8_lossy(r.string(COMPONENT_BYTES_MAX)?));
                }
                out.push(':');
                write_pathname(&mut out, &mut r)?;
            }
            Ok(())
        })();
        out
    }

    pub fn as_xdr(&self) -> &'a [u8] {
        self.xdr
    }
}

/// The values of one `fattr4`, for the attributes in `mask`. Fields outside the mask hold their
/// defaults and mean nothing. Strings and the handle borrow from the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fattr4<'a> {
    pub mask: AttrMask,
    pub supported_attrs: AttrMask,
    pub ftype: FileType4,
    pub fh_expire_type: u32,
    pub change: u64,
    pub size: u64,
    pub link_support: bool,
    pub symlink_support: bool,
    pub named_attr: bool,
    pub fsid: Fsid4,
    pub unique_handles: bool,
    pub lease_time: u32,
    pub rdattr_error: Option<Nfsstat4>,
    pub filehandle: &'a [u8],
    pub fileid: u64,
    pub fs_locations: FsLocations<'a>,
    pub maxname: u32,
    pub mode: u32,
    pub numlinks: u32,
    pub owner: &'a [u8],
    pub owner_group: &'a [u8],
    /// `specdata4`: major, minor.
    pub rawdev: (u32, u32),
    pub space_used: u64,
    pub time_access: NfsTime4,
    pub time_metadata: NfsTime4,
    pub time_modify: NfsTime4,
    pub mounted_on_fileid: u64,
}

impl<'a> Fattr4<'a> {
    /// Decodes a whole `fattr4` (bitmap, then the values as one opaque, which must be consumed
    /// exactly).
    pub fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let (mask, beyond) = AttrMask::decode(r)?;
        let vals = r.opaque(ATTRLIST_BYTES_MAX)?;
        if beyond {
            return Err(XdrError::BadDiscriminant(64));
        }
        let unknown = mask.without(AttrMask::KNOWN);
        if unknown.0 != 0 {
            return Err(XdrError::BadDiscriminant(unknown.0.trailing_zeros()));
        }
        let mut v = XdrReader::new(vals);
        let mut a = Fattr4 {
            mask,
            ..Default::default()
        };
        let mut bits = mask.0;
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            match bit {
                fattr4::SUPPORTED_ATTRS => {
                    // Servers may announce attributes past bit 63; we only use ours.
                    a.supported_attrs = AttrMask::decode(&mut v)?.0;
                }
                fattr4::TYPE => a.ftype = FileType4::from_u32(v.u32()?)?,
                fattr4::FH_EXPIRE_TYPE => a.fh_expire_type = v.u32()?,
                fattr4::CHANGE => a.change = v.u64()?,
                fattr4::SIZE => a.size = v.u64()?,
                fattr4::LINK_SUPPORT => a.link_support = v.bool()?,
                fattr4::SYMLINK_SUPPORT => a.symlink_support = v.bool()?,
                fattr4::NAMED_ATTR => a.named_attr = v.bool()?,
                fattr4::FSID => {
                    a.fsid = Fsid4 {
                        major: v.u64()?,
                        minor: v.u64()?,
                    }
                }
                fattr4::UNIQUE_HANDLES => a.unique_handles = v.bool()?,
                fattr4::LEASE_TIME => a.lease_time = v.u32()?,
                fattr4::RDATTR_ERROR => a.rdattr_error = Some(Nfsstat4::from_u32(v.u32()?)),
                fattr4::FILEHANDLE => a.filehandle = v.opaque(NFS4_FHSIZE as u32)?,
                fattr4::FILEID => a.fileid = v.u64()?,
                fattr4::FS_LOCATIONS => a.fs_locations = FsLocations::decode(&mut v)?,
                fattr4::MAXNAME => a.maxname = v.u32()?,
                fattr4::MODE => a.mode = v.u32()?,
                fattr4::NUMLINKS => a.numlinks = v.u32()?,
                fattr4::OWNER => a.owner = v.string(OWNER_BYTES_MAX)?,
                fattr4::OWNER_GROUP => a.owner_group = v.string(OWNER_BYTES_MAX)?,
                fattr4::RAWDEV => a.rawdev = (v.u32()?, v.u32()?),
                fattr4::SPACE_USED => a.space_used = v.u64()?,
                fattr4::TIME_ACCESS => a.time_access = NfsTime4::decode(&mut v)?,
                fattr4::TIME_METADATA => a.time_metadata = NfsTime4::decode(&mut v)?,
                fattr4::TIME_MODIFY => a.time_modify = NfsTime4::decode(&mut v)?,
                fattr4::MOUNTED_ON_FILEID => a.mounted_on_fileid = v.u64()?,
                other => return Err(XdrError::BadDiscriminant(other)),
            }
        }
        v.finish()?;
        Ok(a)
    }

    /// Encodes the attributes of `self.mask` that this module knows (others are dropped from
    /// the mask written, as a server omits attributes it does not support).
    pub fn encode(&self, w: &mut XdrWriter<'_>) {
        let mask = self.mask.and(AttrMask::KNOWN);
        mask.encode(w);
        let len_at = w.len();
        w.u32(0);
        let mut bits = mask.0;
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            match bit {
                fattr4::SUPPORTED_ATTRS => self.supported_attrs.encode(w),
                fattr4::TYPE => {
                    w.u32(self.ftype.as_u32());
                }
                fattr4::FH_EXPIRE_TYPE => {
                    w.u32(self.fh_expire_type);
                }
                fattr4::CHANGE => {
                    w.u64(self.change);
                }
                fattr4::SIZE => {
                    w.u64(self.size);
                }
                fattr4::LINK_SUPPORT => {
                    w.bool(self.link_support);
                }
                fattr4::SYMLINK_SUPPORT => {
                    w.bool(self.symlink_support);
                }
                fattr4::NAMED_ATTR => {
                    w.bool(self.named_attr);
                }
                fattr4::FSID => {
                    w.u64(self.fsid.major).u64(self.fsid.minor);
                }
                fattr4::UNIQUE_HANDLES => {
                    w.bool(self.unique_handles);
                }
                fattr4::LEASE_TIME => {
                    w.u32(self.lease_time);
                }
                fattr4::RDATTR_ERROR => {
                    w.u32(self.rdattr_error.unwrap_or(Nfsstat4::Ok).as_u32());
                }
                fattr4::FILEHANDLE => {
                    w.opaque(self.filehandle);
                }
                fattr4::FILEID => {
                    w.u64(self.fileid);
                }
                fattr4::FS_LOCATIONS => {
                    if self.fs_locations.xdr.is_empty() {
                        // An empty fs_root and no locations.
                        w.u32(0).u32(0);
                    } else {
                        w.buffer().extend_from_slice(self.fs_locations.xdr);
                    }
                }
                fattr4::MAXNAME => {
                    w.u32(self.maxname);
                }
                fattr4::MODE => {
                    w.u32(self.mode);
                }
                fattr4::NUMLINKS => {
                    w.u32(self.numlinks);
                }
                fattr4::OWNER => {
                    w.string(self.owner);
                }
                fattr4::OWNER_GROUP => {
                    w.string(self.owner_group);
                }
                fattr4::RAWDEV => {
                    w.u32(self.rawdev.0).u32(self.rawdev.1);
                }
                fattr4::SPACE_USED => {
                    w.u64(self.space_used);
                }
                fattr4::TIME_ACCESS => self.time_access.encode(w),
                fattr4::TIME_METADATA => self.time_metadata.encode(w),
                fattr4::TIME_MODIFY => self.time_modify.encode(w),
                fattr4::MOUNTED_ON_FILEID => {
                    w.u64(self.mounted_on_fileid);
                }
                _ => {}
            }
        }
        let vals_len = (w.len() - len_at - 4) as u32;
        w.buffer()[len_at..len_at + 4].copy_from_slice(&vals_len.to_be_bytes());
    }

    /// The attributes as the entry record carries them, with the owner and group already
    /// turned into ids by the caller (see [`Owner`]). Mode keeps its 12 permission bits.
    pub fn to_entry_attrs(&self, uid: u32, gid: u32) -> EntryAttrs {
        EntryAttrs {
            kind: self.ftype.to_entry_type(),
            size: self.size,
            used: self.space_used,
            mode: self.mode & 0o7777,
            nlink: self.numlinks,
            uid,
            gid,
            fileid: self.fileid,
            fsid: self.fsid.folded(),
            atime_ns: self.time_access.to_ns(),
            mtime_ns: self.time_modify.to_ns(),
            ctime_ns: self.time_metadata.to_ns(),
        }
    }

    /// Whether this object is a referral: the server names other locations for it (RFC 8881
    /// section 11.5.6), so its contents are not here.
    pub fn is_referral(&self) -> bool {
        self.rdattr_error == Some(Nfsstat4::Moved)
            || (self.mask.has(fattr4::FS_LOCATIONS) && !self.fs_locations.is_empty())
    }

    /// Builds a value for `fs_locations` from bytes encoded by [`FsLocations::encode_one`].
    pub fn locations_from_xdr(xdr: &'a [u8]) -> XdrResult<FsLocations<'a>> {
        let mut r = XdrReader::new(xdr);
        let loc = FsLocations::decode(&mut r)?;
        r.finish()?;
        Ok(loc)
    }
}

/// What a listing's owner strings mean: `1000` is a uid, `alice@example.com` a name, which a
/// user's id map may turn into a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Id(u32),
    Name(&'a [u8]),
}

impl<'a> Owner<'a> {
    /// Reads an `owner`/`owner_group` string: all ASCII digits (and fitting in 32 bits) is an
    /// id, anything else a name.
    pub fn parse(s: &'a [u8]) -> Owner<'a> {
        if !s.is_empty() && s.len() <= 10 && s.iter().all(u8::is_ascii_digit) {
            let v = s.iter().fold(0u64, |v, d| v * 10 + (d - b'0') as u64);
            if v <= u32::MAX as u64 {
                return Owner::Id(v as u32);
            }
        }
        Owner::Name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_words_follow_bit_numbers() {
        let mut buf = Vec::new();
        AttrMask::of(&[fattr4::TYPE, fattr4::MODE]).encode(&mut XdrWriter::new(&mut buf));
        // two words: bit 1 in word 0, bit 33 (= 1 in word 1)
        assert_eq!(buf, [0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]);
        let (m, beyond) = AttrMask::decode(&mut XdrReader::new(&buf)).unwrap();
        assert_eq!(m, AttrMask::of(&[1, 33]));
        assert!(!beyond);
        let three = [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(AttrMask::decode(&mut XdrReader::new(&three)).unwrap().1);
    }

    #[rustfmt::skip]
    #[test]
    fn decodes_a_hand_built_fattr4() {
        // type, size, fileid, mode, owner "1000", time_modify
        let bytes: Vec<u8> = [
            &[0, 0, 0, 2][..],                     // two bitmap words
            &[0, 0x10, 0, 0x12],                   // bits 1 (type), 4 (size), 20 (fileid)
            &[0, 0x20, 0, 0x12],                   // bits 33 (mode), 36 (owner), 53 (time_modify)
            &[0, 0, 0, 44],                        // attrlist4 length
            &[0, 0, 0, 1],                         // NF4REG
            &[0, 0, 0, 0, 0, 0, 0x10, 0],          // size 4096
            &[0, 0, 0, 0, 0, 0, 0, 42],            // fileid 42
            &[0, 0, 0x01, 0xa4],                   // mode 0644
            &[0, 0, 0, 4], b"1000",                // owner
            &[0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00], // seconds 1700000000
            &[0, 0, 0, 7],                         // nanoseconds
        ]
        .concat();
        let mut r = XdrReader::new(&bytes);
        let a = Fattr4::decode(&mut r).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(a.ftype, FileType4::Reg);
        assert_eq!(a.size, 4096);
        assert_eq!(a.fileid, 42);
        assert_eq!(a.mode, 0o644);
        assert_eq!(a.owner, b"1000");
        assert_eq!(a.time_modify.to_ns(), 1_700_000_000_000_000_007);
        let mut again = Vec::new();
        a.encode(&mut XdrWriter::new(&mut again));
        assert_eq!(again, bytes);
    }

    #[test]
    fn unknown_bits_and_short_values_are_rejected() {
        // bit 12 (acl) is not ours: its size is unknown, so nothing after it can be read
        let bytes = [0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 4, 0, 0, 0, 0];
        assert_eq!(
            Fattr4::decode(&mut XdrReader::new(&bytes)),
            Err(XdrError::BadDiscriminant(12))
        );
        // size announced, 4 bytes given
        let bytes = [0, 0, 0, 1, 0, 0, 0, 0x10, 0, 0, 0, 4, 0, 0, 0, 0];
        assert!(Fattr4::decode(&mut XdrReader::new(&bytes)).is_err());
        // values longer than the mask needs
        let bytes = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            Fattr4::decode(&mut XdrReader::new(&bytes)),
            Err(XdrError::TrailingBytes(4))
        );
    }

    #[test]
    fn fs_locations_describe_the_referral() {
        let mut buf = Vec::new();
        FsLocations::encode_one(
            &mut XdrWriter::new(&mut buf),
            &[b"export", b"ref"],
            b"otherhost",
            &[b"vol", b"x"],
        );
        let loc = Fattr4::locations_from_xdr(&buf).unwrap();
        assert!(!loc.is_empty());
        assert_eq!(loc.describe(), "otherhost:/vol/x");
    }

    #[test]
    fn owners_numeric_or_named() {
        assert_eq!(Owner::parse(b"1000"), Owner::Id(1000));
        assert_eq!(Owner::parse(b"0"), Owner::Id(0));
        assert_eq!(Owner::parse(b"4294967295"), Owner::Id(u32::MAX));
        assert_eq!(Owner::parse(b"4294967296"), Owner::Name(b"4294967296"));
        assert_eq!(Owner::parse(b"alice@x"), Owner::Name(b"alice@x"));
        assert_eq!(Owner::parse(b""), Owner::Name(b""));
        assert_eq!(Owner::parse(b"-1"), Owner::Name(b"-1"));
    }

    #[test]
    fn times_before_the_epoch() {
        let t = NfsTime4::from_ns(-1);
        assert_eq!((t.seconds, t.nseconds), (-1, 999_999_999));
        assert_eq!(t.to_ns(), -1);
    }
}
