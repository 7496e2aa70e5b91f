//! The small HTTP/1.1 responder of the web port: routing for the chat page, /healthz and /metrics, and
//! the error answers. Pure: request bytes in, a route or an error out; one request per connection.

use std::fmt;

use crate::ws::handshake::{reason_phrase, MAX_HEAD_BYTES};

/// The chat page, embedded at build time; `__WS_PORT__` is replaced with the WebSocket port.
pub const PAGE_TEMPLATE: &str = include_str!("page.html");

/// What a valid request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// GET / (or /index.html): the chat page.
    Page,
    /// GET /healthz.
    Health,
    /// GET /metrics.
    Metrics,
    /// Any other path.
    NotFound,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not an HTTP/1.x request head.
    Malformed,
    /// Head over 8 KiB or too many headers.
    TooLarge,
    /// A method other than GET.
    MethodNotAllowed,
}

impl HttpError {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::TooLarge => 431,
            HttpError::MethodNotAllowed => 405,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::Malformed => "malformed request",
            HttpError::TooLarge => "request head too large",
            HttpError::MethodNotAllowed => "method not allowed",
        })
    }
}

impl std::error::Error for HttpError {}

/// Parses a request head at the start of `buf`; `Ok(None)` while it is incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Route>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => {}
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed),
    }
    if req.method != Some("GET") {
        return Err(HttpError::MethodNotAllowed);
    }
    let target = req.path.unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    Ok(Some(match path {
        "/" | "/index.html" => Route::Page,
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => Route::NotFound,
    }))
}

/// The chat page with the WebSocket port filled in.
pub fn render_page(ws_port: u16) -> Vec<u8> {
    PAGE_TEMPLATE.replacen("__WS_PORT__", &ws_port.to_string(), 1).into_bytes()
}

/// A complete response that closes the connection afterwards.
pub fn response(status: u16, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra_headers}\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The response for a refused request.
pub fn error_response(err: HttpError) -> Vec<u8> {
    let extra = if err == HttpError::MethodNotAllowed { "Allow: GET\r\n" } else { "" };
    response(err.status(), "text/plain; charset=utf-8", extra, format!("{err}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Option<Route>, HttpError> {
        parse_request(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
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
    fn errors() {
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\n\r\n"), Err(HttpError::MethodNotAllowed));
        assert_eq!(parse_request(b"DELETE /healthz HTTP/1.1\r\n\r\n"), Err(HttpError::MethodNotAllowed));
        assert_eq!(parse_request(b"\x00\x01garbage\r\n\r\n"), Err(HttpError::Malformed));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert_eq!(parse_request(big.as_bytes()), Err(HttpError::TooLarge));
        let r = String::from_utf8(error_response(HttpError::MethodNotAllowed)).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(r.contains("Allow: GET\r\n"));
    }

    #[test]
    fn page_gets_the_port() {
        let page = String::from_utf8(render_page(7272)).unwrap();
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
