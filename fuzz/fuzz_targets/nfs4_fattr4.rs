#![no_main]
//! One fattr4 from a server: what decodes re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs4::Fattr4;
use nfs_proto::xdr::{XdrReader, XdrWriter};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Fattr4::decode(&mut XdrReader::new(data)) {
        let mut again = Vec::new();
        a.encode(&mut XdrWriter::new(&mut again));
        let mut r2 = XdrReader::new(&again);
        assert_eq!(Fattr4::decode(&mut r2).map(|b| b.mask), Ok(a.mask));
    }
});
