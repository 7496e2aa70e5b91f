//! Category 1: framing of text and binary messages of every length form, echoed unchanged.

use super::*;

fn echo(opcode: u8, len: usize, chop: Option<usize>) {
    let payload = if opcode == TEXT { text_of(len) } else { binary_of(len) };
    let mut c = Client::new();
    let bytes = client_frame(true, 0, opcode, &payload);
    match chop {
        Some(n) => c.send_chopped(&bytes, n),
        None => c.send(&bytes),
    }
    c.expect(opcode, &payload);
    c.close_normally();
}

#[test]
fn case_1_1_1_text_0_bytes() {
    echo(TEXT, 0, None);
}
#[test]
fn case_1_1_2_text_125_bytes() {
    echo(TEXT, 125, None);
}
#[test]
fn case_1_1_3_text_126_bytes() {
    echo(TEXT, 126, None);
}
#[test]
fn case_1_1_4_text_127_bytes() {
    echo(TEXT, 127, None);
}
#[test]
fn case_1_1_5_text_128_bytes() {
    echo(TEXT, 128, None);
}
#[test]
fn case_1_1_6_text_65535_bytes() {
    echo(TEXT, 65535, None);
}
#[test]
fn case_1_1_7_text_65536_bytes() {
    echo(TEXT, 65536, None);
}
#[test]
fn case_1_1_8_text_65536_bytes_in_chops_of_997() {
    echo(TEXT, 65536, Some(997));
}
#[test]
fn case_1_2_1_binary_0_bytes() {
    echo(BINARY, 0, None);
}
#[test]
fn case_1_2_2_binary_125_bytes() {
    echo(BINARY, 125, None);
}
#[test]
fn case_1_2_3_binary_126_bytes() {
    echo(BINARY, 126, None);
}
#[test]
fn case_1_2_4_binary_127_bytes() {
    echo(BINARY, 127, None);
}
#[test]
fn case_1_2_5_binary_128_bytes() {
    echo(BINARY, 128, None);
}
#[test]
fn case_1_2_6_binary_65535_bytes() {
    echo(BINARY, 65535, None);
}
#[test]
fn case_1_2_7_binary_65536_bytes() {
    echo(BINARY, 65536, None);
}
#[test]
fn case_1_2_8_binary_65536_bytes_in_chops_of_997() {
    echo(BINARY, 65536, Some(997));
}
