//! An answer of the server API as the application gives it: a status and a JSON body (`{"ok":true,…}` or
//! `{"ok":false,"error":CODE,"message":…}`); the reactor's API port writes it as an HTTP response.

use serde_json::Value;

use super::response::error_body;

/// One call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Vec<u8>,
    /// For a 405: the method the path takes.
    pub allow: Option<&'static str>,
}

impl ApiAnswer {
    /// 200 with `body`.
    pub fn ok(body: Value) -> ApiAnswer {
        ApiAnswer { status: 200, body: body.to_string().into_bytes(), allow: None }
    }

    /// `status` with the error `code` and `message`.
    pub fn error(status: u16, code: &str, message: &str) -> ApiAnswer {
        ApiAnswer { status, body: error_body(code, message), allow: None }
    }

    /// 405: the path takes only `allow`.
    pub fn method_not_allowed(allow: &'static str) -> ApiAnswer {
        let message = format!("this path takes {allow} only");
        ApiAnswer { status: 405, body: error_body("method_not_allowed", &message), allow: Some(allow) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_their_status_and_json() {
        let ok = ApiAnswer::ok(serde_json::json!({"ok":true,"queued":2}));
        assert_eq!((ok.status, ok.body.as_slice()), (200, br#"{"ok":true,"queued":2}"#.as_slice()));
        let e = ApiAnswer::error(404, "not_found", "no such API path");
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v, serde_json::json!({"ok":false,"error":"not_found","message":"no such API path"}));
        let m = ApiAnswer::method_not_allowed("POST");
        assert_eq!((m.status, m.allow), (405, Some("POST")));
    }
}
