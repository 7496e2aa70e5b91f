//! Category 4: reserved opcodes 3-7 (data) and 11-15 (control) fail the connection with 1002 (RFC 6455
//! 5.2), after what came before was answered.

use super::*;

fn reserved_alone(opcode: u8, payload: &[u8]) {
    let mut c = Client::new();
    c.frame(true, 0, opcode, payload);
    c.expect_fail(1002);
}

fn text_then_reserved_then_ping(opcode: u8, payload: &[u8]) {
    let mut c = Client::new();
    let mut bytes = client_frame(true, 0, TEXT, b"Hello, world!");
    bytes.extend(client_frame(true, 0, opcode, payload));
    bytes.extend(client_frame(true, 0, PING, b""));
    c.send(&bytes);
    c.expect(TEXT, b"Hello, world!");
    c.expect_fail(1002);
}

#[test]
fn case_4_1_1_opcode_3() {
    reserved_alone(3, b"");
}
#[test]
fn case_4_1_2_opcode_4_with_payload() {
    reserved_alone(4, b"reserved opcode payload");
}
#[test]
fn case_4_1_3_text_then_opcode_5_then_ping() {
    text_then_reserved_then_ping(5, b"");
}
#[test]
fn case_4_1_4_text_then_opcode_6_with_payload_then_ping() {
    text_then_reserved_then_ping(6, b"reserved opcode payload");
}
#[test]
fn case_4_1_5_text_then_opcode_7_with_payload_then_ping() {
    text_then_reserved_then_ping(7, b"reserved opcode payload");
}
#[test]
fn case_4_2_1_opcode_11() {
    reserved_alone(11, b"");
}
#[test]
fn case_4_2_2_opcode_12_with_payload() {
    reserved_alone(12, b"reserved opcode payload");
}
#[test]
fn case_4_2_3_text_then_opcode_13_then_ping() {
    text_then_reserved_then_ping(13, b"");
}
#[test]
fn case_4_2_4_text_then_opcode_14_with_payload_then_ping() {
    text_then_reserved_then_ping(14, b"reserved opcode payload");
}
#[test]
fn case_4_2_5_text_then_opcode_15_with_payload_then_ping() {
    text_then_reserved_then_ping(15, b"reserved opcode payload");
}
