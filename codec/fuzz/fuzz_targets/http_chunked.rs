#![no_main]
// The chunked transfer coding, through the request decoder: a valid head
// that announces a chunked body, then the input as the body. No panic, no
// part without consuming input, no more buffered than a size line or the
// trailers' limit.
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::http::{HttpRequestDecoder, DEFAULT_MAX_TRAILERS};

const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else { return };
    let mut input = vec![step];
    input.extend_from_slice(HEAD);
    input.extend_from_slice(body);
    common::drive(HttpRequestDecoder::new(), &input, DEFAULT_MAX_TRAILERS + HEAD.len());
});
