#![no_main]
// permessage-deflate after an upgrade that agreed to it: any bytes after the
// 101, as frames from a client (a zero mask key lets the fuzzer write
// payloads as they are). No panic; what is passed on has RSV1 clear; a text
// message that is passed on whole is UTF-8; the inflated bytes of a message
// never exceed the message limit.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_codec::http::HttpServerCodec;
use weft_codec::websocket::{DeflateConfig, Frame, OpCode, WebSocketConfig, WebSocketUpgrade};
use weft_core::EmbeddedChannel;

const LIMIT: usize = 16 << 10;

fuzz_target!(|data: &[u8]| {
    let [step, rest @ ..] = data else { return };
    let step = 1 + *step as usize;
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last(
            "ws",
            WebSocketUpgrade::new("/")
                .compression(DeflateConfig::new())
                .config(WebSocketConfig::new().max_message_size(LIMIT))
                .handshake_timeout(None),
        )
        .build();
    ch.write_inbound(Bytes::from_static(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    ));
    assert!(ch.read_outbound_bytes().starts_with(b"HTTP/1.1 101 "));
    let mut message: Option<(bool, Vec<u8>)> = None;
    for piece in rest.chunks(step) {
        ch.write_inbound(Bytes::copy_from_slice(piece));
        while let Some(f) = ch.read_inbound::<Frame>() {
            assert!(!f.rsv1, "{f:?}");
            match f.opcode {
                OpCode::Text | OpCode::Binary => {
                    message = Some((f.opcode == OpCode::Text, f.payload.to_vec()))
                }
                OpCode::Continuation => {
                    if let Some((_, m)) = &mut message {
                        m.extend_from_slice(&f.payload);
                    }
                }
                _ => continue,
            }
            if let Some((text, m)) = &message {
                assert!(m.len() <= LIMIT, "{} bytes inflated", m.len());
                if f.fin {
                    assert!(!text || std::str::from_utf8(m).is_ok());
                    message = None;
                }
            }
        }
        let _ = ch.read_outbound_bytes();
    }
});
