//! The chat application of workerman-chat: its JSON messages (`protocol`) and the state of users and rooms
//! (`hub`). Pure: client messages in, encoded frames addressed to connections out.

pub mod app;
pub mod hub;
pub mod protocol;

pub use app::ChatApp;
