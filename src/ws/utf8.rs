//! Incremental UTF-8 validation for text messages that arrive in pieces: fails as soon as a byte makes the
//! text invalid, and remembers an incomplete trailing sequence until the next piece.

use std::fmt;

/// The text is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8 in text")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Streaming validator state: the bytes of a code point that started in an earlier piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Validator {
    /// Validates the next piece of text; an error means no continuation could make the text valid.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the pending code point byte by byte: at most three more bytes.
            while self.partial_len > 0 && !input.is_empty() {
                self.partial[self.partial_len] = input[0];
                self.partial_len += 1;
                input = &input[1..];
                match std::str::from_utf8(&self.partial[..self.partial_len]) {
                    Ok(_) => self.partial_len = 0,
                    Err(e) if e.error_len().is_none() && self.partial_len < 4 => {}
                    Err(_) => return Err(InvalidUtf8),
                }
            }
            if self.partial_len > 0 {
                return Ok(());
            }
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the text: an unfinished code point is an error. Leaves the validator ready for the next text.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.partial_len > 0;
        self.partial_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for p in pieces {
            v.feed(p)?;
        }
        v.finish()
    }

    #[test]
    fn code_point_split_across_pieces() {
        let euro = "€".as_bytes(); // e2 82 ac
        assert_eq!(feed_all(&[&euro[..1], &euro[1..2], &euro[2..]]), Ok(()));
        assert_eq!(feed_all(&["猪".as_bytes(), &"猪".as_bytes()[..1], &"猪".as_bytes()[1..]]), Ok(()));
    }

    #[test]
    fn incomplete_at_end_is_invalid() {
        assert_eq!(feed_all(&[&[0xe2, 0x82]]), Err(InvalidUtf8));
    }

    #[test]
    fn fails_fast_on_the_first_impossible_byte() {
        // Autobahn 6.4.x style: a code point above U+10FFFF is rejected at its second byte.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), Ok(()));
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        // Surrogates and overlong forms.
        assert_eq!(Utf8Validator::default().feed(&[0xed, 0xa0]), Err(InvalidUtf8));
        assert_eq!(Utf8Validator::default().feed(&[0xc0]), Err(InvalidUtf8));
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xe0]), Ok(()));
        assert_eq!(v.feed(&[0x80]), Err(InvalidUtf8));
    }

    proptest! {
        #[test]
        fn any_split_agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let expected = std::str::from_utf8(&data).is_ok();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut v = Utf8Validator::default();
            let mut prev = 0;
            let mut ok = true;
            for c in cuts.into_iter().chain(std::iter::once(data.len())) {
                if v.feed(&data[prev..c]).is_err() { ok = false; break; }
                prev = c;
            }
            if ok { ok = v.finish().is_ok(); }
            prop_assert_eq!(ok, expected);
        }

        #[test]
        fn valid_text_split_anywhere(s in "\\PC{0,40}", cut in 0usize..200) {
            let b = s.as_bytes();
            let cut = cut.min(b.len());
            prop_assert_eq!(feed_all(&[&b[..cut], &b[cut..]]), Ok(()));
        }
    }
}
