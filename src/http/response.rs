//! HTTP/1.1 answers of both ports in one place: the head limits, reason phrases, and whole responses that
//! close the connection afterwards (the web port's pages and errors, the WebSocket port's refusals).

/// Largest request (or response) head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 8192;

/// Most header lines accepted in one head. The contract's limit is the head's size ([`MAX_HEAD_BYTES`]); this
/// only bounds httparse's header array, and is set well above what browsers and proxies send (at least 100
/// lines must pass).
pub const MAX_HEADERS: usize = 128;

/// The reason phrase for the statuses this crate sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A complete response (with its body) that closes the connection afterwards.
pub fn response(status: u16, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    build(status, content_type, extra_headers, body, true)
}

/// A complete plain-text error response that closes the connection afterwards.
pub fn error_response(status: u16, extra_headers: &str, text: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", extra_headers, text.as_bytes())
}

/// The head for `body` (its Content-Length included), then the body itself when `with_body`.
pub fn build(status: u16, content_type: &str, extra_headers: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra_headers}\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_complete_and_close() {
        let r = String::from_utf8(error_response(503, "Retry-After: 1\r\n", "full\n")).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.contains("Content-Length: 5\r\n") && r.contains("Connection: close\r\n"), "{r}");
        assert!(r.ends_with("Retry-After: 1\r\n\r\nfull\n"), "{r}");
        let head = String::from_utf8(build(200, "text/plain", "", b"abc", false)).unwrap();
        assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    }
}
