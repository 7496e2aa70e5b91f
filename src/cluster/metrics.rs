//! The cluster's figures on /metrics: every `wschat_cluster_*` series, written by the cluster through the
//! daemon's [`Series`] writer.

use super::node::ClusterStats;
use super::wire::node_hex;
use crate::metrics::Series;

impl ClusterStats {
    /// Appends every `wschat_cluster_*` series.
    pub fn write(&self, out: &mut Series) {
        let c = self;
        let rows: [(&str, &str, &str, u64); 16] = [
            ("wschat_cluster_up", "gauge", "1 while both Redis links are up and the node has joined.", c.up),
            ("wschat_cluster_nodes", "gauge", "Nodes alive, as the last heartbeat saw them.", c.nodes),
            ("wschat_cluster_published_total", "counter", "Messages published to the cluster.", c.published_total),
            ("wschat_cluster_received_total", "counter", "Messages of other nodes delivered.", c.received_total),
            ("wschat_cluster_reconnects_total", "counter", "Redis connections lost.", c.reconnects_total),
            (
                "wschat_cluster_buffered_bytes",
                "gauge",
                "Bytes of messages not yet confirmed by Redis.",
                c.buffered_bytes,
            ),
            ("wschat_cluster_refused_total", "counter", "Says refused because the buffer was full.", c.refused_total),
            (
                "wschat_cluster_refused_backlog_total",
                "counter",
                "Of those, says refused while Redis was up (it confirmed less than the node's users said).",
                c.refused_backlog_total,
            ),
            (
                "wschat_cluster_redis_errors_total",
                "counter",
                "Commands Redis answered with an error (a write refused at maxmemory, ...).",
                c.redis_errors_total,
            ),
            (
                "wschat_cluster_history_loaded_bytes",
                "gauge",
                "Bytes of history loaded from Redis when joining (at most --history-budget).",
                c.history_loaded_bytes,
            ),
            (
                "wschat_cluster_stream_bytes",
                "gauge",
                "Bytes of this node's messages its stream holds (at most --cluster-stream-bytes).",
                c.stream_bytes,
            ),
            (
                "wschat_cluster_lost_total",
                "counter",
                "Messages of other nodes that could not be recovered.",
                c.lost_total,
            ),
            ("wschat_cluster_garbage_total", "counter", "Foreign or malformed cluster data skipped.", c.garbage_total),
            (
                "wschat_cluster_direct_sent_total",
                "counter",
                "Server API acts on other nodes' users sent to those nodes alone.",
                c.direct_sent_total,
            ),
            (
                "wschat_cluster_direct_received_total",
                "counter",
                "Server API acts of other nodes received for this node's users.",
                c.direct_received_total,
            ),
            (
                "wschat_cluster_direct_dropped_total",
                "counter",
                "Server API acts for other nodes dropped while Redis was away past --cluster-buffer.",
                c.direct_dropped_total,
            ),
        ];
        out.rows(&rows);
        if c.peer == 1 {
            out.rows(&[
                ("wschat_cluster_peer_links", "gauge", "Peer links to other nodes up (--cluster-peer).", c.peer_links),
                (
                    "wschat_cluster_peer_sent_total",
                    "counter",
                    "Messages sent to the other nodes over peer links instead of the bus.",
                    c.peer_sent_total,
                ),
                (
                    "wschat_cluster_peer_received_total",
                    "counter",
                    "Messages received over peer links (repeats of bus messages included).",
                    c.peer_received_total,
                ),
                (
                    "wschat_cluster_peer_failures_total",
                    "counter",
                    "Peer links refused or dropped (a bad opening, a refusal, a peer too slow to read).",
                    c.peer_failures_total,
                ),
            ]);
        }
        if c.sentinel == 1 {
            out.rows(&[
                (
                    "wschat_cluster_sentinel_up",
                    "gauge",
                    "1 while a sentinel is connected and has said where the master is.",
                    c.sentinel_up,
                ),
                (
                    "wschat_cluster_sentinel_failures_total",
                    "counter",
                    "Connects to a sentinel that failed.",
                    c.sentinel_failures_total,
                ),
                (
                    "wschat_cluster_master_changes_total",
                    "counter",
                    "Times the master moved (failovers this node followed).",
                    c.master_changes_total,
                ),
            ]);
        }
        let help = ("wschat_cluster_node", "gauge", "This node's id (which node answered).");
        out.labeled(help, ("id", &node_hex(self.node)), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn a_node_renders_its_figures_and_its_id() {
        let mut m = Metrics::default();
        ClusterStats { node: 0xab, up: 1, ..Default::default() }.write(&mut m.app);
        let text = m.render();
        assert!(text.contains("\nwschat_cluster_up 1\n") && text.contains("\nwschat_cluster_buffered_bytes 0\n"));
        assert!(text.contains("\nwschat_cluster_node{id=\"00000000000000ab\"} 1\n"), "{text}");
        assert!(text.ends_with("wschat_cluster_node{id=\"00000000000000ab\"} 1\n"), "the cluster's series come last");
    }
}
