#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::DelimiterBasedFrameDecoder;

fuzz_target!(|data: &[u8]| {
    let [a, rest @ ..] = data else { return };
    let dec = DelimiterBasedFrameDecoder::new(128, [&b"\0"[..], &b"\r\n"[..], &b"--"[..]])
        .unwrap()
        .strip_delimiter(*a & 1 != 0)
        .fail_fast(*a & 2 != 0);
    common::drive(dec, rest, 128);
});
