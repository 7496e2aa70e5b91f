//! Category 2: pings are answered with pongs carrying the same payload; pongs are never answered; a
//! control frame over 125 bytes fails the connection (RFC 6455 5.5, 5.5.2, 5.5.3).

use super::*;

fn ping_pong(payload: &[u8], chop: Option<usize>) {
    let mut c = Client::new();
    let bytes = client_frame(true, 0, PING, payload);
    match chop {
        Some(n) => c.send_chopped(&bytes, n),
        None => c.send(&bytes),
    }
    c.expect(PONG, payload);
    c.close_normally();
}

#[test]
fn case_2_1_ping_without_payload() {
    ping_pong(b"", None);
}
#[test]
fn case_2_2_ping_with_text_payload() {
    ping_pong(b"Hello, world!", None);
}
#[test]
fn case_2_3_ping_with_binary_payload() {
    ping_pong(&[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff], None);
}
#[test]
fn case_2_4_ping_with_125_byte_payload() {
    ping_pong(&[0xfe; 125], None);
}
#[test]
fn case_2_5_ping_with_126_byte_payload_fails() {
    let mut c = Client::new();
    c.frame(true, 0, PING, &[0xfe; 126]);
    c.expect_fail(1002);
}
#[test]
fn case_2_6_ping_with_125_byte_payload_in_1_byte_chops() {
    ping_pong(&[0xfe; 125], Some(1));
}
#[test]
fn case_2_7_unsolicited_pong_without_payload_is_ignored() {
    let mut c = Client::new();
    c.frame(true, 0, PONG, b"");
    // The first thing back is the answer to our close: nothing answered the pong.
    c.close_normally();
}
#[test]
fn case_2_8_unsolicited_pong_with_payload_is_ignored() {
    let mut c = Client::new();
    c.frame(true, 0, PONG, b"unsolicited pong payload");
    c.close_normally();
}
#[test]
fn case_2_9_unsolicited_pong_then_ping() {
    let mut c = Client::new();
    c.frame(true, 0, PONG, b"unsolicited pong payload");
    c.frame(true, 0, PING, b"ping payload");
    c.expect(PONG, b"ping payload");
    c.close_normally();
}
#[test]
fn case_2_10_ten_pings_get_ten_pongs_in_order() {
    let mut c = Client::new();
    for i in 0..10 {
        c.frame(true, 0, PING, format!("payload-{i}").as_bytes());
    }
    for i in 0..10 {
        c.expect(PONG, format!("payload-{i}").as_bytes());
    }
    c.close_normally();
}
#[test]
fn case_2_11_ten_pings_in_1_byte_chops() {
    let mut c = Client::new();
    let mut bytes = Vec::new();
    for i in 0..10 {
        bytes.extend(client_frame(true, 0, PING, format!("payload-{i}").as_bytes()));
    }
    c.send_chopped(&bytes, 1);
    for i in 0..10 {
        c.expect(PONG, format!("payload-{i}").as_bytes());
    }
    c.close_normally();
}
