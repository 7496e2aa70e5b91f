//! The PROXY protocol parser (v1 text, v2 binary) on arbitrary bytes, as a connection's first bytes.
//!
//! Checked: no panic; a header takes no more bytes than were given, and no prefix of those bytes is
//! taken for a header or refused (the parser asks for more until the header is whole); a header encoded
//! again by the crate's encoder parses back to itself, taking all of its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::proxy::{parse, Version};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((n, header))) = parse(data) else { return };
    assert!(n > 0 && n <= data.len(), "took {n} of {} bytes", data.len());
    assert_eq!(parse(&data[..n]), Ok(Some((n, header))), "the header alone");
    for cut in 0..n {
        assert_eq!(parse(&data[..cut]), Ok(None), "a prefix of {cut} bytes of a {n}-byte header");
    }
    if let Some(e) = header.endpoints {
        assert_eq!(e.source.is_ipv4(), e.destination.is_ipv4(), "one family: {header:?}");
    }
    let again = header.encode();
    assert_eq!(parse(&again), Ok(Some((again.len(), header))), "re-encoded {header:?}");
    if header.version == Version::V1 {
        assert!(n <= wschat::proxy::protocol::V1_MAX_LEN);
    }
});
