//! Category 7: the closing handshake (RFC 6455 5.5.1, 7.1-7.4): the server echoes a valid close, answers
//! nothing after it, fails invalid close frames, and closes TCP first.

use super::*;

const HELLO: &[u8] = b"Hello World!";

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

#[test]
fn case_7_1_1_echo_then_close() {
    let mut c = Client::new();
    c.frame(true, 0, TEXT, HELLO);
    c.expect(TEXT, HELLO);
    c.close_normally();
}
#[test]
fn case_7_1_2_two_closes() {
    let mut c = Client::new();
    let close = client_frame(true, 0, CLOSE, &1000u16.to_be_bytes());
    c.send(&[close.clone(), close].concat());
    assert_eq!(c.next().close_code(), Some(1000));
    c.expect_eof();
}

/// A close followed by `after` in the same write: only the close is answered.
fn close_then(after: Vec<u8>) {
    let mut c = Client::new();
    c.send(&[client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()), after].concat());
    assert_eq!(c.next().close_code(), Some(1000));
    c.expect_eof();
}

#[test]
fn case_7_1_3_ping_after_close_is_not_answered() {
    close_then(client_frame(true, 0, PING, b""));
}
#[test]
fn case_7_1_4_text_after_close_is_not_echoed() {
    close_then(client_frame(true, 0, TEXT, HELLO));
}
#[test]
fn case_7_1_5_close_between_fragments() {
    let mut c = Client::new();
    c.frame(false, 0, TEXT, b"fragment1");
    c.frame(true, 0, CLOSE, &1000u16.to_be_bytes());
    c.frame(true, 0, CONT, b"fragment2");
    assert_eq!(c.next().close_code(), Some(1000));
    c.expect_eof();
}
#[test]
fn case_7_1_6_large_message_then_close_then_ping() {
    // Autobahn marks this informational; with room for 256 KiB everything before the close is echoed.
    let mut c = Client::with_args(&BIG_LIMITS);
    let big = text_of(256 * 1024);
    let mut bytes = client_frame(true, 0, TEXT, &big);
    bytes.extend(client_frame(true, 0, TEXT, HELLO));
    bytes.extend(client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()));
    bytes.extend(client_frame(true, 0, PING, b""));
    c.send(&bytes);
    c.expect(TEXT, &big);
    c.expect(TEXT, HELLO);
    assert_eq!(c.next().close_code(), Some(1000));
    c.expect_eof();
}
#[test]
fn case_7_1_6_at_the_chat_limit_the_large_message_is_refused() {
    let mut c = Client::with_args(&CHAT_LIMIT);
    let mut bytes = client_frame(true, 0, TEXT, &text_of(256 * 1024));
    bytes.extend(client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()));
    c.send(&bytes);
    c.expect_fail(1009);
}
#[test]
fn case_7_3_1_empty_close() {
    let mut c = Client::new();
    c.close_with(b"", 1000);
}
#[test]
fn case_7_3_2_close_with_one_byte() {
    let mut c = Client::new();
    c.frame(true, 0, CLOSE, b"\x03");
    c.expect_fail(1002);
}
#[test]
fn case_7_3_3_close_with_code_only() {
    let mut c = Client::new();
    c.close_with(&1000u16.to_be_bytes(), 1000);
}
#[test]
fn case_7_3_4_close_with_code_and_reason() {
    let mut c = Client::new();
    c.close_with(&close_payload(1000, HELLO), 1000);
}
#[test]
fn case_7_3_5_close_with_123_byte_reason() {
    let mut c = Client::new();
    c.close_with(&close_payload(1000, &[b'*'; 123]), 1000);
}
#[test]
fn case_7_3_6_close_with_124_byte_reason_is_too_long() {
    let mut c = Client::new();
    c.frame(true, 0, CLOSE, &close_payload(1000, &[b'*'; 124]));
    c.expect_fail(1002);
}
#[test]
fn case_7_5_1_close_reason_not_utf8() {
    let mut c = Client::new();
    c.frame(true, 0, CLOSE, &close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"));
    c.expect_fail(1007);
}

macro_rules! valid_codes {
    ($($name:ident: $code:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let mut c = Client::new();
                c.close_with(&$code.to_be_bytes(), $code);
            }
        )*
    };
}

// 7.7: valid close codes are echoed.
valid_codes! {
    case_7_7_1_code_1000: 1000u16;
    case_7_7_2_code_1001: 1001u16;
    case_7_7_3_code_1002: 1002u16;
    case_7_7_4_code_1003: 1003u16;
    case_7_7_5_code_1007: 1007u16;
    case_7_7_6_code_1008: 1008u16;
    case_7_7_7_code_1009: 1009u16;
    case_7_7_8_code_1010: 1010u16;
    case_7_7_9_code_1011: 1011u16;
    case_7_7_10_code_3000: 3000u16;
    case_7_7_11_code_3999: 3999u16;
    case_7_7_12_code_4000: 4000u16;
    case_7_7_13_code_4999: 4999u16;
}

macro_rules! invalid_codes {
    ($($name:ident: $code:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let mut c = Client::new();
                c.frame(true, 0, CLOSE, &$code.to_be_bytes());
                c.expect_fail(1002);
            }
        )*
    };
}

// 7.9 and 7.13: codes that may not appear on the wire fail the connection.
invalid_codes! {
    case_7_9_1_code_0: 0u16;
    case_7_9_2_code_999: 999u16;
    case_7_9_3_code_1004: 1004u16;
    case_7_9_4_code_1005: 1005u16;
    case_7_9_5_code_1006: 1006u16;
    case_7_9_6_code_1016: 1016u16;
    case_7_9_7_code_1100: 1100u16;
    case_7_9_8_code_2000: 2000u16;
    case_7_9_9_code_2999: 2999u16;
    case_7_13_1_code_5000: 5000u16;
    case_7_13_2_code_65535: 65535u16;
}
