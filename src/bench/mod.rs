//! The load client engine behind `wschat-bench`: scenarios, a single-threaded mio client, latency
//! histograms and the delivery audit.
