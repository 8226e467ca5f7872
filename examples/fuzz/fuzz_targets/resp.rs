#![no_main]
// The RESP decoder over pieces of the input: no panic, every command
// consumes input, the buffer stays bounded by the protocol's limits.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_codec::{Cumulation, Decoder};
use weft_examples::resp::{RespDecoder, RespFrame, MAX_INLINE};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = 1 + step as usize;
    let mut dec = RespDecoder::default();
    let mut cum = Cumulation::new();
    for piece in rest.chunks(step) {
        cum.push(Bytes::copy_from_slice(piece));
        loop {
            let before = cum.len();
            match dec.decode(&mut cum).unwrap() {
                Some(RespFrame::Command(args)) => {
                    assert!(cum.len() < before, "a command without consuming input");
                    assert!(!args.is_empty());
                }
                Some(RespFrame::ProtocolError(_)) => break,
                None => break,
            }
        }
        // Only an incomplete request is kept: its count lines are bounded,
        // bulk payloads up to MAX_BULK may be pending (not reached here).
        assert!(cum.len() <= rest.len().max(MAX_INLINE + step));
    }
});
