//! The opening-handshake parsers on arbitrary bytes: the server's request parser and the client's
//! response parser.
//!
//! Checked: no panic; a complete request reports a head length within the input, parsing just the head
//! gives the same request, every proper prefix of it is "need more" (the parser is resumable), and the
//! answers built from it are well-formed; a refusal maps to an HTTP error status with a complete response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::handshake::{accept_key, parse_request, parse_response, switching_protocols, MAX_HEAD_BYTES};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(None) => assert!(data.len() <= MAX_HEAD_BYTES, "an oversized partial head must be refused"),
        Ok(Some((req, head_len))) => {
            assert!(head_len <= data.len() && head_len <= MAX_HEAD_BYTES);
            assert_eq!(parse_request(&data[..head_len]), Ok(Some((req.clone(), head_len))));
            // Resumable: a head cut anywhere asks for more. Check a bounded sample of cut points.
            let step = (head_len / 64).max(1);
            for cut in (0..head_len).step_by(step) {
                assert_eq!(parse_request(&data[..cut]), Ok(None), "prefix of {cut} bytes");
            }
            let accept = accept_key(&req.key);
            assert_eq!(accept.len(), 28);
            let response = switching_protocols(&req.key);
            assert!(response.starts_with(b"HTTP/1.1 101 ") && response.ends_with(b"\r\n\r\n"));
            // The client side accepts what the server side produced.
            assert_eq!(parse_response(&response, &req.key), Ok(Some(response.len())));
        }
        Err(e) => {
            let status = e.status();
            assert!((400..500).contains(&status), "{status}");
            let response = e.response();
            assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        }
    }
    // The client's response parser on the same bytes, with a fixed key.
    if let Ok(Some(n)) = parse_response(data, "dGhlIHNhbXBsZSBub25jZQ==") {
        assert!(n <= data.len());
    }
});
