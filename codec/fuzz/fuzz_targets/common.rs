// Shared by the fuzz targets: feed the input in pieces (the first byte picks
// the piece size), drive the decoder as DecoderHandler does, and check that
// it never panics, never yields without consuming, and keeps its buffer
// bounded.
use bytes::Bytes;
use weft_codec::{Cumulation, Decoder};

pub fn drive<D: Decoder>(mut dec: D, data: &[u8], bound: usize) {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = 1 + step as usize;
    let mut cum = Cumulation::new();
    for piece in rest.chunks(step) {
        cum.push(Bytes::copy_from_slice(piece));
        loop {
            let before = cum.len();
            let r = dec.decode(&mut cum);
            let consumed = before - cum.len();
            match r {
                Ok(Some(_)) => assert!(consumed > 0, "a frame without consuming input"),
                Ok(None) | Err(_) if consumed > 0 && !cum.is_empty() => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert!(cum.len() <= bound + step + 16, "buffer grew to {} bytes", cum.len());
    }
    let _ = dec.decode_eof(&mut cum);
}
