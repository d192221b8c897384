//! The port mapper, version 2 (RFC 1833 section 3): how a client finds the TCP port of the
//! MOUNT (and, where it is not 2049, the NFS) program.

use crate::xdr::{XdrDecode, XdrEncode, XdrReader, XdrResult, XdrWriter};

pub const PMAP_PROGRAM: u32 = 100000;
pub const PMAP_V2: u32 = 2;
/// The port mapper's well-known port.
pub const PMAP_PORT: u16 = 111;

pub const PMAPPROC_NULL: u32 = 0;
pub const PMAPPROC_GETPORT: u32 = 3;

pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

/// `mapping`: a program, version and protocol, and the port it is registered on. GETPORT's
/// argument (with `port` ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    pub prot: u32,
    pub port: u32,
}

impl XdrEncode for Mapping {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.prog)
            .u32(self.vers)
            .u32(self.prot)
            .u32(self.port);
    }
}

impl<'a> XdrDecode<'a> for Mapping {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(Mapping {
            prog: r.u32()?,
            vers: r.u32()?,
            prot: r.u32()?,
            port: r.u32()?,
        })
    }
}

/// GETPORT's result: the port, 0 when the program is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetportReply {
    pub port: u32,
}

impl GetportReply {
    /// The port as a usable TCP/UDP port: None when the program is not registered (0) or the
    /// server sent a value that is not a port.
    pub fn port(&self) -> Option<u16> {
        match u16::try_from(self.port) {
            Ok(0) | Err(_) => None,
            Ok(p) => Some(p),
        }
    }
}

impl XdrEncode for GetportReply {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.port);
    }
}

impl<'a> XdrDecode<'a> for GetportReply {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(GetportReply { port: r.u32()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::XdrError;

    #[test]
    fn getport_args_layout() {
        let m = Mapping {
            prog: 100005,
            vers: 3,
            prot: IPPROTO_TCP,
            port: 0,
        };
        #[rustfmt::skip]
        let expected = [
            0, 1, 0x86, 0xa5, // 100005
            0, 0, 0, 3,
            0, 0, 0, 6,
            0, 0, 0, 0,
        ];
        assert_eq!(m.to_xdr(), expected);
        assert_eq!(Mapping::from_xdr(&expected).unwrap(), m);
        assert!(matches!(
            Mapping::from_xdr(&expected[..15]),
            Err(XdrError::Truncated { .. })
        ));
    }

    #[test]
    fn getport_result() {
        let r = GetportReply::from_xdr(&[0, 0, 0x02, 0x0b]).unwrap();
        assert_eq!(r.port, 523);
        assert_eq!(r.port(), Some(523));
        assert_eq!(r.to_xdr(), [0, 0, 2, 11]);
        assert_eq!(GetportReply::from_xdr(&[0; 4]).unwrap().port(), None);
        assert_eq!(
            GetportReply::from_xdr(&[0, 1, 0, 0]).unwrap().port(),
            None,
            "65536 is not a port"
        );
        assert_eq!(
            GetportReply::from_xdr(&[0, 0, 0, 1, 0]),
            Err(XdrError::TrailingBytes(1))
        );
    }
}
