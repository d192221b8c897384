#![no_main]
//! READ3res from a server (file contents, borrowed from the reply).

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::nfs3::{ReadReply, READ_DATA_BYTES_MAX};

fuzz_target!(|data: &[u8]| {
    let strict = ReadReply::decode_result(data);
    let client = ReadReply::decode(data);
    if let Ok(Ok(ok)) = strict {
        // The data is a slice of the input, never longer than the limit.
        assert!(ok.data.len() <= READ_DATA_BYTES_MAX as usize);
        assert!(ok.data.len() <= data.len());
        assert_eq!(client, Ok(ok));
    }
});
