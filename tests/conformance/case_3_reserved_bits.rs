//! Category 3: with no extension negotiated, any reserved bit fails the connection with 1002 (RFC 6455
//! 5.2), after the messages before it were answered and before anything after it is.

use super::*;

#[test]
fn case_3_1_text_with_rsv_1() {
    let mut c = Client::new();
    c.frame(true, 1, TEXT, b"Hello, world!");
    c.expect_fail(1002);
}

/// Text, then text with `rsv`, then a ping: the first is echoed, the ping is never answered.
fn text_then_reserved_then_ping(rsv: u8, how: &str) {
    let mut c = Client::new();
    let first = client_frame(true, 0, TEXT, b"Hello, world!");
    let bad = client_frame(true, rsv, TEXT, b"Hello, world!");
    let ping = client_frame(true, 0, PING, b"");
    match how {
        "one write" => c.send(&[first, bad, ping].concat()),
        "frame by frame" => {
            c.send(&first);
            c.expect(TEXT, b"Hello, world!");
            c.send(&bad);
            c.send(&ping);
            return c.expect_fail(1002);
        }
        _ => c.send_chopped(&[first, bad, ping].concat(), 1),
    }
    c.expect(TEXT, b"Hello, world!");
    c.expect_fail(1002);
}

#[test]
fn case_3_2_text_then_rsv_2_then_ping() {
    text_then_reserved_then_ping(2, "one write");
}
#[test]
fn case_3_3_text_then_rsv_3_then_ping_frame_by_frame() {
    text_then_reserved_then_ping(3, "frame by frame");
}
#[test]
fn case_3_4_text_then_rsv_4_then_ping_octet_wise() {
    text_then_reserved_then_ping(4, "octet-wise");
}
#[test]
fn case_3_5_binary_with_rsv_5() {
    let mut c = Client::new();
    c.frame(true, 5, BINARY, &[0xff; 8]);
    c.expect_fail(1002);
}
#[test]
fn case_3_6_ping_with_rsv_6() {
    let mut c = Client::new();
    c.frame(true, 6, PING, b"Hello, world!");
    c.expect_fail(1002);
}
#[test]
fn case_3_7_close_with_rsv_7() {
    let mut c = Client::new();
    c.frame(true, 7, CLOSE, &1000u16.to_be_bytes());
    c.expect_fail(1002);
}
