#![no_main]
// The chunked transfer coding, through the request decoder: a valid head
// that announces a chunked body, then the input as the body. The second
// byte picks small limits for size lines and trailers (8 to 263 bytes), so
// that lines of exactly the limit, one less and one more are reached (a
// trailer line of exactly the limit once made the decoder wait for ever).
// No panic, no part without consuming input, no more buffered than a size
// line or the trailers' limit.
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::http::HttpRequestDecoder;

const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let [step, limits, body @ ..] = data else { return };
    let line = 8 + usize::from(limits & 0x0f) * 16 + usize::from(limits >> 4);
    let trailers = 8 + usize::from(limits.rotate_left(3));
    let dec = HttpRequestDecoder::new().max_chunk_line(line).max_trailers(trailers);
    let mut input = vec![*step];
    input.extend_from_slice(HEAD);
    input.extend_from_slice(body);
    common::drive(dec, &input, trailers.max(line) + HEAD.len());
});
