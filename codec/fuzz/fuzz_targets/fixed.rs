#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::FixedLengthFrameDecoder;

fuzz_target!(|data: &[u8]| {
    let [a, rest @ ..] = data else { return };
    let n = 1 + (*a as usize % 64);
    common::drive(FixedLengthFrameDecoder::new(n).unwrap(), rest, n);
});
