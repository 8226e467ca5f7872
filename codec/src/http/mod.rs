//! HTTP/1.1 (feature `http`): the server side — a request decoder strict
//! about framing and a response encoder — with the `http` crate's types.
//!
//! Contract:
//! - requests are decoded by [`HttpRequestDecoder`] into a head
//!   ([`http::Request<()>`]), body slices that share the received buffer,
//!   and an end with the trailers ([`HttpRequestPart`]);
//! - nothing is normalised: a request whose framing or syntax could be read
//!   two ways (RFC 9112 §2–§7, RFC 9110 §5) is refused with an
//!   [`HttpError`] that names the status to answer (400, 413, 414, 431,
//!   501, 505), and nothing after it is parsed;
//! - [`HttpServerCodec`] puts the decoder and the response encoder in one
//!   handler: answers leave in request order, pipelining is bounded, and
//!   the connection's last answer is followed by an output shutdown;
//! - around the codec: [`HttpObjectAggregator`] joins a request into one
//!   `Request<Bytes>` under a size limit (413), [`HttpExpectContinue`]
//!   answers `Expect` for pipelines that stream bodies; keep-alive (HTTP/1.0
//!   and 1.1 rules, `Connection: close` ends decoding) is the codec's own;
//! - every limit is finite by default (request line 8 KiB, head 16 KiB,
//!   100 fields, chunk-size line 4 KiB, trailers 8 KiB).
//!
//! Layout: `head.rs` (request heads), `framing.rs` (how a body is
//! delimited), `chunked.rs` (the chunked coding), `request.rs` (the
//! decoder), `response.rs` (encoding answers), `server.rs` (the codec),
//! `aggregator.rs`, `expect.rs`, `error.rs`.

mod aggregator;
mod chunked;
mod client;
mod coding;
mod compress;
mod decompress;
mod error;
mod expect;
mod framing;
mod head;
mod request;
mod response;
mod response_decoder;
mod server;

pub use aggregator::{HttpObjectAggregator, Trailers, DEFAULT_MAX_CONTENT_LENGTH};
pub use error::{HttpError, HttpErrorKind};
pub use expect::HttpExpectContinue;
pub use request::{
    BodyKind, HttpRequestDecoder, HttpRequestPart, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_HEAD,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_REQUEST_LINE, DEFAULT_MAX_TRAILERS,
};

pub use client::HttpClientCodec;
pub use compress::{HttpContentCompressor, DEFAULT_COMPRESSION_THRESHOLD};
pub use decompress::{HttpContentDecompressor, DEFAULT_MAX_INFLATED};
pub use response::HttpResponsePart;
pub use response_decoder::{HttpResponseDecoder, HttpResponseIn, DEFAULT_MAX_RESPONSE_HEAD};
pub use server::{HttpServerCodec, DEFAULT_MAX_IN_FLIGHT};

pub use http;
