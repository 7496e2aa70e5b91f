//! wschat: a WebSocket chat daemon speaking the workerman-chat protocol on a hand-rolled, single-threaded
//! mio reactor, with its load client and capture analyzer. The protocol core (`ws`, `chat`) is pure code;
//! the reactor only moves bytes between sockets and that core. The tools' libraries are behind the features
//! `bench` and `dump` (both default), so the daemon alone builds with `--no-default-features`.
#![deny(missing_docs)]

pub mod api;
pub mod app;
#[cfg(feature = "bench")]
pub mod bench;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod config_file;
pub mod daemon;
#[cfg(feature = "dump")]
pub mod dump;
pub mod echo;
pub mod http;
pub mod manual;
pub mod metrics;
pub mod outbox;
pub mod proxy;
pub mod random_id;
pub mod reactor;
pub mod session;
pub mod shared_bytes;
pub mod systemd;
pub mod timer;
pub mod tls;
pub mod transport;
pub mod web;
pub mod ws;
