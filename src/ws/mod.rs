//! The WebSocket protocol (RFC 6455) as pure code: handshake, frame codec, masking, UTF-8 and message
//! assembly. Shared by the daemon, the bench client and the capture analyzer.

pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod utf8;
