//! WebSocket through `EmbeddedChannel`: the upgrade that replaces the HTTP
//! handlers (with the first frame in the same write as the request), the
//! refusals, and every frame rule of RFC 6455 with the close code it earns.
#![cfg(feature = "websocket")]

use bytes::{BufMut, Bytes, BytesMut};
use weft_codec::http::{HttpRequestPart, HttpServerCodec};
use weft_codec::websocket::{
    accept_key, apply_mask, CloseCode, Frame, HandshakeComplete, OpCode, Role, WebSocketCodec,
    WebSocketConfig, WebSocketUpgrade,
};
use weft_core::{EmbeddedChannel, Msg};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A frame as a client sends it: masked.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, Some(MASK), payload)
}

fn raw_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(u8::from(fin) << 7 | rsv << 4 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => b.put_u8(m | n as u8),
        n if n <= 0xFFFF => {
            b.put_u8(m | 126);
            b.put_u16(n as u16);
        }
        n => {
            b.put_u8(m | 127);
            b.put_u64(n as u64);
        }
    }
    let mut data = payload.to_vec();
    if let Some(key) = mask {
        b.put_slice(&key);
        apply_mask(&mut data, key);
    }
    b.put_slice(&data);
    b.to_vec()
}

/// An upgraded server pipeline: codec, upgrade handler, and nothing after
/// (frames are read with `read_inbound`).
fn server() -> EmbeddedChannel {
    server_with(WebSocketConfig::new())
}

fn server_with(config: WebSocketConfig) -> EmbeddedChannel {
    EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last(
            "ws",
            WebSocketUpgrade::new("/ws")
                .subprotocols(["chat", "superchat"])
                .config(config)
                .handshake_timeout(None),
        )
        .build()
}

fn upgraded(config: WebSocketConfig) -> EmbeddedChannel {
    let mut ch = server_with(config);
    ch.write_inbound(upgrade_request("/ws", "").into_bytes());
    let head = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    ch
}

/// The close frame the server sent (unmasked), and whether it closed.
fn server_close(ch: &mut EmbeddedChannel) -> Option<u16> {
    let out = ch.read_outbound_bytes();
    let mut i = 0;
    let mut code = None;
    while i + 2 <= out.len() {
        let op = out[i] & 0x0F;
        let len = (out[i + 1] & 0x7F) as usize;
        assert!(len < 126, "control frames only here");
        if op == 0x8 && len >= 2 {
            code = Some(u16::from_be_bytes([out[i + 2], out[i + 3]]));
        }
        i += 2 + len;
    }
    code
}

#[test]
fn the_upgrade_replaces_the_http_handlers_and_keeps_the_bytes_behind_it() {
    let mut ch = server();
    let mut first_write =
        upgrade_request("/ws", "Sec-WebSocket-Protocol: other, chat\r\n").into_bytes();
    first_write.extend(client_frame(true, 0x1, b"hello in the same write"));
    ch.write_inbound(first_write);
    let head = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains(
        &format!("sec-websocket-accept: {}\r\n", accept_key(KEY.as_bytes())).to_ascii_lowercase()
    ));
    assert!(lower.contains("upgrade: websocket\r\n"));
    assert!(lower.contains("sec-websocket-protocol: chat\r\n"), "{head}");
    assert!(!lower.contains("content-length"), "{head}");
    assert_eq!(ch.pipeline().names(), ["websocket"]);
    let done = ch.read_user_event::<HandshakeComplete>().expect("an event");
    assert_eq!(done.subprotocol.as_deref(), Some("chat"));
    let f: Frame = ch.read_inbound().expect("the frame behind the request");
    assert_eq!((f.opcode, f.fin), (OpCode::Text, true));
    assert_eq!(f.payload, "hello in the same write");
    // And frames keep flowing; the server answers unmasked.
    ch.write_inbound(client_frame(true, 0x2, b"\x01\x02"));
    let f: Frame = ch.read_inbound().unwrap();
    assert_eq!(f.payload[..], [1, 2]);
    ch.write_outbound(Frame::text("back"));
    assert_eq!(
        ch.read_outbound_bytes()[..],
        raw_frame(true, 0, 0x1, None, b"back")[..]
    );
}

#[test]
fn other_requests_are_served_as_http_before_the_upgrade() {
    let mut ch = server();
    ch.write_inbound(&b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let Some(HttpRequestPart::Head { request, .. }) = ch.read_inbound() else {
        panic!("the page request passes on");
    };
    assert_eq!(request.uri().path(), "/page");
    assert!(ch.pipeline().names().contains(&"http"));
    ch.write_outbound(Msg::user(weft_codec::http::http::Response::new(
        Bytes::from_static(b"page"),
    )));
    assert!(ch.read_outbound_bytes().starts_with(b"HTTP/1.1 200 OK"));
    // Then the same connection upgrades.
    ch.write_inbound(upgrade_request("/ws", "").into_bytes());
    assert!(ch.read_outbound_bytes().starts_with(b"HTTP/1.1 101 "));
    assert_eq!(ch.pipeline().names(), ["websocket"]);
}

#[test]
fn bad_upgrades_are_refused_and_the_connection_stays_http() {
    let cases: [(&str, &str); 6] = [
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "400",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "400",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "426",
        ),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc",
            "400",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "400",
        ),
    ];
    for (request, status) in cases {
        let mut ch = server();
        ch.write_inbound(request.as_bytes().to_vec());
        let out = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} → {out}"
        );
        if status == "426" {
            assert!(
                out.to_ascii_lowercase()
                    .contains("sec-websocket-version: 13\r\n"),
                "{out}"
            );
        }
        assert!(ch.is_open(), "{request:?}");
        assert!(
            ch.read_inbound_msg().is_none(),
            "nothing reaches the app: {request:?}"
        );
        // HTTP goes on after the refusal.
        ch.write_inbound(&b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let Some(HttpRequestPart::Head { request: next, .. }) = ch.read_inbound() else {
            panic!("HTTP parsing resumes after {request:?}");
        };
        assert_eq!(next.uri().path(), "/next");
    }
}

#[test]
fn every_frame_violation_is_answered_with_its_close_code() {
    let big = vec![b'a'; 200];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "unmasked from a client",
            raw_frame(true, 0, 0x1, None, b"hi"),
            1002,
        ),
        (
            "RSV1 without an extension",
            raw_frame(true, 4, 0x1, Some(MASK), b"hi"),
            1002,
        ),
        ("RSV3", raw_frame(true, 1, 0x2, Some(MASK), b"hi"), 1002),
        ("reserved data opcode", client_frame(true, 0x3, b""), 1002),
        (
            "reserved control opcode",
            client_frame(true, 0xB, b""),
            1002,
        ),
        ("fragmented ping", client_frame(false, 0x9, b""), 1002),
        (
            "ping over 125 bytes",
            client_frame(true, 0x9, &[0; 126]),
            1002,
        ),
        (
            "continuation with no message",
            client_frame(true, 0x0, b"x"),
            1002,
        ),
        (
            "a new message inside a fragmented one",
            [
                client_frame(false, 0x1, b"a"),
                client_frame(true, 0x1, b"b"),
            ]
            .concat(),
            1002,
        ),
        (
            "text that is not UTF-8",
            client_frame(true, 0x1, b"\xce\xba\xff"),
            1007,
        ),
        (
            "UTF-8 broken across fragments",
            [
                client_frame(false, 0x1, b"\xce"),
                client_frame(true, 0x0, b"\x41"),
            ]
            .concat(),
            1007,
        ),
        (
            "a character cut at the end of a message",
            client_frame(true, 0x1, b"ok\xe2\x82"),
            1007,
        ),
        (
            "a frame over the limit",
            client_frame(true, 0x2, &big),
            1009,
        ),
        (
            "a message over the limit",
            [
                client_frame(false, 0x2, &big[..150]),
                client_frame(true, 0x0, &big[..150]),
            ]
            .concat(),
            1009,
        ),
        (
            "a close of one byte",
            client_frame(true, 0x8, b"\x03"),
            1002,
        ),
        (
            "a close with 1005",
            client_frame(true, 0x8, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "a close with 999",
            client_frame(true, 0x8, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "a close reason that is not UTF-8",
            client_frame(true, 0x8, b"\x03\xe8\xff\xfe"),
            1007,
        ),
        (
            "a 64-bit length with its top bit",
            {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend((1u64 << 63).to_be_bytes());
                f.extend(MASK);
                f
            },
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let config = WebSocketConfig::new()
            .max_frame_size(180)
            .max_message_size(250);
        let mut ch = upgraded(config);
        ch.write_inbound(bytes);
        assert_eq!(server_close(&mut ch), Some(code), "{what}");
        assert!(!ch.is_open(), "{what}: the connection is closed");
        assert!(ch.check_exception().is_err(), "{what}: reported");
        // Nothing after the violation is parsed.
        ch.write_inbound(client_frame(true, 0x1, b"after"));
        while let Some(m) = ch.read_inbound_msg() {
            let f = m.downcast::<Frame>().ok().unwrap();
            assert_ne!(f.payload, "after", "{what}");
        }
    }
}

#[test]
fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
    // Autobahn 6.4.3: a text frame whose payload arrives in pieces, the
    // second holding a code point past U+10FFFF.
    let mut ch = upgraded(WebSocketConfig::new());
    let payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited";
    let frame = client_frame(true, 0x1, payload);
    let header = frame.len() - payload.len();
    ch.write_inbound(frame[..header + 11].to_vec());
    assert_eq!(server_close(&mut ch), None, "valid so far");
    ch.write_inbound(frame[header + 11..header + 15].to_vec());
    assert_eq!(server_close(&mut ch), Some(1007), "failed without the rest");
    assert!(!ch.is_open());

    // Split anywhere, a valid text frame still arrives whole and intact.
    let text = "κόσμε: ascii, ünïcödé, 𝄞 and more".repeat(40);
    let frame = client_frame(true, 0x1, text.as_bytes());
    for cut in [1, 3, 7, 200, 1025, frame.len() - 1] {
        let mut ch = upgraded(WebSocketConfig::new());
        ch.write_inbound(frame[..cut].to_vec());
        ch.write_inbound(frame[cut..].to_vec());
        let f: Frame = ch.read_inbound().expect("the frame");
        assert_eq!(f.payload, text.as_bytes(), "cut at {cut}");
        assert_eq!(server_close(&mut ch), None);
    }
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let mut ch = upgraded(WebSocketConfig::new().max_frame_size(1000));
    // The header announces 1 MiB; none of the payload is sent.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend((1u64 << 20).to_be_bytes());
    header.extend(MASK);
    ch.write_inbound(header);
    assert_eq!(server_close(&mut ch), Some(1009));
    assert!(!ch.is_open());
}

/// Partial frames of all connections count in one budget (issue 34, R1:
/// each connection could hold a 16 MiB partial frame, and 50 of them took
/// +800 MB): the connection whose bytes would pass it is closed with 1009;
/// its share comes back, so a new one fits again. A partial fragmented
/// message held by the aggregator counts the same way.
#[test]
fn partial_frames_of_all_connections_share_one_budget() {
    let budget = std::sync::Arc::new(weft_core::MemoryBudget::new("test frames", 9_999));
    let config = || WebSocketConfig::new().memory_budget(budget.clone());
    // Each announces a 6,000-byte frame and sends 5,000 bytes of it.
    let partial = || {
        let mut f = client_frame(true, 0x2, &[7u8; 6000]);
        f.truncate(5000);
        f
    };
    let mut a = upgraded(config());
    a.write_inbound(partial());
    assert!(a.is_open());
    assert_eq!(budget.used(), 5000);
    let mut b = upgraded(config());
    b.write_inbound(partial());
    assert_eq!(
        server_close(&mut b),
        Some(1009),
        "10,000 bytes would pass the budget of 9,999"
    );
    assert!(!b.is_open());
    drop(b);
    assert_eq!(budget.used(), 5000, "the refused connection holds nothing");
    drop(a);
    assert_eq!(
        budget.used(),
        0,
        "a dropped connection gives its share back"
    );

    let mut agg = EmbeddedChannel::with_handler(
        weft_codec::websocket::WebSocketMessageAggregator::new().memory_budget(budget.clone()),
    );
    let fragment = |fin, op| weft_codec::websocket::Frame {
        fin,
        ..weft_codec::websocket::Frame::new(op, vec![1u8; 4000])
    };
    agg.write_inbound(Msg::user(fragment(false, OpCode::Binary)));
    agg.write_inbound(Msg::user(fragment(false, OpCode::Continuation)));
    assert_eq!(budget.used(), 8000);
    agg.write_inbound(Msg::user(fragment(false, OpCode::Continuation)));
    assert!(
        !agg.is_open(),
        "12,000 bytes would pass the budget of 9,999"
    );
    assert_eq!(budget.used(), 0);
}

#[test]
fn pings_are_answered_between_fragments_and_text_may_split_a_character() {
    let mut ch = upgraded(WebSocketConfig::new());
    let euro = "€".as_bytes(); // three bytes, split across fragments
    ch.write_inbound(
        [
            client_frame(false, 0x1, &[b'a', euro[0]]),
            client_frame(true, 0x9, b"ping!"),
            client_frame(false, 0x0, &euro[1..2]),
            client_frame(true, 0x0, &[euro[2], b'z']),
        ]
        .concat(),
    );
    assert_eq!(
        ch.read_outbound_bytes()[..],
        raw_frame(true, 0, 0xA, None, b"ping!")[..]
    );
    let parts: Vec<Frame> = std::iter::from_fn(|| ch.read_inbound::<Frame>()).collect();
    let ops: Vec<(OpCode, bool)> = parts.iter().map(|f| (f.opcode, f.fin)).collect();
    assert_eq!(
        ops,
        [
            (OpCode::Text, false),
            (OpCode::Continuation, false),
            (OpCode::Continuation, true)
        ]
    );
    let text: Vec<u8> = parts.iter().flat_map(|f| f.payload.to_vec()).collect();
    assert_eq!(text, "a€z".as_bytes());
    assert!(ch.is_open());
}

#[test]
fn a_clients_close_is_echoed_then_the_server_closes() {
    let mut ch = upgraded(WebSocketConfig::new());
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend(b"bye");
    ch.write_inbound(client_frame(true, 0x8, &payload));
    let f: Frame = ch.read_inbound().expect("the close reaches the app");
    assert_eq!(f.close_code(), Some(CloseCode::NORMAL));
    assert_eq!(f.close_reason(), Some("bye"));
    assert_eq!(server_close(&mut ch), Some(1000));
    assert!(!ch.is_open());
}

/// Echoes every data frame, as Autobahn's `/echo` peer expects.
struct Echo;

#[weft_core::handler]
impl weft_core::Handler for Echo {
    fn channel_read(&mut self, ctx: &mut weft_core::Context<'_>, msg: Msg) {
        match msg.downcast::<Frame>() {
            Ok(f) if !f.opcode.is_control() => ctx.write_and_flush(f),
            Ok(_) => {}
            Err(other) => ctx.fire_read(other),
        }
    }
}

/// The frames the server sent, as (opcode, payload), all unmasked.
fn sent_frames(ch: &mut EmbeddedChannel) -> Vec<(u8, Vec<u8>)> {
    let out = ch.read_outbound_bytes();
    let mut frames = Vec::new();
    let mut i = 0;
    while i + 2 <= out.len() {
        let len = (out[i + 1] & 0x7F) as usize;
        assert!(len < 126, "small frames only here");
        frames.push((out[i] & 0x0F, out[i + 2..i + 2 + len].to_vec()));
        i += 2 + len;
    }
    frames
}

#[test]
fn an_echo_written_while_the_codec_decodes_leaves_before_its_close() {
    // A good frame and a violation in one read: the echo handler writes
    // while the decoder is still busy with that read; the close for the
    // violation must not overtake the echo.
    let mut ch = upgraded(WebSocketConfig::new());
    ch.pipeline_mut().add_last("echo", Echo).unwrap();
    let mut bytes = client_frame(true, 0x1, b"Hello, world!");
    bytes.extend(raw_frame(true, 2, 0x1, Some(MASK), b"Hello, world!"));
    bytes.extend(client_frame(true, 0x9, b""));
    ch.write_inbound(bytes);
    let frames = sent_frames(&mut ch);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        frames[0],
        (0x1, b"Hello, world!".to_vec()),
        "the echo first"
    );
    assert_eq!(frames[1].0, 0x8);
    assert_eq!(frames[1].1[..2], 1002u16.to_be_bytes());
    assert!(!ch.is_open());

    // The same with the peer's own close right behind its message.
    let mut ch = upgraded(WebSocketConfig::new());
    ch.pipeline_mut().add_last("echo", Echo).unwrap();
    let mut bytes = client_frame(true, 0x2, b"last words");
    bytes.extend(client_frame(true, 0x8, &1000u16.to_be_bytes()));
    ch.write_inbound(bytes);
    let frames = sent_frames(&mut ch);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0], (0x2, b"last words".to_vec()));
    assert_eq!(frames[1], (0x8, 1000u16.to_be_bytes().to_vec()));
    assert!(!ch.is_open());
}

/// Closes on a text frame saying "bye", echoes the others.
struct CloseOnBye;

#[weft_core::handler]
impl weft_core::Handler for CloseOnBye {
    fn channel_read(&mut self, ctx: &mut weft_core::Context<'_>, msg: Msg) {
        if let Ok(f) = msg.downcast::<Frame>() {
            if f.payload == "bye" {
                ctx.write_and_flush(Frame::close(CloseCode::NORMAL, ""));
            } else {
                ctx.write_and_flush(f);
            }
        }
    }
}

#[test]
fn answers_leave_in_the_order_of_the_frames_they_answer() {
    // The application's echo reaches the encoder while the decoder is still
    // busy with the read, so it leaves before the pong for the ping read
    // after its frame, not behind it.
    let mut ch = upgraded(WebSocketConfig::new());
    ch.pipeline_mut().add_last("echo", Echo).unwrap();
    let mut bytes = client_frame(true, 0x1, b"first");
    bytes.extend(client_frame(true, 0x9, b"ping"));
    bytes.extend(client_frame(true, 0x2, b"second"));
    ch.write_inbound(bytes);
    assert_eq!(
        sent_frames(&mut ch),
        [
            (0x1, b"first".to_vec()),
            (0xA, b"ping".to_vec()),
            (0x2, b"second".to_vec())
        ]
    );
}

#[test]
fn a_close_written_in_answer_drops_the_frames_behind_it_in_the_same_read() {
    let mut ch = upgraded(WebSocketConfig::new());
    ch.pipeline_mut().add_last("app", CloseOnBye).unwrap();
    let mut bytes = client_frame(true, 0x1, b"hello");
    bytes.extend(client_frame(true, 0x1, b"bye"));
    bytes.extend(client_frame(true, 0x1, b"after our close"));
    bytes.extend(client_frame(true, 0x9, b"no pong either"));
    ch.write_inbound(bytes);
    assert_eq!(
        sent_frames(&mut ch),
        [
            (0x1, b"hello".to_vec()),
            (0x8, 1000u16.to_be_bytes().to_vec())
        ],
        "nothing answered after our close"
    );
    assert!(ch.is_open(), "waiting for the peer's close");
}

#[test]
fn after_the_app_closes_data_writes_fail_and_data_frames_are_dropped() {
    let mut ch = upgraded(WebSocketConfig::new());
    ch.write_outbound(Frame::close(CloseCode::GOING_AWAY, "shutting down"));
    assert_eq!(server_close(&mut ch), Some(1001));
    let late = ch.write_one_outbound(Frame::text("late"));
    assert!(
        ch.read_outbound_bytes().is_empty(),
        "nothing after our close"
    );
    drop(late);
    ch.write_inbound(client_frame(true, 0x1, b"in flight"));
    assert!(
        ch.read_inbound::<Frame>().is_none(),
        "data after our close is dropped"
    );
    ch.write_inbound(client_frame(true, 0x8, &1001u16.to_be_bytes()));
    let f: Frame = ch.read_inbound().unwrap();
    assert_eq!(f.opcode, OpCode::Close);
    assert!(!ch.is_open(), "the handshake is complete: closed");
}

#[test]
fn a_large_payload_leaves_by_reference_after_its_header() {
    let mut ch = upgraded(WebSocketConfig::new());
    let payload = Bytes::from(vec![7u8; 4096]);
    ch.write_outbound(Frame::binary(payload.clone()));
    let Some(Msg::Composite(c)) = ch.read_outbound_msg() else {
        panic!("header and payload joined by reference");
    };
    let chunks: Vec<&[u8]> = c.chunks().map(|b| &b[..]).collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0], [0x82, 126, 0x10, 0x00]);
    assert_eq!(
        chunks[1].as_ptr(),
        payload.as_ptr(),
        "the payload is not copied"
    );
}

/// Short unmasked payloads are carved one after the other from the
/// thread's chunk (no allocation each), while what the codec writes owns
/// its memory: an encoded frame may wait in a slow reader's outbound
/// buffer, and must not keep a chunk shared with other connections.
#[test]
fn short_payloads_are_carved_from_a_chunk_and_encoded_frames_own_their_memory() {
    let mut ch = upgraded(WebSocketConfig::new());
    for (len, head) in [(20, &[0x82, 20][..]), (4096, &[0x82, 126, 0x10, 0x00][..])] {
        let payload = Bytes::from(vec![7u8; len]);
        ch.write_outbound(Frame::binary(payload));
        let first = match ch.read_outbound_msg() {
            Some(Msg::Bytes(b)) => b,
            Some(Msg::Composite(c)) => c.chunks().next().unwrap().clone(),
            other => panic!("{other:?}"),
        };
        assert!(first.starts_with(head));
        assert!(
            first.is_unique(),
            "a {len} B frame's head is its own allocation"
        );
    }
    // Two masked frames in one read whose buffer is shared (as a pooled
    // read buffer is): each payload is unmasked into the chunk, right
    // behind the other, and the read buffer is left as it was.
    let mut two = client_frame(true, 0x2, &[1; 20]);
    two.extend(client_frame(true, 0x2, &[2; 20]));
    let read = Bytes::from(two.clone());
    ch.write_inbound(read.clone());
    let a: Frame = ch.read_inbound().unwrap();
    let b: Frame = ch.read_inbound().unwrap();
    assert_eq!(
        (&a.payload[..], &b.payload[..]),
        (&[1; 20][..], &[2; 20][..])
    );
    assert_eq!(
        b.payload.as_ptr() as usize,
        a.payload.as_ptr() as usize + 20
    );
    assert_eq!(read, two, "the shared read buffer is not written");
    // A payload over 1 KiB may be sent on by reference: a copy of its own.
    let long = client_frame(true, 0x2, &[3; 2000]);
    let read = Bytes::from(long);
    ch.write_inbound(read.clone());
    let c: Frame = ch.read_inbound().unwrap();
    assert!(c.payload.iter().all(|&x| x == 3));
    assert!(c.payload.is_unique());
}

#[test]
fn a_client_codec_slices_unmasked_payloads_and_masks_what_it_sends() {
    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "ws",
            WebSocketCodec::new(Role::Client, WebSocketConfig::new()),
        )
        .build();
    let read = Bytes::from(raw_frame(true, 0, 0x2, None, &[9u8; 300]));
    ch.write_inbound(read.clone());
    let f: Frame = ch.read_inbound().unwrap();
    assert_eq!(
        f.payload.as_ptr(),
        read[4..].as_ptr(),
        "a slice of the read"
    );
    ch.write_outbound(Frame::text("masked"));
    let out = ch.read_outbound_bytes();
    assert_eq!(out[0], 0x81);
    assert_eq!(out[1], 0x80 | 6, "the mask bit is set");
    let mut data = out[6..].to_vec();
    apply_mask(&mut data, out[2..6].try_into().unwrap());
    assert_eq!(data, b"masked");
    // A masked frame from a server is a violation.
    ch.write_inbound(client_frame(true, 0x1, b"x"));
    assert!(!ch.is_open());
}

#[test]
fn with_one_upgrade_handler_per_path_the_others_leave_after_an_upgrade() {
    for (path, left) in [("/a", &["websocket"][..]), ("/b", &["a", "websocket"][..])] {
        let mut ch = EmbeddedChannel::builder()
            .add_last("http", HttpServerCodec::new())
            .add_last("a", WebSocketUpgrade::new("/a"))
            .add_last("b", WebSocketUpgrade::new("/b"))
            .build();
        ch.write_inbound(upgrade_request(path, "").into_bytes());
        assert!(
            ch.read_outbound_bytes().starts_with(b"HTTP/1.1 101 "),
            "{path}"
        );
        // The one that upgraded became the codec; one after it saw the
        // upgrade go by and left (its handshake timer would otherwise close
        // the upgraded connection); one before it saw the request pass as
        // an ordinary one (timer defused) and stays until the first frame.
        assert_eq!(ch.pipeline().names(), left, "{path}");
        assert!(ch.read_user_event::<HandshakeComplete>().is_some());
        ch.write_inbound(client_frame(true, 0x1, b"first"));
        let f: Frame = ch.read_inbound().expect("the frame passes");
        assert_eq!(f.payload, "first");
        assert_eq!(ch.pipeline().names(), ["websocket"], "{path}: all left");
    }
}

#[test]
fn the_aggregator_joins_fragments_and_passes_whole_frames_by_reference() {
    use weft_codec::websocket::{Message, WebSocketMessageAggregator};
    let mut ch = upgraded(WebSocketConfig::new());
    ch.pipeline_mut()
        .add_last("messages", WebSocketMessageAggregator::new())
        .unwrap();
    ch.write_inbound(
        [
            client_frame(false, 0x2, b"ab"),
            client_frame(true, 0x9, b"p"),
            client_frame(false, 0x0, b"cd"),
            client_frame(true, 0x0, b"e"),
            client_frame(true, 0x1, "whole ✓".as_bytes()),
        ]
        .concat(),
    );
    let m: Message = ch.read_inbound().expect("the binary message");
    assert_eq!(m, Message::Binary(Bytes::from_static(b"abcde")));
    let m: Message = ch.read_inbound().expect("the text message");
    assert_eq!(m.as_text(), Some("whole ✓"));
    assert!(
        ch.read_inbound_msg().is_none(),
        "the ping was answered by the codec"
    );
    assert_eq!(
        ch.read_outbound_bytes()[..],
        raw_frame(true, 0, 0xA, None, b"p")[..]
    );
}

/// The client pipeline: HTTP client codec and the handshake.
fn client() -> EmbeddedChannel {
    use weft_codec::http::HttpClientCodec;
    use weft_codec::websocket::WebSocketClientHandshake;
    let uri = "ws://example.test/chat".parse().unwrap();
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpClientCodec::new())
        .add_last(
            "handshake",
            WebSocketClientHandshake::new(uri)
                .subprotocols(["chat"])
                .handshake_timeout(None),
        )
        .build();
    ch.fire_active();
    ch
}

/// The key the client sent, from its request.
fn sent_key(ch: &mut EmbeddedChannel) -> String {
    let req = String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap();
    assert!(req.starts_with("GET /chat HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    assert!(
        lower.contains("upgrade: websocket\r\n") && lower.contains("sec-websocket-version: 13\r\n")
    );
    assert!(lower.contains("sec-websocket-protocol: chat\r\n"), "{req}");
    req.lines()
        .find_map(|l| l.strip_prefix("sec-websocket-key: "))
        .expect("a key")
        .to_string()
}

#[test]
fn the_client_handshake_checks_the_accept_and_keeps_the_frame_behind_the_101() {
    use weft_codec::websocket::ClientHandshakeComplete;
    let mut ch = client();
    let key = sent_key(&mut ch);
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes();
    answer.extend(raw_frame(true, 0, 0x1, None, b"first"));
    ch.write_inbound(answer);
    assert_eq!(ch.pipeline().names(), ["websocket"]);
    let done = ch
        .read_user_event::<ClientHandshakeComplete>()
        .expect("an event");
    assert_eq!(done.subprotocol.as_deref(), Some("chat"));
    let f: Frame = ch.read_inbound().expect("the frame behind the 101");
    assert_eq!(f.payload, "first");
    ch.write_outbound(Frame::text("up"));
    let out = ch.read_outbound_bytes();
    assert_eq!(out[1], 0x80 | 2, "masked");
}

#[test]
fn the_client_handshake_fails_on_a_wrong_answer() {
    let answers = [
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
            .to_string(),
    ];
    for a in answers {
        let mut ch = client();
        let _ = sent_key(&mut ch);
        ch.write_inbound(a.clone().into_bytes());
        assert!(ch.check_exception().is_err(), "{a}");
        assert!(!ch.is_open(), "{a}");
    }
    // A subprotocol that was not offered.
    let mut ch = client();
    let key = sent_key(&mut ch);
    ch.write_inbound(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: other\r\n\r\n",
            accept_key(key.as_bytes())
        )
        .into_bytes(),
    );
    assert!(!ch.is_open());
}

#[test]
fn a_large_frame_alone_in_a_uniquely_owned_read_is_unmasked_where_it_lies() {
    // The readiness transport hands a large read on as a uniquely owned
    // buffer; the frame's payload is then unmasked in that buffer, not
    // copied out of it.
    let mut ch = upgraded(WebSocketConfig::new());
    let payload: Vec<u8> = (0..16 * 1024).map(|i| (i * 7) as u8).collect();
    let read = Bytes::from(client_frame(true, 0x2, &payload));
    let range = read.as_ptr_range();
    assert!(read.is_unique());
    ch.write_inbound(read);
    let f: Frame = ch.read_inbound().expect("the frame");
    assert_eq!(f.payload[..], payload[..]);
    assert!(
        range.contains(&f.payload.as_ptr()),
        "the payload was copied out of the read"
    );
    // The same frame in a shared read is copied: the read is never written.
    let read = Bytes::from(client_frame(true, 0x2, &payload));
    let kept = read.clone();
    ch.write_inbound(read);
    let f: Frame = ch.read_inbound().expect("the frame");
    assert_eq!(f.payload[..], payload[..]);
    assert!(!kept.as_ptr_range().contains(&f.payload.as_ptr()));
    assert_eq!(kept[..], client_frame(true, 0x2, &payload)[..]);
}

/// Feeds `input` to `ch` cut at `cuts`; the payload bytes of the frames
/// that came out.
fn feed_frames(ch: &mut EmbeddedChannel, input: &[u8], cuts: &[usize]) -> usize {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    let (mut pos, mut got) = (0, 0);
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(pos, input.len());
        if c > pos {
            ch.write_inbound(Bytes::copy_from_slice(&input[pos..c]));
        }
        pos = c;
        while let Some(f) = ch.read_inbound::<Frame>() {
            got += f.payload.len();
        }
    }
    got
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Limits at their boundary (issue 34): a frame of `limit - 1`,
    /// `limit`, `limit + 1` payload bytes is delivered iff it fits, else
    /// the connection is closed with 1009; the same for a message of as
    /// many bytes in up to three fragments against the message limit.
    #[test]
    fn frames_and_messages_at_the_limit(
        limit in 125usize..3000,
        delta in 0usize..3,
        fragments in 1usize..4,
        cuts in proptest::collection::vec(0usize..3100, 0..6),
    ) {
        let len = limit + delta - 1;
        let payload = vec![b'x'; len];
        // One frame, against the frame limit.
        let mut ch = upgraded(WebSocketConfig::new().max_frame_size(limit).max_message_size(1 << 20));
        let got = feed_frames(&mut ch, &client_frame(true, 0x2, &payload), &cuts);
        let code = server_close(&mut ch);
        if len <= limit {
            proptest::prop_assert_eq!((got, code), (len, None), "a frame of {} for {}", len, limit);
        } else {
            proptest::prop_assert_eq!((got, code), (0, Some(1009)), "a frame of {} for {}", len, limit);
        }
        // Fragments, against the message limit.
        let mut ch = upgraded(WebSocketConfig::new().max_frame_size(1 << 20).max_message_size(limit));
        let step = len.div_ceil(fragments).max(1);
        let pieces: Vec<&[u8]> = payload.chunks(step).collect();
        let mut input = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let op = if i == 0 { 0x2 } else { 0x0 };
            input.extend(client_frame(i + 1 == pieces.len(), op, p));
        }
        let got = feed_frames(&mut ch, &input, &cuts);
        let code = server_close(&mut ch);
        if len <= limit {
            proptest::prop_assert_eq!((got, code), (len, None), "a message of {} for {}", len, limit);
        } else {
            proptest::prop_assert_eq!(code, Some(1009), "a message of {} for {}", len, limit);
            proptest::prop_assert!(got <= limit, "{} bytes delivered past a limit of {}", got, limit);
        }
    }
}

/// The timeouts run on the channel's clock (issue 35): a connection that
/// never asks for the upgrade within the handshake timeout is closed; a
/// peer that does not answer the server's close within the close timeout
/// is closed; both tested on the virtual clock, no socket.
#[test]
fn the_handshake_and_close_timeouts_run_on_the_channels_clock() {
    use std::time::Duration;
    // Handshake: nothing arrives.
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last(
            "ws",
            WebSocketUpgrade::new("/ws").handshake_timeout(Some(Duration::from_secs(5))),
        )
        .build();
    ch.advance_time(Duration::from_millis(4999));
    assert!(ch.is_open());
    ch.advance_time(Duration::from_millis(1));
    assert!(!ch.is_open(), "no handshake in 5 s, still open");

    // Close: the server sends its close, the peer never answers.
    let mut ch = upgraded(WebSocketConfig::new().close_timeout(Duration::from_secs(2)));
    ch.write_outbound(Msg::user(Frame::close(CloseCode::NORMAL, "bye")));
    assert_eq!(ch.read_outbound_bytes()[0], 0x88, "the close frame left");
    ch.advance_time(Duration::from_millis(1999));
    assert!(ch.is_open());
    ch.advance_time(Duration::from_millis(1));
    assert!(
        !ch.is_open(),
        "the peer never answered the close; still open"
    );
}
