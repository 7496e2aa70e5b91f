//! Allocations per message on the hot paths, counted by a global allocator that wraps the system one: the
//! bench client's send and receive paths (expected: none), and the daemon's core path for one `say` — parse,
//! hub, one shared frame queued to every member's outbox, flushed with vectored writes (expected: a constant
//! per message, none per delivery). Prints a table; `cargo bench --bench alloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod support;

use support::{hub_with, Chat, TIME};
use wschat::app::Effects;
use wschat::bench::audit::Audit;
use wschat::bench::content::{self, Stamp};
use wschat::chat::dialect::seed::parse_client_message;
use wschat::outbox::Outbox;
use wschat::ws::frame::{write_frame, write_masked_frame, OpCode};
use wschat::ws::message::{Message, MessageDecoder, Role};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` `warm` times untimed, then `n` times; returns (allocations, bytes) per call.
fn per_call(warm: usize, n: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warm {
        f();
    }
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    for _ in 0..n {
        f();
    }
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

fn row(what: &str, per: &str, (allocs, bytes): (f64, f64)) {
    println!("| {what} | {per} | {allocs:.3} | {bytes:.1} |");
}

fn main() {
    println!("| path | per | allocations | bytes allocated |");
    println!("| --- | --- | --- | --- |");

    // Bench client, send: stamp, say request, masked frame, into reused buffers.
    let (mut text, mut body, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut seq = 0u32;
    row(
        "bench client: encode one say (chat)",
        "message",
        per_call(100, 100_000, || {
            text.clear();
            body.clear();
            out.clear();
            content::encode(&mut text, Stamp { sender: 3, seq, nanos: 123_456_789 }, 64);
            content::say_request(&mut body, &text);
            write_masked_frame(&mut out, OpCode::Text, &body, [1, 2, 3, 4]);
            seq += 1;
        }),
    );

    // Bench client, receive: 1000 relays in one buffer, decoded, stamp found, audited.
    let mut stream = Vec::new();
    for i in 0..1000u32 {
        text.clear();
        content::encode(&mut text, Stamp { sender: i % 100, seq: i / 100, nanos: 1 }, 64);
        body.clear();
        body.extend_from_slice(br#"{"type":"say","from_uid":17,"to_uid":"all","content":""#);
        body.extend_from_slice(&text);
        body.extend_from_slice(br#"","time":"2024-01-01 12:00:00"}"#);
        write_frame(&mut stream, OpCode::Text, &body);
    }
    let mut dec = MessageDecoder::new(Role::Client, 1 << 20);
    let mut audit = Audit::new(1, 100);
    let (a, b) = per_call(2, 100, || {
        let mut pos = 0;
        while let Ok(d) = dec.decode(&mut stream[pos..]) {
            if d.consumed == 0 && d.message.is_none() {
                break;
            }
            pos += d.consumed;
            if let Some(Message::Text(t)) = d.message {
                if let Some(s) = content::say_stamp(t.as_bytes()) {
                    audit.record(0, s.sender as usize, s.seq);
                }
            }
        }
    });
    row("bench client: decode + stamp + audit (chat)", "delivery", (a / 1000.0, b / 1000.0));

    // Daemon core, piece by piece: the JSON parse alone, then the hub with its fanout (one member).
    let say =
        r#"{"type":"say","to_uid":"all","content":"b1:2:3:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    row(
        "daemon: parse_client_message(say)",
        "message",
        per_call(10, 10_000, || {
            std::hint::black_box(parse_client_message(std::hint::black_box(say)).is_ok());
        }),
    );
    let mut hub = hub_with(1);
    let mut fx = Effects::default();
    let mut parsed = Vec::new();
    parsed.resize_with(10_010, || parse_client_message(say).unwrap());
    row(
        "daemon: hub.handle(say), 1 member",
        "message",
        per_call(10, 10_000, || {
            fx.clear();
            hub.handle(0, parsed.pop().unwrap(), TIME, &mut fx);
        }),
    );

    // Daemon core: one say from a member of a room of `members`, queued to every outbox and flushed.
    for members in [1usize, 100, 1000] {
        let (mut hub, mut outboxes) = room_of(members);
        let mut fx = Effects::default();
        let say = r#"{"type":"say","to_uid":"all","content":"b1:2:3:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let mut sink = std::io::sink();
        let (a, b) = per_call(10, 2000, || {
            fx.clear();
            hub.handle(0, parse_client_message(say).unwrap(), TIME, &mut fx);
            seal_and_flush(&mut hub, &mut fx, &mut outboxes, &mut sink);
        });
        row(&format!("daemon: say → hub → {members} outboxes → writev"), "message", (a, b));
        row(
            &format!("daemon: say → hub → {members} outboxes → writev"),
            "delivery",
            (a / members as f64, b / members as f64),
        );
    }

    // A busy loop turn: 100 members each say once, then the turn is sealed and flushed.
    let members = 100usize;
    let (mut hub, mut outboxes) = room_of(members);
    let mut fx = Effects::default();
    let say = r#"{"type":"say","to_uid":"all","content":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxb000000010000000200000000000000003"}"#;
    let mut sink = std::io::sink();
    let (a, b) = per_call(10, 200, || {
        fx.clear();
        for conn in 0..members {
            hub.handle(conn, parse_client_message(say).unwrap(), TIME, &mut fx);
        }
        seal_and_flush(&mut hub, &mut fx, &mut outboxes, &mut sink);
    });
    let per_msg = (a / members as f64, b / members as f64);
    row("daemon: turn of 100 says → hub → 100 outboxes → writev", "message", per_msg);
    row(
        "daemon: turn of 100 says → hub → 100 outboxes → writev",
        "delivery",
        (per_msg.0 / members as f64, per_msg.1 / members as f64),
    );
}

/// A hub with `members` logged-in users in one room, and an empty outbox for each.
fn room_of(members: usize) -> (Chat, Vec<Outbox>) {
    (hub_with(members), (0..members).map(|_| Outbox::default()).collect())
}

/// Ends a loop turn as the reactor does: seal the batches, queue every delivery, flush every outbox.
fn seal_and_flush(hub: &mut Chat, fx: &mut Effects, outboxes: &mut [Outbox], sink: &mut std::io::Sink) {
    hub.seal(fx);
    for d in fx.sends.drain(..) {
        outboxes[d.conn].push(d.bytes);
    }
    for o in outboxes.iter_mut() {
        let _ = o.flush(sink);
    }
}
