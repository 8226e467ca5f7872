//! weft-transport: tokio transports for weft. (Not written yet: this crate only compiles.)
