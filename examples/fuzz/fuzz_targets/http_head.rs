#![no_main]
// The HTTP request-head decoder over pieces of the input: no panic, heads
// consume input, nothing beyond the head limit is ever buffered.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_codec::{Cumulation, Decoder};
use weft_examples::http::{HttpEvent, RequestDecoder, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = 1 + step as usize;
    let mut dec = RequestDecoder::default();
    let mut cum = Cumulation::new();
    for piece in rest.chunks(step) {
        cum.push(Bytes::copy_from_slice(piece));
        loop {
            let before = cum.len();
            match dec.decode(&mut cum).unwrap() {
                Some(HttpEvent::Request(r)) => {
                    assert!(cum.len() < before, "a request without consuming input");
                    assert!(!r.method.is_empty());
                }
                Some(HttpEvent::Bad(code)) => {
                    assert!(matches!(code, 400 | 414 | 431));
                    break;
                }
                None => break,
            }
        }
        assert!(cum.len() <= MAX_HEAD + step, "buffered {} bytes", cum.len());
    }
});
