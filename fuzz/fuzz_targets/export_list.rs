#![no_main]
//! MOUNT3 EXPORT result from a server.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::mount::ExportList;
use nfs_proto::xdr::XdrDecode;

fuzz_target!(|data: &[u8]| {
    let _ = ExportList::from_xdr(data);
});
