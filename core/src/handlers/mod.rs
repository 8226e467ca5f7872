//! Ready-made handlers that need nothing but the pipeline:
//! [`LoggingHandler`] and [`FlushConsolidationHandler`]. (Time-based
//! handlers — idle state, read and write timeouts — live in
//! `weft-transport`, which owns the timers.)

mod flush_consolidation;
mod logging;

pub use flush_consolidation::FlushConsolidationHandler;
pub use logging::LoggingHandler;
