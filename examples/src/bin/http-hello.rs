//! http-hello: the TechEmpower benchmark's plaintext and JSON endpoints on
//! weft's HTTP codec.
//!
//! `GET /plaintext` answers `Hello, World!` (`text/plain`), `GET /json`
//! answers `{"message":"Hello, World!"}` (`application/json`, serialised
//! per request), both with `Server` and `Date`; anything else is 404.
//! Pipelined requests are answered in one write per read.

use bytes::Bytes;
use clap::Parser;
use weft_codec::http::http::{header, HeaderValue, Method, Response, StatusCode};
use weft_codec::http::{HttpRequestPart, HttpServerCodec};
use weft_core::{Context, Handler, Msg};

/// TechEmpower-style plaintext and JSON server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

/// Answers each request at its head; one flush per read.
struct Hello;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn answer(method: &Method, path: &str) -> Response<Bytes> {
    let (status, body, ctype) = match (method, path) {
        (&Method::GET, "/plaintext") => (
            StatusCode::OK,
            Bytes::from_static(b"Hello, World!"),
            "text/plain",
        ),
        (&Method::GET, "/json") => {
            let body = serde_json::to_vec(&Message {
                message: "Hello, World!",
            })
            .unwrap_or_default();
            (StatusCode::OK, Bytes::from(body), "application/json")
        }
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found\n"),
            "text/plain",
        ),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("weft"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

#[weft_core::handler]
impl Handler for Hello {
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: weft_core::Error) {
        // A reset by a load generator that is done is routine here.
        tracing::debug!(error = %err, "closing the connection");
        ctx.close();
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        // Read in place: the request stays in the box it was decoded into.
        if let Some(HttpRequestPart::Head { request, .. }) = msg.downcast_ref::<HttpRequestPart>() {
            ctx.write(Msg::user(answer(request.method(), request.uri().path())));
        }
    }

    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_handler(move |p| {
                    p.add_last("http", HttpServerCodec::new())?;
                    p.add_last("hello", Hello)
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
