//! [`Ledger`]: what the two halves of the HTTP server codec share — the
//! requests decoded and not yet answered, and the encoder's word back to
//! the decoder.
//!
//! Contract:
//! - the decoder pushes a request's [`RequestInfo`] when it decodes the
//!   head; the encoder pops it when the answer is complete, so the queue's
//!   length is the number of requests in flight, which the decoder keeps
//!   within `max_in_flight`;
//! - the encoder never calls the decoder: it leaves word here (`stop`: an
//!   answer ended the connection; `upgrade_refused`: a request that asked
//!   to switch protocols got another answer), which the decoder applies
//!   before it decodes again;
//! - the decoder sets `stalled` when it stops with bytes waiting that only
//!   an answer can let in (the bound is reached, or an upgrade is
//!   pending); the encoder, at the next answer, clears it and fires
//!   [`LetIn`] at the decoder, which decodes on;
//! - both halves run on the connection's task, one callback at a time, so
//!   the lock is never contended: it is there because handlers are `Send`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::response::RequestInfo;

/// See the module contract.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Requests decoded and not yet answered, oldest first.
    pub(crate) unanswered: VecDeque<RequestInfo>,
    /// Most requests decoded ahead of their answers.
    pub(crate) max_in_flight: usize,
    /// An answer ended the connection: decode nothing more.
    pub(crate) stop: bool,
    /// The pending upgrade got an answer other than 101: parse on.
    pub(crate) upgrade_refused: bool,
    /// The decoder waits for an answer to let more in.
    pub(crate) stalled: bool,
}

/// The ledger, as both halves hold it.
pub(crate) type Shared = Arc<Mutex<Ledger>>;

/// A ledger for `max_in_flight` requests in flight.
pub(crate) fn shared(max_in_flight: usize) -> Shared {
    Arc::new(Mutex::new(Ledger {
        unanswered: VecDeque::new(),
        max_in_flight,
        stop: false,
        upgrade_refused: false,
        stalled: false,
    }))
}

/// Locks the ledger. A panic in a handler loses the pipeline's busy
/// handlers, so a poisoned ledger is never seen by a live half; taking it
/// anyway keeps a panic from becoming two.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// Whether the oldest request waiting is an invalid one (whose answer
    /// the encoder writes in its turn).
    pub(crate) fn invalid_first(&self) -> bool {
        self.unanswered.front().is_some_and(|r| r.invalid.is_some())
    }
}

/// The user event the encoder fires at the decoder when an answer lets
/// more requests in (see the module contract). It never passes the
/// decoder.
#[derive(Debug)]
pub(crate) struct LetIn;
