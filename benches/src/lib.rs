//! weft-benches: benchmark binaries; see benches/README.md.
