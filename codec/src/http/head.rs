//! Request heads (RFC 9112 §2–§5, RFC 9110 §5 and §7.2), parsed with
//! `httparse` and checked further where it is lenient.
//!
//! Contract:
//! - the request line is `method SP request-target SP HTTP-version CRLF`
//!   with single spaces; a target longer than the limit is 414; a version
//!   other than HTTP/1.0 and HTTP/1.1 is 505 for another major version and
//!   400 otherwise;
//! - every line of the head ends with CRLF: a lone LF (which `httparse`
//!   accepts) or a bare CR is 400;
//! - field names are tokens with no whitespace before the colon, values
//!   carry no CR, LF or NUL, and obsolete line folding is refused (400);
//! - more fields than the limit, or a head larger than the limit, is 431;
//! - an HTTP/1.1 request carries exactly one `Host`, a valid authority (or
//!   empty); an HTTP/1.0 request at most one (400).

use std::mem::MaybeUninit;

use bytes::Bytes;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::Authority;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

use super::error::{HttpError, HttpErrorKind};
use super::request::{BodyKind, HttpRequestPart};
use crate::Cumulation;

/// The limits a head is parsed under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    pub(crate) max_request_line: usize,
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
}

/// Header slots on the stack: heads with up to this many fields (the
/// default limit is 100) are parsed without allocating for them.
const STACK_HEADERS: usize = 128;

/// Runs `f` with uninitialised header slots for `n` fields, on the stack
/// when they fit.
fn with_slots<'b, R>(n: usize, f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R) -> R {
    if n <= STACK_HEADERS {
        let mut stack = [MaybeUninit::<httparse::Header<'b>>::uninit(); STACK_HEADERS];
        f(&mut stack[..n])
    } else {
        let mut heap = vec![MaybeUninit::<httparse::Header<'b>>::uninit(); n];
        f(&mut heap)
    }
}

/// Parses the head at the front of `src` and, when it is complete and
/// valid, takes it out of `src`: `Ok(None)` when it is not complete yet
/// (and within its limits). One pass over the received bytes: the request's
/// target and field values are slices of them, not copies. The request is
/// built in the box it leaves in (a [`HttpRequestPart::Head`] whose body
/// the caller sets), so that its ~250 bytes are not moved on the way out.
pub(crate) fn parse_request_head(
    src: &mut Cumulation,
    limits: &HeadLimits,
) -> Result<Option<(Box<HttpRequestPart>, FieldScan)>, HttpError> {
    let all = src.bytes_ref();
    let buf: &[u8] = all;
    // The request line first, so that an over-long target is a 414 even
    // when the rest of the head is not there yet.
    // Its length without the line ending; one not complete yet may end in
    // the CR of its CRLF.
    let line_len = match memchr::memchr(b'\n', buf) {
        Some(end) => {
            let cr = buf[..end].last() == Some(&b'\r');
            end.saturating_sub(usize::from(cr))
        }
        None => buf.len().saturating_sub(1),
    };
    if line_len > limits.max_request_line {
        return Err(HttpError::new(
            HttpErrorKind::UriTooLong,
            format!(
                "the request line is longer than {} bytes",
                limits.max_request_line
            ),
        ));
    }
    let parsed = with_slots(limits.max_headers, |slots| {
        let mut req = httparse::Request::new(&mut []);
        let status = req
            .parse_with_uninit_headers(buf, slots)
            .map_err(|e| map_httparse(e, buf))?;
        match head_end(status, buf, limits.max_head, "request")? {
            Some(len) => build_request(&req, all).map(|r| Some((r, len))),
            None => Ok(None),
        }
    });
    match parsed {
        Ok(Some(((request, scan), len))) => {
            src.advance(len);
            Ok(Some((request, scan)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `http::Request` of a parsed head, sharing the bytes of `all`, in
/// its box, and what its fields say about framing.
fn build_request(
    req: &httparse::Request<'_, '_>,
    all: &Bytes,
) -> Result<(Box<HttpRequestPart>, FieldScan), HttpError> {
    let version = version_of(req.version);
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HttpError::new(HttpErrorKind::RequestLine, "a malformed method"))?;
    let target = req.path.unwrap_or_default();
    let uri = Uri::from_maybe_shared(all.slice_ref(target.as_bytes()))
        .map_err(|_| HttpError::new(HttpErrorKind::RequestLine, "a malformed request target"))?;
    let mut part = Box::new(HttpRequestPart::Head {
        request: Request::new(()),
        body: BodyKind::Empty,
    });
    let HttpRequestPart::Head { request, .. } = &mut *part else {
        unreachable!("built as a head just above");
    };
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    // The fields go straight into the request's map, a pooled one. The
    // empty map it replaces is forgotten, not dropped: `HeaderMap::new`
    // never allocates (its documented contract), so there is nothing to
    // free, and dropping it cost ~60 instructions a request.
    let empty = std::mem::replace(request.headers_mut(), super::maps::take(req.headers.len()));
    debug_assert_eq!(empty.capacity(), 0);
    std::mem::forget(empty);
    let scan = fields(req.headers, all, request.headers_mut())?;
    check_host(version, &scan, all)?;
    Ok((part, scan.framing))
}

/// Where a head ends, once the parser says it is complete and it is
/// within `max_head` and its line endings are strict; `Ok(None)` while it
/// is incomplete and within the limit.
fn head_end(
    status: httparse::Status<usize>,
    buf: &[u8],
    max_head: usize,
    what: &str,
) -> Result<Option<usize>, HttpError> {
    let too_large = || {
        HttpError::new(
            HttpErrorKind::HeadersTooLarge,
            format!("the {what} head is larger than {max_head} bytes"),
        )
    };
    match status {
        httparse::Status::Partial if buf.len() > max_head => Err(too_large()),
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) if len > max_head => Err(too_large()),
        httparse::Status::Complete(len) => {
            check_line_endings(&buf[..len])?;
            Ok(Some(len))
        }
    }
}

/// What a head's fields say about its framing and its connection, noted
/// while its map is built (so that the decoder looks nothing up again).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FieldScan {
    /// `Transfer-Encoding` is present.
    pub(crate) transfer_encoding: bool,
    /// `Content-Length` is present.
    pub(crate) content_length: bool,
    /// `Connection` is present.
    pub(crate) connection: bool,
    /// `Upgrade` is present.
    pub(crate) upgrade: bool,
}

/// A head's fields as they were parsed: the scan, and the `Host` fields.
struct Fields<'b> {
    framing: FieldScan,
    /// How many `Host` fields, and the first one's value.
    hosts: usize,
    host: &'b [u8],
}

/// The parsed fields into the `http` crate's `map` (empty, with room for
/// them), the values sliced from `head`.
fn fields<'b>(
    parsed: &[httparse::Header<'b>],
    head: &Bytes,
    map: &mut HeaderMap,
) -> Result<Fields<'b>, HttpError> {
    let mut scan = Fields {
        framing: FieldScan::default(),
        hosts: 0,
        host: &[],
    };
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HttpError::new(HttpErrorKind::Field, "a malformed field name"))?;
        if name == HOST {
            scan.hosts = scan.hosts.saturating_add(1);
            if scan.hosts == 1 {
                scan.host = h.value;
            }
        } else if name == TRANSFER_ENCODING {
            scan.framing.transfer_encoding = true;
        } else if name == CONTENT_LENGTH {
            scan.framing.content_length = true;
        } else if name == CONNECTION {
            scan.framing.connection = true;
        } else if name == UPGRADE {
            scan.framing.upgrade = true;
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value))
            .map_err(|_| HttpError::new(HttpErrorKind::Field, "a malformed field value"))?;
        map.append(name, value);
    }
    Ok(scan)
}

/// The version httparse read (it accepts `HTTP/1.0` and `HTTP/1.1` only).
fn version_of(minor: Option<u8>) -> Version {
    match minor {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    }
}

/// Parses the response head at the front of `src` (the client side) and,
/// when complete and valid, takes it out of `src`: `Ok(None)` when it is
/// not complete yet and within `max_head`. The same line-ending and field
/// rules as requests, the same single pass (values sliced, not copied); the
/// status line is `HTTP-version SP 3DIGIT SP [reason] CRLF`.
pub(crate) fn parse_response_head(
    src: &mut Cumulation,
    max_head: usize,
    max_headers: usize,
) -> Result<Option<Response<()>>, HttpError> {
    let config = httparse::ParserConfig::default();
    let all = src.bytes();
    let buf: &[u8] = &all;
    let parsed = with_slots(max_headers, |slots| {
        let mut resp = httparse::Response::new(&mut []);
        let status = config
            .parse_response_with_uninit_headers(&mut resp, buf, slots)
            .map_err(map_response_error)?;
        let Some(len) = head_end(status, buf, max_head, "response")? else {
            return Ok(None);
        };
        let version = version_of(resp.version);
        let status = StatusCode::from_u16(resp.code.unwrap_or_default())
            .map_err(|_| HttpError::new(HttpErrorKind::StatusLine, "a status code out of range"))?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        response.headers_mut().reserve(resp.headers.len());
        fields(resp.headers, &all, response.headers_mut())?;
        Ok(Some((response, len)))
    })?;
    Ok(parsed.map(|(response, len)| {
        src.advance(len);
        response
    }))
}

fn map_response_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => {
            HttpError::new(HttpErrorKind::HeadersTooLarge, "too many header fields")
        }
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            HttpError::new(HttpErrorKind::Field, format!("{e}"))
        }
        httparse::Error::NewLine => {
            HttpError::new(HttpErrorKind::LineEnding, "a malformed line ending")
        }
        _ => HttpError::new(HttpErrorKind::StatusLine, format!("{e}")),
    }
}

fn map_httparse(e: httparse::Error, buf: &[u8]) -> HttpError {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => {
            HttpError::new(HttpErrorKind::HeadersTooLarge, "too many header fields")
        }
        E::Version => {
            // The version is the last word of the request line.
            let line = buf.split(|&c| c == b'\n').next().unwrap_or(buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let word = line.rsplit(|&c| c == b' ').next().unwrap_or(line);
            match word {
                // Decided on the major digit alone: the rest of the line may
                // not have arrived yet.
                [b'H', b'T', b'T', b'P', b'/', major, ..]
                    if major.is_ascii_digit() && *major != b'1' =>
                {
                    HttpError::unsupported_version(format!(
                        "HTTP/{} is not supported",
                        String::from_utf8_lossy(&word[5..])
                    ))
                }
                _ => HttpError::new(
                    HttpErrorKind::Version,
                    "a malformed or unknown HTTP version",
                ),
            }
        }
        E::HeaderName | E::HeaderValue => HttpError::new(HttpErrorKind::Field, format!("{e}")),
        E::NewLine => HttpError::new(HttpErrorKind::LineEnding, "a malformed line ending"),
        _ => HttpError::new(HttpErrorKind::RequestLine, format!("{e}")),
    }
}

/// Every LF is preceded by CR, and every CR followed by LF, checked eight
/// bytes at a time: in each little-endian word the LF positions must be
/// exactly the CR positions moved one byte on (a CR in a word's last byte
/// carries into the next word). Branch-free per word, no call per line:
/// heads are short, and a search call per line cost more than the rest of
/// the check.
fn check_line_endings(head: &[u8]) -> Result<(), HttpError> {
    let mut words = head.chunks_exact(8);
    let mut carry = 0;
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        if !line_ends_match(w, &mut carry) {
            return Err(bad_line_ending());
        }
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Padded with zeros, which are neither CR nor LF.
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        if !line_ends_match(u64::from_le_bytes(last), &mut carry) {
            return Err(bad_line_ending());
        }
    }
    // A CR in the very last byte has no LF after it.
    if carry != 0 {
        return Err(bad_line_ending());
    }
    Ok(())
}

/// Whether the LFs of `w` sit exactly one byte after its CRs (or after
/// the previous word's last byte, when `carry` says it was a CR); `carry`
/// becomes this word's.
fn line_ends_match(w: u64, carry: &mut u64) -> bool {
    let cr = bytes_equal(w, b'\r');
    let lf = bytes_equal(w, b'\n');
    let ok = lf == (cr << 8) | *carry;
    *carry = cr >> 56;
    ok
}

/// The high bit of each byte of `w` that equals `b`, and no other bit:
/// exact, as no addition carries out of a byte.
fn bytes_equal(w: u64, b: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let t = w ^ ONES.wrapping_mul(u64::from(b));
    // Wrapping by design: no addition carries out of a byte.
    !((t & LOW7).wrapping_add(LOW7) | t) & HIGH
}

fn bad_line_ending() -> HttpError {
    HttpError::new(
        HttpErrorKind::LineEnding,
        "a line ends with a lone LF or a bare CR",
    )
}

/// Exactly one valid `Host` in HTTP/1.1, at most one in HTTP/1.0; the
/// value (a slice of `all`) is checked as an authority without a copy.
fn check_host(version: Version, fields: &Fields<'_>, all: &Bytes) -> Result<(), HttpError> {
    match fields.hosts {
        0 if version == Version::HTTP_11 => Err(HttpError::new(
            HttpErrorKind::Host,
            "an HTTP/1.1 request without Host",
        )),
        0 => Ok(()),
        1 if fields.host.is_empty() || plain_host(fields.host) => Ok(()),
        1 => match Authority::from_maybe_shared(all.slice_ref(fields.host)) {
            Ok(a) if a.as_str().contains('@') => Err(HttpError::new(
                HttpErrorKind::Host,
                "Host carries user information",
            )),
            Ok(_) => Ok(()),
            Err(_) => Err(HttpError::new(
                HttpErrorKind::Host,
                "Host is not a valid authority",
            )),
        },
        _ => Err(HttpError::new(
            HttpErrorKind::Host,
            "Host given more than once",
        )),
    }
}

/// Whether `host` is a name or IPv4 address made of letters, digits, dots
/// and hyphens, with an optional port of 1 to 5 digits: an authority that
/// `http`'s parser would accept, recognised without it (the common case;
/// anything else goes to the parser).
fn plain_host(host: &[u8]) -> bool {
    // One pass over the name, with a table: this runs for every request.
    let name_len = host
        .iter()
        .position(|&c| !HOST_NAME[usize::from(c)])
        .unwrap_or(host.len());
    let (name, rest) = host.split_at(name_len);
    !name.is_empty()
        && match rest {
            [] => true,
            [b':', port @ ..] => {
                (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        }
}

/// The bytes of a plain host name: letters, digits, `.` and `-`.
static HOST_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        c += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_plain_host_is_one_the_authority_parser_accepts(
            host in "[a-zA-Z0-9.:@\\[\\]-]{0,12}"
        ) {
            if plain_host(host.as_bytes()) {
                let a = Authority::try_from(host.as_str());
                prop_assert!(a.is_ok(), "{host}");
                prop_assert!(!host.contains('@'));
            }
        }
    }

    #[test]
    fn plain_hosts_are_names_with_an_optional_short_port() {
        for ok in ["x", "127.0.0.1:19300", "a-b.example:1", "h:65535"] {
            assert!(plain_host(ok.as_bytes()), "{ok}");
        }
        for not in [
            "", ":80", "h:", "h:123456", "h:8a", "a_b", "[::1]:80", "u@h", "h:80:80",
        ] {
            assert!(!plain_host(not.as_bytes()), "{not}");
        }
    }

    fn naive(head: &[u8]) -> bool {
        head.iter().enumerate().all(|(i, &c)| match c {
            b'\n' => i > 0 && head[i - 1] == b'\r',
            b'\r' => head.get(i + 1) == Some(&b'\n'),
            _ => true,
        })
    }

    proptest! {
        #[test]
        fn line_endings_agree_with_byte_at_a_time(
            head in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n')], 0..48)
        ) {
            prop_assert_eq!(check_line_endings(&head).is_ok(), naive(&head));
        }

        #[test]
        fn line_endings_agree_with_byte_at_a_time_for_any_byte(
            head in proptest::collection::vec(any::<u8>(), 0..40),
            ends in proptest::collection::vec((0usize..40, prop_oneof![Just(&b"\r\n"[..]), Just(&b"\r"[..]), Just(&b"\n"[..])]), 0..6)
        ) {
            let mut head = head;
            for (at, end) in ends {
                let at = at.min(head.len());
                head.splice(at..at, end.iter().copied());
            }
            prop_assert_eq!(check_line_endings(&head).is_ok(), naive(&head));
        }
    }

    #[test]
    fn bytes_equal_flags_exactly_the_matching_bytes() {
        for b in 0..=255u8 {
            for x in [0u8, 1, 0x0a, 0x0d, 0x7f, 0x80, 0x8a, 0x8d, 0xff] {
                let w = u64::from_le_bytes([x, b, x, b, 0, 0xff, b, x]);
                let flags = bytes_equal(w, b);
                for (i, byte) in w.to_le_bytes().iter().enumerate() {
                    let flagged = flags >> (8 * i) & 0xff;
                    assert_eq!(flagged, if *byte == b { 0x80 } else { 0 }, "{b} {x} {i}");
                }
            }
        }
    }

    #[test]
    fn a_lone_lf_or_bare_cr_is_found_at_every_offset() {
        for len in 1..40 {
            for at in 0..len {
                for bad in [b'\n', b'\r'] {
                    let mut head = vec![b'x'; len];
                    head[at] = bad;
                    assert!(check_line_endings(&head).is_err(), "{len} {at} {bad}");
                }
                let mut ok = vec![b'x'; len + 1];
                ok[at] = b'\r';
                ok[at + 1] = b'\n';
                assert!(check_line_endings(&ok).is_ok(), "{len} {at}");
            }
        }
    }
}
