//! The table of malformed requests (RFC 9112 §2–§7, RFC 9110 §5), shared
//! by the decoder's tests and the server codec's.
#![allow(dead_code)]

/// One malformed request: what it is, what it must be answered with.
pub(crate) struct Bad {
    pub(crate) why: &'static str,
    pub(crate) head: String,
    pub(crate) status: u16,
}

fn bad(why: &'static str, head: impl Into<String>, status: u16) -> Bad {
    Bad {
        why,
        head: head.into(),
        status,
    }
}

pub(crate) fn malformed() -> Vec<Bad> {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let many_fields: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let big_field = format!("X-Big: {}\r\n", "v".repeat(17 * 1024));
    vec![
        // Content-Length and Transfer-Encoding.
        bad("CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        bad("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        bad("final coding not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
        bad("unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        bad("chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        bad("CL repeated", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
        bad("CL conflicting", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        bad("CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", 400),
        bad("CL sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", 400),
        bad("CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\n", 400),
        bad("CL overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        // Chunked grammar.
        bad("chunk size not hex", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 400),
        bad("chunk size LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
        bad("chunk data without CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
        bad("chunk data then LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400),
        bad("chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400),
        bad("chunk extensions too long", format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n", "e".repeat(5000)), 400),
        bad("trailer without colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnope\r\n\r\n", 400),
        // Field syntax.
        bad("space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
        bad("obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400),
        bad("name not a token", "GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", 400),
        bad("NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n", 400),
        bad("bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n", 400),
        bad("lone LF line ending", "GET / HTTP/1.1\nHost: x\n\n", 400),
        bad("lone LF in fields", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
        // Host.
        bad("no Host", "GET / HTTP/1.1\r\n\r\n", 400),
        bad("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        bad("bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        bad("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
        // Request line.
        bad("two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        bad("no version", "GET /\r\nHost: x\r\n\r\n", 400),
        bad("HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        bad("HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400),
        bad("lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400),
        // Limits.
        bad("target too long", long_target, 414),
        bad("too many fields", format!("GET / HTTP/1.1\r\nHost: x\r\n{many_fields}\r\n"), 431),
        bad("head too large", format!("GET / HTTP/1.1\r\nHost: x\r\n{big_field}\r\n"), 431),
    ]
}
