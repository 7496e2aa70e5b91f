//! The Redis link: RESP commands and replies over one non-blocking connection (being built).
