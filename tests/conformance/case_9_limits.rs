//! Category 9: large messages and many messages, with limits raised to 16 MiB (Autobahn's largest case);
//! plus the size limit itself: messages of exactly the limit in fragments of 1, 64 and 65535 bytes, and
//! one byte more refused with 1009 as soon as the frame that crosses the limit announces itself.

use super::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn payload(opcode: u8, len: usize) -> Vec<u8> {
    if opcode == TEXT {
        text_of(len)
    } else {
        binary_of(len)
    }
}

fn one_message(opcode: u8, len: usize) {
    let mut c = Client::with_args(&BIG_LIMITS);
    let data = payload(opcode, len);
    c.frame(true, 0, opcode, &data);
    c.expect(opcode, &data);
    c.close_normally();
}

fn in_fragments(opcode: u8, len: usize, size: usize) {
    let mut c = Client::with_args(&BIG_LIMITS);
    let data = payload(opcode, len);
    c.send(&fragments(opcode, &data, size));
    c.expect(opcode, &data);
    c.close_normally();
}

fn in_chops(opcode: u8, len: usize, chop: usize) {
    let mut c = Client::with_args(&BIG_LIMITS);
    let data = payload(opcode, len);
    c.send_chopped(&client_frame(true, 0, opcode, &data), chop);
    c.expect(opcode, &data);
    c.close_normally();
}

fn round_trips(opcode: u8, len: usize) {
    let mut c = Client::with_args(&BIG_LIMITS);
    let data = payload(opcode, len);
    let frame = client_frame(true, 0, opcode, &data);
    for _ in 0..1000 {
        c.send(&frame);
        c.expect(opcode, &data);
    }
    c.close_normally();
}

#[test]
fn case_9_1_1_text_64_kib() {
    one_message(TEXT, 64 * KIB);
}
#[test]
fn case_9_1_2_text_256_kib() {
    one_message(TEXT, 256 * KIB);
}
#[test]
fn case_9_1_3_text_1_mib() {
    one_message(TEXT, MIB);
}
#[test]
fn case_9_1_4_text_4_mib() {
    one_message(TEXT, 4 * MIB);
}
#[test]
fn case_9_1_5_text_8_mib() {
    one_message(TEXT, 8 * MIB);
}
#[test]
fn case_9_1_6_text_16_mib() {
    one_message(TEXT, 16 * MIB);
}
#[test]
fn case_9_2_1_binary_64_kib() {
    one_message(BINARY, 64 * KIB);
}
#[test]
fn case_9_2_2_binary_256_kib() {
    one_message(BINARY, 256 * KIB);
}
#[test]
fn case_9_2_3_binary_1_mib() {
    one_message(BINARY, MIB);
}
#[test]
fn case_9_2_4_binary_4_mib() {
    one_message(BINARY, 4 * MIB);
}
#[test]
fn case_9_2_5_binary_8_mib() {
    one_message(BINARY, 8 * MIB);
}
#[test]
fn case_9_2_6_binary_16_mib() {
    one_message(BINARY, 16 * MIB);
}
#[test]
fn case_9_3_1_text_4_mib_in_64_byte_fragments() {
    in_fragments(TEXT, 4 * MIB, 64);
}
#[test]
fn case_9_3_2_text_4_mib_in_256_byte_fragments() {
    in_fragments(TEXT, 4 * MIB, 256);
}
#[test]
fn case_9_3_3_text_4_mib_in_1_kib_fragments() {
    in_fragments(TEXT, 4 * MIB, KIB);
}
#[test]
fn case_9_3_4_text_4_mib_in_4_kib_fragments() {
    in_fragments(TEXT, 4 * MIB, 4 * KIB);
}
#[test]
fn case_9_3_5_text_4_mib_in_16_kib_fragments() {
    in_fragments(TEXT, 4 * MIB, 16 * KIB);
}
#[test]
fn case_9_3_6_text_4_mib_in_64_kib_fragments() {
    in_fragments(TEXT, 4 * MIB, 64 * KIB);
}
#[test]
fn case_9_3_7_text_4_mib_in_256_kib_fragments() {
    in_fragments(TEXT, 4 * MIB, 256 * KIB);
}
#[test]
fn case_9_3_8_text_4_mib_in_1_mib_fragments() {
    in_fragments(TEXT, 4 * MIB, MIB);
}
#[test]
fn case_9_3_9_text_4_mib_in_4_mib_fragments() {
    in_fragments(TEXT, 4 * MIB, 4 * MIB);
}
#[test]
fn case_9_4_1_binary_4_mib_in_64_byte_fragments() {
    in_fragments(BINARY, 4 * MIB, 64);
}
#[test]
fn case_9_4_2_binary_4_mib_in_256_byte_fragments() {
    in_fragments(BINARY, 4 * MIB, 256);
}
#[test]
fn case_9_4_3_binary_4_mib_in_1_kib_fragments() {
    in_fragments(BINARY, 4 * MIB, KIB);
}
#[test]
fn case_9_4_4_binary_4_mib_in_4_kib_fragments() {
    in_fragments(BINARY, 4 * MIB, 4 * KIB);
}
#[test]
fn case_9_4_5_binary_4_mib_in_16_kib_fragments() {
    in_fragments(BINARY, 4 * MIB, 16 * KIB);
}
#[test]
fn case_9_4_6_binary_4_mib_in_64_kib_fragments() {
    in_fragments(BINARY, 4 * MIB, 64 * KIB);
}
#[test]
fn case_9_4_7_binary_4_mib_in_256_kib_fragments() {
    in_fragments(BINARY, 4 * MIB, 256 * KIB);
}
#[test]
fn case_9_4_8_binary_4_mib_in_1_mib_fragments() {
    in_fragments(BINARY, 4 * MIB, MIB);
}
#[test]
fn case_9_4_9_binary_4_mib_in_4_mib_fragments() {
    in_fragments(BINARY, 4 * MIB, 4 * MIB);
}
#[test]
fn case_9_5_1_text_1_mib_in_64_byte_chops() {
    in_chops(TEXT, MIB, 64);
}
#[test]
fn case_9_5_2_text_1_mib_in_128_byte_chops() {
    in_chops(TEXT, MIB, 128);
}
#[test]
fn case_9_5_3_text_1_mib_in_256_byte_chops() {
    in_chops(TEXT, MIB, 256);
}
#[test]
fn case_9_5_4_text_1_mib_in_512_byte_chops() {
    in_chops(TEXT, MIB, 512);
}
#[test]
fn case_9_5_5_text_1_mib_in_1024_byte_chops() {
    in_chops(TEXT, MIB, 1024);
}
#[test]
fn case_9_5_6_text_1_mib_in_2048_byte_chops() {
    in_chops(TEXT, MIB, 2048);
}
#[test]
fn case_9_6_1_binary_1_mib_in_64_byte_chops() {
    in_chops(BINARY, MIB, 64);
}
#[test]
fn case_9_6_2_binary_1_mib_in_128_byte_chops() {
    in_chops(BINARY, MIB, 128);
}
#[test]
fn case_9_6_3_binary_1_mib_in_256_byte_chops() {
    in_chops(BINARY, MIB, 256);
}
#[test]
fn case_9_6_4_binary_1_mib_in_512_byte_chops() {
    in_chops(BINARY, MIB, 512);
}
#[test]
fn case_9_6_5_binary_1_mib_in_1024_byte_chops() {
    in_chops(BINARY, MIB, 1024);
}
#[test]
fn case_9_6_6_binary_1_mib_in_2048_byte_chops() {
    in_chops(BINARY, MIB, 2048);
}
#[test]
fn case_9_7_1_1000_text_round_trips_of_0_bytes() {
    round_trips(TEXT, 0);
}
#[test]
fn case_9_7_2_1000_text_round_trips_of_16_bytes() {
    round_trips(TEXT, 16);
}
#[test]
fn case_9_7_3_1000_text_round_trips_of_64_bytes() {
    round_trips(TEXT, 64);
}
#[test]
fn case_9_7_4_1000_text_round_trips_of_256_bytes() {
    round_trips(TEXT, 256);
}
#[test]
fn case_9_7_5_1000_text_round_trips_of_1_kib() {
    round_trips(TEXT, KIB);
}
#[test]
fn case_9_7_6_1000_text_round_trips_of_4_kib() {
    round_trips(TEXT, 4 * KIB);
}
#[test]
fn case_9_8_1_1000_binary_round_trips_of_0_bytes() {
    round_trips(BINARY, 0);
}
#[test]
fn case_9_8_2_1000_binary_round_trips_of_16_bytes() {
    round_trips(BINARY, 16);
}
#[test]
fn case_9_8_3_1000_binary_round_trips_of_64_bytes() {
    round_trips(BINARY, 64);
}
#[test]
fn case_9_8_4_1000_binary_round_trips_of_256_bytes() {
    round_trips(BINARY, 256);
}
#[test]
fn case_9_8_5_1000_binary_round_trips_of_1_kib() {
    round_trips(BINARY, KIB);
}
#[test]
fn case_9_8_6_1000_binary_round_trips_of_4_kib() {
    round_trips(BINARY, 4 * KIB);
}

/// 65536 bytes of text (the chat mode's default limit) whose 3-byte code points straddle every fragment size used.
fn text_at_limit() -> Vec<u8> {
    let mut t = "\u{732a}".repeat(21845).into_bytes(); // 65535 bytes of 猪
    t.push(b'!');
    assert_eq!(t.len(), 65536);
    t
}

fn at_default_limit(opcode: u8, size: usize) {
    let mut c = Client::with_args(&CHAT_LIMIT);
    let data = if opcode == TEXT { text_at_limit() } else { binary_of(65536) };
    c.send(&fragments(opcode, &data, size));
    c.expect(opcode, &data);
    c.close_normally();
}

/// The limit's worth of non-final fragments, then a final fragment of one byte: refused with 1009
/// before any echo.
fn one_byte_over_default_limit(opcode: u8, size: usize) {
    let mut c = Client::with_args(&CHAT_LIMIT);
    let data = if opcode == TEXT { text_at_limit() } else { binary_of(65536) };
    let mut bytes = Vec::new();
    for (i, chunk) in data.chunks(size).enumerate() {
        bytes.extend(client_frame(false, 0, if i == 0 { opcode } else { CONT }, chunk));
    }
    bytes.extend(client_frame(true, 0, CONT, b"!"));
    c.send(&bytes);
    c.expect_fail(1009);
}

#[test]
fn limit_text_of_65536_bytes_in_1_byte_fragments() {
    at_default_limit(TEXT, 1);
}
#[test]
fn limit_text_of_65536_bytes_in_64_byte_fragments() {
    at_default_limit(TEXT, 64);
}
#[test]
fn limit_text_of_65536_bytes_in_65535_byte_fragments() {
    at_default_limit(TEXT, 65535);
}
#[test]
fn limit_binary_of_65536_bytes_in_1_byte_fragments() {
    at_default_limit(BINARY, 1);
}
#[test]
fn limit_binary_of_65536_bytes_in_64_byte_fragments() {
    at_default_limit(BINARY, 64);
}
#[test]
fn limit_binary_of_65536_bytes_in_65535_byte_fragments() {
    at_default_limit(BINARY, 65535);
}
#[test]
fn limit_text_one_byte_over_in_1_byte_fragments() {
    one_byte_over_default_limit(TEXT, 1);
}
#[test]
fn limit_text_one_byte_over_in_64_byte_fragments() {
    one_byte_over_default_limit(TEXT, 64);
}
#[test]
fn limit_binary_one_byte_over_in_65535_byte_fragments() {
    one_byte_over_default_limit(BINARY, 65535);
}
#[test]
fn limit_one_frame_over_is_refused_from_its_header() {
    // Only the header of a 65537-byte frame: the server must not wait for the payload.
    let mut c = Client::with_args(&CHAT_LIMIT);
    let frame = client_frame(true, 0, BINARY, &binary_of(65537));
    c.send(&frame[..14]);
    c.expect_fail(1009);
}
#[test]
fn limit_raised_to_16_mib_refuses_one_byte_more() {
    let mut c = Client::with_args(&BIG_LIMITS);
    let mut head = vec![0x82u8, 0xff];
    head.extend_from_slice(&(16 * MIB as u64 + 1).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    c.send(&head);
    c.expect_fail(1009);
}
