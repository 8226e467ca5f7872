//! Ready-made handlers that need nothing but the pipeline:
//! [`LoggingHandler`], [`FlushConsolidationHandler`], and the client's
//! request/response [`Correlator`]. (Time-based
//! handlers — idle state, read and write timeouts — live in
//! `weft-transport`, which owns the timers.)

mod correlation;
mod flush_consolidation;
mod logging;

pub use correlation::{CorrelationHandler, Correlator, ResponseFuture, DEFAULT_MAX_IN_FLIGHT};
pub use flush_consolidation::FlushConsolidationHandler;
pub use logging::LoggingHandler;
