//! HTTP pieces for http-file-server.
