//! What nodes exchange through Redis: keys, channels and the message format (being built).
