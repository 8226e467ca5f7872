//! A tiny request/response protocol for `rpc-server` and `rpc-client`,
//! built from weft's frame codecs and typed message codecs.
//!
//! Frames: a 4-byte big-endian length (`LengthFieldPrepender` /
//! `LengthFieldBasedFrameDecoder`, 1 MiB limit), then a message:
//! - request: id (u64 BE), method length (u8), method (UTF-8), payload;
//! - response: id (u64 BE), status (u8: 0 ok, 1 error), payload (the
//!   result, or an error message).
//!
//! The payloads are slices of the received frame and are written by
//! reference: no payload is copied on either side.

use bytes::{Buf, Bytes};
use weft_codec::{
    DecoderHandler, LengthFieldBasedFrameDecoder, LengthFieldPrepender, MessageDecoder,
    MessageDecoderHandler, MessageEncoder, MessageEncoderHandler,
};
use weft_core::{CompositeBytes, Error, Msg, Pipeline};

/// A call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Matches the response to the request.
    pub id: u64,
    /// What to run.
    pub method: String,
    /// Its argument.
    pub payload: Bytes,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// `Ok(result)` or `Err(message)`.
    pub result: Result<Bytes, String>,
}

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1024 * 1024;

fn frame_codecs(p: &mut Pipeline) -> Result<(), Error> {
    p.add_last(
        "frames",
        DecoderHandler::new(
            LengthFieldBasedFrameDecoder::builder()
                .max_frame_length(MAX_FRAME + 4)
                .initial_bytes_to_strip(4)
                .build()?,
        ),
    )?;
    p.add_last("length", LengthFieldPrepender::new(4)?)
}

/// Frames → requests; responses → frames (the server's codecs).
pub fn server_codecs(p: &mut Pipeline) -> Result<(), Error> {
    frame_codecs(p)?;
    p.add_last("requests", MessageDecoderHandler::new(RequestCodec))?;
    p.add_last("responses", MessageEncoderHandler::new(ResponseCodec))
}

/// Frames → responses; requests → frames (the client's codecs).
pub fn client_codecs(p: &mut Pipeline) -> Result<(), Error> {
    frame_codecs(p)?;
    p.add_last("responses", MessageDecoderHandler::new(ResponseCodec))?;
    p.add_last("requests", MessageEncoderHandler::new(RequestCodec))
}

/// Encodes [`Request`]s and decodes them from frames.
#[derive(Debug, Clone, Copy)]
pub struct RequestCodec;

/// Encodes [`Response`]s and decodes them from frames.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCodec;

impl MessageDecoder for RequestCodec {
    type In = Bytes;
    fn decode(&mut self, mut f: Bytes, out: &mut Vec<Msg>) -> Result<(), Error> {
        if f.len() < 9 {
            return Err(Error::corrupted_frame("request shorter than its header"));
        }
        let id = f.get_u64();
        let mlen = f.get_u8() as usize;
        if f.len() < mlen {
            return Err(Error::corrupted_frame("method name runs past the frame"));
        }
        let method = std::str::from_utf8(&f[..mlen])
            .map_err(|_| Error::corrupted_frame("method name is not UTF-8"))?
            .to_string();
        f.advance(mlen);
        out.push(Msg::user(Request {
            id,
            method,
            payload: f,
        }));
        Ok(())
    }
}

impl MessageEncoder for RequestCodec {
    type In = Request;
    fn encode(&mut self, r: Request, out: &mut Vec<Msg>) -> Result<(), Error> {
        let m = r.method.as_bytes();
        let mlen =
            u8::try_from(m.len()).map_err(|_| Error::encode("method name over 255 bytes"))?;
        let mut head = Vec::with_capacity(9 + m.len());
        head.extend_from_slice(&r.id.to_be_bytes());
        head.push(mlen);
        head.extend_from_slice(m);
        let c: CompositeBytes = [Bytes::from(head), r.payload].into_iter().collect();
        out.push(Msg::Composite(c));
        Ok(())
    }
}

impl MessageDecoder for ResponseCodec {
    type In = Bytes;
    fn decode(&mut self, mut f: Bytes, out: &mut Vec<Msg>) -> Result<(), Error> {
        if f.len() < 9 {
            return Err(Error::corrupted_frame("response shorter than its header"));
        }
        let id = f.get_u64();
        let result = match f.get_u8() {
            0 => Ok(f),
            1 => Err(String::from_utf8_lossy(&f).into_owned()),
            s => return Err(Error::corrupted_frame(format!("unknown status {s}"))),
        };
        out.push(Msg::user(Response { id, result }));
        Ok(())
    }
}

impl MessageEncoder for ResponseCodec {
    type In = Response;
    fn encode(&mut self, r: Response, out: &mut Vec<Msg>) -> Result<(), Error> {
        let mut head = r.id.to_be_bytes().to_vec();
        let body = match r.result {
            Ok(b) => {
                head.push(0);
                b
            }
            Err(m) => {
                head.push(1);
                Bytes::from(m)
            }
        };
        let c: CompositeBytes = [Bytes::from(head), body].into_iter().collect();
        out.push(Msg::Composite(c));
        Ok(())
    }
}

/// The server's methods: `echo`, `upper`, `sum` (of big-endian u64s).
pub fn call(req: &Request) -> Result<Bytes, String> {
    match req.method.as_str() {
        "echo" => Ok(req.payload.clone()),
        "upper" => Ok(Bytes::from(req.payload.to_ascii_uppercase())),
        "sum" => {
            if req.payload.len() % 8 != 0 {
                return Err("sum takes big-endian u64s".into());
            }
            let mut p = req.payload.clone();
            let mut total = 0u64;
            while p.has_remaining() {
                total = total.wrapping_add(p.get_u64());
            }
            Ok(Bytes::copy_from_slice(&total.to_be_bytes()))
        }
        m => Err(format!("unknown method `{m}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::EmbeddedChannel;

    #[test]
    fn request_round_trip_through_both_pipelines() {
        let mut client = EmbeddedChannel::new();
        client_codecs(client.pipeline_mut()).unwrap();
        let mut server = EmbeddedChannel::new();
        server_codecs(server.pipeline_mut()).unwrap();
        let req = Request {
            id: 7,
            method: "upper".into(),
            payload: Bytes::from_static(b"hi"),
        };
        client.write_outbound(Msg::user(req.clone()));
        server.write_inbound(client.read_outbound_bytes());
        let got: Request = server.read_inbound().unwrap();
        assert_eq!(got, req);
        server.write_outbound(Msg::user(Response {
            id: 7,
            result: call(&got),
        }));
        client.write_inbound(server.read_outbound_bytes());
        let resp: Response = client.read_inbound().unwrap();
        assert_eq!(
            resp,
            Response {
                id: 7,
                result: Ok(Bytes::from_static(b"HI"))
            }
        );
    }
}
