//! HTTP/1.1 pieces for `http-file-server`: a request-head decoder (httparse)
//! and a static-file handler whose bodies go out as `FileRegion`s.
//!
//! Contract of [`RequestDecoder`]: it yields one [`HttpEvent::Request`] per
//! request head, in order (pipelining works); a request line over
//! [`MAX_REQUEST_LINE`] gives [`HttpEvent::Bad`] with 414, a head over
//! [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers gives 431, a malformed head
//! or a request with a body gives 400. After a `Bad` event it decodes
//! nothing more: the handler answers and closes the connection.
//!
//! Contract of [`FileHandler`]: GET and HEAD of files under the root, with
//! Content-Length, Content-Type by extension, Last-Modified and
//! If-Modified-Since (304), one byte range (206, or 416 when unsatisfiable),
//! a directory index page, and short error bodies (400, 403, 404, 405).
//! A path never resolves outside the root: `..` segments (also
//! percent-encoded) are refused, and the resolved path, with symlinks
//! followed, must still lie inside the root.
//!
//! Layout: `request.rs` (the decoder), `response.rs` (building responses:
//! status, headers, ranges, names), `files.rs` (the handler).

mod files;
mod request;
mod response;

pub use files::{spawn_cache_purger, FileHandler, INDEX_MAX_ENTRIES};
pub use request::{HttpEvent, Request, RequestDecoder, MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE};
pub use response::{content_type, parse_range, percent_decode};
