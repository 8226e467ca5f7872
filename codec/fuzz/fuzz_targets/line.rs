#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::LineBasedFrameDecoder;

fuzz_target!(|data: &[u8]| {
    let [a, rest @ ..] = data else { return };
    let dec = LineBasedFrameDecoder::new(128).strip_delimiter(*a & 1 != 0).fail_fast(*a & 2 != 0);
    common::drive(dec, rest, 128);
});
