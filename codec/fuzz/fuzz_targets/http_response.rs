#![no_main]
// The HTTP response decoder (the client side): the first byte picks the
// methods of the requests it answers (HEAD, CONNECT, GET), the rest is the
// input in pieces. No panic, no part without consuming input, nothing
// buffered past the head limit.
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::http::http::Method;
use weft_codec::http::{HttpResponseDecoder, DEFAULT_MAX_RESPONSE_HEAD};

fuzz_target!(|data: &[u8]| {
    let [methods, rest @ ..] = data else { return };
    let mut dec = HttpResponseDecoder::new();
    for i in 0..4 {
        dec.expect_response_to(match (methods >> (2 * i)) & 3 {
            0 => Method::HEAD,
            1 => Method::CONNECT,
            _ => Method::GET,
        });
    }
    common::drive(dec, rest, DEFAULT_MAX_RESPONSE_HEAD);
});
