//! In-place unmasking of WebSocket payloads (RFC 6455 section 5.3): a word-at-a-time fast path and the
//! plain byte loop it is tested against.

/// XORs `buf` with the 4-byte masking `key`, where `buf[0]` is payload byte number `offset` of its frame,
/// so a payload that arrives in several reads can be unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotated_key(key, offset);
    // Whole 8-byte words first, then the bytes past the last whole word (fewer than 8) one at a time.
    let tail_len = buf.len() % 8;
    let (words, tail) = buf.split_at_mut(buf.len() - tail_len);
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    for chunk in words.chunks_exact_mut(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // `words.len()` is a multiple of 8 and therefore of 4: the tail starts at key phase 0.
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The reference implementation, one byte at a time: what the tests hold [`apply_mask`] to, and the codec
/// benchmark's baseline (public for benches/codec.rs).
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}

/// The key as seen from payload byte `offset`.
fn rotated_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let r = offset & 3;
    [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn masking_twice_is_identity() {
        let original: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_eq!(data, original);
    }

    proptest! {
        #[test]
        fn fast_path_matches_byte_loop(data in proptest::collection::vec(any::<u8>(), 0..300),
                                        key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key, offset);
            apply_mask_bytewise(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn split_unmasking_matches_whole(data in proptest::collection::vec(any::<u8>(), 0..200),
                                         key in any::<[u8; 4]>(), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, parts);
        }
    }
}
