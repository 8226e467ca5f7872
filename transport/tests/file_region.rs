//! FileRegion over real sockets, in the manner of Netty's SocketFileRegionTest,
//! plus ordering with byte messages, truncation, and user messages.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes, Collect, TempFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{CompositeBytes, FileRegion, Msg};
use weft_transport::{Bootstrap, ChannelOptions, ServerBootstrap};

/// Client writes 1 KiB as bytes, an empty region, then a region from an
/// offset; the server checks every byte and the exact total.
async fn file_region_transfer(auto_read: bool, sendfile: bool) {
    let prefix_len = 1234usize;
    let suffix_len = 4321usize;
    let body = random_bytes(7, 10 * 1024 * 1024);
    let mut content = random_bytes(8, prefix_len);
    content.extend_from_slice(&body);
    content.extend_from_slice(&random_bytes(9, suffix_len));
    let file = TempFile::new(&content);
    let head = random_bytes(10, 1024);

    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let server = ServerBootstrap::new()
        .child_options(ChannelOptions::new().auto_read(auto_read))
        .child_handler(move |p| {
            let (c, done) = Collect::new(auto_read);
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(done);
            }
            p.add_last("collect", c)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();

    let client = Bootstrap::new()
        .options(
            ChannelOptions::new()
                .auto_read(auto_read)
                .sendfile(sendfile),
        )
        .connect(server.tcp_addr().unwrap())
        .await
        .unwrap();
    let f = Arc::new(std::fs::File::open(&file.path).unwrap());
    let w1 = client.write_and_flush(Bytes::from(head.clone()));
    let empty = FileRegion::new(f.clone(), 0, 0).unwrap();
    let w2 = client.write_and_flush(empty);
    let region = FileRegion::new(f.clone(), prefix_len as u64, body.len() as u64).unwrap();
    let w3 = client.write_and_flush(region);
    w1.await.unwrap();
    w2.await.unwrap();
    w3.await.unwrap();
    client.close().await.unwrap();

    let got = rx.await.unwrap().await.unwrap();
    assert_eq!(got.len(), head.len() + body.len(), "exact total");
    assert!(got[..head.len()] == head[..], "head bytes");
    assert!(got[head.len()..] == body[..], "file bytes");
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn file_region_auto_read() {
    bounded(file_region_transfer(true, true)).await;
}

#[tokio::test]
async fn file_region_auto_read_off() {
    bounded(file_region_transfer(false, true)).await;
}

#[tokio::test]
async fn file_region_streamed_when_sendfile_is_off() {
    bounded(file_region_transfer(true, false)).await;
}

#[tokio::test]
async fn writes_leave_in_order() {
    bounded(async {
        let file_data = random_bytes(21, 300_000);
        let file = TempFile::new(&file_data);
        let server = ServerBootstrap::new()
            .child_handler(|_| Ok(()))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer_addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).await.unwrap();
            v
        });
        let ch = Bootstrap::new().connect(peer_addr).await.unwrap();
        let a = Bytes::from_static(b"first;");
        let b = Bytes::from_static(b"second;");
        let c = Bytes::from_static(b"third;");
        let comp: CompositeBytes = [
            Bytes::from_static(b"comp-1;"),
            Bytes::from_static(b"comp-2;"),
        ]
        .into_iter()
        .collect();
        ch.write(a.clone());
        ch.write(b.clone());
        ch.write(FileRegion::open(&file.path).unwrap());
        ch.write(c.clone());
        let last = ch.write_and_flush(comp);
        last.await.unwrap();
        ch.close().await.unwrap();
        let got = reader.await.unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&a);
        want.extend_from_slice(&b);
        want.extend_from_slice(&file_data);
        want.extend_from_slice(&c);
        want.extend_from_slice(b"comp-1;comp-2;");
        assert!(
            got == want,
            "order or content differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
        let _ = addr;
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn truncated_file_fails_the_write_without_spinning() {
    bounded(async {
        let data = random_bytes(31, 64 * 1024 * 1024);
        let file = TempFile::new(&data);
        let path = file.path.clone();
        // Server: sends the file to each client; the write's outcome is reported.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                let tx = tx.clone();
                let path = path.clone();
                p.add_last(
                    "send",
                    weft_core::from_fn(move |ctx: &mut weft_core::Context<'_>, m: Bytes| {
                        if &m[..] == b"file" {
                            let (promise, fut) = weft_core::Promise::new();
                            ctx.write_and_flush_with(
                                Msg::from(FileRegion::open(&path).unwrap()),
                                Some(promise),
                            );
                            let _ = tx.send(fut);
                        } else {
                            ctx.write_and_flush(m);
                        }
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let cpu_before = process_cpu();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"file").await.unwrap();
        // Read a little, so that the transfer is under way, then shrink the file.
        let mut buf = vec![0u8; 256 * 1024];
        slow.read_exact(&mut buf).await.unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file.path)
            .unwrap()
            .set_len(1024 * 1024)
            .unwrap();
        // Drain what the kernel still delivers.
        let drain = tokio::spawn(async move {
            let mut total = buf.len();
            loop {
                match slow.read(&mut buf).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total += n,
                }
            }
        });
        let outcome = rx.recv().await.unwrap().await;
        let err = outcome.unwrap_err();
        assert!(err.kind() == weft_core::ErrorKind::FileShrank, "{err}");
        assert!(err.to_string().contains("file ended"), "{err}");
        let received = drain.await.unwrap();
        assert!(
            received < data.len(),
            "the peer cannot have received the whole file"
        );
        // Other connections are still served.
        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        other.write_all(b"ping").await.unwrap();
        let mut pong = [0u8; 4];
        other.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"ping");
        // No spin: the whole test used far less CPU than a spinning loop would.
        let used = process_cpu() - cpu_before;
        assert!(used < Duration::from_secs(5), "used {used:?} of CPU");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn user_message_at_the_transport_names_its_type() {
    bounded(async {
        #[derive(Debug)]
        struct NotEncoded;
        let server = common::echo_server().await;
        let ch = Bootstrap::new()
            .connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let err = ch.write_and_flush(Msg::user(NotEncoded)).await.unwrap_err();
        assert!(err.kind() == weft_core::ErrorKind::UnsupportedMessage);
        let text = err.to_string();
        assert!(
            text.contains("NotEncoded") && text.contains("encoder"),
            "{text}"
        );
        // The channel is still usable.
        ch.write_and_flush("still fine").await.unwrap();
        ch.close().await.unwrap();
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}
