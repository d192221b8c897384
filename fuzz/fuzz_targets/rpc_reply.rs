#![no_main]
//! ONC-RPC REPLY header from a server.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::msg::Reply;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = Reply::decode(data) {
        if let Ok(body) = reply.outcome {
            assert!(body.len() <= data.len());
        }
    }
});
