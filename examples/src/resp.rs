//! RESP (Redis protocol) pieces for resp-server. (Filled in with resp-server.)
