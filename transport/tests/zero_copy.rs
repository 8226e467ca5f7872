//! Zero-copy, proved with strace: a FileRegion leaves with `sendfile` and
//! the file is never `read`; a flushed 3-chunk composite leaves in one
//! `writev` with 3 slices; two messages adjacent in memory leave as one
//! slice of one `writev`.
//!
//! The parent test re-runs this test binary under `strace -f`, selecting
//! the ignored child test, and reads the system calls it made.
//!
//! On the io_uring transport files still leave with `sendfile` and are
//! never read, but byte writes are io_uring operations, which strace does
//! not see: there `io_uring_enter` carries them, and how slices become
//! iovecs is unit-tested beside the transport.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::{bounded, on_uring, random_bytes, TempFile};
use tokio::io::AsyncReadExt;
use weft_core::{CompositeBytes, FileRegion};
use weft_transport::Bootstrap;

const FILE_LEN: usize = 64 * 1024 * 1024;
const CHUNKS: [usize; 3] = [1111, 2222, 3333];
const ADJACENT: (usize, usize) = (4444, 5555);

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
        // Two messages split off one buffer: adjacent in memory, they leave
        // as one segment of one writev.
        let whole = Bytes::from(vec![b'a'; ADJACENT.0 + ADJACENT.1]);
        let first = ch.write_with_promise(whole.slice(..ADJACENT.0));
        ch.write_and_flush(whole.slice(ADJACENT.0..)).await.unwrap();
        first.await.unwrap();
        ch.close().await.unwrap();
        let total = reader.await.unwrap();
        assert_eq!(
            total,
            FILE_LEN + CHUNKS.iter().sum::<usize>() + ADJACENT.0 + ADJACENT.1
        );
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
            "trace=openat,close,read,pread64,readv,preadv,preadv2,sendfile,writev,write,io_uring_enter",
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
    if on_uring() {
        // The child checked that every byte arrived.
        assert!(
            text.contains("io_uring_enter("),
            "the writes went through io_uring:\n{text}"
        );
        return;
    }

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

    // One writev with one slice covering both adjacent messages.
    let joined = ADJACENT.0 + ADJACENT.1;
    let writev = text
        .lines()
        .filter(|l| l.contains("writev("))
        .find(|l| l.contains(&format!("iov_len={joined}")))
        .unwrap_or_else(|| panic!("no writev carried the adjacent messages as one:\n{text}"));
    assert!(
        writev.contains("], 1)"),
        "two adjacent messages left as one slice: {writev}"
    );
}

/// One application handler, used unchanged behind plain TCP and behind TLS.
fn serve_file(path: std::path::PathBuf) -> impl weft_core::Handler {
    weft_core::from_fn(move |ctx: &mut weft_core::Context<'_>, _req: Bytes| {
        ctx.write_and_flush(FileRegion::open(&path).unwrap());
    })
}

const SAME_CODE_LEN: usize = 8 * 1024 * 1024;

#[tokio::test(flavor = "current_thread")]
#[ignore = "run by same_code_sendfile_plain_chunks_over_tls under strace"]
async fn same_code_child() {
    use std::sync::Mutex;
    use weft_core::{Context, Handler, Msg};
    use weft_transport::tls::{client_config, server_config};
    use weft_transport::{ServerBootstrap, TlsHandler};

    let path = std::path::PathBuf::from(
        std::env::var("WEFT_ZERO_COPY_FILE").expect("run by the parent test"),
    );
    let want = std::fs::read(&path).unwrap();
    bounded(async move {
        // Plain TCP first.
        let p1 = path.clone();
        let plain = ServerBootstrap::new()
            .child_handler(move |p| p.add_last("app", serve_file(p1.clone())))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(plain.tcp_addr().unwrap())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"get")
            .await
            .unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).await.unwrap();
        assert!(got == want, "plain bytes");
        println!("PLAIN-DONE");

        // Then TLS, with the very same application handler.
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()),
        );
        let scfg = server_config(vec![cert.clone()], key, &[]).unwrap();
        let p2 = path.clone();
        let tls = ServerBootstrap::new()
            .child_handler(move |p| {
                p.add_last("tls", TlsHandler::server(scfg.clone())?)?;
                p.add_last("app", serve_file(p2.clone()))
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        struct Collect(Arc<Mutex<Vec<u8>>>, tokio::sync::mpsc::UnboundedSender<()>);
        #[weft_core::handler]
        impl Handler for Collect {
            fn channel_read(&mut self, _ctx: &mut Context<'_>, m: Msg) {
                let b: Bytes = m.downcast().unwrap();
                self.0.lock().unwrap().extend_from_slice(&b);
                let _ = self.1.send(());
            }
        }
        use std::sync::Arc;
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ccfg = client_config(&[cert], &[]).unwrap();
        let b2 = buf.clone();
        let ch = Bootstrap::new()
            .handler(move |p| {
                p.add_last("tls", TlsHandler::client(ccfg.clone(), "localhost")?)?;
                p.add_last("collect", Collect(b2.clone(), tx.clone()))
            })
            .connect(tls.tcp_addr().unwrap())
            .await
            .unwrap();
        ch.write_and_flush("get").await.unwrap();
        while buf.lock().unwrap().len() < want.len() {
            rx.recv().await.unwrap();
        }
        assert!(*buf.lock().unwrap() == want, "TLS bytes");
        println!("TLS-DONE");
    })
    .await;
}

/// The same application code: sendfile over plain TCP; over TLS no
/// sendfile, the file read in chunks (pread) and encrypted; bytes checked.
#[test]
fn same_code_sendfile_plain_chunks_over_tls() {
    let file = TempFile::new(&random_bytes(77, SAME_CODE_LEN));
    let trace = std::env::temp_dir().join(format!("weft-strace-same-{}.txt", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-s", "8", "-o"])
        .arg(&trace)
        .args(["-e", "trace=openat,close,read,pread64,sendfile"])
        .arg(&exe)
        .args([
            "same_code_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("WEFT_ZERO_COPY_FILE", &file.path)
        .output()
        .expect("strace must be installed (apt-get install -y strace)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("TLS-DONE"),
        "child failed: {stdout}"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let path = file.path.to_str().unwrap();
    // The child opens the file three times: its own check, then once per
    // request (plain, then TLS). Follow each descriptor until it closes.
    let mut opens: Vec<(i32, u64, u64)> = Vec::new(); // (fd, sendfile bytes, pread calls)
    let mut open_now: Option<usize> = None;
    for l in text.lines() {
        let call = l.split_once(' ').map(|(_, c)| c.trim_start()).unwrap_or(l);
        if call.starts_with("openat(") && call.contains(path) {
            let fd: i32 = call.rsplit("= ").next().unwrap().trim().parse().unwrap();
            opens.push((fd, 0, 0));
            open_now = Some(opens.len() - 1);
            continue;
        }
        let Some(i) = open_now else { continue };
        let fd = opens[i].0;
        if call.starts_with(&format!("close({fd})")) {
            open_now = None;
        } else if call.starts_with("sendfile(") && call.split(", ").nth(1) == Some(&fd.to_string())
        {
            opens[i].1 += call
                .rsplit("= ")
                .next()
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        } else if call.starts_with(&format!("pread64({fd},")) {
            opens[i].2 += 1;
        }
    }
    assert_eq!(opens.len(), 3, "three opens of the file: {opens:?}");
    let (plain, tls) = (opens[1], opens[2]);
    assert_eq!(
        plain.1, SAME_CODE_LEN as u64,
        "plain: the whole file by sendfile"
    );
    assert_eq!(plain.2, 0, "plain: no read of the file");
    assert_eq!(tls.1, 0, "TLS: no sendfile");
    assert!(
        tls.2 >= (SAME_CODE_LEN / (64 * 1024)) as u64,
        "TLS: read in chunks ({} preads)",
        tls.2
    );
}
