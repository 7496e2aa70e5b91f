//! The opening handshake (RFC 6455 section 4): parsing and validating a client's upgrade request with
//! httparse, the 101 response with its accept key, the error responses, and the client side used by the
//! bench client. Pure: a byte slice in, a request or an error out; "need more" consumes nothing.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

pub use crate::http::response::{error_response, MAX_HEADERS, MAX_HEAD_BYTES};

/// The GUID every accept key is derived with (RFC 6455 section 1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid upgrade request: what the server needs to answer and to apply its policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target, e.g. `/`.
    pub path: String,
    /// The `Sec-WebSocket-Key` as sent (24 characters of base64).
    pub key: String,
    /// The `Origin` header, when a browser sent one.
    pub origin: Option<String>,
    /// The `X-Forwarded-For` and `Forwarded` headers as (name, value), in order: a trusted proxy's word on
    /// the client's address (`crate::proxy::client_addr`).
    pub forwarding: Vec<(String, Vec<u8>)>,
}

/// Why a handshake request is refused; each maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.1 request head.
    Malformed,
    /// The head is larger than [`MAX_HEAD_BYTES`] or has too many header lines.
    HeadTooLarge,
    /// A method other than GET.
    MethodNotAllowed,
    /// A plain GET with no `Upgrade` header: not a WebSocket client.
    UpgradeRequired,
    /// `Upgrade` is not `websocket`, or `Connection` lacks the `upgrade` token.
    BadUpgradeHeaders,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes of base64.
    BadKey,
    /// `Sec-WebSocket-Version` missing.
    MissingVersion,
    /// `Sec-WebSocket-Version` other than 13.
    UnsupportedVersion,
    /// An HTTP version before 1.1.
    OldHttpVersion,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UpgradeRequired | HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// The whole HTTP response to send before closing.
    pub fn response(self) -> Vec<u8> {
        let extra = match self {
            HandshakeError::UpgradeRequired | HandshakeError::UnsupportedVersion => {
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            }
            HandshakeError::MethodNotAllowed => "Allow: GET\r\n",
            _ => "",
        };
        error_response(self.status(), extra, &format!("{self}\n"))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Malformed => "malformed HTTP request",
            HandshakeError::HeadTooLarge => "request head too large",
            HandshakeError::MethodNotAllowed => "only GET can upgrade to a WebSocket",
            HandshakeError::UpgradeRequired => "this port speaks WebSocket only: send an upgrade request",
            HandshakeError::BadUpgradeHeaders => "missing or invalid Upgrade/Connection headers",
            HandshakeError::BadKey => "missing or invalid Sec-WebSocket-Key",
            HandshakeError::MissingVersion => "missing Sec-WebSocket-Version",
            HandshakeError::UnsupportedVersion => "unsupported Sec-WebSocket-Version: use 13",
            HandshakeError::OldHttpVersion => "HTTP/1.1 or later required",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Parses an upgrade request at the start of `buf`. `Ok(None)`: the head is not complete yet. On success,
/// also returns the head's length; bytes after it are the client's first frames.
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_BYTES { Err(HandshakeError::HeadTooLarge) } else { Ok(None) };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HandshakeError::HeadTooLarge);
    }
    if req.method != Some("GET") {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::OldHttpVersion);
    }
    let mut upgrade = None;
    let mut connection_upgrade = false;
    let mut key: Option<&[u8]> = None;
    let mut key_count = 0;
    let mut version = None;
    let mut origin = None;
    let mut forwarding = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(h.value);
            key_count += 1;
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(h.value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = Some(String::from_utf8_lossy(h.value).into_owned());
        } else if name.eq_ignore_ascii_case("x-forwarded-for") || name.eq_ignore_ascii_case("forwarded") {
            forwarding.push((name.to_string(), h.value.to_vec()));
        }
    }
    let upgrade = upgrade.ok_or(HandshakeError::UpgradeRequired)?;
    if !has_token(upgrade, "websocket") || !connection_upgrade {
        return Err(HandshakeError::BadUpgradeHeaders);
    }
    let version = version.ok_or(HandshakeError::MissingVersion)?;
    if trim(version) != b"13" {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match key {
        Some(k) if key_count == 1 => trim(k),
        _ => return Err(HandshakeError::BadKey),
    };
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    let key = String::from_utf8(key.to_vec()).map_err(|_| HandshakeError::BadKey)?;
    let path = req.path.unwrap_or("/").to_string();
    Ok(Some((UpgradeRequest { path, key, origin, forwarding }, head_len)))
}

/// Whether a comma-separated header value contains `token`, compared case-insensitively.
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// `value` without leading and trailing spaces and tabs.
fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !b" \t".contains(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !b" \t".contains(b)).map_or(start, |e| e + 1);
    &value[start..end]
}

/// The `Sec-WebSocket-Accept` value for a client key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// The 101 response, header for header as workerman-chat sends it.
pub fn switching_protocols(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

/// A client key from 16 bytes of caller-chosen randomness.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// The client's upgrade request for `host` (as in the Host header) and `path`.
pub fn client_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Why a server's handshake response is not an accepted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// Not parseable as an HTTP response head, or larger than [`MAX_HEAD_BYTES`].
    Malformed,
    /// A status other than 101.
    Refused(u16),
    /// `Sec-WebSocket-Accept` missing or not matching the key.
    BadAccept,
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Malformed => f.write_str("malformed handshake response"),
            ClientHandshakeError::Refused(status) => write!(f, "server refused the upgrade with status {status}"),
            ClientHandshakeError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// Parses the server's answer to [`client_request`]; returns the head's length once it is complete and valid.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, ClientHandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => return Ok(None),
        _ => return Err(ClientHandshakeError::Malformed),
    };
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Err(ClientHandshakeError::Refused(status));
    }
    let expected = accept_key(key);
    let ok = resp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept") && trim(h.value) == expected.as_bytes());
    if ok {
        Ok(Some(head_len))
    } else {
        Err(ClientHandshakeError::BadAccept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's request from a browser, line for line.
    const SEED_REQUEST: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUser-Agent: Mozilla/5.0 (X11; Ubuntu; Linux i686; rv:31.0) Gecko/20100101 Firefox/31.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: zh-cn,zh;q=0.8,en-us;q=0.5,en;q=0.3\r\nAccept-Encoding: gzip, deflate\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:55151\r\nSec-WebSocket-Key: zPDr6m4czzUdOFnsxIUEAw==\r\nCookie: Hm_lvt=1\r\nConnection: keep-alive, Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n\r\n";

    fn request(headers: &str) -> String {
        format!("GET /chat HTTP/1.1\r\nHost: x\r\n{headers}\r\n")
    }

    const GOOD: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn seed_accept_key() {
        assert_eq!(accept_key("zPDr6m4czzUdOFnsxIUEAw=="), "nSsCeIBUsFnDJCRb/BNlFzBUDpM=");
    }

    #[test]
    fn seed_request_parses_and_gets_the_seed_response() {
        let (req, n) = parse_request(SEED_REQUEST.as_bytes()).unwrap().unwrap();
        assert_eq!(n, SEED_REQUEST.len());
        assert_eq!(req.path, "/");
        assert_eq!(req.origin.as_deref(), Some("http://127.0.0.1:55151"));
        let resp = String::from_utf8(switching_protocols(&req.key)).unwrap();
        assert_eq!(
            resp,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nSsCeIBUsFnDJCRb/BNlFzBUDpM=\r\n\r\n"
        );
        assert_eq!(resp.len(), 156, "the seed's 101 response is 156 bytes");
    }

    #[test]
    fn partial_heads_need_more_in_any_split() {
        let bytes = SEED_REQUEST.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(parse_request(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn frames_after_the_head_are_left_alone() {
        let mut bytes = request(GOOD).into_bytes();
        let head = bytes.len();
        bytes.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let (_, n) = parse_request(&bytes).unwrap().unwrap();
        assert_eq!(n, head);
    }

    #[test]
    fn connection_token_list_and_case() {
        let h = GOOD
            .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE")
            .replace("Upgrade: websocket", "upgrade: WebSocket");
        assert!(parse_request(request(&h).as_bytes()).unwrap().is_some());
    }

    #[test]
    fn refusals_and_their_statuses() {
        let cases = [
            (request(""), HandshakeError::UpgradeRequired, 426),
            (request(&GOOD.replace("Upgrade: websocket", "Upgrade: h2c")), HandshakeError::BadUpgradeHeaders, 400),
            (
                request(&GOOD.replace("Connection: Upgrade", "Connection: keep-alive")),
                HandshakeError::BadUpgradeHeaders,
                400,
            ),
            (
                request(&GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")),
                HandshakeError::BadKey,
                400,
            ),
            (request(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dG9vIHNob3J0")), HandshakeError::BadKey, 400),
            (
                request(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!not base64!!!!!!!!!!")),
                HandshakeError::BadKey,
                400,
            ),
            (request(&format!("{GOOD}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")), HandshakeError::BadKey, 400),
            (request(&GOOD.replace("Version: 13", "Version: 8")), HandshakeError::UnsupportedVersion, 426),
            (request(&GOOD.replace("Sec-WebSocket-Version: 13\r\n", "")), HandshakeError::MissingVersion, 400),
            (request(GOOD).replace("GET", "POST"), HandshakeError::MethodNotAllowed, 405),
            (request(GOOD).replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::OldHttpVersion, 400),
            ("GARBAGE\x01\r\n\r\n".to_string(), HandshakeError::Malformed, 400),
        ];
        for (req, err, status) in cases {
            assert_eq!(parse_request(req.as_bytes()), Err(err), "{req:?}");
            assert_eq!(err.status(), status);
            let resp = String::from_utf8(err.response()).unwrap();
            assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
            assert!(resp.contains("Connection: close\r\n"));
        }
        let resp = String::from_utf8(HandshakeError::UnsupportedVersion.response()).unwrap();
        assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn oversized_heads() {
        let big = request(&format!("{GOOD}X-Big: {}\r\n", "a".repeat(MAX_HEAD_BYTES)));
        assert_eq!(parse_request(big.as_bytes()), Err(HandshakeError::HeadTooLarge));
        // Still incomplete but already over the limit.
        let partial = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_request(partial.as_bytes()), Err(HandshakeError::HeadTooLarge));
        let many = |n: usize| -> String { (0..n).map(|i| format!("X-{i}: y\r\n")).collect() };
        // 100 header lines (plus the 5 of the request) are far under 8 KiB: accepted.
        let hundred = request(&format!("{GOOD}{}", many(100)));
        assert!(hundred.len() < MAX_HEAD_BYTES);
        assert!(matches!(parse_request(hundred.as_bytes()), Ok(Some(_))));
        // Exactly MAX_HEADERS lines pass; one more is refused like an oversized head.
        let full = request(&format!("{GOOD}{}", many(MAX_HEADERS - 5)));
        assert!(matches!(parse_request(full.as_bytes()), Ok(Some(_))));
        let over = request(&format!("{GOOD}{}", many(MAX_HEADERS - 4)));
        assert_eq!(parse_request(over.as_bytes()), Err(HandshakeError::HeadTooLarge));
        // Many lines that add up to more than 8 KiB: 431 by size.
        let long: String = (0..100).map(|i| format!("X-{i}: {}\r\n", "v".repeat(80))).collect();
        let long = request(&format!("{GOOD}{long}"));
        assert!(long.len() > MAX_HEAD_BYTES);
        assert_eq!(parse_request(long.as_bytes()), Err(HandshakeError::HeadTooLarge));
        assert_eq!(HandshakeError::HeadTooLarge.status(), 431);
    }

    #[test]
    fn client_side_round_trip() {
        let key = client_key([7; 16]);
        let req = client_request("127.0.0.1:7272", "/", &key);
        let (parsed, _) = parse_request(&req).unwrap().unwrap();
        let resp = switching_protocols(&parsed.key);
        assert_eq!(parse_response(&resp, &key), Ok(Some(resp.len())));
        assert_eq!(parse_response(&resp[..10], &key), Ok(None));
        assert_eq!(parse_response(&resp, &client_key([8; 16])), Err(ClientHandshakeError::BadAccept));
        let refused = error_response(503, "", "full\n");
        assert_eq!(parse_response(&refused, &key), Err(ClientHandshakeError::Refused(503)));
    }
}
