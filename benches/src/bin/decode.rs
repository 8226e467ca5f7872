//! Decode throughput of weft's LengthFieldBasedFrameDecoder beside
//! tokio-util's LengthDelimitedCodec on the same input, in one run.
//!
//! `cargo run --release -p weft-benches --bin decode`
//!
//! The input is a run of frames (a 4-byte big-endian length, then the
//! payload) arriving in 64 KiB reads, as from a socket. Both decoders are
//! driven the same way: each read is appended, then frames are decoded
//! until one is missing.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder as _, LengthDelimitedCodec};
use weft_codec::{Cumulation, Decoder, LengthFieldBasedFrameDecoder};

fn input(frame: usize, total: usize) -> Vec<Bytes> {
    let mut all = Vec::with_capacity(total + 4096);
    while all.len() < total {
        all.extend_from_slice(&(frame as u32).to_be_bytes());
        all.extend(std::iter::repeat_n(0x5a, frame));
    }
    let all = Bytes::from(all);
    (0..all.len())
        .step_by(64 * 1024)
        .map(|i| all.slice(i..(i + 64 * 1024).min(all.len())))
        .collect()
}

fn weft(reads: &[Bytes]) -> (usize, f64) {
    let mut dec = LengthFieldBasedFrameDecoder::builder()
        .max_frame_length(1 << 20)
        .initial_bytes_to_strip(4)
        .build()
        .unwrap();
    let mut cum = Cumulation::new();
    let mut frames = 0;
    let t = Instant::now();
    for r in reads {
        cum.push(r.clone());
        while let Some(f) = dec.decode(&mut cum).unwrap() {
            black_box(&f);
            frames += 1;
        }
    }
    (frames, t.elapsed().as_secs_f64())
}

fn tokio_util(reads: &[Bytes]) -> (usize, f64) {
    let mut dec = LengthDelimitedCodec::builder()
        .max_frame_length(1 << 20)
        .new_codec();
    let mut buf = BytesMut::new();
    let mut frames = 0;
    let t = Instant::now();
    for r in reads {
        buf.extend_from_slice(r);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            black_box(&f);
            frames += 1;
        }
    }
    (frames, t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    for frame in [64usize, 4096] {
        let reads = input(frame, 256 * 1024 * 1024);
        let bytes: usize = reads.iter().map(|r| r.len()).sum();
        let (mut w, mut k) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let (fw, tw) = weft(&reads);
            let (fk, tk) = tokio_util(&reads);
            assert_eq!(fw, fk, "both decoders see the same frames");
            w.push(fw as f64 / tw);
            k.push(fk as f64 / tk);
        }
        let (w, k) = (median(w), median(k));
        println!(
            "{frame} B frames: weft LengthFieldBasedFrameDecoder {:.1} M frames/s ({:.2} GB/s), tokio-util LengthDelimitedCodec {:.1} M frames/s; ratio {:.2}x",
            w / 1e6,
            w * (frame + 4) as f64 / 1e9,
            k / 1e6,
            w / k
        );
        let _ = bytes;
    }
}
