//! The conformance echo (`--echo`): an [`Application`] that sends every message back to its sender, for
//! WebSocket conformance suites.

use std::time::Instant;

use crate::app::{Application, CloseRequest, ConnId, Departure, Effects};
use crate::metrics::Metrics;
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{frame, OpCode};

/// Conformance mode (`--echo`): every text or binary message goes back to its sender unchanged.
#[derive(Debug, Default)]
pub struct EchoApp;

impl EchoApp {
    fn echo(conn: ConnId, op: OpCode, payload: &[u8], out: &mut Effects) {
        out.push(conn, SharedBytes::from(frame(op, payload)), 1);
    }
}

impl Application for EchoApp {
    fn set_now(&mut self, _now: Instant) {}

    fn on_text(&mut self, conn: ConnId, text: &str, out: &mut Effects) {
        EchoApp::echo(conn, OpCode::Text, text.as_bytes(), out);
    }

    fn on_binary(&mut self, conn: ConnId, data: &[u8], out: &mut Effects) -> Result<(), CloseRequest> {
        EchoApp::echo(conn, OpCode::Binary, data, out);
        Ok(())
    }

    fn on_refused(&mut self, _conn: ConnId, _out: &mut Effects) {}

    fn flush_for(&mut self, _conn: ConnId, _out: &mut Effects) {}

    fn on_leave(&mut self, _conn: ConnId, _departure: Departure, _out: &mut Effects) {}

    fn is_member(&self, _conn: ConnId) -> bool {
        false
    }

    fn on_gone(&mut self, _conn: ConnId) {}

    fn end_turn(&mut self, _out: &mut Effects) {}

    fn fill_metrics(&self, _metrics: &mut Metrics) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_returns_each_message_to_its_sender() {
        let mut app = EchoApp;
        let mut out = Effects::default();
        app.on_text(3, "hi", &mut out);
        assert!(app.on_binary(4, &[1, 2], &mut out).is_ok());
        assert_eq!(out.sends.len(), 2);
        assert_eq!((out.sends[0].conn, &out.sends[0].bytes[..]), (3, &[0x81, 2, b'h', b'i'][..]));
        assert_eq!((out.sends[1].conn, &out.sends[1].bytes[..]), (4, &[0x82, 2, 1, 2][..]));
    }
}
