//! The bench's HTTP/1.1 client, sans-IO: a request head written once and reused for every request (method,
//! path, host, bearer key, JSON content type), and the reading of the server's answers off a connection's
//! bytes — status, `Content-Length` body, `Connection: close` — one after another as pipelining brings them.
//! Nothing here knows a socket; the answers come from a server the bench does not trust, so every length is
//! checked and nothing panics on what it sends.

use std::fmt;
use std::ops::Range;

/// Longest answer head read (the daemon's are about 150 bytes).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest answer body read (the daemon's are a few dozen bytes for the calls the bench makes).
pub const MAX_BODY: usize = 1 << 20;
/// Most headers in one answer.
const MAX_HEADERS: usize = 32;

/// The method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// The fixed part of a request, written once: everything up to the `Content-Length` value.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHead {
    prefix: Vec<u8>,
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The head holds the API key: never print it.
        f.debug_struct("RequestHead").field("bytes", &self.prefix.len()).finish()
    }
}

impl RequestHead {
    /// The head of `method path` to `host`, authorized with `Bearer key`, its body JSON. The caller checks that
    /// `path`, `host` and `key` are header-safe (no CR, LF or other control bytes).
    pub fn new(method: Method, path: &str, host: &str, key: &[u8]) -> RequestHead {
        let mut prefix =
            format!("{} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer ", method.as_str()).into_bytes();
        prefix.extend_from_slice(key);
        prefix.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        RequestHead { prefix }
    }

    /// Appends one whole request with `body` to `out`.
    pub fn write(&self, out: &mut Vec<u8>, body: &[u8]) {
        out.extend_from_slice(&self.prefix);
        push_decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
}

/// Appends `v` in decimal without allocating.
fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// One answer read off the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its status code.
    pub status: u16,
    /// Where its body lies in the buffer.
    pub body: Range<usize>,
    /// Bytes it took, head and body: the next answer starts there.
    pub len: usize,
    /// The server said `Connection: close`: nothing follows it.
    pub close: bool,
}

/// Why the bytes from the server are not an answer the bench can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not an HTTP/1.x status line and headers.
    Malformed(httparse::Error),
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// No `Content-Length` (the bench reads no other framing).
    NoLength,
    /// `Transfer-Encoding` (chunked): not sent by the daemon, not read by the bench.
    Chunked,
    /// A `Content-Length` that is not one number, or two that differ.
    BadLength,
    /// A body over [`MAX_BODY`] bytes.
    BodyTooLarge(u64),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(e) => write!(f, "not an HTTP/1.1 answer: {e}"),
            HttpError::HeadTooLarge => write!(f, "an answer head over {MAX_HEAD} bytes"),
            HttpError::NoLength => f.write_str("an answer without Content-Length"),
            HttpError::Chunked => f.write_str("a chunked answer (the bench reads Content-Length bodies only)"),
            HttpError::BadLength => f.write_str("an answer with a bad Content-Length"),
            HttpError::BodyTooLarge(n) => write!(f, "an answer body of {n} bytes (over {MAX_BODY})"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Reads the answer at the start of `buf`: `Ok(None)` while it is incomplete (read more), the answer once
/// its head and whole body are there, an error for anything the bench cannot read (then the connection is
/// of no further use: its framing is lost).
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        Ok(_) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e)),
    };
    let status = response.code.ok_or(HttpError::Malformed(httparse::Error::Status))?;
    let mut length: Option<u64> = None;
    let mut close = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_length(h.value).ok_or(HttpError::BadLength)?;
            if length.is_some_and(|l| l != v) {
                return Err(HttpError::BadLength);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // 1xx, 204 and 304 answers have no body (RFC 9112 section 6.3).
    let bodiless = status < 200 || status == 204 || status == 304;
    let body_len = match (length, bodiless) {
        (_, true) => 0,
        (Some(n), false) => n,
        (None, false) => return Err(HttpError::NoLength),
    };
    if body_len > MAX_BODY as u64 {
        return Err(HttpError::BodyTooLarge(body_len));
    }
    let end = head_len + body_len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Response { status, body: head_len..end, len: end, close }))
}

/// A `Content-Length` value: 1 to 19 decimal digits, surrounding blanks allowed.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n{\"ok\":true,\"queued\":3}";

    #[test]
    fn writes_whole_requests_from_one_head() {
        let head = RequestHead::new(Method::Post, "/api/say", "127.0.0.1:8080", b"0123456789abcdef");
        let mut out = Vec::new();
        head.write(&mut out, b"{}");
        head.write(&mut out, b"");
        let want = "POST /api/say HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let empty = want.replace("Length: 2\r\n\r\n{}", "Length: 0\r\n\r\n");
        assert_eq!(String::from_utf8(out).unwrap(), format!("{want}{empty}"));
        assert!(!format!("{head:?}").contains("0123456789abcdef"), "the key is never printed");
        let mut n = Vec::new();
        for v in [0, 9, 10, 1234, u64::MAX] {
            n.clear();
            push_decimal(&mut n, v);
            assert_eq!(n, v.to_string().as_bytes());
        }
    }

    #[test]
    fn the_daemons_requests_are_read_by_the_daemons_reader() {
        let head = RequestHead::new(Method::Post, "/api/send", "h:1", b"k3y-k3y-k3y-k3y-k3y");
        let mut out = Vec::new();
        head.write(&mut out, br#"{"to":{"all":true},"data":"x"}"#);
        head.write(&mut out, br#"{"room":"1","content":"y"}"#);
        let mut reader = crate::api::request::RequestReader::new();
        assert!(reader.feed(&out));
        let first = reader.next_request().unwrap().unwrap();
        assert_eq!(
            (first.path.join("/"), first.body.as_slice()),
            ("api/send".into(), &br#"{"to":{"all":true},"data":"x"}"#[..])
        );
        assert_eq!(first.authorization.as_deref(), Some(&b"Bearer k3y-k3y-k3y-k3y-k3y"[..]));
        assert!(first.keep_alive);
        assert_eq!(reader.next_request().unwrap().unwrap().body, br#"{"room":"1","content":"y"}"#);
        assert!(reader.next_request().unwrap().is_none());
    }

    #[test]
    fn reads_pipelined_answers_cut_anywhere() {
        let close = crate::api::response::json_response(401, b"{\"ok\":false}", false, None);
        let all = [OK, OK, &close[..]].concat();
        for cut in 0..all.len() {
            let mut got = Vec::new();
            let mut buf = all[..cut].to_vec();
            let mut rest = &all[cut..];
            loop {
                match parse_response(&buf).unwrap() {
                    Some(r) => {
                        got.push((r.status, buf[r.body.clone()].to_vec(), r.close));
                        buf.drain(..r.len);
                    }
                    None if rest.is_empty() => break,
                    None => {
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                }
            }
            let ok = (200, br#"{"ok":true,"queued":3}"#.to_vec(), false);
            assert_eq!(got, [ok.clone(), ok, (401, b"{\"ok\":false}".to_vec(), true)], "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn what_the_bench_cannot_read_is_an_error() {
        let err = |bytes: &[u8]| parse_response(bytes).unwrap_err();
        assert!(matches!(err(b"HTTP/1.1 2000 OK\r\n\r\n"), HttpError::Malformed(_)));
        assert!(matches!(err(b"SSH-2.0-OpenSSH\r\n\r\n"), HttpError::Malformed(_)));
        assert_eq!(err(b"HTTP/1.1 200 OK\r\n\r\n"), HttpError::NoLength);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HttpError::Chunked);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), HttpError::BadLength);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"), HttpError::BadLength);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), HttpError::BadLength);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"), HttpError::BadLength);
        assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n"), HttpError::BodyTooLarge(1_048_577));
        let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &vec![b'a'; MAX_HEAD]].concat();
        assert_eq!(err(&long), HttpError::HeadTooLarge);
        // The same length twice, blanks around it, no body where none may be: all fine.
        let twice = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length:  1 \r\ncontent-length: 1\r\n\r\nx").unwrap();
        assert_eq!(twice.map(|r| (r.status, r.body, r.len)), Some((200, 59..60, 60)));
        let empty = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((empty.status, empty.body.len()), (204, 0));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").unwrap(), None);
        assert_eq!(parse_response(b"HTTP/1.1 200").unwrap(), None);
        assert_eq!(parse_response(b"").unwrap(), None);
        let close = parse_response(b"HTTP/1.1 503 X\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n");
        assert!(close.unwrap().unwrap().close);
    }
}
