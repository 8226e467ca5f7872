//! [`HttpError`]: why a request cannot be served, with the status code that
//! says so.
//!
//! Contract: every framing or syntax violation the decoder finds is one of
//! these, never a panic and never a "repaired" request; its
//! [`status`](HttpError::status) is what the server answers before it
//! closes the connection (400, 413, 414, 431, 501 or 505).

use std::fmt;

use http::StatusCode;

/// What was wrong with a request, as the decoder found it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// The request line is malformed (400).
    RequestLine,
    /// The request target is longer than the limit (414).
    UriTooLong,
    /// A version other than HTTP/1.0 and HTTP/1.1: 505 for another major
    /// version, 400 for a malformed one.
    Version,
    /// A header field is malformed: whitespace before the colon, an
    /// obsolete line folding, a name that is not a token, a control
    /// character in a value (400).
    Field,
    /// A line ended with a lone LF, or a CR not followed by LF (400).
    LineEnding,
    /// The header section or the number of fields is over the limit (431).
    HeadersTooLarge,
    /// `Host` is missing (HTTP/1.1), repeated, or not a valid authority (400).
    Host,
    /// `Content-Length` is not `1*DIGIT`, overflows, or is repeated (400).
    ContentLength,
    /// `Transfer-Encoding` on HTTP/1.0, with `Content-Length`, repeated
    /// `chunked`, or `chunked` not last (400).
    TransferEncoding,
    /// A transfer coding other than `chunked` (501).
    UnknownCoding,
    /// The chunked body's grammar is broken: a bad size line, extensions
    /// over the limit, data not followed by CRLF, bad trailers (400).
    Chunked,
    /// The body is longer than the limit (413).
    BodyTooLarge,
    /// A response's status line is malformed (a client-side error; 502, as
    /// a gateway would answer).
    StatusLine,
    /// The connection ended inside a response's head or body (client side;
    /// 502).
    Incomplete,
    /// A body's `Content-Encoding` is not supported (415), or its coded
    /// bytes are corrupt (400).
    ContentCoding,
}

/// A request the server cannot accept; see [`HttpErrorKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    kind: HttpErrorKind,
    status: StatusCode,
    detail: String,
}

impl HttpError {
    pub(crate) fn new(kind: HttpErrorKind, detail: impl Into<String>) -> HttpError {
        let status = match kind {
            HttpErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            HttpErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HttpErrorKind::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
            HttpErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpErrorKind::StatusLine | HttpErrorKind::Incomplete => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError {
            kind,
            status,
            detail: detail.into(),
        }
    }

    /// An error of `kind` answered with `status`.
    pub(crate) fn with_status(
        kind: HttpErrorKind,
        status: StatusCode,
        detail: impl Into<String>,
    ) -> HttpError {
        HttpError {
            kind,
            status,
            detail: detail.into(),
        }
    }

    /// A version error for another major version (505).
    pub(crate) fn unsupported_version(detail: impl Into<String>) -> HttpError {
        HttpError {
            kind: HttpErrorKind::Version,
            status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            detail: detail.into(),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &HttpErrorKind {
        &self.kind
    }

    /// The status code to answer with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A short description, fit for logs (not for the response body).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.status.as_u16())
    }
}

impl std::error::Error for HttpError {}
