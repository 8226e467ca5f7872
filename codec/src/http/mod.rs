//! HTTP/1.1 (feature `http`): server and client codecs strict about
//! framing, the handlers Netty users expect around them, and the `http`
//! crate's types throughout.
//!
//! A whole HTTP service in ten lines — the codec, the aggregator, and a
//! handler that answers each `Request<Bytes>`:
//!
//! ```
//! use bytes::Bytes;
//! use weft_codec::http::http::{Request, Response};
//! use weft_codec::http::{HttpObjectAggregator, HttpServerCodec};
//! use weft_core::{from_fn, Context, Error, Msg, Pipeline};
//!
//! fn hello(p: &mut Pipeline) -> Result<(), Error> {
//!     p.add_last("http", HttpServerCodec::new())?;
//!     p.add_last("whole", HttpObjectAggregator::new(1 << 20))?;
//!     p.add_last("app", from_fn(|ctx: &mut Context<'_>, req: Request<Bytes>| {
//!         let body = format!("{} bytes to {}\n", req.body().len(), req.uri().path());
//!         ctx.write_and_flush(Msg::user(Response::new(Bytes::from(body))));
//!     }))
//! }
//! // A server: `ServerBootstrap::new().child_handler(hello).bind("127.0.0.1:8080")`.
//! // Here, through an EmbeddedChannel:
//! let mut ch = weft_core::EmbeddedChannel::new();
//! hello(ch.pipeline_mut()).unwrap();
//! ch.write_inbound(&b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"[..]);
//! assert!(ch.read_outbound_bytes().ends_with(b"2 bytes to /up\n"));
//! ```
//!
//! Contract:
//! - requests are decoded by [`HttpRequestDecoder`] into a head
//!   ([`http::Request<()>`]), body slices that share the received buffer,
//!   and an end with the trailers ([`HttpRequestPart`]);
//! - nothing is normalised: a request whose framing or syntax could be read
//!   two ways (RFC 9112 §2–§7, RFC 9110 §5) is refused with an
//!   [`HttpError`] that names the status to answer (400, 413, 414, 431,
//!   501, 505), and nothing after it is parsed;
//! - [`HttpServerCodec`] is the decoder and the response encoder, added as
//!   one handler that links its encoder in front of itself: answers leave
//!   in request order, pipelining is bounded, invalid
//!   requests are answered in their turn, and the connection's last answer
//!   is followed by an output shutdown;
//! - around the codec: [`HttpObjectAggregator`] joins a request into one
//!   `Request<Bytes>` under a size limit (413), [`HttpExpectContinue`]
//!   answers `Expect` for pipelines that stream bodies, the
//!   [`HttpContentCompressor`] and [`HttpContentDecompressor`] handle
//!   gzip, deflate and brotli (the latter under a bound on the inflated
//!   size); keep-alive (HTTP/1.0 and 1.1 rules, `Connection: close` ends
//!   decoding) is the codec's own; a request body streams with
//!   backpressure when the handler that passes it to a slower consumer
//!   counts it in a `weft_core::ReadBudget` (as `http-file-server
//!   --upload` does): reads stop while the consumer is behind;
//! - the client side: [`HttpClientCodec`] encodes requests and decodes
//!   responses with [`HttpResponseDecoder`] (HEAD and CONNECT answers, 1xx,
//!   close-delimited bodies); weft-transport's `HttpClient` (feature
//!   `http`) is a keep-alive client on it;
//! - every limit is finite by default (request line 8 KiB, head 16 KiB,
//!   100 fields, chunk-size line 4 KiB, trailers 8 KiB, response head
//!   64 KiB, aggregated body 1 MiB, inflated body 64 MiB).
//!
//! Layout: `head.rs` (heads), `framing.rs` (how a body is delimited),
//! `chunked.rs` (the chunked coding), `body.rs` (a body after its head, for
//! both decoders), `request.rs` (the request decoder),
//! `response.rs` (encoding answers), `server.rs` (the server codec),
//! `response_decoder.rs` and `client.rs` (the client side),
//! `aggregator.rs`, `expect.rs`, `coding.rs` (content codings),
//! `compress.rs`, `decompress.rs`, `error.rs`.

mod aggregator;
mod body;
mod buffers;
mod chunked;
mod client;
mod coding;
mod compress;
mod compress_budget;
mod decompress;
mod error;
mod expect;
mod framing;
mod head;
mod ledger;
mod maps;
mod request;
pub(crate) mod response;
mod response_decoder;
mod server;
mod server_encoder;

pub use aggregator::{
    HttpObjectAggregator, Trailers, DEFAULT_AGGREGATION_BUDGET, DEFAULT_MAX_CONTENT_LENGTH,
};
pub use error::{HttpError, HttpErrorKind};
pub use expect::HttpExpectContinue;
pub use request::{
    BodyKind, HttpRequestDecoder, HttpRequestPart, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_HEAD,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_REQUEST_LINE, DEFAULT_MAX_TRAILERS,
};

pub use client::HttpClientCodec;
pub use compress::{HttpContentCompressor, DEFAULT_COMPRESSION_THRESHOLD};
pub use compress_budget::{
    DEFAULT_CONNECTION_RATE as DEFAULT_COMPRESSION_CONNECTION_RATE,
    DEFAULT_FILE_CACHE_BYTES as DEFAULT_COMPRESSION_FILE_CACHE,
    DEFAULT_PROCESS_RATE as DEFAULT_COMPRESSION_PROCESS_RATE,
};
pub use decompress::{HttpContentDecompressor, DEFAULT_MAX_INFLATED};
pub use response::HttpResponsePart;
pub use response_decoder::{
    response_keeps_alive, HttpResponseDecoder, HttpResponseIn, DEFAULT_MAX_RESPONSE_HEAD,
};
pub use server::{HttpServerCodec, DEFAULT_MAX_IN_FLIGHT};

pub use http;
