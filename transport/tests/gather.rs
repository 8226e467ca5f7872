//! Gathered writes: random slices and composites, more than IOV_MAX chunks,
//! and partial writes forced by a small send buffer.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes};
use tokio::io::AsyncReadExt;
use weft_core::{CompositeBytes, Msg};
use weft_transport::{Bootstrap, ChannelOptions};

/// Writes `msgs` from a weft client to a plain tokio peer; returns what the
/// peer read.
async fn send_all(msgs: Vec<Msg>, send_buffer: Option<usize>) -> Vec<u8> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut v = Vec::new();
        s.read_to_end(&mut v).await.unwrap();
        v
    });
    let mut b = Bootstrap::new();
    if let Some(n) = send_buffer {
        b = b.options(ChannelOptions::new().send_buffer_size(n));
    }
    let ch = b.connect(addr).await.unwrap();
    let mut last = None;
    for m in msgs {
        last = Some(ch.write_with_promise(m));
    }
    ch.flush();
    if let Some(l) = last {
        l.await.unwrap();
    }
    ch.close().await.unwrap();
    reader.await.unwrap()
}

fn random_messages(seed: u64, total: usize) -> (Vec<Msg>, Vec<u8>) {
    let data = random_bytes(seed, total);
    let all = Bytes::from(data.clone());
    let sizes = random_bytes(seed + 1, total);
    let mut msgs = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < total {
        let len = (1 + sizes[i] as usize * 37).min(total - pos);
        let piece = all.slice(pos..pos + len);
        if i % 3 == 0 && len > 1 {
            // A two-part composite of the same bytes, by reference.
            let mut c = CompositeBytes::new();
            c.push(piece.slice(..len / 2));
            c.push(piece.slice(len / 2..));
            msgs.push(Msg::from(c));
        } else {
            msgs.push(Msg::from(piece));
        }
        pos += len;
        i += 1;
    }
    (msgs, data)
}

#[tokio::test]
async fn random_slices_and_composites_total_1_mib() {
    bounded(async {
        let (msgs, want) = random_messages(3, 1024 * 1024);
        let got = send_all(msgs, None).await;
        assert!(got == want, "content differs");
    })
    .await;
}

#[tokio::test]
async fn small_send_buffer_forces_partial_writes_without_corruption() {
    bounded(async {
        let (msgs, want) = random_messages(4, 1024 * 1024);
        let got = send_all(msgs, Some(4096)).await;
        assert!(got == want, "content differs");
    })
    .await;
}

#[tokio::test]
async fn composite_of_more_than_iov_max_chunks() {
    bounded(async {
        let data = random_bytes(5, 3000 * 7);
        let all = Bytes::from(data.clone());
        let c: CompositeBytes = (0..3000).map(|i| all.slice(i * 7..i * 7 + 7)).collect();
        assert_eq!(c.chunk_count(), 3000);
        let got = send_all(vec![Msg::from(c)], Some(4096)).await;
        assert!(got == data, "content differs");
    })
    .await;
}

#[tokio::test]
async fn many_single_byte_messages() {
    bounded(async {
        let data = random_bytes(6, 5000);
        let msgs = data.iter().map(|b| Msg::from(vec![*b])).collect();
        let got = tokio::time::timeout(Duration::from_secs(30), send_all(msgs, None))
            .await
            .unwrap();
        assert_eq!(got, data);
    })
    .await;
}
