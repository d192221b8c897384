#![no_main]
//! COMPOUND4res from a server, read op by op as the client does; every operation result
//! decoder of the NFSv4 codec is reached from here.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs4::{CompoundReply, ResOk};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reply) = CompoundReply::decode(data) else {
        return;
    };
    while let Ok(Some(op)) = reply.next_op() {
        if let Ok(ResOk::Readdir(list)) = op.result {
            // A validated listing iterates exactly its counted entries.
            assert_eq!(list.entries().count(), list.entry_count);
        }
        if let Ok(ResOk::Getattr(a)) = op.result {
            let _ = a.fs_locations.describe();
        }
    }
});
