//! RFC 6455 framing rules of the contract against the real binary, with raw sockets: each violation gets
//! its close code, control frames behave, fragmentation and limits hold, in chat and echo mode.

mod common;

use common::{client_frame, text_frame, Daemon, Raw, BINARY, CLOSE, CONT, PING, PONG, TEXT};

/// Opens a connection, sends `bytes`, and returns the close code the server answers with.
fn close_code_for(d: &Daemon, bytes: &[u8]) -> u16 {
    let mut raw = Raw::open(d.ws);
    raw.send(bytes);
    let code = raw.expect_close();
    assert!(raw.sees_eof(), "TCP must close after the close frame");
    code
}

#[test]
fn violations_and_their_close_codes() {
    let d = Daemon::start(&[]);
    let unmasked = [0x81u8, 0x02, b'h', b'i'];
    let mut cont_then_text = client_frame(false, 0, TEXT, b"a");
    cont_then_text.extend(client_frame(true, 0, TEXT, b"b"));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", unmasked.to_vec(), 1002),
        ("rsv1", client_frame(true, 4, TEXT, b"x"), 1002),
        ("rsv3", client_frame(true, 1, TEXT, b"x"), 1002),
        ("opcode 3", client_frame(true, 0, 3, b""), 1002),
        ("opcode 0xB", client_frame(true, 0, 0xB, b""), 1002),
        ("fragmented ping", client_frame(false, 0, PING, b""), 1002),
        ("ping of 126 bytes", client_frame(true, 0, PING, &[0; 126]), 1002),
        ("continuation first", client_frame(true, 0, CONT, b"x"), 1002),
        ("text inside fragments", cont_then_text, 1002),
        ("invalid utf-8", client_frame(true, 0, TEXT, &[0xce, 0xba, 0xff]), 1007),
        ("close of one byte", client_frame(true, 0, CLOSE, &[3]), 1002),
        ("close code 1005", client_frame(true, 0, CLOSE, &1005u16.to_be_bytes()), 1002),
        ("close code 999", client_frame(true, 0, CLOSE, &999u16.to_be_bytes()), 1002),
        ("close code 5000", client_frame(true, 0, CLOSE, &5000u16.to_be_bytes()), 1002),
        ("binary in chat mode", client_frame(true, 0, BINARY, b"\x00\x01"), 1003),
        ("too big", client_frame(true, 0, TEXT, &vec![b'a'; 65537]), 1009),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(close_code_for(&d, &bytes), want, "{name}");
    }
}

#[test]
fn too_big_is_refused_from_the_header_alone() {
    let d = Daemon::start(&["--max-message-bytes", "1000"]);
    let mut raw = Raw::open(d.ws);
    // Announce 10 MB and send only the header: the server must not wait for the payload.
    raw.send(&[0x81, 0xFF, 0, 0, 0, 0, 0, 0x98, 0x96, 0x80, 1, 2, 3, 4]);
    assert_eq!(raw.expect_close(), 1009);
}

#[test]
fn reassembled_message_over_the_limit() {
    let d = Daemon::start(&["--max-message-bytes", "1000"]);
    let mut bytes = client_frame(false, 0, TEXT, &[b'a'; 600]);
    bytes.extend(client_frame(true, 0, CONT, &[b'a'; 600]));
    assert_eq!(close_code_for(&d, &bytes), 1009);
}

#[test]
fn invalid_utf8_fails_fast_across_fragments_and_reads() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::open(d.ws);
    // First fragment ends inside a code point (fine so far)...
    raw.send(&client_frame(false, 0, TEXT, &[b'o', b'k', 0xf4]));
    // ...and the next fragment's first byte makes it impossible: close now, before the message ends.
    raw.send(&client_frame(false, 0, CONT, &[0x90]));
    assert_eq!(raw.expect_close(), 1007);
}

#[test]
fn ping_gets_pong_with_the_same_payload() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::open(d.ws);
    raw.send(&client_frame(true, 0, PING, b"are you there"));
    let pong = raw.read_frame().unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"are you there"[..]));
    // An unsolicited pong is ignored.
    raw.send(&client_frame(true, 0, PONG, b"x"));
    raw.send(&client_frame(true, 0, PING, b""));
    assert_eq!(raw.read_frame().unwrap().opcode, PONG);
}

#[test]
fn close_is_echoed_then_tcp_closes() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::open(d.ws);
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    raw.send(&client_frame(true, 0, CLOSE, &payload));
    assert_eq!(raw.expect_close(), 4000);
    assert!(raw.sees_eof());
    let mut raw = Raw::open(d.ws);
    raw.send(&client_frame(true, 0, CLOSE, b""));
    assert_eq!(raw.expect_close(), 1000);
    assert!(raw.sees_eof());
}

#[test]
fn fragments_with_interleaved_control_frames_in_chat() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::open(d.ws);
    let msg = r#"{"type":"login","name":"fragmented"}"#.as_bytes();
    let mut bytes = client_frame(false, 0, TEXT, &msg[..5]);
    bytes.extend(client_frame(true, 0, PING, b"p"));
    bytes.extend(client_frame(false, 0, CONT, &msg[5..20]));
    bytes.extend(client_frame(true, 0, CONT, &msg[20..]));
    // Send it one byte at a time: frames straddle reads.
    for b in bytes {
        raw.send(&[b]);
    }
    assert_eq!(raw.read_frame().unwrap().opcode, PONG);
    let list = raw.read_json();
    assert_eq!(list["user_list"][0]["name"], "fragmented");
}

#[test]
fn every_length_form() {
    let d = Daemon::start(&["--echo"]);
    let mut raw = Raw::open(d.ws);
    for len in [0usize, 1, 125, 126, 127, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        raw.send(&client_frame(true, 0, TEXT, &payload));
        let f = raw.read_frame().unwrap();
        assert_eq!((f.opcode, f.payload.len()), (TEXT, len));
        assert_eq!(f.payload, payload);
    }
}

#[test]
fn echo_mode_echoes_text_and_binary_unchanged() {
    let d = Daemon::start(&["--echo"]);
    let mut raw = Raw::open(d.ws);
    raw.send(&text_frame("not chat json"));
    assert_eq!(raw.read_frame().unwrap().text(), "not chat json");
    let bin: Vec<u8> = (0..=255).collect();
    raw.send(&client_frame(true, 0, BINARY, &bin));
    let f = raw.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload), (BINARY, bin.clone()));
    // A fragmented binary message comes back whole.
    let mut bytes = client_frame(false, 0, BINARY, &bin[..100]);
    bytes.extend(client_frame(true, 0, CONT, &bin[100..]));
    raw.send(&bytes);
    assert_eq!(raw.read_frame().unwrap().payload, bin);
}

#[test]
fn large_fragmented_message_in_tiny_fragments() {
    let d = Daemon::start(&["--echo"]);
    let mut raw = Raw::open(d.ws);
    let text: String = "猪猪 hi,  all ! ".repeat(200);
    let bytes = text.as_bytes();
    let mut stream = Vec::new();
    let chunks: Vec<&[u8]> = bytes.chunks(7).collect();
    for (i, c) in chunks.iter().enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        stream.extend(client_frame(i + 1 == chunks.len(), 0, op, c));
    }
    raw.send(&stream);
    assert_eq!(raw.read_frame().unwrap().text(), text);
}
