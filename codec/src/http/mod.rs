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
//! - every limit is finite by default (request line 8 KiB, head 16 KiB,
//!   100 fields, chunk-size line 4 KiB, trailers 8 KiB).
//!
//! Layout: `head.rs` (request heads), `framing.rs` (how a body is
//! delimited), `chunked.rs` (the chunked coding), `request.rs` (the
//! decoder), `response.rs` (encoding answers), `server.rs` (the codec),
//! `error.rs`.

mod chunked;
mod error;
mod framing;
mod head;
mod request;
mod response;
mod server;

pub use error::{HttpError, HttpErrorKind};
pub use request::{
    BodyKind, HttpRequestDecoder, HttpRequestPart, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_HEAD,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_REQUEST_LINE, DEFAULT_MAX_TRAILERS,
};

pub use response::HttpResponsePart;
pub use server::{HttpServerCodec, DEFAULT_MAX_IN_FLIGHT};

pub use http;
