//! The chat application of workerman-chat, in layers:
//!
//! - [`hub`], the chat core: who gets what — users, rooms, history and limits; commands in, [`event`]s out,
//!   no wire format. Who is in which room is the [`roster`]'s; uids, login order and what other processes
//!   sharing the chat tell are [`presence`]'s (a trait, so a cluster can share them).
//! - [`fanout`]: the events encoded in each connection's [`dialect`] and batched per (room, dialect) and loop
//!   turn into deliveries.
//! - [`dialect`]: how a client speaks — the seed protocol ([`dialect::seed`]), plain or HTML-escaped, or
//!   workerman-chat's client_id protocol ([`dialect::workerman`]), each with its JSON.
//! - [`app`]: all of it as the reactor's [`crate::app::Application`].

pub mod api;
pub mod app;
pub mod dialect;
pub mod event;
pub mod fanout;
pub mod hub;
pub mod identity;
pub mod name;
pub mod presence;
pub mod resume;
pub mod roster;
#[cfg(test)]
mod testing;

pub use app::{ChatApp, ChatLimits};
