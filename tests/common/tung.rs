//! tungstenite, a client independent of the crate, against the daemon: connect, read chat messages.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::Daemon;

/// A tungstenite client connection.
pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to the daemon (the 101 checked) with a read timeout of 5 s.
pub fn connect(d: &Daemon) -> Ws {
    let (ws, resp) = tungstenite::connect(d.ws_url()).expect("handshake");
    assert_eq!(resp.status(), 101);
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

/// The next text message as JSON (skipping pings, which tungstenite answers itself, and pongs).
pub fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}
