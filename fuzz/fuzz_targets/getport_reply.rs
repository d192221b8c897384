#![no_main]
//! PMAPPROC_GETPORT result from a port mapper.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::portmap::GetportReply;
use nfs_proto::xdr::XdrDecode;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = GetportReply::from_xdr(data) {
        let _ = r.port();
    }
});
