#![no_main]
//! FSSTAT3res from a server.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs3::FsstatReply;

fuzz_target!(|data: &[u8]| {
    let strict = FsstatReply::decode_result(data);
    let client = FsstatReply::decode(data);
    // A result the strict decoder accepts is accepted the same way on the client path.
    if let Ok(Ok(ok)) = strict {
        assert_eq!(client, Ok(ok));
    }
});
