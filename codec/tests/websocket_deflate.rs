//! permessage-deflate (RFC 7692) through `EmbeddedChannel`: what the server
//! agrees to, messages inflated and deflated (fragmented, with the window
//! carried over or not), and every way a compressed message can be bad.
#![cfg(feature = "websocket")]

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use weft_codec::http::HttpServerCodec;
use weft_codec::websocket::{
    apply_mask, DeflateConfig, Frame, HandshakeComplete, OpCode, WebSocketConfig, WebSocketUpgrade,
};
use weft_core::EmbeddedChannel;

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn request(extensions: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    )
    .into_bytes()
}

/// A server offered `extensions`; its answer's extension header (if any).
fn upgrade(config: DeflateConfig, extensions: &str) -> (EmbeddedChannel, Option<String>) {
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last(
            "ws",
            WebSocketUpgrade::new("/ws")
                .compression(config)
                .config(WebSocketConfig::new().max_message_size(64 << 10))
                .handshake_timeout(None),
        )
        .build();
    ch.write_inbound(request(extensions));
    let head = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let ext = head
        .lines()
        .find_map(|l| l.strip_prefix("sec-websocket-extensions: "))
        .map(str::to_string);
    let done = ch.read_user_event::<HandshakeComplete>().unwrap();
    assert_eq!(done.compression, ext.is_some());
    (ch, ext)
}

/// A client frame: masked, with RSV1 as given.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode);
    match payload.len() {
        n if n < 126 => b.put_u8(0x80 | n as u8),
        n => {
            b.put_u8(0x80 | 126);
            b.put_u16(n as u16);
        }
    }
    b.put_slice(&MASK);
    let mut data = payload.to_vec();
    apply_mask(&mut data, MASK);
    b.put_slice(&data);
    b.to_vec()
}

/// `data` deflated as a message, without the final `00 00 ff ff`.
fn deflate_message(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// The server's frames: (fin, rsv1, opcode, payload).
fn sent(ch: &mut EmbeddedChannel) -> Vec<(bool, bool, u8, Vec<u8>)> {
    let out = ch.read_outbound_bytes();
    let mut frames = Vec::new();
    let mut i = 0;
    while i < out.len() {
        let (b0, b1) = (out[i], out[i + 1]);
        let (len, at) = match b1 & 0x7F {
            126 => (u16::from_be_bytes([out[i + 2], out[i + 3]]) as usize, i + 4),
            n => (n as usize, i + 2),
        };
        frames.push((
            b0 & 0x80 != 0,
            b0 & 0x40 != 0,
            b0 & 0x0F,
            out[at..at + len].to_vec(),
        ));
        i = at + len;
    }
    frames
}

fn close_code(ch: &mut EmbeddedChannel) -> Option<u16> {
    sent(ch)
        .into_iter()
        .find(|f| f.2 == 0x8)
        .map(|f| u16::from_be_bytes([f.3[0], f.3[1]]))
}

#[test]
fn the_server_agrees_to_the_first_offer_it_can_honour() {
    let cases = [
        ("permessage-deflate", Some("permessage-deflate")),
        (
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate"),
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        // A 256-byte window cannot be honoured: the next offer is taken.
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            Some("permessage-deflate"),
        ),
        // Unknown, repeated and bad parameters make an offer unacceptable.
        ("permessage-deflate; foo=1", None),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            None,
        ),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("x-webkit-deflate-frame", None),
    ];
    for (offer, want) in cases {
        let (_, got) = upgrade(DeflateConfig::new(), offer);
        assert_eq!(got.as_deref(), want, "{offer}");
    }
    // Configured to drop its window, the server says so unasked.
    let (_, got) = upgrade(
        DeflateConfig::new().no_context_takeover(true),
        "permessage-deflate",
    );
    assert_eq!(
        got.as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    // Without compression configured, an offer is ignored.
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("ws", WebSocketUpgrade::new("/ws").handshake_timeout(None))
        .build();
    ch.write_inbound(request("permessage-deflate"));
    let head = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
    assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
}

#[test]
fn messages_are_inflated_in_and_deflated_out_with_the_window_carried_over() {
    let (mut ch, _) = upgrade(DeflateConfig::new(), "permessage-deflate");
    assert_eq!(ch.pipeline().names(), ["websocket", "websocket-deflate"]);
    let text = "the same words, the same words, the same words again";
    let mut client = Compress::new(Compression::default(), false);
    let first = deflate_message(&mut client, text.as_bytes());
    ch.write_inbound(frame(true, true, 0x1, &first));
    let f: Frame = ch.read_inbound().expect("inflated");
    assert_eq!((f.opcode, f.rsv1, f.fin), (OpCode::Text, false, true));
    assert_eq!(f.payload, text);
    // The second message refers back into the first one's window.
    let second = deflate_message(&mut client, text.as_bytes());
    assert!(second.len() < first.len() / 2, "the window carried over");
    ch.write_inbound(frame(true, true, 0x1, &second));
    let f: Frame = ch.read_inbound().unwrap();
    assert_eq!(f.payload, text);

    // Out: RSV1 on the frame, deflated, the tail removed.
    let mut server = Decompress::new(false);
    for _ in 0..2 {
        ch.write_outbound(Frame::text(text));
        let frames = sent(&mut ch);
        assert_eq!(frames.len(), 1);
        let (fin, rsv1, op, mut payload) = frames.into_iter().next().unwrap();
        assert!(fin && rsv1 && op == 0x1);
        payload.extend([0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(256);
        server
            .decompress_vec(&payload, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, text.as_bytes());
    }
    // Uncompressed messages still pass, and control frames are untouched.
    ch.write_inbound(frame(true, false, 0x2, b"plain"));
    let f: Frame = ch.read_inbound().unwrap();
    assert_eq!(f.payload, "plain");
    ch.write_inbound(frame(true, false, 0x9, b"ping"));
    assert_eq!(sent(&mut ch), [(true, false, 0xA, b"ping".to_vec())]);
}

#[test]
fn a_fragmented_compressed_message_is_inflated_fragment_by_fragment() {
    let (mut ch, _) = upgrade(DeflateConfig::new(), "permessage-deflate");
    let text = "κόσμε ".repeat(200);
    let mut client = Compress::new(Compression::default(), false);
    let z = deflate_message(&mut client, text.as_bytes());
    let (a, b) = z.split_at(z.len() / 2);
    ch.write_inbound(frame(false, true, 0x1, a));
    ch.write_inbound(frame(true, false, 0x9, b"between"));
    ch.write_inbound(frame(true, false, 0x0, b));
    let mut whole = Vec::new();
    while let Some(f) = ch.read_inbound::<Frame>() {
        assert!(!f.rsv1);
        whole.extend_from_slice(&f.payload);
    }
    assert_eq!(whole, text.as_bytes());

    // Written in fragments: RSV1 on the first only, the tail on none.
    ch.read_outbound_bytes();
    let mut first = Frame::text("part one, ");
    first.fin = false;
    ch.write_outbound(first);
    let mut last = Frame::new(OpCode::Continuation, "part two");
    last.fin = true;
    ch.write_outbound(last);
    let frames = sent(&mut ch);
    assert_eq!(frames.len(), 2);
    assert!(!frames[0].0 && frames[0].1 && frames[0].2 == 0x1);
    assert!(frames[1].0 && !frames[1].1 && frames[1].2 == 0x0);
    let mut z: Vec<u8> = frames.iter().flat_map(|f| f.3.clone()).collect();
    z.extend([0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64);
    Decompress::new(false)
        .decompress_vec(&z, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(out, b"part one, part two");

    // An empty last fragment still ends the stream well: what the peer
    // inflates, with the tail it appends, stays valid for the next message
    // (the window carries over).
    let mut peer = Decompress::new(false);
    for round in 0..2 {
        let mut first = Frame::text("all of it");
        first.fin = false;
        ch.write_outbound(first);
        ch.write_outbound(Frame::new(OpCode::Continuation, ""));
        let mut z: Vec<u8> = sent(&mut ch).iter().flat_map(|f| f.3.clone()).collect();
        z.extend([0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(64);
        peer.decompress_vec(&z, &mut out, FlushDecompress::Sync)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(out, b"all of it", "round {round}");
    }
}

#[test]
fn without_context_takeover_each_message_stands_alone() {
    let (mut ch, _) = upgrade(
        DeflateConfig::new(),
        "permessage-deflate; server_no_context_takeover",
    );
    let text = "a message that repeats itself";
    let mut payloads = Vec::new();
    for _ in 0..2 {
        ch.write_outbound(Frame::text(text));
        payloads.push(sent(&mut ch).remove(0).3);
    }
    assert_eq!(payloads[0], payloads[1], "the second did not use the first");
    // Each inflates alone, with a fresh inflater.
    for p in payloads {
        let mut z = p.clone();
        z.extend([0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(64);
        Decompress::new(false)
            .decompress_vec(&z, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, text.as_bytes());
    }
}

#[test]
fn bad_compressed_messages_fail_with_their_close_codes() {
    let mut client = Compress::new(Compression::default(), false);
    // A bomb: 1 MiB of zeros deflates to about a kilobyte; the limit is
    // 64 KiB inflated.
    let bomb = deflate_message(&mut client, &vec![0u8; 1 << 20]);
    assert!(bomb.len() < 5000);
    let mut client = Compress::new(Compression::default(), false);
    let not_utf8 = deflate_message(&mut client, b"ok so far \xff\xfe");
    let cases: [(&str, Vec<u8>, u16); 5] = [
        (
            "inflated past the limit",
            frame(true, true, 0x2, &bomb),
            1009,
        ),
        (
            "text that is not UTF-8 once inflated",
            frame(true, true, 0x1, &not_utf8),
            1007,
        ),
        (
            "data that does not inflate",
            frame(true, true, 0x2, &[0xff; 16]),
            1007,
        ),
        (
            "RSV1 on a continuation",
            [
                frame(false, true, 0x2, &[0x02, 0x00]),
                frame(true, true, 0x0, b"x"),
            ]
            .concat(),
            1002,
        ),
        ("RSV1 on a control frame", frame(true, true, 0x9, b""), 1002),
    ];
    for (what, bytes, code) in cases {
        let (mut ch, _) = upgrade(DeflateConfig::new(), "permessage-deflate");
        ch.write_inbound(bytes);
        assert_eq!(close_code(&mut ch), Some(code), "{what}");
        assert!(!ch.is_open(), "{what}");
    }
    // RSV1 where compression was not agreed.
    let (mut ch, ext) = upgrade(DeflateConfig::new(), "x-other");
    assert!(ext.is_none());
    ch.write_inbound(frame(true, true, 0x1, b"abc"));
    assert_eq!(close_code(&mut ch), Some(1002));
}

/// Inflating is paced per connection (issue 34, R2: a 61 KB frame
/// inflated to 60 MiB and deflated again for the echo, 46 ms of CPU per
/// frame, one connection a core): past the rate the connection stops being
/// read until it is back within it.
#[test]
fn inflating_past_its_rate_stops_the_reads() {
    let (mut ch, ext) = upgrade(
        DeflateConfig::new().max_inflate_rate(64 * 1024),
        "permessage-deflate",
    );
    assert!(ext.is_some());
    let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut pending = 0;
    while ch.channel().is_auto_read() && pending < 20 {
        // 60 KiB of zeros: a few dozen bytes on the wire.
        let packed = deflate_message(&mut c, &[0u8; 60 * 1024]);
        ch.write_inbound(frame(true, true, 0x2, &packed));
        pending += 1;
    }
    assert!(
        !ch.channel().is_auto_read(),
        "{pending} messages of 60 KiB inflated at 64 KiB/s and reads still on"
    );
    assert!(pending <= 3, "reads stopped only after {pending} messages");
    // The channel's timer turns them on again once the debt is paid: 60 KiB
    // a message at 64 KiB/s is about a second each.
    ch.advance_time(std::time::Duration::from_millis(100));
    assert!(
        !ch.channel().is_auto_read(),
        "resumed before the debt was paid"
    );
    ch.advance_time(std::time::Duration::from_secs(4));
    assert!(ch.channel().is_auto_read(), "reads never resumed");
}
