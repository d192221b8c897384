#![no_main]
//! READDIRPLUS3res from a server: validation must agree with iteration.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs3::ReaddirPlusReply;

fuzz_target!(|data: &[u8]| {
    if let Ok(Ok(reply)) = ReaddirPlusReply::decode_result(data) {
        let mut n = 0;
        for e in reply.entries() {
            assert!(e.name.len() <= 4096);
            n += 1;
        }
        assert_eq!(n, reply.entry_count);
        assert_eq!(ReaddirPlusReply::decode(data), Ok(reply));
    }
});
