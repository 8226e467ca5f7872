#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into corpus/<target>/: lines and
fields of exactly a limit, one byte less and one byte more, for the limits
the targets pick (a chunked trailer line of exactly its limit once made the
decoder wait for ever, and random inputs of a fuzzer's default length
never reached 8 KiB). Run it before `cargo fuzz run`; it only adds files."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# http_chunked: [step, limits byte, body]; the target derives the limits
# from the byte exactly as below.
for limits in (0x00, 0x11, 0x7f, 0xff):
    line = 8 + (limits & 0x0F) * 16 + (limits >> 4)
    trailers = 8 + (((limits << 3) | (limits >> 5)) & 0xFF)
    for step in (0, 7, 255):
        for d in (-1, 0, 1):
            n = trailers + d
            field = b"X-T: " + b"a" * max(0, n - 7)  # with its CRLF: n bytes
            body = b"0\r\n" + field + b"\r\n\r\n" + b"z" * 64
            put("http_chunked", f"trailer-{limits:02x}-{step}-{d:+d}", bytes([step, limits]) + body)
            ext = b"1;" + b"e" * max(0, line + d - 2)
            body = ext + b"\r\nx\r\n0\r\n\r\n"
            put("http_chunked", f"sizeline-{limits:02x}-{step}-{d:+d}", bytes([step, limits]) + body)

# line (limit 128), delimiter (limit 128), length_field (max 512), fixed.
for d in (-1, 0, 1):
    for opt in (0, 1, 2, 3):
        put("line", f"limit{d:+d}-{opt}", bytes([opt, 7]) + b"l" * (128 + d) + b"\r\nnext\n")
        put("delimiter", f"limit{d:+d}-{opt}", bytes([opt, 7]) + b"d" * (128 + d) + b"--next\0")
    # A 2-byte big-endian field (a = 0x04), no adjustment: a frame of 512 + d.
    n = 512 + d - 2
    put("length_field", f"max{d:+d}", bytes([0x04, 0x00, 7]) + n.to_bytes(2, "big") + b"f" * max(0, n))

# http_request: a request line and a head at the decoder's default limits.
for d in (-1, 0, 1):
    target = b"/" + b"p" * (8 * 1024 + d - len(b"GET  HTTP/1.1") - 1)
    put("http_request", f"line{d:+d}", bytes([255]) + b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
