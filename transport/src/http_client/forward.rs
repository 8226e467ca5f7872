//! The tail of a client connection's pipeline: response parts, errors and
//! the end of the connection go to the task that sent the request.
//!
//! Contract: every [`HttpResponseIn`] is sent on, in order, with the bytes
//! of body data counted in a [`ReadBudget`]; past [`HIGH_WATER`] bytes not yet taken by the
//! reader, auto-read is switched off (the socket is no longer read, the
//! server is held by TCP flow control) and the reader switches it back on
//! below [`LOW_WATER`]. An exception and the end of the connection are sent
//! as [`Event::Failed`] and [`Event::Closed`].

use tokio::sync::mpsc;
use weft_codec::http::HttpResponseIn;
use weft_core::{Context, Error, Handler, Msg, ReadBudget};

/// Body bytes held for the reader before reads stop.
pub(crate) const HIGH_WATER: usize = 1024 * 1024;
/// Body bytes held below which reads resume.
pub(crate) const LOW_WATER: usize = 256 * 1024;

/// What the connection tells the reader.
#[derive(Debug)]
pub(crate) enum Event {
    Part(HttpResponseIn),
    Failed(Error),
    Closed,
}

#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) tx: mpsc::UnboundedSender<Event>,
    /// The body bytes sent and not yet taken.
    pub(crate) budget: ReadBudget,
}

#[weft_core::handler]
impl Handler for Forward {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let part = match msg.downcast::<HttpResponseIn>() {
            Ok(p) => p,
            Err(other) => {
                tracing::debug!(kind = other.type_name(), "unexpected message dropped");
                return;
            }
        };
        let n = match &part {
            HttpResponseIn::Data(b) | HttpResponseIn::End { data: b, .. } => b.len(),
            _ => 0,
        };
        self.budget.add(n, ctx.channel());
        // The reader may be gone (it dropped the body): the connection is
        // then closed by its drop; nothing to do here.
        let _ = self.tx.send(Event::Part(part));
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        let _ = self.tx.send(Event::Failed(err));
        ctx.close();
    }

    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        let _ = self.tx.send(Event::Closed);
    }
}
