//! [`Correlator`]: matches responses to the requests a client sent, by key.
//!
//! Contract:
//! - [`Correlator::register`] reserves a key and returns a
//!   [`ResponseFuture`]; the [`CorrelationHandler`] in the pipeline
//!   completes it when a response with that key is read;
//! - every future resolves: with its response; with the connection's
//!   error if the channel fails; with a closed-channel error when it closes
//!   (the first version's rpc-client waited for ever here, because its map
//!   kept the senders alive after the connection was gone); registering on
//!   an ended correlator fails at once;
//! - finite by default: at most [`DEFAULT_MAX_IN_FLIGHT`] requests in
//!   flight, and entries whose future was dropped (a caller's timeout) are
//!   purged as the map grows, so a server that never answers some requests
//!   cannot grow the client's memory;
//! - a response whose key matches no request is a protocol error: it is
//!   fired as an `exception_caught` for the application to act on (close,
//!   log), and dropped.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;

use crate::{Channel, Context, Error, Handler, Msg};

/// Requests in flight a [`Correlator`] allows unless told otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 65_536;

type Reply<R> = oneshot::Sender<Result<R, Error>>;

struct State<K, R> {
    pending: HashMap<K, Reply<R>>,
    /// Set once the connection has ended: why.
    ended: Option<Error>,
    max_in_flight: usize,
    /// The map size at which dropped entries are next purged.
    purge_at: usize,
}

/// The client's side of request/response correlation. Cheap to clone: the
/// clones share one map, so the task that sends and the handler that
/// receives see the same requests.
///
/// ```
/// use weft_core::{Correlator, EmbeddedChannel, Msg};
///
/// #[derive(Debug)]
/// struct Response { id: u64, body: String }
///
/// let calls: Correlator<u64, Response> = Correlator::new();
/// let mut ch = EmbeddedChannel::with_handler(calls.handler(|r: &Response| r.id));
///
/// let mut answer = calls.register(7).unwrap();
/// ch.write_inbound(Msg::user(Response { id: 7, body: "hi".into() }));
/// assert_eq!(answer.try_result().unwrap().unwrap().body, "hi");
///
/// let mut never = calls.register(8).unwrap();
/// ch.close(); // the connection ends: every pending request fails
/// assert!(never.try_result().unwrap().unwrap_err().is_closed());
/// assert!(calls.register(9).unwrap_err().is_closed());
/// ```
pub struct Correlator<K, R> {
    state: Arc<Mutex<State<K, R>>>,
}

impl<K, R> Clone for Correlator<K, R> {
    fn clone(&self) -> Self {
        Correlator {
            state: self.state.clone(),
        }
    }
}

impl<K: Eq + Hash + Send + 'static, R: Send + 'static> Default for Correlator<K, R> {
    fn default() -> Self {
        Correlator::new()
    }
}

impl<K: Eq + Hash + Send + 'static, R: Send + 'static> Correlator<K, R> {
    /// An empty correlator allowing [`DEFAULT_MAX_IN_FLIGHT`] requests.
    pub fn new() -> Correlator<K, R> {
        Correlator::with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// An empty correlator allowing at most `max` requests in flight.
    pub fn with_max_in_flight(max: usize) -> Correlator<K, R> {
        Correlator {
            state: Arc::new(Mutex::new(State {
                pending: HashMap::new(),
                ended: None,
                max_in_flight: max.max(1),
                purge_at: 64,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `key` for a request about to be sent. Fails if the
    /// connection has ended, the key is already in flight, or the limit of
    /// requests in flight is reached.
    pub fn register(&self, key: K) -> Result<ResponseFuture<R>, Error> {
        let mut st = self.lock();
        if let Some(why) = &st.ended {
            return Err(why.clone());
        }
        if st.pending.len() >= st.purge_at {
            st.pending.retain(|_, tx| !tx.is_closed());
            st.purge_at = (st.pending.len() * 2).max(64);
        }
        if st.pending.len() >= st.max_in_flight {
            return Err(Error::invalid_argument(format!(
                "{} requests are already in flight, the limit",
                st.max_in_flight
            )));
        }
        if st.pending.contains_key(&key) {
            return Err(Error::invalid_argument(
                "a request with this key is already in flight",
            ));
        }
        let (tx, rx) = oneshot::channel();
        st.pending.insert(key, tx);
        Ok(ResponseFuture { rx })
    }

    /// Completes the request `key` with `response`. Returns the response
    /// back if no request waits for that key.
    pub fn complete(&self, key: &K, response: R) -> Result<(), R> {
        let tx = self.lock().pending.remove(key);
        match tx {
            Some(tx) => {
                // A caller that stopped waiting is no error.
                let _ = tx.send(Ok(response));
                Ok(())
            }
            None => Err(response),
        }
    }

    /// Forgets the request `key` (its future resolves with a closed-channel
    /// error). For a request that could not be sent.
    pub fn cancel(&self, key: &K) {
        self.lock().pending.remove(key);
    }

    /// Fails every request in flight with `err`, and every later
    /// registration too: the connection has ended.
    pub fn fail_all(&self, err: Error) {
        let pending = {
            let mut st = self.lock();
            if st.ended.is_none() {
                st.ended = Some(err.clone());
            }
            std::mem::take(&mut st.pending)
        };
        for (_, tx) in pending {
            let _ = tx.send(Err(err.clone()));
        }
    }

    /// Requests in flight (including ones whose caller stopped waiting and
    /// that were not purged yet).
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Registers `key`, writes and flushes `request` on `channel`, and
    /// resolves with the response. A failed write fails the call with the
    /// write's error.
    pub fn call(
        &self,
        channel: &Channel,
        key: K,
        request: impl Into<Msg>,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static
    where
        K: Clone,
    {
        let this = self.clone();
        let registered = self.register(key.clone());
        let written = registered.is_ok().then(|| channel.write_and_flush(request));
        async move {
            let response = registered?;
            if let Some(w) = written {
                if let Err(e) = w.await {
                    this.cancel(&key);
                    return Err(e);
                }
            }
            response.await
        }
    }

    /// The pipeline stage that completes requests: it takes messages of
    /// type `R`, completes the request `key_of(&response)`, and fails every
    /// request when the channel fails or closes. Other messages pass on.
    pub fn handler<F>(&self, key_of: F) -> CorrelationHandler<K, R, F>
    where
        F: Fn(&R) -> K + Send + 'static,
    {
        CorrelationHandler {
            correlator: self.clone(),
            key_of,
            _r: PhantomData,
        }
    }
}

impl<K, R> fmt::Debug for Correlator<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Correlator")
            .field("in_flight", &st.pending.len())
            .field("ended", &st.ended.is_some())
            .finish()
    }
}

/// Resolves with the response to one request, or with the error that ended
/// its connection (a closed-channel error if it just closed).
#[must_use = "a ResponseFuture does nothing unless awaited"]
pub struct ResponseFuture<R> {
    rx: oneshot::Receiver<Result<R, Error>>,
}

impl<R> ResponseFuture<R> {
    /// The outcome if it is known, without waiting.
    pub fn try_result(&mut self) -> Option<Result<R, Error>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::closed())),
        }
    }
}

impl<R> Future for ResponseFuture<R> {
    type Output = Result<R, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::closed())))
    }
}

impl<R> fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The handler half of a [`Correlator`] (see [`Correlator::handler`]).
pub struct CorrelationHandler<K, R, F> {
    correlator: Correlator<K, R>,
    key_of: F,
    _r: PhantomData<fn() -> R>,
}

#[crate::handler]
impl<K, R, F> Handler for CorrelationHandler<K, R, F>
where
    K: Eq + Hash + Send + 'static,
    R: Send + 'static,
    F: Fn(&R) -> K + Send + 'static,
{
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        match msg.downcast::<R>() {
            Ok(response) => {
                let key = (self.key_of)(&response);
                if self.correlator.complete(&key, response).is_err() {
                    ctx.fire_exception(Error::corrupted_frame(format!(
                        "a response of type `{}` answers no request in flight",
                        std::any::type_name::<R>()
                    )));
                }
            }
            Err(other) => ctx.fire_read(other),
        }
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        self.correlator.fail_all(err.clone());
        ctx.fire_exception(err);
    }

    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.correlator.fail_all(Error::closed());
        ctx.fire_inactive();
    }
}

impl<K, R, F> fmt::Debug for CorrelationHandler<K, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelationHandler")
            .field("correlator", &self.correlator)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedChannel;

    #[test]
    fn unknown_keys_are_a_protocol_error_and_limits_hold() {
        let c: Correlator<u32, u32> = Correlator::with_max_in_flight(2);
        let mut ch = EmbeddedChannel::with_handler(c.handler(|r: &u32| *r));
        let _a = c.register(1).unwrap();
        assert!(
            c.register(1).unwrap_err().kind() == crate::ErrorKind::InvalidArgument,
            "duplicate"
        );
        let _b = c.register(2).unwrap();
        assert!(
            c.register(3).unwrap_err().kind() == crate::ErrorKind::InvalidArgument,
            "limit"
        );
        ch.write_inbound(Msg::user(5u32));
        assert!(ch.check_exception().unwrap_err().kind() == crate::ErrorKind::CorruptedFrame);
        // Other messages pass on untouched.
        ch.write_inbound(Msg::user(String::from("x")));
        assert_eq!(ch.read_inbound::<String>().unwrap(), "x");
    }

    #[test]
    fn an_error_fails_everything_with_that_error() {
        let c: Correlator<u32, u32> = Correlator::new();
        let mut ch = EmbeddedChannel::with_handler(c.handler(|r: &u32| *r));
        let mut f = c.register(1).unwrap();
        ch.fire_exception(Error::timeout("read timed out"));
        assert!(f.try_result().unwrap().unwrap_err().is_timeout());
        assert!(c.register(2).unwrap_err().is_timeout());
    }

    #[test]
    fn abandoned_requests_are_purged_as_the_map_grows() {
        let c: Correlator<u32, u32> = Correlator::new();
        for k in 0..10_000 {
            drop(c.register(k).unwrap()); // the caller gave up (a timeout)
        }
        assert!(c.in_flight() <= 128, "{} entries kept", c.in_flight());
    }
}
