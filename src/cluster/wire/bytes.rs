//! The wire's primitive encodings: LEB128 varints and length-prefixed UTF-8 written into a buffer, and read
//! back by [`Reader`], which checks every byte and says where a message ran out or went wrong.

use super::message::WireError;

/// Appends `v` as a LEB128 varint.
pub(super) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `s` with its length in front.
pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// A checked walk over bytes: every read says where it ran out or what was wrong.
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    /// The bytes.
    pub(super) bytes: &'a [u8],
    /// Where the next read starts.
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(WireError::Truncated { at: self.at })?;
        let got = &self.bytes[self.at..end];
        self.at = end;
        Ok(got)
    }

    pub(super) fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u64_le(&mut self) -> Result<u64, WireError> {
        let at = self.at;
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| WireError::Truncated { at })?;
        Ok(u64::from_le_bytes(bytes))
    }

    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(WireError::Overlong { at: start });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Overlong { at: start })
    }

    pub(super) fn positive(&mut self) -> Result<u64, WireError> {
        let at = self.at;
        match self.varint()? {
            0 => Err(WireError::Zero { at }),
            v => Ok(v),
        }
    }

    pub(super) fn text(&mut self, len: u64) -> Result<&'a str, WireError> {
        let at = self.at;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { at })?;
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Utf8 { at })
    }

    pub(super) fn str(&mut self) -> Result<&'a str, WireError> {
        let len = self.varint()?;
        self.text(len)
    }
}
