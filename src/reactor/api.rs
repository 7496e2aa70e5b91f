//! The server API's port (`--api`): plain HTTP/1.1 with keep-alive on the same loop — accepted within its own
//! budget, each connection's bytes framed into requests by [`RequestReader`] (pipelined ones answered in
//! order), every request checked for the key before the application answers it, the answer queued like any
//! output. An idle connection, or a request left unfinished, is closed after [`API_IDLE`].

use std::net::SocketAddr;
use std::time::Duration;

use log::debug;
use mio::net::TcpStream;

use super::{Kind, Reactor};
use crate::api::request::RequestError;
use crate::api::response::{error_body, json_response};
use crate::api::ApiAnswer;
use crate::shared_bytes::SharedBytes;
use crate::transport::Transport;

/// How long an API connection may stay idle, or a request unfinished, before it is closed.
pub(super) const API_IDLE: Duration = Duration::from_secs(60);

/// Whether `authorization` is `Bearer KEY`, compared in constant time (how much of the key matches does not
/// show in how long the answer takes).
fn authorized(authorization: Option<&[u8]>, key: &[u8]) -> bool {
    let Some(given) = authorization.and_then(|a| a.strip_prefix(b"Bearer ")) else { return false };
    let given = given.trim_ascii();
    let mut diff = u8::from(given.len() != key.len());
    for (i, &k) in key.iter().enumerate() {
        diff |= k ^ given.get(i).copied().unwrap_or(!k);
    }
    diff == 0
}

impl Reactor {
    /// A connection on the API port: plain text (the port is for a private network), within its budget.
    pub(super) fn admit_api(&mut self, stream: TcpStream, peer: SocketAddr) {
        let budget = self.cfg.api.as_ref().map_or(0, |a| a.max_connections);
        if self.admission.sockets(Kind::Api) >= budget {
            debug!("{peer}: refused at accept, {budget} API connections open");
            self.metrics.web_rejections_total += 1;
            return;
        }
        if let Some(conn) = self.register(Transport::plain(stream), peer, Kind::Api, None, API_IDLE) {
            if let Some(c) = self.conns.get_mut(conn) {
                c.api = Some(Box::default());
            }
        }
    }

    /// Bytes of API requests arrived in `scratch[..n]`: every complete request is answered, in order.
    pub(super) fn on_api_input(&mut self, k: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let Some(reader) = conn.api.as_mut() else { return };
        if !reader.feed(&self.scratch[..n]) {
            // More than one request's worth is waiting unanswered: the client does not read its answers.
            debug!("{}: API input over its bound; closed", conn.peer);
            return self.finish_api(k, ApiAnswer::error(413, "too_large", "too much input waiting"));
        }
        loop {
            let Some(reader) = self.conns.get_mut(k).and_then(|c| c.api.as_mut()) else { return };
            let request = match reader.next_request() {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) => return self.finish_api(k, refusal(e)),
            };
            self.metrics.http_requests_total += 1;
            let key = self.cfg.api.as_ref().map_or(&[][..], |a| &a.key[..]);
            let answer = if request.upgrade {
                ApiAnswer::error(400, "bad_request", "the API port does not upgrade connections")
            } else if !authorized(request.authorization.as_deref(), key) {
                ApiAnswer::error(401, "unauthorized", "Authorization: Bearer KEY (the --api-key-file) is required")
            } else {
                let mut answer = None;
                self.with_app(|app, out| answer = Some(app.api(&request, out)));
                answer.unwrap_or_else(|| ApiAnswer::error(500, "internal", "no answer"))
            };
            let keep_alive = request.keep_alive && !request.upgrade;
            if !keep_alive {
                return self.finish_api(k, answer);
            }
            self.queue_api(k, &answer);
            self.arm_timer(k, self.now + API_IDLE);
        }
    }

    /// Queues `answer` on API connection `k`, the connection kept open.
    fn queue_api(&mut self, k: usize, answer: &ApiAnswer) {
        if let Some(stats) = self.metrics.api.as_mut() {
            stats.count(answer.status);
        }
        let bytes = json_response(answer.status, &answer.body, true, answer.allow);
        let Some(conn) = self.conns.get_mut(k) else { return };
        self.queued.track(&mut conn.session, |s| s.queue(SharedBytes::from(bytes), false));
        self.mark_dirty(k);
    }

    /// Answers `answer` as the last thing on API connection `k`, then closes it (what it sends meanwhile is
    /// read and dropped).
    fn finish_api(&mut self, k: usize, answer: ApiAnswer) {
        if let Some(stats) = self.metrics.api.as_mut() {
            stats.count(answer.status);
        }
        self.finish_with(k, json_response(answer.status, &answer.body, false, answer.allow));
    }
}

/// A request that cannot be read, as the API answers it.
fn refusal(e: RequestError) -> ApiAnswer {
    ApiAnswer { status: e.status(), body: error_body(e.code(), &e.to_string()), allow: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_is_authorized() {
        let key = b"0123456789abcdef";
        assert!(authorized(Some(b"Bearer 0123456789abcdef"), key));
        assert!(authorized(Some(b"Bearer 0123456789abcdef "), key), "trailing whitespace is the header's");
        for bad in [
            &b"Bearer 0123456789abcdeF"[..],
            b"Bearer 0123456789abcde",
            b"Bearer 0123456789abcdef0",
            b"bearer 0123456789abcdef",
            b"Basic 0123456789abcdef",
            b"Bearer ",
            b"0123456789abcdef",
        ] {
            assert!(!authorized(Some(bad), key), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!authorized(None, key));
    }
}
