#![no_main]
//! READDIR3res from a server: validation must agree with iteration.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs3::ReaddirReply;

fuzz_target!(|data: &[u8]| {
    if let Ok(Ok(reply)) = ReaddirReply::decode_result(data) {
        assert_eq!(reply.entries().count(), reply.entry_count);
        assert_eq!(ReaddirReply::decode(data), Ok(reply));
    }
});
