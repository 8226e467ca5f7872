//! hyper 1.x hello server: /plaintext and /json as TechEmpower asks, one
//! current-thread runtime, HTTP/1.1 with pipelining flush enabled.
//! usage: hyper-hello PORT

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, ctype) = match req.uri().path() {
        "/plaintext" => (StatusCode::OK, Bytes::from_static(b"Hello, World!"), "text/plain"),
        "/json" => {
            let b = serde_json::to_vec(&Message { message: "Hello, World!" }).unwrap();
            (StatusCode::OK, Bytes::from(b), "application/json")
        }
        _ => (StatusCode::NOT_FOUND, Bytes::new(), "text/plain"),
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(SERVER, HeaderValue::from_static("hyper"));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(19161);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
}
