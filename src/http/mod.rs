//! The small HTTP/1.1 responder of the web port: routing for the chat page, /healthz and /metrics, and
//! the error answers. Pure: request bytes in, a route or an error out; one request per connection. GET and
//! HEAD are served (HEAD: the same head, Content-Length included, without the body); the target may be in
//! origin form (`/healthz`) or absolute form (`http://host:port/healthz`, RFC 9112 section 3.2.2). A request
//! keeps its path (still percent-encoded), its query and its validators (`If-None-Match`,
//! `If-Modified-Since`) for the folder `--web-root` serves ([`crate::web`]).

use std::fmt;

pub mod response;

use response::build;
pub use response::{response, MAX_HEADERS, MAX_HEAD_BYTES};

/// The chat page, embedded at build time; `__WS_PORT__` is replaced with the WebSocket port.
pub const PAGE_TEMPLATE: &str = include_str!("page.html");

/// What a valid request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// GET / (or /index.html): the chat page.
    #[default]
    Page,
    /// GET /healthz.
    Health,
    /// GET /metrics.
    Metrics,
    /// Any other path.
    NotFound,
}

/// A valid request: what it asks for and whether it wants only the head of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request<'a> {
    /// The resource.
    pub route: Route,
    /// `HEAD`: answer as for GET, without the body.
    pub head: bool,
    /// The target's path as sent (still percent-encoded), without query or fragment; `/` for an
    /// absolute-form target without one.
    pub path: &'a str,
    /// The target's query, without its `?`, if it has one.
    pub query: Option<&'a str>,
    /// The first `If-None-Match` field's value, if any (and valid UTF-8).
    pub if_none_match: Option<&'a str>,
    /// The first `If-Modified-Since` field's value, if any (and valid UTF-8).
    pub if_modified_since: Option<&'a str>,
}

impl Request<'_> {
    /// The answer to this request: [`response()`] for GET; for HEAD the same head (Content-Length of the body
    /// it would have had) and no body.
    pub fn respond(&self, status: u16, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
        build(status, content_type, extra_headers, body, !self.head)
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not an HTTP/1.x request head.
    Malformed,
    /// Head over 8 KiB or too many headers.
    TooLarge,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// A path that cannot name a file under the web root (a bad escape, `.` or `..`, an encoded slash, a
    /// backslash or control byte, not UTF-8 once decoded).
    BadPath,
    /// A path over [`MAX_PATH_BYTES`].
    PathTooLong,
}

impl HttpError {
    /// The response for a refused request.
    pub fn response(self) -> Vec<u8> {
        let extra = if self == HttpError::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
        response::error_response(self.status(), extra, &format!("{self}\n"))
    }

    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::TooLarge => 431,
            HttpError::MethodNotAllowed => 405,
            HttpError::BadPath => 400,
            HttpError::PathTooLong => 414,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::Malformed => "malformed request",
            HttpError::TooLarge => "request head too large",
            HttpError::MethodNotAllowed => "method not allowed",
            HttpError::BadPath => "bad path",
            HttpError::PathTooLong => "path too long",
        })
    }
}

impl std::error::Error for HttpError {}

/// Longest request path (as sent, before percent-decoding) looked up under the web root, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Parses a request head at the start of `buf`; `Ok(None)` while it is incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request<'_>>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => {}
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed),
    }
    let head = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Err(HttpError::MethodNotAllowed),
    };
    let (path, query) = split_target(req.path.unwrap_or("/"));
    let route = match path {
        "/" | "/index.html" => Route::Page,
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => Route::NotFound,
    };
    let field = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let if_none_match = field("If-None-Match");
    let if_modified_since = field("If-Modified-Since");
    Ok(Some(Request { route, head, path, query, if_none_match, if_modified_since }))
}

/// The path and the query of a request target, without fragment. An absolute-form target
/// (`scheme://authority/path?query`) is routed by its path; one without a path means `/`.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let (target, rooted) = match absolute_form_rest(target) {
        Some(rest) => match rest.find(['/', '?', '#']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[i..], true),
            Some(i) => (&rest[i..], false),
            None => ("", false),
        },
        None => (target, true),
    };
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    (if rooted { path } else { "/" }, query)
}

/// For `scheme://rest` (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), RFC 3986), the part after `//`.
fn absolute_form_rest(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))).then_some(rest)
}

/// The chat page with the WebSocket port filled in.
pub fn render_page(ws_port: u16, escaped: bool) -> Vec<u8> {
    PAGE_TEMPLATE
        .replacen("__WS_PORT__", &ws_port.to_string(), 1)
        .replacen("__ESCAPED__", if escaped { "1" } else { "0" }, 1)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Option<Route>, HttpError> {
        parse_request(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).map(|r| {
            r.map(|r| {
                assert!(!r.head);
                r.route
            })
        })
    }

    #[test]
    fn routes() {
        assert_eq!(get("/"), Ok(Some(Route::Page)));
        assert_eq!(get("/?ws=ws://127.0.0.1:1/"), Ok(Some(Route::Page)));
        assert_eq!(get("/healthz"), Ok(Some(Route::Health)));
        assert_eq!(get("/metrics"), Ok(Some(Route::Metrics)));
        assert_eq!(get("/nope"), Ok(Some(Route::NotFound)));
    }

    #[test]
    fn absolute_form_targets_are_routed_by_their_path() {
        assert_eq!(get("http://127.0.0.1:55151/healthz"), Ok(Some(Route::Health)));
        assert_eq!(get("HTTP://example.com/metrics?x=1"), Ok(Some(Route::Metrics)));
        assert_eq!(get("https://[::1]:8080/index.html"), Ok(Some(Route::Page)));
        assert_eq!(get("http://host"), Ok(Some(Route::Page)));
        assert_eq!(get("http://host:1?ws=ws://host:2/"), Ok(Some(Route::Page)));
        assert_eq!(get("http://host#frag"), Ok(Some(Route::Page)));
        assert_eq!(get("http://host/healthz#x"), Ok(Some(Route::Health)));
        assert_eq!(get("http://host/nope"), Ok(Some(Route::NotFound)));
        // The authority is not a path: "/healthz" inside it routes nowhere.
        assert_eq!(get("http://healthz/"), Ok(Some(Route::Page)));
        // Not absolute form: no scheme, or a scheme that does not start with a letter.
        assert_eq!(get("//host/healthz"), Ok(Some(Route::NotFound)));
        assert_eq!(get("1http://host/healthz"), Ok(Some(Route::NotFound)));
        assert_eq!(get("*"), Ok(Some(Route::NotFound)));
    }

    #[test]
    fn targets_keep_their_path_query_and_validators() {
        assert_eq!(split_target("/a/b.css?v=1#x"), ("/a/b.css", Some("v=1")));
        assert_eq!(split_target("/a%2fb?"), ("/a%2fb", Some("")));
        assert_eq!(split_target("http://h:1/sub?x=1"), ("/sub", Some("x=1")));
        assert_eq!(split_target("http://h:1?x=1"), ("/", Some("x=1")));
        assert_eq!(split_target("http://h:1#f"), ("/", None));
        assert_eq!(split_target("//etc/passwd"), ("//etc/passwd", None), "origin form, not an authority");
        let head = b"GET /css/a.css?v=2 HTTP/1.1\r\nif-none-match: W/\"1-2\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        let req = parse_request(head).unwrap().unwrap();
        assert_eq!((req.route, req.path, req.query), (Route::NotFound, "/css/a.css", Some("v=2")));
        assert_eq!(req.if_none_match, Some("W/\"1-2\""));
        assert_eq!(req.if_modified_since, Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        let req = parse_request(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!((req.query, req.if_none_match, req.if_modified_since), (None, None, None));
    }

    #[test]
    fn head_is_get_without_the_body() {
        let req = parse_request(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req, Ok(Some(Request { route: Route::Page, head: true, path: "/", ..Request::default() })));
        let req = parse_request(b"HEAD http://x:1/healthz HTTP/1.1\r\n\r\n");
        assert_eq!(req, Ok(Some(Request { route: Route::Health, head: true, path: "/healthz", ..Request::default() })));
        let head =
            Request { route: Route::Health, head: true, ..Request::default() }.respond(200, "text/plain", "", b"ok\n");
        let get = Request { route: Route::Health, ..Request::default() }.respond(200, "text/plain", "", b"ok\n");
        assert_eq!(get, response(200, "text/plain", "", b"ok\n"));
        assert_eq!(head, get[..get.len() - 3].to_vec(), "HEAD: the same head, Content-Length: 3, no body");
        assert!(String::from_utf8(head).unwrap().contains("Content-Length: 3\r\n"));
    }

    #[test]
    fn many_header_lines_under_8_kib_pass() {
        let lines: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{lines}\r\n");
        assert_eq!(parse_request(req.as_bytes()).map(|r| r.map(|r| r.route)), Ok(Some(Route::Health)));
        let lines: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        let req = format!("GET /healthz HTTP/1.1\r\n{lines}\r\n");
        assert!(parse_request(req.as_bytes()).is_ok_and(|r| r.is_some()));
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{lines}\r\n");
        assert_eq!(parse_request(req.as_bytes()), Err(HttpError::TooLarge));
        let lines: String = (0..100).map(|i| format!("X-{i}: {}\r\n", "v".repeat(80))).collect();
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{lines}\r\n");
        assert!(req.len() > MAX_HEAD_BYTES);
        assert_eq!(parse_request(req.as_bytes()), Err(HttpError::TooLarge));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\n\r\n"), Err(HttpError::MethodNotAllowed));
        assert_eq!(parse_request(b"DELETE /healthz HTTP/1.1\r\n\r\n"), Err(HttpError::MethodNotAllowed));
        assert_eq!(
            parse_request(b"head / HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed),
            "methods are case-sensitive"
        );
        assert_eq!(parse_request(b"\x00\x01garbage\r\n\r\n"), Err(HttpError::Malformed));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert_eq!(parse_request(big.as_bytes()), Err(HttpError::TooLarge));
        let r = String::from_utf8(HttpError::MethodNotAllowed.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn page_gets_the_port() {
        let page = String::from_utf8(render_page(7272, false)).unwrap();
        assert!(page.contains(r#"<meta name="wschat-escaped" content="0">"#));
        let escaped = String::from_utf8(render_page(7272, true)).unwrap();
        assert!(escaped.contains(r#"<meta name="wschat-escaped" content="1">"#));
        assert!(page.contains("content=\"7272\""));
        assert!(!page.contains("__WS_PORT__"));
    }

    #[test]
    fn response_shape() {
        let r = response(200, "text/plain", "", b"ok");
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nok"
        );
    }
}
