//! The server API's side of tests: a keep-alive HTTP client over a raw socket that reads responses one at
//! a time, the requests it sends, and the key file a daemon is started with.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// The API key of test daemons.
pub const KEY: &str = "test-api-key-0123456789";

/// A file holding [`KEY`] (with a newline, as an editor leaves it), made once per test.
pub fn key_file(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wschat-test-api-{}-{test}.key", std::process::id()));
    std::fs::write(&path, format!("{KEY}\n")).expect("write the key");
    path
}

/// One API connection, read with a timeout.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn open(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// One response: status, head, JSON body.
    pub fn response(&mut self) -> (u16, String, Value) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .expect("content-length");
                if self.buf.len() >= end + 4 + len {
                    let body: Vec<u8> = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("status");
                    return (status, head, serde_json::from_slice(&body).expect("JSON body"));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read a response");
            assert!(n > 0, "connection closed before a response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server closed the connection (after what was read).
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

/// A request as bytes: `body` as JSON, the key when `auth`.
pub fn request(method: &str, path: &str, body: Option<&Value>, auth: bool) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = if auth { format!("Authorization: Bearer {KEY}\r\n") } else { String::new() };
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}
