//! Capture analysis for `wschat-dump`: pcap/pcapng reading, TCP reassembly, WebSocket stream decoding and
//! rendering of the timeline.
