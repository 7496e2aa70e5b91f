//! The API's answers: whole HTTP/1.1 responses with a JSON body, and the JSON error body.

use serde::Serialize;

/// The reason phrase of `status` (200 OK, 400 Bad Request, 401 Unauthorized, 404 Not Found, 405 Method Not
/// Allowed, 411 Length Required, 413 Payload Too Large, 431 Request Header Fields Too Large, 500 Internal Server
/// Error, 503 Service Unavailable, 505 HTTP Version Not Supported; others "Unknown").
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete HTTP/1.1 response with a JSON body: status line, "Content-Type: application/json",
/// "Content-Length", "Cache-Control: no-store", "Connection: keep-alive" or "Connection: close", 401 adds
/// `WWW-Authenticate: Bearer`, 405 adds `Allow: <allow>` when `allow` is Some.
pub fn json_response(status: u16, body: &[u8], keep_alive: bool, allow: Option<&str>) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {connection}\r\n",
        reason(status),
        body.len()
    );
    // RFC 9110 section 11.6.1: a 401 must say which scheme would be accepted.
    if status == 401 {
        out.push_str("WWW-Authenticate: Bearer\r\n");
    }
    // RFC 9110 section 15.5.6: a 405 must list the methods the resource takes.
    if let (405, Some(allow)) = (status, allow) {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The JSON error body, its fields in this order (a struct, not a map, keeps it).
#[derive(Serialize)]
struct ErrorBody<'a> {
    /// Always false.
    ok: bool,
    /// The error code word.
    error: &'a str,
    /// The human sentence.
    message: &'a str,
}

/// The JSON error body the API answers with: {"ok":false,"error":CODE,"message":MESSAGE} (serde_json escaping).
pub fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody { ok: false, error: code, message })
        .expect("a struct of a bool and two strings always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let cases = [
            (200, "OK"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (411, "Length Required"),
            (413, "Payload Too Large"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (418, "Unknown"),
            (0, "Unknown"),
        ];
        for (status, phrase) in cases {
            assert_eq!(reason(status), phrase, "{status}");
        }
    }

    #[test]
    fn ok_keep_alive() {
        let body = br#"{"ok":true}"#;
        assert_eq!(
            json_response(200, body, true, Some("GET")),
            &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}"[..]
        );
    }

    #[test]
    fn unauthorized_names_the_scheme() {
        let body = error_body("unauthorized", "no token");
        assert_eq!(
            String::from_utf8(json_response(401, &body, false, None)).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 56\r\nCache-Control: no-store\r\nConnection: close\r\nWWW-Authenticate: Bearer\r\n\r\n{\"ok\":false,\"error\":\"unauthorized\",\"message\":\"no token\"}"
        );
    }

    #[test]
    fn method_not_allowed_lists_the_methods() {
        assert_eq!(
            String::from_utf8(json_response(405, b"{}", true, Some("GET, POST"))).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: keep-alive\r\nAllow: GET, POST\r\n\r\n{}"
        );
        assert_eq!(
            String::from_utf8(json_response(405, b"{}", true, None)).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n{}"
        );
    }

    #[test]
    fn payload_too_large_closes() {
        let body = error_body("too_large", "the request body is over 1048576 bytes");
        assert_eq!(
            String::from_utf8(json_response(413, &body, false, None)).unwrap(),
            format!(
                "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{{\"ok\":false,\"error\":\"too_large\",\"message\":\"the request body is over 1048576 bytes\"}}",
                body.len()
            )
        );
    }

    #[test]
    fn error_body_escapes() {
        assert_eq!(error_body("bad_request", "x"), br#"{"ok":false,"error":"bad_request","message":"x"}"#);
        assert_eq!(
            String::from_utf8(error_body("a\"b", "line\nbreak \\ \u{1} é")).unwrap(),
            r#"{"ok":false,"error":"a\"b","message":"line\nbreak \\ \u0001 é"}"#
        );
    }
}
