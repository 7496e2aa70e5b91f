//! The web port's routes: the chat page (rendered once, with the WebSocket port filled in) or, with
//! `--web-root DIR`, the files of that folder ([`files`]); `/healthz` and `/metrics` either way (they win
//! over files of those names). Answered from a request head: bytes in, an answer out, no reactor state; the
//! reactor writes it. Serving a folder opens and checks its files synchronously, in the event loop: a small
//! file is read into the answer, a larger one (up to [`files::MAX_FILE_BYTES`]) is handed over open and sent
//! a chunk at a time as the socket drains ([`crate::outbox::FileBody`]).

pub mod files;

use std::path::PathBuf;

use crate::http::{self, HttpError, Route};
use crate::metrics::Metrics;
use crate::outbox::Reply;

/// An answer to a complete request head.
#[derive(Debug)]
pub struct Answer {
    /// The whole response, or its head and the file body that follows it.
    pub bytes: Reply,
    /// Why the request was refused, if it was.
    pub refused: Option<HttpError>,
}

/// What the web port serves.
#[derive(Debug)]
pub struct Site {
    /// The embedded chat page, when no folder is served.
    page: Vec<u8>,
    /// The folder served instead (`--web-root`), canonical.
    root: Option<PathBuf>,
}

impl Site {
    /// The site for a daemon whose WebSocket port is `ws_port`: the embedded chat page.
    #[cfg(test)]
    pub fn new(ws_port: u16) -> Site {
        Site::with_root(ws_port, None)
    }

    /// The site serving the folder `root` (`--web-root`) if there is one, else the embedded chat page for the
    /// WebSocket port `ws_port`. The folder is canonicalized here again (the config already did), so that the
    /// containment check compares canonical paths.
    pub fn with_root(ws_port: u16, root: Option<PathBuf>) -> Site {
        match root {
            Some(root) => Site { page: Vec::new(), root: Some(std::fs::canonicalize(&root).unwrap_or(root)) },
            None => Site { page: http::render_page(ws_port, false), root: None },
        }
    }

    /// The same site for a daemon that HTML-escapes names and content (`--escape-html`): the embedded page
    /// unescapes them, so it shows the same text either way.
    pub fn escaped(mut self, ws_port: u16, escaped: bool) -> Site {
        if self.root.is_none() {
            self.page = http::render_page(ws_port, escaped);
        }
        self
    }

    /// The answer to the request head in `head`, or `None` while it is incomplete. `metrics` is called
    /// only for /metrics, `health` only for /healthz (an error is a 503 with the reason, so that a load
    /// balancer drains the daemon). Any other path is the chat page (`/`, `/index.html`) or a 404, or with
    /// a folder served, a file of that folder ([`files::serve`]; opened here, synchronously).
    pub fn answer(
        &self,
        head: &[u8],
        metrics: impl FnOnce() -> Metrics,
        health: impl FnOnce() -> Result<(), String>,
    ) -> Option<Answer> {
        let req = match http::parse_request(head) {
            Ok(None) => return None,
            Ok(Some(req)) => req,
            Err(e) => return Some(Answer { bytes: e.response().into(), refused: Some(e) }),
        };
        let bytes = match (req.route, &self.root) {
            (Route::Health | Route::Metrics, _) => self.builtin(&req, metrics, health),
            (_, Some(root)) => {
                let served = files::serve(root, &req);
                let bytes = Reply { head: served.bytes.into(), body: served.body };
                return Some(Answer { bytes, refused: served.refused });
            }
            (_, None) => self.builtin(&req, metrics, health),
        };
        Some(Answer { bytes: bytes.into(), refused: None })
    }

    /// The answer for a route that is not a file of the folder.
    fn builtin(
        &self,
        req: &http::Request<'_>,
        metrics: impl FnOnce() -> Metrics,
        health: impl FnOnce() -> Result<(), String>,
    ) -> Vec<u8> {
        match req.route {
            Route::Page => req.respond(200, "text/html; charset=utf-8", "", &self.page),
            Route::Health => match health() {
                Ok(()) => req.respond(200, "text/plain; charset=utf-8", "", b"ok\n"),
                Err(reason) => req.respond(503, "text/plain; charset=utf-8", "", format!("{reason}\n").as_bytes()),
            },
            Route::Metrics => {
                req.respond(200, "text/plain; version=0.0.4; charset=utf-8", "", metrics().render().as_bytes())
            }
            Route::NotFound => req.respond(404, "text/plain; charset=utf-8", "", b"not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Answer) -> String {
        String::from_utf8_lossy(&a.bytes.head).into_owned()
    }

    fn healthy() -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn health_answers_503_with_the_reason() {
        let site = Site::new(7272);
        let sick = || Err("cluster: the commands link to Redis is down: refused".to_string());
        let a = site.answer(b"GET /healthz HTTP/1.1\r\n\r\n", Metrics::default, sick).unwrap();
        assert!(text(&a).starts_with("HTTP/1.1 503 "), "{}", text(&a));
        assert!(text(&a).ends_with("link to Redis is down: refused\n"));
        let ok = site.answer(b"GET /healthz HTTP/1.1\r\n\r\n", Metrics::default, healthy).unwrap();
        assert!(text(&ok).starts_with("HTTP/1.1 200 ") && text(&ok).ends_with("ok\n"));
    }

    #[test]
    fn routes() {
        let site = Site::new(7272);
        assert!(site.answer(b"GET / HTTP/1.1\r\n", Metrics::default, healthy).is_none());
        let page = site.answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Metrics::default, healthy).unwrap();
        assert!(text(&page).starts_with("HTTP/1.1 200 ") && text(&page).contains("7272"));
        let m = Metrics { connections: 7, ..Metrics::default() };
        let metrics = site.answer(b"GET /metrics HTTP/1.1\r\n\r\n", || m, healthy).unwrap();
        assert!(text(&metrics).contains("wschat_connections 7\n"));
        let missing = site.answer(b"GET /nope HTTP/1.1\r\n\r\n", Metrics::default, healthy).unwrap();
        assert!(text(&missing).starts_with("HTTP/1.1 404 "));
        let refused = site.answer(b"POST / HTTP/1.1\r\n\r\n", Metrics::default, healthy).unwrap();
        assert_eq!(refused.refused, Some(HttpError::MethodNotAllowed));
    }
}
