//! Category 5: fragmentation (RFC 6455 5.4): control frames may come between fragments but are never
//! fragmented; a continuation needs a message to continue; a new data frame may not start inside one.

use super::*;

#[derive(Clone, Copy)]
enum How {
    OneWrite,
    OctetWise,
    FrameByFrame,
}

fn send_frames(c: &mut Client, frames: &[Vec<u8>], how: How) {
    match how {
        How::OneWrite => c.send(&frames.concat()),
        How::OctetWise => c.send_chopped(&frames.concat(), 1),
        How::FrameByFrame => {
            for f in frames {
                c.send(f);
                pause();
            }
        }
    }
}

fn fragmented_control(opcode: u8) {
    let mut c = Client::new();
    c.frame(false, 0, opcode, b"fragment1");
    c.frame(true, 0, CONT, b"fragment2");
    c.expect_fail(1002);
}

#[test]
fn case_5_1_ping_in_2_fragments() {
    fragmented_control(PING);
}
#[test]
fn case_5_2_pong_in_2_fragments() {
    fragmented_control(PONG);
}

fn text_in_2_fragments(how: How) {
    let mut c = Client::new();
    let frames = [client_frame(false, 0, TEXT, b"fragment1"), client_frame(true, 0, CONT, b"fragment2")];
    send_frames(&mut c, &frames, how);
    c.expect(TEXT, b"fragment1fragment2");
    c.close_normally();
}

#[test]
fn case_5_3_text_in_2_fragments() {
    text_in_2_fragments(How::OneWrite);
}
#[test]
fn case_5_4_text_in_2_fragments_octet_wise() {
    text_in_2_fragments(How::OctetWise);
}
#[test]
fn case_5_5_text_in_2_fragments_frame_by_frame() {
    text_in_2_fragments(How::FrameByFrame);
}

fn text_in_2_fragments_with_ping_between(how: How) {
    let mut c = Client::new();
    let frames = [
        client_frame(false, 0, TEXT, b"fragment1"),
        client_frame(true, 0, PING, b"ping payload"),
        client_frame(true, 0, CONT, b"fragment2"),
    ];
    send_frames(&mut c, &frames, how);
    c.expect(PONG, b"ping payload");
    c.expect(TEXT, b"fragment1fragment2");
    c.close_normally();
}

#[test]
fn case_5_6_text_in_2_fragments_with_ping_between() {
    text_in_2_fragments_with_ping_between(How::OneWrite);
}
#[test]
fn case_5_7_text_in_2_fragments_with_ping_between_octet_wise() {
    text_in_2_fragments_with_ping_between(How::OctetWise);
}
#[test]
fn case_5_8_text_in_2_fragments_with_ping_between_frame_by_frame() {
    text_in_2_fragments_with_ping_between(How::FrameByFrame);
}

/// A continuation with nothing to continue, then a whole text message: failed before any echo.
fn continuation_first(fin: bool, how: How) {
    let mut c = Client::new();
    let frames =
        [client_frame(fin, 0, CONT, b"non-continuation payload"), client_frame(true, 0, TEXT, b"Hello, world!")];
    send_frames(&mut c, &frames, how);
    c.expect_fail(1002);
}

#[test]
fn case_5_9_final_continuation_without_start() {
    continuation_first(true, How::OneWrite);
}
#[test]
fn case_5_10_final_continuation_without_start_octet_wise() {
    continuation_first(true, How::OctetWise);
}
#[test]
fn case_5_11_final_continuation_without_start_frame_by_frame() {
    continuation_first(true, How::FrameByFrame);
}
#[test]
fn case_5_12_non_final_continuation_without_start() {
    continuation_first(false, How::OneWrite);
}
#[test]
fn case_5_13_non_final_continuation_without_start_octet_wise() {
    continuation_first(false, How::OctetWise);
}
#[test]
fn case_5_14_non_final_continuation_without_start_frame_by_frame() {
    continuation_first(false, How::FrameByFrame);
}

#[test]
fn case_5_15_message_then_stray_continuation_then_text() {
    let mut c = Client::new();
    let frames = [
        client_frame(false, 0, TEXT, b"fragment1"),
        client_frame(true, 0, CONT, b"fragment2"),
        client_frame(false, 0, CONT, b"fragment3"),
        client_frame(true, 0, TEXT, b"fragment4"),
    ];
    c.send(&frames.concat());
    c.expect(TEXT, b"fragment1fragment2");
    c.expect_fail(1002);
}

/// Twice: a stray continuation, then a message in two fragments. The first frame already fails.
fn stray_continuation_then_message_twice(first_fin: bool) {
    let mut c = Client::new();
    let mut bytes = Vec::new();
    for _ in 0..2 {
        bytes.extend(client_frame(first_fin, 0, CONT, b"fragment1"));
        bytes.extend(client_frame(false, 0, TEXT, b"fragment2"));
        bytes.extend(client_frame(true, 0, CONT, b"fragment3"));
    }
    c.send(&bytes);
    c.expect_fail(1002);
}

#[test]
fn case_5_16_non_final_stray_continuation_twice() {
    stray_continuation_then_message_twice(false);
}
#[test]
fn case_5_17_final_stray_continuation_twice() {
    stray_continuation_then_message_twice(true);
}
#[test]
fn case_5_18_text_inside_a_fragmented_text() {
    let mut c = Client::new();
    let frames = [client_frame(false, 0, TEXT, b"fragment1"), client_frame(true, 0, TEXT, b"fragment2")];
    c.send(&frames.concat());
    c.expect_fail(1002);
}

/// Five fragments with two pings between them, sent in two bursts: the pongs come as the pings
/// arrive, the message once its last fragment does.
fn five_fragments_two_pings(octet_wise: bool) {
    let mut c = Client::new();
    let burst1 = [
        client_frame(false, 0, TEXT, b"fragment1"),
        client_frame(false, 0, CONT, b"fragment2"),
        client_frame(true, 0, PING, b"pongme 1!"),
    ]
    .concat();
    let burst2 = [
        client_frame(false, 0, CONT, b"fragment3"),
        client_frame(false, 0, CONT, b"fragment4"),
        client_frame(true, 0, PING, b"pongme 2!"),
        client_frame(true, 0, CONT, b"fragment5"),
    ]
    .concat();
    let chop = if octet_wise { 1 } else { usize::MAX };
    c.send_chopped(&burst1, chop);
    // The first pong proves the server holds the unfinished message across reads.
    c.expect(PONG, b"pongme 1!");
    c.send_chopped(&burst2, chop);
    c.expect(PONG, b"pongme 2!");
    c.expect(TEXT, b"fragment1fragment2fragment3fragment4fragment5");
    c.close_normally();
}

#[test]
fn case_5_19_five_fragments_two_pings_across_reads() {
    five_fragments_two_pings(false);
}
#[test]
fn case_5_20_five_fragments_two_pings_across_reads_octet_wise() {
    five_fragments_two_pings(true);
}
