use super::*;

fn limits(max_depth: usize, max_elements: usize, max_reply_bytes: usize) -> Limits {
    Limits { max_depth, max_elements, max_reply_bytes }
}

/// The ends of the replies in `input` fed `step` bytes at a time, and the error that stopped the scan.
fn scan(limits: Limits, input: &[u8], step: usize) -> (Vec<usize>, Option<ReplyError>) {
    let mut s = Scanner::new(limits);
    let mut ends = Vec::new();
    let mut have = 0;
    while have < input.len() {
        have = (have + step).min(input.len());
        loop {
            match s.next(&input[..have]) {
                Ok(Some(end)) => ends.push(end),
                Ok(None) => break,
                Err(e) => return (ends, Some(e)),
            }
        }
    }
    (ends, None)
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = b"*1\r\n".repeat(depth);
    v.extend_from_slice(b":1\r\n");
    v
}

/// An XRANGE answer of `n` entries whose payloads are `size` bytes.
fn xrange(n: usize, size: usize) -> Vec<u8> {
    let mut v = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        let id = format!("{}-0", i + 1);
        v.extend_from_slice(format!("*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nm\r\n${size}\r\n", id.len()).as_bytes());
        v.extend(std::iter::repeat_n(b'\r', size));
        v.extend_from_slice(b"\r\n");
    }
    v
}

#[test]
fn replies_end_where_they_end_whatever_the_reads() {
    let mut input = Vec::new();
    let mut want = Vec::new();
    for reply in [
        &b"+OK\r\n"[..],
        b"-ERR wrong\r\n",
        b":-42\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"$0\r\n\r\n",
        b"$4\r\na\r\nb\r\n",
        b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n+x\r\n",
        &xrange(3, 10),
        &nested(MAX_DEPTH - 1),
    ] {
        input.extend_from_slice(reply);
        want.push(input.len());
    }
    for step in [1, 2, 3, 7, 64, input.len()] {
        assert_eq!(scan(Limits::default(), &input, step), (want.clone(), None), "reads of {step}");
    }
}

#[test]
fn nesting_past_the_limit_is_refused_at_its_header() {
    assert_eq!(scan(Limits::default(), &nested(MAX_DEPTH), 5), (vec![MAX_DEPTH * 4 + 4], None));
    let deep = nested(31_000);
    for step in [1, 4096, deep.len()] {
        assert_eq!(scan(Limits::default(), &deep, step), (vec![], Some(ReplyError::TooDeep { limit: MAX_DEPTH })));
    }
    // Refused once the header past the limit is read, not once the reply is whole.
    let mut s = Scanner::new(Limits::default());
    assert_eq!(s.next(&deep[..(MAX_DEPTH + 1) * 4]), Err(ReplyError::TooDeep { limit: MAX_DEPTH }));
}

#[test]
fn absurd_lengths_are_refused_at_their_header() {
    let small = limits(8, 100, 1000);
    assert_eq!(scan(small, b"*101\r\n", 1).1, Some(ReplyError::TooManyElements { announced: 101, limit: 100 }));
    assert_eq!(scan(small, b"*2\r\n*60\r\n", 1).1, None, "62 of 100 is fine");
    assert_eq!(scan(small, b"*50\r\n*51\r\n", 3).1, Some(ReplyError::TooManyElements { announced: 101, limit: 100 }));
    assert_eq!(scan(small, b"$1001\r\n", 1).1, Some(ReplyError::BulkTooLarge { announced: 1001, limit: 1000 }));
    assert_eq!(scan(small, b"*1\r\n$995\r\n", 1).1, Some(ReplyError::ReplyTooLarge { limit: 1000 }));
    assert_eq!(scan(small, &[b'+'; 1200], 100).1, Some(ReplyError::ReplyTooLarge { limit: 1000 }));
    let huge = Limits::default();
    assert_eq!(
        scan(huge, b"*4294967296\r\n", 1).1,
        Some(ReplyError::TooManyElements { announced: 1 << 32, limit: MAX_ELEMENTS })
    );
    assert_eq!(
        scan(huge, b"$9223372036854775807\r\n", 1).1,
        Some(ReplyError::BulkTooLarge { announced: i64::MAX as u64, limit: MAX_REPLY_BYTES })
    );
    assert_eq!(scan(huge, b"$99999999999999999999\r\n", 1).1, Some(ReplyError::BadLength));
}

#[test]
fn bytes_that_are_not_resp2_are_refused() {
    let d = Limits::default();
    assert_eq!(scan(d, b"HTTP/1.1 400\r\n", 1).1, Some(ReplyError::BadType(b'H')));
    assert_eq!(scan(d, b"%1\r\n", 1).1, Some(ReplyError::BadType(b'%')), "a RESP3 map");
    assert_eq!(scan(d, b"$3\r\nabcdef\r\n", 1).1, Some(ReplyError::BadTerminator));
    for bad in [&b"*-2\r\n"[..], b"$+1\r\n", b"*\r\n", b"$ 1\r\n", b"*1x\r\n"] {
        assert_eq!(scan(d, bad, 1).1, Some(ReplyError::BadLength), "{bad:?}");
    }
    assert_eq!(scan(d, &[b':'; 40], 1).1, Some(ReplyError::LongLine));
    assert_eq!(scan(d, &[b'*'; 40], 40).1, Some(ReplyError::LongLine));
}

#[test]
fn a_large_reply_in_small_reads_ends_once_at_its_end() {
    // A fill of 2 000 entries of 1 KiB (about 2.1 MB, bodies of CRs) in 1 000-byte reads.
    let reply = xrange(2000, 1024);
    let mut s = Scanner::new(Limits::default());
    let mut have = 0;
    let mut ends = Vec::new();
    while have < reply.len() {
        have = (have + 1000).min(reply.len());
        if let Some(end) = s.next(&reply[..have]).unwrap() {
            ends.push(end);
        }
    }
    assert_eq!(ends, [reply.len()]);
}

#[test]
fn consumed_bytes_move_the_scan() {
    let mut s = Scanner::new(Limits::default());
    let mut input = b"+OK\r\n*2\r\n$3\r\nab".to_vec();
    assert_eq!(s.next(&input), Ok(Some(5)));
    assert_eq!(s.next(&input), Ok(None));
    input.drain(..5);
    s.consumed(5);
    input.extend_from_slice(b"c\r\n:1\r\n");
    assert_eq!(s.next(&input), Ok(Some(input.len())));
}
