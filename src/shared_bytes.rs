//! Bytes queued for sockets and shared by every connection they go to: encoded WebSocket frames (one, or a
//! room's batch of several) or an HTTP answer. Below both the reactor, which writes them, and the chat,
//! which makes them.

use std::rc::Rc;

/// Whole frames or an HTTP answer, shared without a copy by every connection it is queued for.
pub type SharedBytes = Rc<[u8]>;
