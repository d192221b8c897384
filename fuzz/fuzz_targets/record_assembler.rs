#![no_main]
//! Record marking from a server's byte stream, arriving in arbitrary pieces.

use libfuzzer_sys::fuzz_target;
use nfs_proto::rpc::record::RecordAssembler;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the record limit and the size of the pieces the stream
    // arrives in; the rest is the stream.
    let (limit, piece, stream) = match data {
        [a, b, rest @ ..] => (*a as u32 * 16, (*b as usize % 32) + 1, rest),
        _ => return,
    };
    let mut asm = RecordAssembler::new(limit);
    for chunk in stream.chunks(piece) {
        asm.push(chunk);
        loop {
            match asm.next_record() {
                Ok(Some(record)) => assert!(record.len() <= limit as usize),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(asm.buffered() <= stream.len());
    }
});
