#![no_main]
//! ACCESS3res from a server.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs3::AccessReply;

fuzz_target!(|data: &[u8]| {
    let strict = AccessReply::decode_result(data);
    let client = AccessReply::decode(data);
    // A result the strict decoder accepts is accepted the same way on the client path.
    if let Ok(Ok(ok)) = strict {
        assert_eq!(client, Ok(ok));
    }
});
