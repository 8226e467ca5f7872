//! `HttpClient` over real loopback sockets: against our server (keep-alive
//! reuse, a connection closed while idle, a slow reader holding the server
//! back, timeouts) and against nginx, started by the test.
#![cfg(feature = "http")]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes, TempDir};
use weft_codec::http::http::{Request, Response};
use weft_codec::http::{HttpRequestPart, HttpServerCodec};
use weft_core::{from_fn, Context, ErrorKind, Msg};
use weft_transport::{HttpClient, ServerBootstrap};

/// A server answering every request with what `answer` makes of its path
/// (`None`: no answer); counts accepted connections.
async fn server(
    answer: impl Fn(&str) -> Option<Response<Bytes>> + Send + Sync + Clone + 'static,
    close_after_answer: bool,
) -> (weft_transport::Server, Arc<AtomicUsize>) {
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = conns.clone();
    let server = ServerBootstrap::new()
        .child_handler(move |p| {
            c2.fetch_add(1, Ordering::SeqCst);
            p.add_last("http", HttpServerCodec::new())?;
            let answer = answer.clone();
            p.add_last(
                "app",
                from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
                    if let HttpRequestPart::Head { request, .. } = part {
                        if let Some(r) = answer(request.uri().path()) {
                            ctx.write_and_flush(Msg::user(r));
                            if close_after_answer {
                                ctx.close();
                            }
                        }
                    }
                }),
            )
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (server, conns)
}

fn hello(path: &str) -> Option<Response<Bytes>> {
    Some(Response::new(Bytes::from(format!("hello {path}"))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_connection() {
    bounded(async {
        let (server, conns) = server(hello, false).await;
        let client = HttpClient::new();
        for i in 0..20 {
            let url = format!("http://{}/{i}", server.local_addr());
            let resp = client.get(&url).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.body(), &format!("hello /{i}"));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1, "kept alive");
    })
    .await
}

/// The server closes each connection after its answer without saying so:
/// the pooled connection is found dead and the request goes on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_replaced() {
    bounded(async {
        let (server, conns) = server(hello, true).await;
        let client = HttpClient::new();
        for i in 0..5 {
            let url = format!("http://{}/{i}", server.local_addr());
            let resp = client.get(&url).await.unwrap();
            assert_eq!(resp.body(), &format!("hello /{i}"));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 5);
    })
    .await
}

/// A 32 MiB answer read slowly: after the first piece the client stops
/// reading the socket, so the server's writes stall well short of the
/// whole answer (the rest waits on the server, not in the client's
/// memory), and the body still arrives whole once read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_the_server_back() {
    bounded(async {
        let data = Bytes::from(random_bytes(7, 32 << 20));
        let d2 = data.clone();
        let server_side = Arc::new(std::sync::Mutex::new(None::<weft_core::Channel>));
        let s2 = server_side.clone();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                p.add_last("http", HttpServerCodec::new())?;
                let (d, s) = (d2.clone(), s2.clone());
                p.add_last(
                    "app",
                    from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
                        if let HttpRequestPart::Head { .. } = part {
                            *s.lock().unwrap() = Some(ctx.channel().clone());
                            ctx.write_and_flush(Msg::user(Response::new(d.clone())));
                        }
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let client = HttpClient::new();
        let url = format!("http://{}/big", server.local_addr());
        let resp = client
            .send(Request::get(url).body(Bytes::new()).unwrap())
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut got = body.chunk().await.unwrap().unwrap().to_vec();
        let written = || {
            server_side
                .lock()
                .unwrap()
                .as_ref()
                .map_or(0, weft_core::Channel::bytes_written)
        };
        // Wait for the server's writes to stop moving (a plateau over
        // several looks); without flow control they only stop at the end.
        let (mut last, mut still) = (written(), 0);
        while still < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = written();
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        assert!(
            last < 24 << 20,
            "the server wrote {last} bytes to a client that stopped reading"
        );
        while let Some(piece) = body.chunk().await {
            got.extend_from_slice(&piece.unwrap());
        }
        assert!(got == data[..], "the body arrives whole and in order");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_timeout_and_a_bad_uri_an_invalid_argument() {
    bounded(async {
        let (server, _) = server(|_| None, false).await;
        let client = HttpClient::builder()
            .response_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = client
            .get(&format!("http://{}/", server.local_addr()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        let err = client.get("https://127.0.0.1:1/").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(HttpClient::builder()
            .read_timeout(Duration::ZERO)
            .build()
            .is_err());
    })
    .await
}

/// An nginx started on a free loopback port over a directory; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn nginx(files: &[(&str, &[u8])]) -> Nginx {
    let dir = TempDir::new("nginx");
    let root = dir.0.join("www");
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = dir.0.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid;\n\
         error_log {p}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {p}/www;\n\
             location = /chunked {{ return 200 'streamed'; }} }}\n\
         }}\n"
    );
    std::fs::write(dir.0.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &p.to_string(), "-c", &format!("{p}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed by ./test.sh");
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_files_from_nginx() {
    bounded(async {
        let big = random_bytes(11, 3 << 20);
        let ng = nginx(&[("small.txt", b"small file\n"), ("big.bin", &big)]).await;
        let base = format!("http://127.0.0.1:{}", ng.port);
        let client = HttpClient::new();
        let small = client.get(&format!("{base}/small.txt")).await.unwrap();
        assert_eq!(small.status(), 200);
        assert_eq!(small.body(), "small file\n");
        let resp = client.get(&format!("{base}/big.bin")).await.unwrap();
        assert!(resp.body()[..] == big[..], "3 MiB, whole");
        let head = client
            .send(
                Request::head(format!("{base}/big.bin"))
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            head.headers()["content-length"],
            big.len().to_string().as_str()
        );
        assert!(
            head.into_body().bytes(0).await.unwrap().is_empty(),
            "HEAD: no body"
        );
        let missing = client.get(&format!("{base}/nope")).await.unwrap();
        assert_eq!(missing.status(), 404);
        let after = client.get(&format!("{base}/small.txt")).await.unwrap();
        assert_eq!(
            after.body(),
            "small file\n",
            "the same connection after a HEAD"
        );
    })
    .await
}
