//! `--trace-frames`: one log line per frame received and sent, unmasked (target `wschat::frames`, info).

use std::net::SocketAddr;

use log::{info, log_enabled, Level};

use crate::session::{Data, Stop};
use crate::ws::frame::{FrameHeader, OpCode};

/// Logging target of `--trace-frames`.
const FRAMES_TARGET: &str = "wschat::frames";

/// Logs a data message received from connection `k`.
pub(super) fn incoming_data(peer: SocketAddr, k: usize, data: &Data<'_>) {
    if !log_enabled!(target: FRAMES_TARGET, Level::Info) {
        return;
    }
    match data {
        Data::Text(t) => info!(target: FRAMES_TARGET, "{peer} #{k} <- text {}B {t}", t.len()),
        Data::Binary(b) => info!(target: FRAMES_TARGET, "{peer} #{k} <- binary {}B {}", b.len(), hex(b)),
        Data::Refused => info!(target: FRAMES_TARGET, "{peer} #{k} <- message refused by the rate limit"),
    }
}

/// Logs the control frame (or violation) that stopped decoding for connection `k`.
pub(super) fn incoming_stop(peer: SocketAddr, k: usize, stop: &Stop) {
    if !log_enabled!(target: FRAMES_TARGET, Level::Info) {
        return;
    }
    match stop {
        Stop::NeedMore => {}
        Stop::Ping(Some(p)) => info!(target: FRAMES_TARGET, "{peer} #{k} <- ping {}", hex(p.as_slice())),
        Stop::Ping(None) => info!(target: FRAMES_TARGET, "{peer} #{k} <- ping refused by the rate limit"),
        Stop::Pong => info!(target: FRAMES_TARGET, "{peer} #{k} <- pong"),
        Stop::PeerClose(code) => info!(target: FRAMES_TARGET, "{peer} #{k} <- close {code}"),
        Stop::Violation { code, reason } => info!(target: FRAMES_TARGET, "{peer} #{k} <- violation {code}: {reason}"),
        Stop::App(req) => info!(target: FRAMES_TARGET, "{peer} #{k} <- closed by the application: {}", req.code),
    }
}

/// Logs outgoing frames, one line each (server frames are unmasked, so the payload is readable as is).
pub(super) fn outgoing(peer: SocketAddr, k: usize, mut frames: &[u8]) {
    if !log_enabled!(target: FRAMES_TARGET, Level::Info) {
        return;
    }
    while let Ok(Some(h)) = FrameHeader::decode(frames) {
        let end = h.header_len.saturating_add(h.payload_len as usize).min(frames.len());
        let payload = &frames[h.header_len.min(end)..end];
        match h.op() {
            Some(OpCode::Text) => {
                info!(target: FRAMES_TARGET, "{peer} #{k} -> text {}B {}", payload.len(), String::from_utf8_lossy(payload))
            }
            Some(op) => info!(target: FRAMES_TARGET, "{peer} #{k} -> {op} {}B {}", payload.len(), hex(payload)),
            None => {}
        }
        frames = &frames[end..];
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(64).map(|b| format!("{b:02x}")).collect()
}
