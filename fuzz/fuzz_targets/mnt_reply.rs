#![no_main]
//! MOUNT3 MNT result from a server.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::mount::MntReply;

fuzz_target!(|data: &[u8]| {
    if let Ok(Ok(reply)) = MntReply::decode_result(data) {
        assert!(reply.auth_flavors.len() <= 64);
    }
});
