//! How a request's body is delimited (RFC 9112 §6), decided from its head
//! and never guessed.
//!
//! Contract:
//! - `Transfer-Encoding` on an HTTP/1.0 request, or together with
//!   `Content-Length`, is refused (400): the two framings could disagree
//!   between us and a proxy in front (request smuggling);
//! - the only transfer coding accepted is `chunked`, once, as the final
//!   coding; another coding is 501, `chunked` repeated or not last is 400;
//! - `Content-Length` must be `1*DIGIT` without overflow, and appear once
//!   with one value: a list, even of equal values, is refused;
//! - neither field: no body (a request is never read to the end of the
//!   connection).

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Version};

use super::error::{HttpError, HttpErrorKind};

/// How the body that follows a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the connection ends (responses only).
    UntilClose,
}

/// The framing of a response's body (RFC 9112 §6.3), for a request with
/// `method`: none for HEAD, 1xx, 204, 304 and a successful CONNECT; then
/// the request rules (strict: both fields, or a coding other than
/// `chunked`, are refused); with neither field, until the connection ends.
pub(crate) fn response_framing(
    method: &http::Method,
    status: http::StatusCode,
    version: Version,
    headers: &HeaderMap,
) -> Result<BodyFraming, HttpError> {
    if *method == http::Method::HEAD
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
        || (*method == http::Method::CONNECT && status.is_success())
    {
        return Ok(BodyFraming::Empty);
    }
    if !headers.contains_key(TRANSFER_ENCODING) && !headers.contains_key(CONTENT_LENGTH) {
        return Ok(BodyFraming::UntilClose);
    }
    request_framing(version, headers)
}

/// The framing of a request with these headers.
pub(crate) fn request_framing(
    version: Version,
    headers: &HeaderMap,
) -> Result<BodyFraming, HttpError> {
    let te = headers.get_all(TRANSFER_ENCODING);
    let has_te = te.iter().next().is_some();
    let has_cl = headers.contains_key(CONTENT_LENGTH);
    if has_te {
        if version == Version::HTTP_10 {
            return Err(HttpError::new(
                HttpErrorKind::TransferEncoding,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if has_cl {
            return Err(HttpError::new(
                HttpErrorKind::TransferEncoding,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut codings = Vec::new();
        for v in te.iter() {
            let v = v.to_str().map_err(|_| {
                HttpError::new(
                    HttpErrorKind::TransferEncoding,
                    "non-ASCII Transfer-Encoding",
                )
            })?;
            for c in v.split(',') {
                let c = c.trim_matches([' ', '\t']);
                if c.is_empty() {
                    return Err(HttpError::new(
                        HttpErrorKind::TransferEncoding,
                        "an empty transfer coding",
                    ));
                }
                codings.push(c.to_ascii_lowercase());
            }
        }
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        if let Some(other) = codings.iter().find(|c| *c != "chunked") {
            return Err(HttpError::new(
                HttpErrorKind::UnknownCoding,
                format!("transfer coding `{other}` is not implemented"),
            ));
        }
        if chunked != 1 {
            return Err(HttpError::new(
                HttpErrorKind::TransferEncoding,
                "`chunked` given more than once",
            ));
        }
        return Ok(BodyFraming::Chunked);
    }
    let mut cl = headers.get_all(CONTENT_LENGTH).iter();
    let Some(v) = cl.next() else {
        return Ok(BodyFraming::Empty);
    };
    if cl.next().is_some() {
        return Err(HttpError::new(
            HttpErrorKind::ContentLength,
            "Content-Length given more than once",
        ));
    }
    let n = parse_digits(v.as_bytes()).ok_or_else(|| {
        HttpError::new(
            HttpErrorKind::ContentLength,
            "Content-Length is not a decimal number that fits 64 bits",
        )
    })?;
    Ok(if n == 0 {
        BodyFraming::Empty
    } else {
        BodyFraming::Length(n)
    })
}

/// `1*DIGIT` as a `u64`, or `None` (empty, another byte, overflow).
pub(crate) fn parse_digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?
                .checked_add(u64::from(d.wrapping_sub(b'0')))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(version: Version, fields: &[(&str, &str)]) -> Result<BodyFraming, HttpErrorKind> {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        request_framing(version, &h).map_err(|e| e.kind().clone())
    }

    const V11: Version = Version::HTTP_11;

    #[test]
    fn the_accepted_framings() {
        assert_eq!(framing(V11, &[]), Ok(BodyFraming::Empty));
        assert_eq!(
            framing(V11, &[("content-length", "0")]),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(
            framing(V11, &[("content-length", "42")]),
            Ok(BodyFraming::Length(42))
        );
        assert_eq!(
            framing(V11, &[("transfer-encoding", "chunked")]),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            framing(V11, &[("transfer-encoding", "Chunked")]),
            Ok(BodyFraming::Chunked)
        );
    }

    #[test]
    fn every_ambiguous_framing_is_refused() {
        use HttpErrorKind::{ContentLength, TransferEncoding, UnknownCoding};
        type Case = (
            Version,
            &'static [(&'static str, &'static str)],
            HttpErrorKind,
        );
        let cases: &[Case] = &[
            (
                V11,
                &[("content-length", "1"), ("transfer-encoding", "chunked")],
                TransferEncoding,
            ),
            (
                Version::HTTP_10,
                &[("transfer-encoding", "chunked")],
                TransferEncoding,
            ),
            (V11, &[("transfer-encoding", "gzip")], UnknownCoding),
            (
                V11,
                &[("transfer-encoding", "gzip, chunked")],
                UnknownCoding,
            ),
            (
                V11,
                &[("transfer-encoding", "chunked, chunked")],
                TransferEncoding,
            ),
            (
                V11,
                &[
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                TransferEncoding,
            ),
            (V11, &[("transfer-encoding", "chunked,")], TransferEncoding),
            (
                V11,
                &[("content-length", "1"), ("content-length", "1")],
                ContentLength,
            ),
            (V11, &[("content-length", "1, 1")], ContentLength),
            (V11, &[("content-length", "+1")], ContentLength),
            (V11, &[("content-length", "-1")], ContentLength),
            (V11, &[("content-length", "0x10")], ContentLength),
            (V11, &[("content-length", " 1")], ContentLength),
            (
                V11,
                &[("content-length", "18446744073709551616")],
                ContentLength,
            ),
        ];
        for (v, fields, want) in cases {
            assert_eq!(framing(*v, fields).as_ref(), Err(want), "{fields:?}");
        }
    }
}
