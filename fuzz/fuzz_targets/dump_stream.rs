//! Any bytes as one direction of a WebSocket connection, fed in pieces with gaps, then rendered.
//! The first byte picks the direction, how the stream starts and the keep limit; each following control
//! byte says how many bytes the next piece has, and whether a gap comes before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::dump::event::{Direction, Event, EventKind};
use wschat::dump::render::{event_json, Style, TextRenderer};
use wschat::dump::stream::{Start, StreamEvent, WsStream};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let dir = if flags & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
    let start = if flags & 2 == 0 { Start::Handshake } else { Start::MidStream };
    let keep = usize::from(flags >> 2) * 8;
    let mut stream = WsStream::new(dir, start, keep);
    stream.set_deflate(flags & 0x80 != 0);
    let mut found = Vec::new();
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = usize::from(ctl & 0x3f).min(tail.len());
        if ctl & 0x40 != 0 {
            stream.gap(u64::from(ctl & 0x0f), &mut found);
        }
        stream.feed(&tail[..n], ctl & 0x80 != 0, &mut found);
        rest = &tail[n..];
    }
    stream.finish(&mut found);
    let style = Style { color: flags & 0x10 != 0, utc: true, max_payload: keep };
    let mut text = TextRenderer::new(style);
    for ev in found {
        let kind = match ev {
            StreamEvent::Frame(f) => EventKind::Frame(f),
            StreamEvent::Message(m) => EventKind::Message(m),
            StreamEvent::Note(n) => EventKind::Note(n),
            StreamEvent::Request(head, upgrade) => EventKind::HttpRequest { head, upgrade: upgrade.map(|_| ()) },
            StreamEvent::Response(head, status) => EventKind::HttpResponse {
                head,
                status,
                accept: wschat::dump::event::AcceptCheck::Unknown,
                after_request: None,
            },
        };
        let ev = Event { packet: 1, ts: std::time::Duration::ZERO, conn: None, dir: Some(dir), kind };
        let _ = text.event(&ev, &mut std::io::sink());
        let _ = event_json(&ev, &style).to_string();
    }
});
