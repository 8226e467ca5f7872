//! HTTP/1.1 pieces for `http-file-server`, on weft's HTTP codec
//! (`weft_codec::http`): a static-file handler whose bodies go out as
//! `FileRegion`s, and `PUT` uploads streamed to files.
//!
//! Contract of [`FileHandler`] (after `HttpServerCodec`): GET and HEAD of
//! files under the root, with Content-Type by extension, Last-Modified and
//! If-Modified-Since (304), one byte range (206, or 416 when
//! unsatisfiable), a directory index page, and short error bodies (400,
//! 403, 404, 405). A path never resolves outside the root: `..` segments
//! (also percent-encoded) are refused, and the path is opened beneath the
//! root by the kernel (`openat2` `RESOLVE_BENEATH`). With an upload
//! directory, `PUT /path` streams the body to that path under it (see
//! `upload.rs`); answers stay in request order while an upload finishes.
//! Framing, keep-alive, limits and malformed requests are the codec's.
//!
//! Layout: `response.rs` (building responses: status, headers, ranges,
//! names), `files.rs` (the handler), `upload.rs` (streaming bodies to
//! files).

mod files;
mod response;
mod upload;

pub use files::{spawn_cache_purger, FileHandler, HELD_BUDGET, HELD_HIGH, INDEX_MAX_ENTRIES};
pub use response::{content_type, parse_range, percent_decode};
pub use upload::{
    remove_stale_temporaries, UploadDone, DEFAULT_MAX_UPLOADS, HIGH_WATER as UPLOAD_HIGH_WATER,
    LOW_WATER as UPLOAD_LOW_WATER,
};
