//! weft-examples: runnable servers and clients. (Not written yet: this crate only compiles.)
