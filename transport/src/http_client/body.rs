//! [`Body`]: a response's body, read piece by piece as it arrives.
//!
//! Contract: [`Body::chunk`] yields the body's pieces (slices of the
//! connection's reads, no copy) and then `None`; each wait is bounded by
//! the client's read timeout. Taking pieces lets the connection read again
//! when it had stopped for a slow reader. When the body ends cleanly the
//! connection goes back to the client's pool (if the response allows
//! keep-alive); a body dropped before its end closes its connection.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use weft_codec::http::HttpResponseIn;
use weft_core::{Error, ErrorKind};

use super::forward::Event;
use super::{Conn, Pool};

/// A response's body; see the module's contract.
pub struct Body {
    /// The connection the body comes from; `None` once the body is over.
    conn: Option<Conn>,
    pool: Option<Pool>,
    reusable: bool,
    read_timeout: Duration,
    trailers: HeaderMap,
}

impl Body {
    pub(super) fn new(conn: Conn, pool: Pool, reusable: bool, read_timeout: Duration) -> Body {
        Body {
            conn: Some(conn),
            pool: Some(pool),
            reusable,
            read_timeout,
            trailers: HeaderMap::new(),
        }
    }

    pub(super) fn empty(conn: Conn, pool: Pool, reusable: bool) -> Body {
        let mut b = Body::new(conn, pool, reusable, Duration::ZERO);
        b.finish();
        b
    }

    /// The next piece of the body, `None` at its end.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when nothing arrives within the read
    /// timeout, [`ErrorKind::Closed`] when the connection ends before the
    /// body does, [`ErrorKind::Decode`] when the response is malformed.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            let conn = self.conn.as_mut()?;
            let event = match tokio::time::timeout(self.read_timeout, conn.rx.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) => Event::Closed,
                Err(_) => {
                    self.conn = None;
                    return Some(Err(Error::timeout("no body bytes within the read timeout")));
                }
            };
            match event {
                Event::Part(HttpResponseIn::Data(b)) => {
                    conn.budget.take(b.len(), &conn.channel);
                    if b.is_empty() {
                        continue;
                    }
                    return Some(Ok(b));
                }
                Event::Part(HttpResponseIn::End { data, trailers }) => {
                    conn.budget.take(data.len(), &conn.channel);
                    self.trailers = trailers;
                    self.finish();
                    if data.is_empty() {
                        return None;
                    }
                    return Some(Ok(data));
                }
                Event::Part(HttpResponseIn::Invalid(e)) => {
                    self.conn = None;
                    return Some(Err(Error::with_source(ErrorKind::Decode, e)));
                }
                Event::Part(HttpResponseIn::Head { .. }) => {
                    self.conn = None;
                    return Some(Err(Error::decode("a response head inside a body")));
                }
                Event::Failed(e) => {
                    self.conn = None;
                    return Some(Err(e));
                }
                Event::Closed => {
                    self.conn = None;
                    return Some(Err(Error::closed()));
                }
            }
        }
    }

    /// The whole body, refused past `max` bytes.
    ///
    /// # Errors
    ///
    /// As [`chunk`](Body::chunk), and [`ErrorKind::TooLongFrame`] past `max`.
    pub async fn bytes(mut self, max: usize) -> Result<Bytes, Error> {
        let mut first: Option<Bytes> = None;
        let mut all = BytesMut::new();
        while let Some(piece) = self.chunk().await {
            let piece = piece?;
            let len = first.as_ref().map_or(0, Bytes::len) + all.len() + piece.len();
            if len > max {
                return Err(Error::too_long_frame(format!(
                    "the response body is longer than {max} bytes"
                )));
            }
            match first.take() {
                None if all.is_empty() => first = Some(piece),
                None => all.extend_from_slice(&piece),
                Some(f) => {
                    all.extend_from_slice(&f);
                    all.extend_from_slice(&piece);
                }
            }
        }
        Ok(first.unwrap_or_else(|| all.freeze()))
    }

    /// The trailers of a chunked body (empty until the end, or if none).
    pub fn trailers(&self) -> &HeaderMap {
        &self.trailers
    }

    /// Whether the body is over.
    pub fn is_end(&self) -> bool {
        self.conn.is_none()
    }

    fn finish(&mut self) {
        let conn = self.conn.take();
        if let (Some(conn), Some(pool), true) = (conn, self.pool.take(), self.reusable) {
            pool.put(conn);
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body not read to its end leaves its connection mid-response:
        // it cannot be reused (Conn's drop closes it).
        self.conn.take();
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("end", &self.is_end())
            .field("reusable", &self.reusable)
            .finish()
    }
}
