//! Write promises: how a writer learns that its bytes reached the kernel.
//!
//! Contract: a [`Promise`] travels with a write down the pipeline; the stage
//! that finishes the write (the transport, once the message's last byte is
//! in the socket's send buffer) calls [`Promise::succeed`], and any stage
//! that gives up on it calls [`Promise::fail`]. A promise dropped without
//! either counts as a failure with a closed-channel error, so a
//! [`WriteFuture`] always resolves. A write without a promise allocates
//! nothing for one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::Error;

/// The completing side of a write.
pub struct Promise {
    tx: oneshot::Sender<Result<(), Error>>,
}

/// Resolves when the write it belongs to completes or fails.
///
/// ```
/// use weft_core::Promise;
///
/// # tokio_test_block(async {
/// let (promise, done) = Promise::new();
/// promise.succeed();
/// assert!(done.await.is_ok());
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[must_use = "a WriteFuture does nothing unless awaited; drop it to ignore the outcome"]
pub struct WriteFuture {
    rx: oneshot::Receiver<Result<(), Error>>,
}

impl Promise {
    /// A new promise and the future that observes it.
    pub fn new() -> (Promise, WriteFuture) {
        let (tx, rx) = oneshot::channel();
        (Promise { tx }, WriteFuture { rx })
    }

    /// Completes the write successfully.
    pub fn succeed(self) {
        let _ = self.tx.send(Ok(()));
    }

    /// Fails the write.
    pub fn fail(self, err: Error) {
        let _ = self.tx.send(Err(err));
    }

    /// Completes with `result`.
    pub fn complete(self, result: Result<(), Error>) {
        let _ = self.tx.send(result);
    }

    /// Whether nobody waits for the outcome any more.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }
}

impl WriteFuture {
    /// A future that is already resolved with `result`.
    pub fn ready(result: Result<(), Error>) -> WriteFuture {
        let (p, f) = Promise::new();
        p.complete(result);
        f
    }

    /// The outcome if the write has finished, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), Error>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::closed())),
        }
    }
}

impl Future for WriteFuture {
    type Output = Result<(), Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::closed())))
    }
}

impl fmt::Debug for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

impl fmt::Debug for WriteFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteFuture").finish_non_exhaustive()
    }
}

/// Completes an optional promise: the shape every stage needs.
pub(crate) fn complete(p: Option<Promise>, r: Result<(), Error>) {
    if let Some(p) = p {
        p.complete(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_promise_fails_closed() {
        let (p, mut f) = Promise::new();
        assert!(f.try_result().is_none());
        drop(p);
        assert!(f.try_result().unwrap().unwrap_err().is_closed());
    }

    #[test]
    fn fail_and_succeed() {
        let (p, mut f) = Promise::new();
        p.fail(Error::timeout("t"));
        assert!(f.try_result().unwrap().unwrap_err().is_timeout());
        let (p, mut f) = Promise::new();
        p.succeed();
        assert!(f.try_result().unwrap().is_ok());
        assert!(WriteFuture::ready(Ok(())).try_result().unwrap().is_ok());
    }
}
