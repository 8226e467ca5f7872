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
//! - it is the state of the codec's [`Combined`](weft_core::Combined): a
//!   plain value each half reaches through `Context::shared`, never held
//!   while an event moves on (the borrow of the context sees to it).

use std::collections::VecDeque;

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

impl Ledger {
    /// A ledger for `max_in_flight` requests in flight.
    pub(crate) fn new(max_in_flight: usize) -> Ledger {
        Ledger {
            unanswered: VecDeque::new(),
            max_in_flight,
            stop: false,
            upgrade_refused: false,
            stalled: false,
        }
    }

    /// Whether the oldest request waiting is an invalid one (whose answer
    /// the encoder writes in its turn).
    pub(crate) fn invalid_first(&self) -> bool {
        self.unanswered.front().is_some_and(|r| r.invalid.is_some())
    }
}

/// The user event the encoder sends its decoding half
/// (`Context::fire_user_event_to_self`) when an answer lets more requests
/// in (see the module contract). It never passes the decoder.
#[derive(Debug)]
pub(crate) struct LetIn;
