#![no_main]
// The WebSocket frame codec: any bytes, in any pieces, as a server (masked
// frames expected) or a client. No panic; every frame it passes on is
// valid (control frames whole and at most 125 bytes); once it has closed
// the connection, nothing more comes out.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_codec::websocket::{Frame, Role, WebSocketCodec, WebSocketConfig};
use weft_core::EmbeddedChannel;

fuzz_target!(|data: &[u8]| {
    let [step, flags, rest @ ..] = data else { return };
    let step = 1 + *step as usize;
    let role = if flags & 1 == 0 { Role::Server } else { Role::Client };
    // Small limits so that the size rules are reached too.
    let config = WebSocketConfig::new()
        .max_frame_size(if flags & 2 == 0 { 4096 } else { 200 })
        .max_message_size(8192)
        .auto_pong(flags & 4 == 0);
    let mut ch = EmbeddedChannel::builder()
        .add_last("ws", WebSocketCodec::new(role, config))
        .build();
    for piece in rest.chunks(step) {
        let was_open = ch.is_open();
        ch.write_inbound(Bytes::copy_from_slice(piece));
        while let Some(f) = ch.read_inbound::<Frame>() {
            assert!(was_open, "a frame after the connection closed");
            if f.opcode.is_control() {
                assert!(f.fin && f.payload.len() <= 125, "{f:?}");
            }
        }
        let _ = ch.read_outbound_bytes();
    }
});
