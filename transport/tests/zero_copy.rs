//! Zero-copy, proved with strace: a FileRegion leaves with `sendfile` and
//! the file is never `read`; a flushed 3-chunk composite leaves in one
//! `writev` with 3 slices.
//!
//! The parent test re-runs this test binary under `strace -f`, selecting
//! the ignored child test, and reads the system calls it made.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::{bounded, random_bytes, TempFile};
use tokio::io::AsyncReadExt;
use weft_core::{CompositeBytes, FileRegion};
use weft_transport::Bootstrap;

const FILE_LEN: usize = 64 * 1024 * 1024;
const CHUNKS: [usize; 3] = [1111, 2222, 3333];

#[tokio::test(flavor = "current_thread")]
#[ignore = "run by zero_copy_is_visible_in_strace under strace"]
async fn zero_copy_child() {
    let path = std::env::var("WEFT_ZERO_COPY_FILE").expect("run by the parent test");
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut total = 0usize;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break total;
                }
                total += n;
            }
        });
        let ch = Bootstrap::new().connect(addr).await.unwrap();
        let region = FileRegion::open(&path).unwrap();
        ch.write_and_flush(region).await.unwrap();
        let c: CompositeBytes = CHUNKS.iter().map(|n| Bytes::from(vec![b'c'; *n])).collect();
        ch.write_and_flush(c).await.unwrap();
        ch.close().await.unwrap();
        let total = reader.await.unwrap();
        assert_eq!(total, FILE_LEN + CHUNKS.iter().sum::<usize>());
    })
    .await;
}

#[test]
fn zero_copy_is_visible_in_strace() {
    let file = TempFile::new(&random_bytes(99, FILE_LEN));
    let trace = std::env::temp_dir().join(format!("weft-strace-{}.txt", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("strace")
        .args(["-f", "-qq", "-s", "8", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=openat,close,read,pread64,readv,preadv,preadv2,sendfile,writev,write",
        ])
        .arg(&exe)
        .args([
            "zero_copy_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env("WEFT_ZERO_COPY_FILE", &file.path)
        .status()
        .expect("strace must be installed (apt-get install -y strace)");
    assert!(status.success(), "child test failed under strace");
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let path = file.path.to_str().unwrap();

    // The descriptor the file was opened on (read-only) by the child.
    let open_line = text
        .lines()
        .find(|l| l.contains("openat(") && l.contains(path))
        .unwrap_or_else(|| panic!("the file was never opened:\n{text}"));
    let fd: i32 = open_line
        .rsplit("= ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Calls that name that descriptor while it is open.
    let mut open = false;
    let mut sendfiles = 0u64;
    let mut sent = 0u64;
    for l in text.lines() {
        let call = l.split_once(' ').map(|(_, c)| c.trim_start()).unwrap_or(l);
        if call.starts_with("openat(") && call.contains(path) {
            open = true;
            continue;
        }
        if !open {
            continue;
        }
        if call.starts_with(&format!("close({fd})")) {
            open = false;
            continue;
        }
        for read_call in ["read(", "pread64(", "readv(", "preadv(", "preadv2("] {
            assert!(
                !call.starts_with(&format!("{read_call}{fd},")),
                "the file was read into user space: {call}"
            );
        }
        if call.starts_with("sendfile(") {
            let args: Vec<&str> = call.splitn(3, ", ").collect();
            if args.get(1).map(|a| a.trim()) == Some(&fd.to_string()) {
                sendfiles += 1;
                if let Some(r) = call.rsplit("= ").next() {
                    sent += r.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    assert!(sendfiles > 0, "no sendfile call on the file:\n{text}");
    assert_eq!(sent, FILE_LEN as u64, "sendfile moved the whole file");

    // One writev with exactly the three chunks.
    let writev = text
        .lines()
        .filter(|l| l.contains("writev("))
        .find(|l| CHUNKS.iter().all(|n| l.contains(&format!("iov_len={n}"))))
        .unwrap_or_else(|| panic!("no writev carried the three chunks:\n{text}"));
    assert!(
        writev.contains("], 3)"),
        "the composite left in one writev of 3 slices: {writev}"
    );
}
