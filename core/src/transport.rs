//! The transport author's surface: what drives a [`Pipeline`](crate::Pipeline) from a
//! socket (or by hand, as [`EmbeddedChannel`](crate::EmbeddedChannel)
//! does). Handler authors never need it.
//!
//! - [`Transport`], reached with [`Pipeline::transport`](crate::Pipeline::transport): fires the events
//!   that come from the socket, runs the commands other tasks queued, and
//!   keeps the close and shutdown bookkeeping;
//! - [`OutboundBuffer`] and its [`Entry`]s: the writes waiting for the
//!   socket, with their promises and the watermark accounting;
//! - [`CommandWaiter`]: a task's registration for the commands other tasks
//!   queue through [`Channel`](crate::Channel) handles;
//! - [`OutputShutdown`]: an output shutdown that is due.
//!
//! The contract a transport follows is on [`Transport`].

pub use crate::mailbox::CommandWaiter;
pub use crate::outbound::{
    Entry, OutboundBuffer, DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK, DEFAULT_OUTBOUND_CAP,
    FILE_REGION_WEIGHT,
};
pub use crate::pipeline::{OutputShutdown, Transport, WrittenCounter};
