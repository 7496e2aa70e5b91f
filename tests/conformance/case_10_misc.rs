//! Category 10: a message auto-fragmented by the client is echoed whole.

use super::*;

#[test]
fn case_10_1_1_text_65536_bytes_in_1300_byte_fragments() {
    let mut c = Client::new();
    let data = text_of(65536);
    c.send(&fragments(TEXT, &data, 1300));
    c.expect(TEXT, &data);
    c.close_normally();
}
