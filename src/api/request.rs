//! Request framing of the API: one connection's bytes in, whole requests out, in order (pipelining). Heads
//! are parsed by httparse; bodies are Content-Length only. Every buffer is bounded, and a framing error ends
//! the connection's requests (the reader is poisoned), since the bytes after it cannot be trusted.

use std::fmt;

/// Largest request body accepted (1 MiB); a larger Content-Length is answered 413 at once, before any body is read.
pub const MAX_BODY: usize = 1 << 20;
/// Largest request head (request line + headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a head.
pub const MAX_HEADERS: usize = 64;

/// The request's method, as far as the API cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// Any other valid token (PUT, DELETE, HEAD...): the API answers 405.
    Other,
}

impl Method {
    /// The method named by a request line's token (methods are case-sensitive: `get` is not GET).
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path's segments, percent-decoded (UTF-8; a segment that does not decode to UTF-8 is a 400), the
    /// query string removed; "/api/rooms/a%20b/users" -> ["api","rooms","a b","users"]; empty segments from
    /// "//" or a trailing "/" are dropped.
    pub path: Vec<String>,
    /// The query's pairs, percent-decoded ('+' is a space in the query), in order: "?limit=5&x" ->
    /// [("limit","5"),("x","")].
    pub query: Vec<(String, String)>,
    /// The value of the Authorization header, if any (bytes as sent, surrounding whitespace trimmed).
    pub authorization: Option<Vec<u8>>,
    /// The body (Content-Length bytes; empty without Content-Length).
    pub body: Vec<u8>,
    /// Whether the connection stays open after the answer: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only
    /// with "Connection: keep-alive".
    pub keep_alive: bool,
    /// The request asks for a protocol upgrade (an "Upgrade" header, e.g. websocket): the API refuses it.
    pub upgrade: bool,
}

/// Why a connection's requests cannot be read; the caller answers it and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Malformed request line or headers, a bad or duplicate/conflicting Content-Length, a path that is not
    /// origin-form ("/..."), a bad percent escape, non-UTF-8 after decoding -> 400. Carries a short static reason.
    BadRequest(&'static str),
    /// Content-Length over MAX_BODY -> 413.
    TooLarge,
    /// The head is over MAX_HEAD or has more than MAX_HEADERS headers -> 431.
    HeadTooLarge,
    /// Transfer-Encoding (chunked or any) -> 411 "Length Required" (the API takes only Content-Length bodies).
    LengthRequired,
    /// An HTTP version other than 1.0/1.1 -> 505.
    Version,
}

impl RequestError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::TooLarge => 413,
            RequestError::HeadTooLarge => 431,
            RequestError::LengthRequired => 411,
            RequestError::Version => 505,
        }
    }

    /// The error code word for the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::BadRequest(_) => "bad_request",
            RequestError::TooLarge => "too_large",
            RequestError::HeadTooLarge => "head_too_large",
            RequestError::LengthRequired => "length_required",
            RequestError::Version => "http_version",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadRequest(reason) => write!(f, "bad request: {reason}"),
            RequestError::TooLarge => write!(f, "the request body is over {MAX_BODY} bytes"),
            RequestError::HeadTooLarge => {
                write!(f, "the request head is over {MAX_HEAD} bytes or {MAX_HEADERS} headers")
            }
            RequestError::LengthRequired => {
                f.write_str("a body must be sent with Content-Length, not Transfer-Encoding")
            }
            RequestError::Version => f.write_str("only HTTP/1.0 and HTTP/1.1 are supported"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads requests off one connection's bytes: fed whatever the socket gave, hands out each complete request in
/// order (pipelining), keeps at most one unfinished request's bytes (bounded: never more than MAX_HEAD + MAX_BODY).
#[derive(Debug, Default)]
pub struct RequestReader {
    /// Bytes fed and not yet handed out start at `start`; those before it are spent (dropped at the next feed,
    /// so handing out many pipelined requests does not move the rest once per request).
    buf: Vec<u8>,
    /// Where the unspent bytes of `buf` start.
    start: usize,
    /// The parsed head of the request in progress, kept while its body arrives so the head is parsed once.
    head: Option<Head>,
    /// The error that ended this connection's requests.
    error: Option<RequestError>,
}

/// A parsed head waiting for its body.
#[derive(Debug)]
struct Head {
    /// The request, its body still empty.
    request: Request,
    /// The head's length in bytes (the body starts there).
    head_len: usize,
    /// The body's length (Content-Length).
    body_len: usize,
}

impl RequestReader {
    /// A reader with nothing buffered.
    pub fn new() -> RequestReader {
        RequestReader::default()
    }

    /// Appends bytes read from the socket. Returns false (and keeps nothing more) when the buffer would pass
    /// MAX_HEAD + MAX_BODY — the caller closes the connection. Once poisoned, bytes are dropped (the caller
    /// only answers the error).
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.error.is_some() {
            return true;
        }
        if self.buffered() + bytes.len() > MAX_HEAD + MAX_BODY {
            return false;
        }
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
        true
    }

    /// The next complete request, taken off the front; Ok(None) while it is incomplete. After an Err the reader
    /// is poisoned: every further call returns the same Err (the caller answers it and closes).
    pub fn next_request(&mut self) -> Result<Option<Request>, RequestError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let result = self.take_request();
        if let Err(error) = result {
            self.error = Some(error);
            self.buf = Vec::new();
            self.start = 0;
            self.head = None;
        }
        result
    }

    /// Bytes held (an unfinished request, or requests pipelined behind the last one handed out).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True when some bytes of an unfinished request are held (for a slow-request timeout: the caller times how
    /// long a request stays unfinished).
    pub fn mid_request(&self) -> bool {
        self.head.is_some() || self.buffered() > 0
    }

    /// The next request if all its bytes are here: parses the head once, then waits for the body.
    fn take_request(&mut self) -> Result<Option<Request>, RequestError> {
        if self.head.is_none() {
            self.head = self.parse_head()?;
        }
        let have = self.buffered();
        let Some(head) = self.head.take_if(|head| have >= head.head_len + head.body_len) else {
            return Ok(None);
        };
        let Head { mut request, head_len, body_len } = head;
        let body_start = self.start + head_len;
        request.body = self.buf[body_start..body_start + body_len].to_vec();
        self.start = body_start + body_len;
        Ok(Some(request))
    }

    /// The head at the front of the buffer, once it is complete.
    fn parse_head(&mut self) -> Result<Option<Head>, RequestError> {
        // RFC 9112 section 2.2: empty lines before a request line are ignored (some clients send a CRLF after a
        // body); dropping them here also keeps an idle connection from looking mid-request.
        self.start += empty_lines(&self.buf[self.start..]);
        let bytes = &self.buf[self.start..];
        if bytes.is_empty() {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_len = match parsed.parse(bytes) {
            Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
            Ok(httparse::Status::Partial) if bytes.len() <= MAX_HEAD => return Ok(None),
            Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
            Err(httparse::Error::Version) => return Err(RequestError::Version),
            Err(_) => return Err(RequestError::BadRequest("malformed request head")),
        };
        // A complete parse fills method, path and version.
        let http10 = parsed.version == Some(0);
        let method = Method::from_token(parsed.method.unwrap_or_default());
        let target = parsed.path.unwrap_or_default();
        let headers = parsed.headers;

        // Framing first: without it the bytes after this head cannot be told apart.
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")) {
            return Err(RequestError::LengthRequired);
        }
        let mut content_length = None;
        for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
            let n = content_length_value(h.value.trim_ascii())?;
            if content_length.is_some_and(|m| m != n) {
                return Err(RequestError::BadRequest("conflicting Content-Length"));
            }
            content_length = Some(n);
        }
        let body_len = content_length.unwrap_or(0);
        if body_len > MAX_BODY {
            return Err(RequestError::TooLarge);
        }

        let (mut close, mut keep_alive, mut upgrade, mut authorization) = (false, false, false, None);
        for h in headers.iter() {
            let value = h.value.trim_ascii();
            if h.name.eq_ignore_ascii_case("connection") {
                for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            } else if h.name.eq_ignore_ascii_case("authorization") {
                // Two credentials are ambiguous (which one would be checked?), so neither is taken.
                if authorization.is_some() {
                    return Err(RequestError::BadRequest("duplicate Authorization"));
                }
                authorization = Some(value.to_vec());
            }
        }
        let keep_alive = !close && (keep_alive || !http10);
        let (path, query) = parse_target(target)?;
        let request = Request { method, path, query, authorization, body: Vec::new(), keep_alive, upgrade };
        Ok(Some(Head { request, head_len, body_len }))
    }
}

/// The length of the empty lines (CRLF, or a bare LF) at the start of `bytes`.
fn empty_lines(mut bytes: &[u8]) -> usize {
    let len = bytes.len();
    while let Some(rest) = bytes.strip_prefix(b"\r\n").or_else(|| bytes.strip_prefix(b"\n")) {
        bytes = rest;
    }
    len - bytes.len()
}

/// A Content-Length value: ASCII digits only (no sign, space or list). Saturates instead of overflowing: any
/// value that large is over MAX_BODY anyway.
fn content_length_value(value: &[u8]) -> Result<usize, RequestError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::BadRequest("bad Content-Length"));
    }
    Ok(value.iter().fold(0usize, |n, &d| n.saturating_mul(10).saturating_add(usize::from(d - b'0'))))
}

/// An origin-form target's decoded path segments and query pairs.
type Target = (Vec<String>, Vec<(String, String)>);

/// Splits and decodes an origin-form target ("/path?query"; RFC 9112 section 3.2.1, so no fragment).
fn parse_target(target: &str) -> Result<Target, RequestError> {
    if !target.starts_with('/') || target.contains('#') {
        return Err(RequestError::BadRequest("request target not in origin form"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // Split before decoding, so an encoded "/" (%2F) stays inside its segment.
    let path = path.split('/').filter(|s| !s.is_empty()).map(|s| decode(s, false)).collect::<Result<_, _>>()?;
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name, true)?, decode(value, true)?))
        })
        .collect::<Result<_, _>>()?;
    Ok((path, query))
}

/// Percent-decodes `raw` to UTF-8; `plus_is_space` for the query (form encoding), where "%2B" is a literal '+'.
fn decode(raw: &str, plus_is_space: bool) -> Result<String, RequestError> {
    let raw = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let byte = raw.get(i + 1..i + 3).and_then(|hex| Some(hex_digit(hex[0])? << 4 | hex_digit(hex[1])?));
                out.push(byte.ok_or(RequestError::BadRequest("bad percent escape"))?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| RequestError::BadRequest("not UTF-8 once percent-decoded"))
}

/// The value of one hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader fed `bytes` at once.
    fn fed(bytes: &[u8]) -> RequestReader {
        let mut reader = RequestReader::new();
        assert!(reader.feed(bytes));
        reader
    }

    /// The single request of `bytes`, or its error.
    fn one(bytes: &[u8]) -> Result<Request, RequestError> {
        let mut reader = fed(bytes);
        let request = reader.next_request()?.expect("complete request");
        assert_eq!(reader.next_request(), Ok(None));
        assert_eq!(reader.buffered(), 0);
        Ok(request)
    }

    /// The error of a head with `line` as its request line and `headers` (each ending in CRLF).
    fn error(line: &str, headers: &str) -> RequestError {
        one(format!("{line}\r\nHost: x\r\n{headers}\r\n").as_bytes()).expect_err("refused")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn get_without_body() {
        let mut reader = fed(b"GET /api/rooms HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(reader.mid_request());
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!(
            request,
            Request {
                method: Method::Get,
                path: strings(&["api", "rooms"]),
                query: vec![],
                authorization: None,
                body: vec![],
                keep_alive: true,
                upgrade: false,
            }
        );
        assert_eq!(reader.next_request(), Ok(None));
        assert_eq!(reader.buffered(), 0);
        assert!(!reader.mid_request());
    }

    #[test]
    fn methods() {
        let method = |m: &str| one(format!("{m} / HTTP/1.1\r\n\r\n").as_bytes()).map(|r| r.method);
        assert_eq!(method("GET"), Ok(Method::Get));
        assert_eq!(method("POST"), Ok(Method::Post));
        for other in ["PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "get"] {
            assert_eq!(method(other), Ok(Method::Other), "{other}");
        }
    }

    #[test]
    fn post_body_in_one_feed() {
        let request = one(b"POST /api/send HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world").unwrap();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.body, b"hello world");
    }

    #[test]
    fn post_body_byte_by_byte() {
        let bytes = b"POST /api/send HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello";
        let mut reader = RequestReader::new();
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(reader.next_request(), Ok(None), "at byte {i}");
            assert!(reader.feed(&[*b]));
            assert!(reader.mid_request());
        }
        // The head parsed once the blank line came, and waits only for the body.
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!(request.body, b"hello");
        assert!(!reader.mid_request());
    }

    #[test]
    fn body_in_many_feeds_keeps_the_parsed_head() {
        let mut reader = fed(b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\nab");
        assert_eq!(reader.next_request(), Ok(None));
        assert_eq!(reader.head.as_ref().map(|h| h.body_len), Some(6));
        assert!(reader.feed(b"cd"));
        assert_eq!(reader.next_request(), Ok(None));
        assert!(reader.feed(b"efGET"));
        assert_eq!(reader.next_request().unwrap().unwrap().body, b"abcdef");
        assert_eq!(reader.next_request(), Ok(None));
        assert_eq!(reader.buffered(), 3);
        assert!(reader.mid_request());
    }

    #[test]
    fn pipelined_requests_in_one_feed() {
        let two = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        let mut reader = fed(two);
        let first = reader.next_request().unwrap().unwrap();
        assert_eq!((first.method, first.path), (Method::Get, strings(&["a"])));
        assert!(reader.buffered() > 0);
        let second = reader.next_request().unwrap().unwrap();
        assert_eq!((second.method, second.path, second.body), (Method::Post, strings(&["b"]), b"hi".to_vec()));
        assert_eq!(reader.next_request(), Ok(None));

        let three = b"POST /1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\nConnection: close\r\n\r\nGET /4";
        let mut reader = fed(three);
        let paths: Vec<_> = (0..3).map(|_| reader.next_request().unwrap().unwrap().path).collect();
        assert_eq!(paths, [strings(&["1"]), strings(&["2"]), strings(&["3"])]);
        assert_eq!(reader.next_request(), Ok(None));
        assert_eq!(reader.buffered(), b"GET /4".len());
        // The spent bytes go at the next feed; the unfinished request survives it.
        assert!(reader.feed(b" HTTP/1.1\r\n\r\n"));
        assert_eq!(reader.buffered(), b"GET /4 HTTP/1.1\r\n\r\n".len());
        assert_eq!(reader.next_request().unwrap().unwrap().path, strings(&["4"]));
    }

    #[test]
    fn empty_lines_between_requests_are_skipped() {
        let mut reader = fed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n");
        assert!(reader.next_request().unwrap().is_some());
        assert_eq!(reader.next_request(), Ok(None));
        assert!(!reader.mid_request());
        assert!(reader.feed(b"\nGET /next HTTP/1.1\r\n\r\n"));
        assert_eq!(reader.next_request().unwrap().unwrap().path, strings(&["next"]));
    }

    #[test]
    fn keep_alive_rules() {
        let keep = |version: &str, headers: &str| {
            one(format!("GET / HTTP/{version}\r\n{headers}\r\n").as_bytes()).unwrap().keep_alive
        };
        assert!(keep("1.1", ""));
        assert!(!keep("1.1", "Connection: close\r\n"));
        assert!(!keep("1.1", "connection: Keep-Alive, CLOSE\r\n"));
        assert!(keep("1.1", "Connection: keep-alive\r\n"));
        assert!(keep("1.1", "Connection: Upgrade\r\n"));
        assert!(!keep("1.0", ""));
        assert!(keep("1.0", "Connection: keep-alive\r\n"));
        assert!(keep("1.0", "Connection: foo,  Keep-Alive \r\n"));
        assert!(!keep("1.0", "Connection: keep-alive\r\nConnection: close\r\n"));
        assert!(!keep("1.0", "Connection: closed\r\n"));
    }

    #[test]
    fn path_and_query_are_percent_decoded() {
        let target = |t: &str| {
            let request = one(format!("GET {t} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
            (request.path, request.query)
        };
        assert_eq!(target("/api/rooms/a%20b/users"), (strings(&["api", "rooms", "a b", "users"]), vec![]));
        // An encoded slash stays inside its segment; '+' is literal in the path.
        assert_eq!(target("/a%2Fb/c+d"), (strings(&["a/b", "c+d"]), vec![]));
        assert_eq!(target("//a///b/"), (strings(&["a", "b"]), vec![]));
        assert_eq!(target("/"), (vec![], vec![]));
        assert_eq!(target("/%C3%A9t%c3%a9"), (strings(&["été"]), vec![]));
        assert_eq!(target("/x?limit=5&x"), (strings(&["x"]), pairs(&[("limit", "5"), ("x", "")])));
        assert_eq!(
            target("/?q=a+b%2Bc&n%20m=%3D%26&&e=&=v&a=b=c"),
            (vec![], pairs(&[("q", "a b+c"), ("n m", "=&"), ("e", ""), ("", "v"), ("a", "b=c")]))
        );
        assert_eq!(target("/?"), (vec![], vec![]));
    }

    #[test]
    fn bad_targets() {
        let bad = |t: &str| error(&format!("GET {t} HTTP/1.1"), "");
        for t in ["/%", "/a%2", "/%zz", "/%g0", "/?a=%", "/?a%4=1", "/?a=%x1"] {
            assert_eq!(bad(t), RequestError::BadRequest("bad percent escape"), "{t}");
        }
        for t in ["/%FF", "/a/%C3", "/?x=%80"] {
            assert_eq!(bad(t), RequestError::BadRequest("not UTF-8 once percent-decoded"), "{t}");
        }
        for t in ["*", "http://host/api", "api", "/a#frag"] {
            assert_eq!(bad(t), RequestError::BadRequest("request target not in origin form"), "{t}");
        }
    }

    #[test]
    fn malformed_heads() {
        for head in
            ["GET\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nNo Colon\r\n\r\n"]
        {
            assert_eq!(one(head.as_bytes()), Err(RequestError::BadRequest("malformed request head")), "{head:?}");
        }
    }

    #[test]
    fn authorization_and_upgrade() {
        let request = one(b"GET / HTTP/1.1\r\nauthorization:  Bearer abc.def \r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert_eq!(request.authorization.as_deref(), Some(&b"Bearer abc.def"[..]));
        assert!(request.upgrade);
        let plain = one(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(!plain.upgrade && plain.authorization.is_none());
        assert_eq!(
            error("GET / HTTP/1.1", "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n"),
            RequestError::BadRequest("duplicate Authorization")
        );
    }

    #[test]
    fn content_length_rules() {
        let body = |headers: &str, body: &str| {
            one(format!("POST / HTTP/1.1\r\n{headers}\r\n{body}").as_bytes()).map(|r| r.body)
        };
        assert_eq!(body("Content-Length: 0\r\n", ""), Ok(vec![]));
        assert_eq!(body("Content-Length: 003\r\n", "abc"), Ok(b"abc".to_vec()));
        assert_eq!(body("Content-Length: 3\r\nContent-Length: 03\r\n", "abc"), Ok(b"abc".to_vec()));
        assert_eq!(
            body("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"),
            Err(RequestError::BadRequest("conflicting Content-Length"))
        );
        for bad in ["+3", "-1", "3 3", "3,3", "0x3", "3a", ""] {
            assert_eq!(
                body(&format!("Content-Length: {bad}\r\n"), "abc"),
                Err(RequestError::BadRequest("bad Content-Length")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn too_large_body_is_refused_before_it_is_sent() {
        let mut reader = fed(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1).as_bytes());
        assert_eq!(reader.next_request(), Err(RequestError::TooLarge));
        let huge = "9".repeat(40);
        assert_eq!(error("POST / HTTP/1.1", &format!("Content-Length: {huge}\r\n")), RequestError::TooLarge);
        // Exactly MAX_BODY is accepted, and waited for.
        let mut reader = fed(format!("POST / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n").as_bytes());
        assert_eq!(reader.next_request(), Ok(None));
        assert!(reader.feed(&vec![b'x'; MAX_BODY]));
        assert_eq!(reader.next_request().unwrap().unwrap().body.len(), MAX_BODY);
    }

    #[test]
    fn head_too_large() {
        // A partial head over MAX_HEAD.
        let mut reader = fed(format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(MAX_HEAD)).as_bytes());
        assert_eq!(reader.next_request(), Err(RequestError::HeadTooLarge));
        // A complete head over MAX_HEAD, in one feed.
        let long = format!("X-Pad: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(error("GET / HTTP/1.1", &long), RequestError::HeadTooLarge);
        // A partial head of exactly MAX_HEAD bytes still waits.
        let head = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD - 19));
        assert_eq!(head.len(), MAX_HEAD);
        assert_eq!(fed(head.as_bytes()).next_request(), Ok(None));
        // MAX_HEADERS headers pass, one more does not.
        let headers = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
        assert!(one(format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS)).as_bytes()).is_ok());
        assert_eq!(
            one(format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS + 1)).as_bytes()),
            Err(RequestError::HeadTooLarge)
        );
    }

    #[test]
    fn transfer_encoding_requires_length() {
        assert_eq!(error("POST / HTTP/1.1", "Transfer-Encoding: chunked\r\n"), RequestError::LengthRequired);
        assert_eq!(error("POST / HTTP/1.1", "transfer-encoding: gzip\r\n"), RequestError::LengthRequired);
        assert_eq!(
            error("POST / HTTP/1.1", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            RequestError::LengthRequired
        );
    }

    #[test]
    fn other_versions() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9"] {
            assert_eq!(error(&format!("GET / {version}"), ""), RequestError::Version, "{version}");
        }
    }

    #[test]
    fn feed_is_bounded() {
        let mut reader = RequestReader::new();
        assert!(reader.feed(&vec![b'x'; MAX_HEAD + MAX_BODY - 1]));
        assert!(!reader.feed(b"yz"));
        assert_eq!(reader.buffered(), MAX_HEAD + MAX_BODY - 1);
        assert!(reader.feed(b"y"));
        assert!(!reader.feed(b"z"));
        assert_eq!(reader.buffered(), MAX_HEAD + MAX_BODY);

        // Bytes handed out make room again.
        let request = format!("POST / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n{}", "b".repeat(MAX_BODY));
        let mut reader = fed(request.as_bytes());
        assert!(!reader.feed(&vec![b'x'; MAX_HEAD]));
        assert!(reader.next_request().unwrap().is_some());
        assert!(reader.feed(&vec![b'x'; MAX_HEAD]));
        assert_eq!(reader.buffered(), MAX_HEAD);
    }

    #[test]
    fn an_error_poisons_the_reader() {
        let mut reader = fed(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/3.0\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(reader.next_request().unwrap().is_some());
        assert_eq!(reader.next_request(), Err(RequestError::Version));
        assert_eq!(reader.buffered(), 0);
        assert!(reader.feed(b"GET / HTTP/1.1\r\n\r\n"));
        assert_eq!(reader.next_request(), Err(RequestError::Version));
        assert_eq!(reader.next_request(), Err(RequestError::Version));
        assert_eq!(reader.buffered(), 0);
        assert!(!reader.mid_request());
    }

    #[test]
    fn errors_have_a_status_a_code_and_a_sentence() {
        let cases = [
            (RequestError::BadRequest("bad percent escape"), 400, "bad_request"),
            (RequestError::TooLarge, 413, "too_large"),
            (RequestError::HeadTooLarge, 431, "head_too_large"),
            (RequestError::LengthRequired, 411, "length_required"),
            (RequestError::Version, 505, "http_version"),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status(), error.code()), (status, code));
            assert!(!error.to_string().is_empty());
        }
        assert_eq!(RequestError::BadRequest("bad percent escape").to_string(), "bad request: bad percent escape");
        assert_eq!(RequestError::TooLarge.to_string(), "the request body is over 1048576 bytes");
    }
}
