//! The load client behind `wschat-bench`: a single-threaded mio client engine that reuses the crate's frame
//! codec and the client side of its handshake, the fanout, saturate, connect, churn and api scenarios, the
//! delivery audit (loss, duplicates, reordering per sender), latency histograms and the report. The api
//! scenario's HTTP client for the daemon's server API is in [`api`]. The clients may be
//! spread over several URLs, the nodes of one cluster (client i on URL i mod n), all ws:// or all wss:// (TLS,
//! driven sans-IO by the same loop).

pub mod api;
pub mod audit;
pub mod content;
pub mod engine;
pub mod report;
pub mod resume;
pub mod scenario;
pub mod sys;
pub mod target;
pub mod tls;
pub mod token;

pub use engine::Proto;
pub use report::Report;
pub use scenario::{run, BenchConfig, BenchError, Scenario};
