//! The server API (`--api`): a small HTTP/1.1 JSON interface beside the chat. Sans-IO like the protocol
//! core: [`request`] frames the requests off one connection's bytes (Content-Length bodies, pipelining,
//! bounded buffers), [`response`] writes the JSON answers; the reactor only moves the bytes.

pub mod answer;
pub mod request;
pub mod response;

pub use answer::ApiAnswer;
