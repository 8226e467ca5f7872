//! weft-codec: decoders and encoders for weft pipelines. (Not written yet: this crate only compiles.)
