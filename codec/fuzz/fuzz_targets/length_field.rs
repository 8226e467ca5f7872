#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use weft_codec::{ByteOrder, LengthFieldBasedFrameDecoder};

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the decoder's options.
    let [a, b, rest @ ..] = data else { return };
    let lens = [1usize, 2, 3, 4, 8];
    let dec = LengthFieldBasedFrameDecoder::builder()
        .max_frame_length(512)
        .length_field_offset((*a & 3) as usize)
        .length_field_length(lens[(*a >> 2) as usize % 5])
        .length_adjustment((*b as i8) as i64)
        .initial_bytes_to_strip((*b & 7) as usize)
        .fail_fast(*a & 0x40 != 0)
        .byte_order(if *a & 0x80 != 0 { ByteOrder::LittleEndian } else { ByteOrder::BigEndian })
        .build()
        .unwrap();
    common::drive(dec, rest, 512);
});
