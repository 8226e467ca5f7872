//! websocket-chat: a chat room in the browser, on weft's HTTP codec and
//! WebSocket upgrade.
//!
//! - `GET /` serves a page (a few lines of plain JavaScript) that joins
//!   the room;
//! - `/ws` is the room: every text message a member sends goes to every
//!   member through a `ChannelGroup`, the payload shared by all the writes;
//!   the room runs at the pace of its slowest reader: a sender whose
//!   message leaves members behind (above their high watermark) is not
//!   read until they catch up, and a member that does not catch up within
//!   `--room-stall-secs` is dropped (it is not reading);
//! - `/echo` answers every data frame with the same frame (for conformance
//!   runs such as Autobahn's `fuzzingclient`), with limits large enough for
//!   its 16 MiB cases, and permessage-deflate when the client offers it.
//!
//! Each connection starts as HTTP and is rebuilt at run time: after the
//! 101 the HTTP handlers leave and the frame codec takes their place.

use bytes::Bytes;
use clap::Parser;
use weft_codec::http::http::{header, HeaderValue, Method, Response, StatusCode};
use weft_codec::http::{HttpRequestPart, HttpServerCodec};
use weft_codec::websocket::{
    DeflateConfig, Frame, HandshakeComplete, OpCode, WebSocketConfig, WebSocketUpgrade,
};
use weft_core::{Context, Error, Handler, Msg, UserEvent};
use weft_transport::{ChannelGroup, ChannelOptions, SlowMembers};

/// A chat room over WebSocket, with an echo endpoint.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seconds a room member may hold the senders back before it is
    /// dropped.
    #[arg(long, default_value_t = 10)]
    room_stall_secs: u64,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

/// What a room member may fall behind before it is dropped, whatever the
/// pacing (a sender's reads stop at the next read, not at once).
const ROOM_OUTBOUND_CAP: usize = 4 << 20;
/// What an echo connection may hold unsent: Autobahn's largest messages
/// are 16 MiB, echoed whole.
const ECHO_OUTBOUND_CAP: usize = 40 << 20;

const PAGE: &str = include_str!("../chat.html");

/// What a connection became.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    Room,
    Echo,
}

struct Chat {
    group: ChannelGroup,
    mode: Mode,
}

fn page(method: &Method, path: &str) -> Response<Bytes> {
    let (status, body, ctype) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/") => (
            StatusCode::OK,
            Bytes::from_static(PAGE.as_bytes()),
            "text/html; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found\n"),
            "text/plain; charset=utf-8",
        ),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

#[weft_core::handler]
impl Handler for Chat {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.mode == Mode::Http {
            if let Ok(HttpRequestPart::Head { request, .. }) = msg.downcast::<HttpRequestPart>() {
                ctx.write_and_flush(Msg::user(page(request.method(), request.uri().path())));
            }
            return;
        }
        let Some((opcode, fin)) = msg.downcast_ref::<Frame>().map(|f| (f.opcode, f.fin)) else {
            return;
        };
        match (self.mode, opcode) {
            // The frame goes back as the message it came in.
            (Mode::Echo, OpCode::Text | OpCode::Binary | OpCode::Continuation) => {
                ctx.write_and_flush(msg);
            }
            // The page sends whole messages; fragments are not relayed.
            (Mode::Room, OpCode::Text) if fin => {
                if let Ok(frame) = msg.downcast::<Frame>() {
                    let sent = self
                        .group
                        .write_and_flush_from(ctx.channel(), Frame::text(frame.payload));
                    drop(sent);
                }
            }
            _ => {}
        }
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        match event.downcast::<HandshakeComplete>() {
            Ok(done) if done.request.uri().path() == "/ws" => {
                self.mode = Mode::Room;
                // Pacing keeps members near their high watermark; one that
                // still falls 4 MiB behind the room is dropped.
                ctx.set_max_outbound_bytes(Some(ROOM_OUTBOUND_CAP));
                self.group.add(ctx.channel().clone());
            }
            Ok(_) => self.mode = Mode::Echo,
            Err(other) => ctx.fire_user_event(other),
        }
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = %err, "closing the connection");
        ctx.close();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let group = ChannelGroup::with_slow_members(SlowMembers::PauseSender {
        stall: std::time::Duration::from_secs(args.room_stall_secs),
    });
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                // Room members get a smaller cap when they join.
                .child_options(ChannelOptions::new().max_outbound_bytes(ECHO_OUTBOUND_CAP))
                .child_handler(move |p| {
                    p.add_last("http", HttpServerCodec::new())?;
                    // Chat messages are small; the echo endpoint takes what
                    // conformance suites send.
                    let room = WebSocketConfig::new()
                        .max_frame_size(64 << 10)
                        .max_message_size(64 << 10);
                    p.add_last("room", WebSocketUpgrade::new("/ws").config(room))?;
                    // The echo endpoint accepts permessage-deflate (the room
                    // does not: its frames are shared by every member's write).
                    let echo = WebSocketUpgrade::new("/echo").compression(DeflateConfig::new());
                    p.add_last("echo", echo)?;
                    p.add_last(
                        "chat",
                        Chat {
                            group: group.clone(),
                            mode: Mode::Http,
                        },
                    )
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
