#![no_main]
// The HTTP request decoder: any bytes, any pieces. No panic, no part
// without consuming input, nothing buffered past the head limit.
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::http::{HttpRequestDecoder, DEFAULT_MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    common::drive(HttpRequestDecoder::new(), data, DEFAULT_MAX_HEAD);
});
