//! RESP2 (the Redis protocol) for `resp-server`: a decoder in the codec
//! style, reply encoding, and an in-memory key-value store.
//!
//! Contract of [`RespDecoder`]: it yields one [`RespFrame::Command`] per
//! request — a multibulk array (`*N\r\n$len\r\n...`) or an inline command
//! (`PING\r\n`) — whose arguments are slices of the received bytes (no
//! copy). Limits as Redis's: at most [`MAX_ARGS`] arguments, bulk strings of
//! at most [`MAX_BULK`] bytes, inline requests and count lines of at most
//! [`MAX_INLINE`] bytes. A violation yields [`RespFrame::ProtocolError`]
//! (answered with `-ERR Protocol error: ...`, then the connection is closed,
//! as Redis does) and the decoder decodes nothing more.
//!
//! The decoder is incremental: a request that arrives in pieces is parsed
//! once, resuming at the argument where the last piece ended (a 1M-argument
//! `MGET` trickled in 700-byte pieces costs one pass, not one per piece).
//! The bytes of requests still incomplete are counted across all
//! connections of the process; past [`PARTIAL_BUDGET`] the request that
//! would pass it is a protocol error.
//!
//! The store copies what it keeps (keys and values): a slice of a read
//! buffer would keep the whole buffer alive — one 1-byte `SET` pipelined
//! behind a 50 MB `ECHO` would pin 50 MB. Keys with a time to live are also
//! expired actively ([`Store::purge_expired`], run ten times a second by
//! `resp-server`), as Redis does, so keys nobody reads again do not stay.
//!
//! Layout: `decode.rs` (the decoder), `store.rs` (the store, the commands
//! and their replies), this file (the handler).

mod decode;
mod store;

use bytes::{BufMut, Bytes, BytesMut};
use weft_core::{Context, Error, Handler, Msg, Promise};

pub use decode::{RespDecoder, RespFrame, MAX_ARGS, MAX_BULK, MAX_INLINE, PARTIAL_BUDGET};
pub use store::{execute, Replies, Store};

/// Replies held back past this many bytes are written before the read
/// ends.
const FLUSH_AT: usize = 16 * 1024;

/// Answers RESP commands from a shared [`Store`]; the replies to a read's
/// commands are encoded into one buffer and written as one message when
/// the read ends.
#[derive(Debug, Clone, Default)]
pub struct RespHandler {
    store: Store,
    closing: bool,
    /// Replies encoded since the last flush.
    replies: Replies,
}

impl RespHandler {
    /// A handler over `store`.
    pub fn new(store: Store) -> RespHandler {
        RespHandler {
            store,
            closing: false,
            replies: Replies::default(),
        }
    }

    /// Writes the replies encoded so far (the last one ends the
    /// connection), then closes once they are written.
    fn close_after(&mut self, ctx: &mut Context<'_>) {
        self.closing = true;
        let replies = self.replies.take().unwrap_or(Msg::Bytes(Bytes::new()));
        let (p, done) = Promise::new();
        ctx.write_and_flush_with(replies, Some(p));
        let ch = ctx.channel().clone();
        tokio::spawn(async move {
            let _ = done.await;
            let _ = ch.close().await;
        });
    }
}

#[weft_core::handler]
impl Handler for RespHandler {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.closing {
            return;
        }
        match msg.downcast::<RespFrame>() {
            Ok(RespFrame::Command(args)) => {
                if execute(&self.store, &args, &mut self.replies) {
                    self.close_after(ctx);
                } else if self.replies.len() >= FLUSH_AT {
                    // A long batch goes on in pieces: memory stays bounded
                    // and the channel's watermarks see it.
                    if let Some(m) = self.replies.take() {
                        ctx.write(m);
                    }
                }
            }
            Ok(RespFrame::ProtocolError(why)) => {
                self.replies.error(&format!("ERR Protocol error: {why}"));
                self.close_after(ctx);
            }
            Err(other) => ctx.fire_read(other),
        }
    }

    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        if let Some(m) = self.replies.take() {
            ctx.write(m);
        }
        ctx.flush();
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
    }
}

/// Encodes a command as a RESP array (for clients and tests).
pub fn encode_command(args: &[&[u8]]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        b.put_slice(format!("${}\r\n", a.len()).as_bytes());
        b.put_slice(a);
        b.put_slice(b"\r\n");
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::DecoderHandler;
    use weft_core::EmbeddedChannel;

    #[test]
    fn a_request_fed_byte_by_byte_is_parsed_once_and_right() {
        let req = encode_command(&[b"MSET", b"alpha", b"1", b"beta", b"22"]);
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        for i in 0..req.len() {
            ch.write_inbound(req.slice(i..i + 1));
            if i + 1 < req.len() {
                assert!(
                    ch.read_inbound::<RespFrame>().is_none(),
                    "early at byte {i}"
                );
            }
        }
        match ch.read_inbound::<RespFrame>().unwrap() {
            RespFrame::Command(args) => {
                let want: [&[u8]; 5] = [b"MSET", b"alpha", b"1", b"beta", b"22"];
                assert_eq!(args.len(), 5);
                for (a, w) in args.iter().zip(want) {
                    assert_eq!(&a[..], w);
                }
            }
            other => panic!("{other:?}"),
        }
    }

    fn decode_all(input: &[u8]) -> Vec<RespFrame> {
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        for b in input {
            ch.write_inbound(Bytes::copy_from_slice(&[*b]));
        }
        let mut out = Vec::new();
        while let Some(f) = ch.read_inbound::<RespFrame>() {
            out.push(f);
        }
        out
    }

    #[test]
    fn multibulk_and_inline_byte_by_byte() {
        let frames = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(frames.len(), 3);
        match &frames[0] {
            RespFrame::Command(a) => assert_eq!(a, &[Bytes::from("GET"), Bytes::from("k")]),
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn arguments_are_slices_of_the_read() {
        let read = encode_command(&[b"SET", b"key", b"value"]);
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        ch.write_inbound(read.clone());
        let Some(RespFrame::Command(args)) = ch.read_inbound::<RespFrame>() else {
            panic!()
        };
        let range = read.as_ptr() as usize..read.as_ptr() as usize + read.len();
        assert!(args.iter().all(|a| range.contains(&(a.as_ptr() as usize))));
    }

    #[test]
    fn protocol_errors() {
        for bad in [
            &b"*1\r\n+x\r\n"[..],
            b"*abc\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcXY",
        ] {
            let frames = decode_all(bad);
            assert!(
                matches!(frames.last(), Some(RespFrame::ProtocolError(_))),
                "{bad:?}: {frames:?}"
            );
        }
    }

    #[test]
    fn a_read_of_pipelined_commands_is_answered_in_one_message() {
        let mut ch = EmbeddedChannel::builder()
            .add_last("resp", DecoderHandler::new(RespDecoder::default()))
            .add_last("store", RespHandler::new(Store::default()))
            .build();
        let mut read = BytesMut::new();
        read.put_slice(&encode_command(&[b"SET", b"k", b"v"]));
        read.put_slice(&encode_command(&[b"GET", b"k"]));
        read.put_slice(&encode_command(&[b"PING"]));
        ch.write_inbound(read.freeze());
        let out = ch.read_outbound::<Bytes>().expect("one message");
        assert_eq!(&out[..], b"+OK\r\n$1\r\nv\r\n+PONG\r\n");
        assert!(ch.read_outbound::<Msg>().is_none());
    }

    #[test]
    fn a_large_value_is_replied_by_reference_to_the_stored_copy() {
        let s = Store::default();
        let big = Bytes::from(vec![b'x'; 4096]);
        let mut out = Replies::default();
        execute(
            &s,
            &[Bytes::from_static(b"SET"), Bytes::from_static(b"k"), big],
            &mut out,
        );
        let get = [Bytes::from_static(b"GET"), Bytes::from_static(b"k")];
        let value_of = |out: &mut Replies| {
            let Some(Msg::Composite(c)) = out.take() else {
                panic!("a large value goes by reference")
            };
            let parts: Vec<Bytes> = c.into_iter().collect();
            parts
                .into_iter()
                .find(|p| p.len() == 4096)
                .expect("the value, whole")
        };
        let mut first = Replies::default();
        execute(&s, &get, &mut first);
        let mut second = Replies::default();
        execute(&s, &get, &mut second);
        assert_eq!(
            value_of(&mut first).as_ptr(),
            value_of(&mut second).as_ptr(),
            "both replies point at the store's copy"
        );
    }

    #[test]
    fn commands() {
        let s = Store::default();
        let run = |args: &[&str]| {
            let args: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let mut ch = EmbeddedChannel::new();
            let mut out = Replies::default();
            execute(&s, &args, &mut out);
            ch.write_outbound(out.take().unwrap());
            String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap()
        };
        assert_eq!(run(&["PING"]), "+PONG\r\n");
        assert_eq!(run(&["SET", "a", "1"]), "+OK\r\n");
        assert_eq!(run(&["SET", "a", "2", "NX"]), "$-1\r\n");
        assert_eq!(run(&["INCR", "a"]), ":2\r\n");
        assert_eq!(run(&["DECR", "a"]), ":1\r\n");
        assert_eq!(run(&["GET", "a"]), "$1\r\n1\r\n");
        assert_eq!(run(&["MSET", "b", "x", "c", "y"]), "+OK\r\n");
        assert_eq!(
            run(&["MGET", "b", "nope", "c"]),
            "*3\r\n$1\r\nx\r\n$-1\r\n$1\r\ny\r\n"
        );
        assert_eq!(
            run(&["INCR", "b"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(run(&["TTL", "b"]), ":-1\r\n");
        assert_eq!(run(&["EXPIRE", "b", "100"]), ":1\r\n");
        assert_eq!(run(&["TTL", "b"]), ":100\r\n");
        assert_eq!(run(&["TTL", "zz"]), ":-2\r\n");
        assert_eq!(run(&["EXISTS", "a", "b", "zz"]), ":2\r\n");
        assert_eq!(run(&["DEL", "a", "zz"]), ":1\r\n");
        assert_eq!(
            run(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert!(run(&["NOPE", "x"]).starts_with("-ERR unknown command 'NOPE'"));
        assert_eq!(run(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(run(&["EXISTS", "b"]), ":0\r\n");
    }
}
