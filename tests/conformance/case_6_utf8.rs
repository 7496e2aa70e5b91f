//! Category 6: text must be valid UTF-8 (RFC 6455 5.6, 8.1; RFC 3629), also when split across fragments
//! and reads; invalid text fails the connection with 1007 as soon as the invalid byte arrives.

use super::*;

const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
const HELLO_UTF8: &str = "Hello-\u{b5}@\u{df}\u{f6}\u{e4}\u{fc}\u{e0}\u{e1}-UTF-8!!";

#[test]
fn case_6_1_1_empty_text() {
    let mut c = Client::new();
    c.frame(true, 0, TEXT, b"");
    c.expect(TEXT, b"");
    c.close_normally();
}
#[test]
fn case_6_1_2_empty_text_in_3_empty_fragments() {
    let mut c = Client::new();
    c.frame(false, 0, TEXT, b"");
    c.frame(false, 0, CONT, b"");
    c.frame(true, 0, CONT, b"");
    c.expect(TEXT, b"");
    c.close_normally();
}
#[test]
fn case_6_1_3_text_in_3_fragments_first_and_last_empty() {
    let mut c = Client::new();
    c.frame(false, 0, TEXT, b"");
    c.frame(false, 0, CONT, b"middle frame payload");
    c.frame(true, 0, CONT, b"");
    c.expect(TEXT, b"middle frame payload");
    c.close_normally();
}
#[test]
fn case_6_2_1_valid_utf8_in_one_fragment() {
    let mut c = Client::new();
    c.frame(true, 0, TEXT, HELLO_UTF8.as_bytes());
    c.expect(TEXT, HELLO_UTF8.as_bytes());
    c.close_normally();
}
#[test]
fn case_6_2_2_valid_utf8_in_2_fragments_at_a_code_point_boundary() {
    let mut c = Client::new();
    let text = HELLO_UTF8.as_bytes();
    let cut = HELLO_UTF8.find('\u{fc}').expect("split point");
    c.frame(false, 0, TEXT, &text[..cut]);
    c.frame(true, 0, CONT, &text[cut..]);
    c.expect(TEXT, text);
    c.close_normally();
}
#[test]
fn case_6_2_3_valid_utf8_one_byte_per_fragment() {
    let mut c = Client::new();
    c.send(&fragments(TEXT, HELLO_UTF8.as_bytes(), 1));
    c.expect(TEXT, HELLO_UTF8.as_bytes());
    c.close_normally();
}
#[test]
fn case_6_2_4_kosme_one_byte_per_fragment() {
    let mut c = Client::new();
    c.send(&fragments(TEXT, KOSME, 1));
    c.expect(TEXT, KOSME);
    c.close_normally();
}

const KOSME_EDITED: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";

#[test]
fn case_6_3_1_invalid_utf8_in_one_fragment() {
    let mut c = Client::new();
    c.frame(true, 0, TEXT, KOSME_EDITED);
    c.expect_fail(1007);
}
#[test]
fn case_6_3_2_invalid_utf8_one_byte_per_fragment() {
    let mut c = Client::new();
    // Fail fast: only the fragments up to the byte that makes the text invalid (0xa0 after 0xed).
    let upto = KOSME.len() + 2;
    let bytes = fragments(TEXT, KOSME_EDITED, 1);
    let per_fragment = bytes.len() / KOSME_EDITED.len();
    c.send(&bytes[..upto * per_fragment]);
    c.expect_fail(1007);
}

/// Part 1 valid, part 2 makes it invalid, part 3 is never sent: the close must not wait for it.
fn fail_fast(part1: &[u8], part2: &[u8], part3: &[u8], in_frames: bool) {
    let mut c = Client::new();
    if in_frames {
        c.frame(false, 0, TEXT, part1);
        pause();
        c.frame(false, 0, CONT, part2);
    } else {
        let whole = [part1, part2, part3].concat();
        let frame = client_frame(true, 0, TEXT, &whole);
        let head = frame.len() - whole.len();
        c.send(&frame[..head + part1.len()]);
        pause();
        c.send(&frame[head + part1.len()..head + part1.len() + part2.len()]);
    }
    c.expect_fail(1007);
}

#[test]
fn case_6_4_1_fail_fast_across_frames_code_point_above_u10ffff() {
    fail_fast(KOSME, b"\xf4\x90\x80\x80", b"edited", true);
}
#[test]
fn case_6_4_2_fail_fast_across_frames_at_the_invalid_octet() {
    fail_fast(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", b"\x90", b"\x80\x80edited", true);
}
#[test]
fn case_6_4_3_fail_fast_across_reads_of_one_frame() {
    fail_fast(KOSME, b"\xf4\x90\x80\x80", b"edited", false);
}
#[test]
fn case_6_4_4_fail_fast_across_reads_of_one_frame_at_the_invalid_octet() {
    fail_fast(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", b"\x90", b"\x80\x80edited", false);
}

/// How many leading bytes of `text` prove it invalid whatever follows; `None` when only its end does.
fn invalid_after(text: &[u8]) -> Option<usize> {
    (1..=text.len()).find(|&n| matches!(std::str::from_utf8(&text[..n]), Err(e) if e.error_len().is_some()))
}

/// One vector of the UTF-8 decoder test (section numbers as in Autobahn's 6.5-6.23).
fn vector(valid: bool, text: &[u8]) {
    assert_eq!(std::str::from_utf8(text).is_ok(), valid, "the vector's own validity");
    // Whole, in one frame.
    let mut whole = Client::new();
    whole.frame(true, 0, TEXT, text);
    if valid {
        whole.expect(TEXT, text);
        whole.close_normally();
    } else {
        whole.expect_fail(1007);
    }
    let stop = invalid_after(text);
    // One byte per fragment; an invalid text only up to the byte that proves it (no FIN then).
    let mut split = whole.another();
    let frames = fragments(TEXT, text, 1);
    match stop {
        Some(n) => {
            let per_fragment = frames.len() / text.len();
            split.send(&frames[..n * per_fragment]);
        }
        None => split.send(&frames),
    }
    if valid {
        split.expect(TEXT, text);
        split.close_normally();
    } else {
        split.expect_fail(1007);
    }
    // One frame arriving one byte per read; an invalid text again stops at the proving byte.
    let mut chopped = whole.another();
    let frame = client_frame(true, 0, TEXT, text);
    let head = frame.len() - text.len();
    let end = stop.map_or(frame.len(), |n| head + n);
    chopped.send(&frame[..head]);
    for b in &frame[head..end] {
        chopped.send(&[*b]);
    }
    if valid {
        chopped.expect(TEXT, text);
        chopped.close_normally();
    } else {
        chopped.expect_fail(1007);
    }
}

macro_rules! vectors {
    ($($name:ident: $valid:expr, $text:expr;)*) => {
        $(
            #[test]
            fn $name() {
                vector($valid, $text);
            }
        )*
    };
}

// 6.5: some valid UTF-8.
vectors! {
    case_6_5_1_dollar: true, b"hello\x24world";
    case_6_5_2_cent: true, b"hello\xc2\xa2world";
    case_6_5_3_euro: true, b"hello\xe2\x82\xacworld";
    case_6_5_4_u24b62: true, b"hello\xf0\xa4\xad\xa2world";
    case_6_5_5_kosme: true, KOSME;
}

// 6.6: every prefix of a valid text with multi-byte code points; those ending inside one are invalid.
vectors! {
    case_6_6_1_prefix_1: false, &KOSME[..1];
    case_6_6_2_prefix_2: true, &KOSME[..2];
    case_6_6_3_prefix_3: false, &KOSME[..3];
    case_6_6_4_prefix_4: false, &KOSME[..4];
    case_6_6_5_prefix_5: true, &KOSME[..5];
    case_6_6_6_prefix_6: false, &KOSME[..6];
    case_6_6_7_prefix_7: true, &KOSME[..7];
    case_6_6_8_prefix_8: false, &KOSME[..8];
    case_6_6_9_prefix_9: true, &KOSME[..9];
    case_6_6_10_prefix_10: false, &KOSME[..10];
    case_6_6_11_prefix_11: true, &KOSME[..11];
}

// 6.7-6.10: first and last possible sequences of each length; 5 and 6 byte forms and code points
// above U+10FFFF are invalid.
vectors! {
    case_6_7_1_first_1_byte: true, b"\x00";
    case_6_7_2_first_2_bytes: true, b"\xc2\x80";
    case_6_7_3_first_3_bytes: true, b"\xe0\xa0\x80";
    case_6_7_4_first_4_bytes: true, b"\xf0\x90\x80\x80";
    case_6_8_1_first_5_bytes: false, b"\xf8\x88\x80\x80\x80";
    case_6_8_2_first_6_bytes: false, b"\xfc\x84\x80\x80\x80\x80";
    case_6_9_1_last_1_byte: true, b"\x7f";
    case_6_9_2_last_2_bytes: true, b"\xdf\xbf";
    case_6_9_3_last_3_bytes: true, b"\xef\xbf\xbf";
    case_6_9_4_last_4_bytes: true, b"\xf4\x8f\xbf\xbf";
    case_6_10_1_last_4_byte_form: false, b"\xf7\xbf\xbf\xbf";
    case_6_10_2_last_5_byte_form: false, b"\xfb\xbf\xbf\xbf\xbf";
    case_6_10_3_last_6_byte_form: false, b"\xfd\xbf\xbf\xbf\xbf\xbf";
}

// 6.11: other boundary conditions.
vectors! {
    case_6_11_1_ud7ff: true, b"\xed\x9f\xbf";
    case_6_11_2_ue000: true, b"\xee\x80\x80";
    case_6_11_3_ufffd: true, b"\xef\xbf\xbd";
    case_6_11_4_u10ffff: true, b"\xf4\x8f\xbf\xbf";
    case_6_11_5_u110000: false, b"\xf4\x90\x80\x80";
}

// 6.12: unexpected continuation bytes.
vectors! {
    case_6_12_1_first_continuation: false, b"\x80";
    case_6_12_2_last_continuation: false, b"\xbf";
    case_6_12_3_two: false, b"\x80\xbf";
    case_6_12_4_three: false, b"\x80\xbf\x80";
    case_6_12_5_four: false, b"\x80\xbf\x80\xbf";
    case_6_12_6_five: false, b"\x80\xbf\x80\xbf\x80";
    case_6_12_7_six: false, b"\x80\xbf\x80\xbf\x80\xbf";
    case_6_12_8_all_but_the_last: false, &(0x80u8..0xbf).collect::<Vec<u8>>();
}

/// Every start byte in `from..to`, each followed by a space.
fn lonely(from: u8, to: u8) -> Vec<u8> {
    (from..to).flat_map(|b| [b, b' ']).collect()
}

// 6.13: lonely start bytes.
vectors! {
    case_6_13_1_two_byte_starts: false, &lonely(0xc0, 0xdf);
    case_6_13_2_three_byte_starts: false, &lonely(0xe0, 0xef);
    case_6_13_3_four_byte_starts: false, &lonely(0xf0, 0xf7);
    case_6_13_4_five_byte_starts: false, &lonely(0xf8, 0xfb);
    case_6_13_5_six_byte_starts: false, &lonely(0xfc, 0xfd);
}

const MISSING_LAST: [&[u8]; 10] = [
    b"\xc0",
    b"\xe0\x80",
    b"\xf0\x80\x80",
    b"\xf8\x80\x80\x80",
    b"\xfc\x80\x80\x80\x80",
    b"\xdf",
    b"\xef\xbf",
    b"\xf7\xbf\xbf",
    b"\xfb\xbf\xbf\xbf",
    b"\xfd\xbf\xbf\xbf\xbf",
];

// 6.14-6.16: sequences missing their last byte, their concatenation, impossible bytes.
vectors! {
    case_6_14_1_c0: false, MISSING_LAST[0];
    case_6_14_2_e0_80: false, MISSING_LAST[1];
    case_6_14_3_f0_80_80: false, MISSING_LAST[2];
    case_6_14_4_f8_80_80_80: false, MISSING_LAST[3];
    case_6_14_5_fc_80_80_80_80: false, MISSING_LAST[4];
    case_6_14_6_df: false, MISSING_LAST[5];
    case_6_14_7_ef_bf: false, MISSING_LAST[6];
    case_6_14_8_f7_bf_bf: false, MISSING_LAST[7];
    case_6_14_9_fb_bf_bf_bf: false, MISSING_LAST[8];
    case_6_14_10_fd_bf_bf_bf_bf: false, MISSING_LAST[9];
    case_6_15_1_all_of_them_concatenated: false, &MISSING_LAST.concat();
    case_6_16_1_fe: false, b"\xfe";
    case_6_16_2_ff: false, b"\xff";
    case_6_16_3_fe_fe_ff_ff: false, b"\xfe\xfe\xff\xff";
}

// 6.17-6.19: overlong forms.
vectors! {
    case_6_17_1_overlong_slash_2: false, b"\xc0\xaf";
    case_6_17_2_overlong_slash_3: false, b"\xe0\x80\xaf";
    case_6_17_3_overlong_slash_4: false, b"\xf0\x80\x80\xaf";
    case_6_17_4_overlong_slash_5: false, b"\xf8\x80\x80\x80\xaf";
    case_6_17_5_overlong_slash_6: false, b"\xfc\x80\x80\x80\x80\xaf";
    case_6_18_1_maximum_overlong_2: false, b"\xc1\xbf";
    case_6_18_2_maximum_overlong_3: false, b"\xe0\x9f\xbf";
    case_6_18_3_maximum_overlong_4: false, b"\xf0\x8f\xbf\xbf";
    case_6_18_4_maximum_overlong_5: false, b"\xf8\x87\xbf\xbf\xbf";
    case_6_18_5_maximum_overlong_6: false, b"\xfc\x83\xbf\xbf\xbf\xbf";
    case_6_19_1_overlong_nul_2: false, b"\xc0\x80";
    case_6_19_2_overlong_nul_3: false, b"\xe0\x80\x80";
    case_6_19_3_overlong_nul_4: false, b"\xf0\x80\x80\x80";
    case_6_19_4_overlong_nul_5: false, b"\xf8\x80\x80\x80\x80";
    case_6_19_5_overlong_nul_6: false, b"\xfc\x80\x80\x80\x80\x80";
}

// 6.20-6.21: UTF-16 surrogates, single and paired, are not valid UTF-8.
vectors! {
    case_6_20_1_ud800: false, b"\xed\xa0\x80";
    case_6_20_2_udb7f: false, b"\xed\xad\xbf";
    case_6_20_3_udb80: false, b"\xed\xae\x80";
    case_6_20_4_udbff: false, b"\xed\xaf\xbf";
    case_6_20_5_udc00: false, b"\xed\xb0\x80";
    case_6_20_6_udf80: false, b"\xed\xbe\x80";
    case_6_20_7_udfff: false, b"\xed\xbf\xbf";
    case_6_21_1_ud800_udc00: false, b"\xed\xa0\x80\xed\xb0\x80";
    case_6_21_2_ud800_udfff: false, b"\xed\xa0\x80\xed\xbf\xbf";
    case_6_21_3_udb7f_udc00: false, b"\xed\xad\xbf\xed\xb0\x80";
    case_6_21_4_udb7f_udfff: false, b"\xed\xad\xbf\xed\xbf\xbf";
    case_6_21_5_udb80_udc00: false, b"\xed\xae\x80\xed\xb0\x80";
    case_6_21_6_udb80_udfff: false, b"\xed\xae\x80\xed\xbf\xbf";
    case_6_21_7_udbff_udc00: false, b"\xed\xaf\xbf\xed\xb0\x80";
    case_6_21_8_udbff_udfff: false, b"\xed\xaf\xbf\xed\xbf\xbf";
}

// 6.22: non-characters are valid UTF-8.
vectors! {
    case_6_22_1_ufffe: true, b"\xef\xbf\xbe";
    case_6_22_2_uffff: true, b"\xef\xbf\xbf";
    case_6_22_3_u1fffe: true, b"\xf0\x9f\xbf\xbe";
    case_6_22_4_u1ffff: true, b"\xf0\x9f\xbf\xbf";
    case_6_22_5_u2fffe: true, b"\xf0\xaf\xbf\xbe";
    case_6_22_6_u2ffff: true, b"\xf0\xaf\xbf\xbf";
    case_6_22_7_u3fffe: true, b"\xf0\xbf\xbf\xbe";
    case_6_22_8_u3ffff: true, b"\xf0\xbf\xbf\xbf";
    case_6_22_9_u4fffe: true, b"\xf1\x8f\xbf\xbe";
    case_6_22_10_u4ffff: true, b"\xf1\x8f\xbf\xbf";
    case_6_22_11_u5fffe: true, b"\xf1\x9f\xbf\xbe";
    case_6_22_12_u5ffff: true, b"\xf1\x9f\xbf\xbf";
    case_6_22_13_u6fffe: true, b"\xf1\xaf\xbf\xbe";
    case_6_22_14_u6ffff: true, b"\xf1\xaf\xbf\xbf";
    case_6_22_15_u7fffe: true, b"\xf1\xbf\xbf\xbe";
    case_6_22_16_u7ffff: true, b"\xf1\xbf\xbf\xbf";
    case_6_22_17_u8fffe: true, b"\xf2\x8f\xbf\xbe";
    case_6_22_18_u8ffff: true, b"\xf2\x8f\xbf\xbf";
    case_6_22_19_u9fffe: true, b"\xf2\x9f\xbf\xbe";
    case_6_22_20_u9ffff: true, b"\xf2\x9f\xbf\xbf";
    case_6_22_21_uafffe: true, b"\xf2\xaf\xbf\xbe";
    case_6_22_22_uaffff: true, b"\xf2\xaf\xbf\xbf";
    case_6_22_23_ubfffe: true, b"\xf2\xbf\xbf\xbe";
    case_6_22_24_ubffff: true, b"\xf2\xbf\xbf\xbf";
    case_6_22_25_ucfffe: true, b"\xf3\x8f\xbf\xbe";
    case_6_22_26_ucffff: true, b"\xf3\x8f\xbf\xbf";
    case_6_22_27_udfffe: true, b"\xf3\x9f\xbf\xbe";
    case_6_22_28_udffff: true, b"\xf3\x9f\xbf\xbf";
    case_6_22_29_uefffe: true, b"\xf3\xaf\xbf\xbe";
    case_6_22_30_ueffff: true, b"\xf3\xaf\xbf\xbf";
    case_6_22_31_ufffffe: true, b"\xf3\xbf\xbf\xbe";
    case_6_22_32_uffffff: true, b"\xf3\xbf\xbf\xbf";
    case_6_22_33_u10fffe: true, b"\xf4\x8f\xbf\xbe";
    case_6_22_34_u10ffff: true, b"\xf4\x8f\xbf\xbf";
}

// 6.23: the Specials block, the replacement character included, is valid.
vectors! {
    case_6_23_1_ufff9: true, b"\xef\xbf\xb9";
    case_6_23_2_ufffa: true, b"\xef\xbf\xba";
    case_6_23_3_ufffb: true, b"\xef\xbf\xbb";
    case_6_23_4_ufffc: true, b"\xef\xbf\xbc";
    case_6_23_5_ufffd: true, b"\xef\xbf\xbd";
    case_6_23_6_ufffe: true, b"\xef\xbf\xbe";
    case_6_23_7_uffff: true, b"\xef\xbf\xbf";
}
