//! The socket operations the connection driver needs, over tokio's TCP and
//! Unix streams, through their readiness API (not `AsyncRead`/`AsyncWrite`),
//! so that the driver can pick `writev` or `sendfile` per entry.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use weft_core::Address;

pub(crate) trait Stream: AsFd + AsRawFd + Send + Sync + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn addresses(&self) -> (Option<Address>, Option<Address>);
    /// Whether `send(MSG_MORE)` means something on this socket (TCP).
    const CORKS: bool;
    /// The socket as a plain descriptor, out of tokio's reactor (for the
    /// io_uring transport).
    #[cfg_attr(not(feature = "uring"), allow(dead_code))]
    fn into_fd(self) -> io::Result<std::os::fd::OwnedFd>
    where
        Self: Sized;

    /// Reads into `buf`'s spare capacity. A short read (fewer bytes than
    /// offered) means the socket's receive queue is empty, so the cached
    /// readiness is cleared at once, as tokio's own `poll_read` does: the
    /// next wait does not first make a `recv` that can only say EAGAIN.
    /// (Clearing is tick-checked by tokio, so data that arrived meanwhile
    /// still wakes the task.)
    fn try_read_drain(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut short = None;
        let r = self.try_io(Interest::READABLE, || {
            let offered = buf.capacity() - buf.len();
            let n = self.try_read_buf(buf)?;
            if n > 0 && n < offered {
                short = Some(n);
                // Report "would block" so that try_io clears the readiness.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match (r, short) {
            (_, Some(n)) => Ok(n),
            (r, None) => r,
        }
    }
}

macro_rules! impl_stream {
    ($t:ty, $corks:expr, $addr:expr) => {
        impl Stream for $t {
            const CORKS: bool = $corks;
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$t>::try_read_buf(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
            fn try_io<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                <$t>::try_io(self, interest, f)
            }
            fn into_fd(self) -> io::Result<std::os::fd::OwnedFd> {
                Ok(self.into_std()?.into())
            }
            fn addresses(&self) -> (Option<Address>, Option<Address>) {
                #[allow(clippy::redundant_closure_call)]
                ($addr)(self)
            }
        }
    };
}

impl_stream!(TcpStream, true, |s: &TcpStream| (
    s.local_addr().ok().map(Address::Inet),
    s.peer_addr().ok().map(Address::Inet)
));

impl_stream!(UnixStream, false, |s: &UnixStream| {
    let conv =
        |a: tokio::net::unix::SocketAddr| Address::Unix(a.as_pathname().map(|p| p.to_path_buf()));
    (s.local_addr().ok().map(conv), s.peer_addr().ok().map(conv))
});
