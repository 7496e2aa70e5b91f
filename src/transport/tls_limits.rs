//! What a TLS peer may send before the connection is given up, and why it was: a ClientHello no larger than
//! a real client's, a bounded handshake, and after it no stream of records that cost decryption and carry no
//! data. Pure bookkeeping: [`super::TlsStream`] feeds it what each read used and yielded.

use std::fmt;

/// The first byte of a TLS handshake record (content type 22).
pub(super) const HANDSHAKE_RECORD: u8 = 0x16;

/// The handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

/// Largest ClientHello taken. Browsers send under 2 KiB (a post-quantum key share included); rustls would
/// take 64 KiB, and a connection announcing that much and then falling silent would hold it all.
const MAX_CLIENT_HELLO: u64 = 8 * 1024;

/// Ciphertext a client may send before its handshake is done (every flight together, held bytes included):
/// what an unfinished handshake can cost in buffers. Real handshakes send 2–3 KiB.
const MAX_HANDSHAKE_BYTES: u64 = 12 * 1024;

/// After the handshake, ciphertext that carries no plaintext (record headers and tags, empty records,
/// KeyUpdate messages) may exceed the plaintext received by this much plus [`OVERHEAD_PER_PLAIN_BYTE`]
/// per plaintext byte; past it the connection is an abuse (records that cost decryption and give nothing).
const BARREN_ALLOWANCE: u64 = 16 * 1024;

/// Overhead allowed per plaintext byte: a record of one byte costs 22 bytes of header, tag and type.
const OVERHEAD_PER_PLAIN_BYTE: u64 = 32;

/// Why a TLS connection was given up.
#[derive(Debug)]
pub enum TlsFailure {
    /// A plain HTTP request came to a TLS port (answered 400 in plain text).
    PlainHttp,
    /// The first byte was neither a TLS handshake record nor a letter of an HTTP method.
    NotTls(u8),
    /// The ClientHello or the client's handshake flights were larger than any real client's.
    Oversized {
        /// Bytes announced or received.
        bytes: u64,
        /// The bound.
        limit: u64,
    },
    /// After the handshake, records without plaintext past the allowance (empty records, KeyUpdates).
    Abuse {
        /// Ciphertext received beyond its plaintext.
        overhead: u64,
        /// Plaintext received.
        plaintext: u64,
    },
    /// rustls refused what the peer sent (during the handshake or after), and sent an alert.
    Refused {
        /// Whether the handshake was still going on.
        in_handshake: bool,
        /// rustls's reason.
        error: rustls::Error,
    },
}

impl TlsFailure {
    /// The `reason` label of `wschat_tls_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsFailure::PlainHttp => "plain_http",
            TlsFailure::NotTls(_) => "not_tls",
            TlsFailure::Oversized { .. } => "oversized",
            TlsFailure::Abuse { .. } => "abuse",
            TlsFailure::Refused { in_handshake: true, .. } => "handshake",
            TlsFailure::Refused { in_handshake: false, .. } => "protocol",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::PlainHttp => {
                write!(f, "plain HTTP request on a TLS port (answered 400: use https:// or wss://)")
            }
            TlsFailure::NotTls(b) => write!(f, "not a TLS handshake (first byte 0x{b:02x})"),
            TlsFailure::Oversized { bytes, limit } => {
                write!(f, "TLS handshake too large ({bytes} bytes, at most {limit} taken)")
            }
            TlsFailure::Abuse { overhead, plaintext } => write!(
                f,
                "TLS records without data: {overhead} bytes beyond {plaintext} bytes of plaintext (empty records or \
                 key updates)"
            ),
            TlsFailure::Refused { in_handshake: true, error } => write!(f, "TLS handshake failed: {error}"),
            TlsFailure::Refused { in_handshake: false, error } => write!(f, "TLS error: {error}"),
        }
    }
}

/// A ClientHello that announces more than [`MAX_CLIENT_HELLO`] in the stream's first bytes (a record header:
/// type, version, 16-bit length; then the handshake header: type, 24-bit length), when the first record
/// holds that header whole; anything else (a fragment too short to tell, another message) is rustls's to judge.
pub(super) fn client_hello_too_large(first: &[u8]) -> Option<TlsFailure> {
    let record_len = first.get(3..5).map_or(0, |l| u16::from_be_bytes([l[0], l[1]]));
    match first.get(5..9).filter(|_| record_len >= 4) {
        Some(&[CLIENT_HELLO, a, b, c]) => {
            let announced = u64::from(u32::from_be_bytes([0, a, b, c]));
            (announced > MAX_CLIENT_HELLO)
                .then_some(TlsFailure::Oversized { bytes: announced, limit: MAX_CLIENT_HELLO })
        }
        _ => None,
    }
}

/// What a peer has sent: ciphertext during the handshake, then plaintext and the overhead beyond it.
#[derive(Debug, Default)]
pub(super) struct InputLedger {
    /// Ciphertext used during the handshake ([`MAX_HANDSHAKE_BYTES`]).
    handshake_in: u64,
    /// Plaintext received.
    plain_in: u64,
    /// Ciphertext received since the handshake beyond its plaintext ([`BARREN_ALLOWANCE`]).
    overhead_in: u64,
}

impl InputLedger {
    /// Counts plaintext decrypted.
    pub(super) fn plaintext(&mut self, bytes: usize) {
        self.plain_in += bytes as u64;
    }

    /// Plaintext received so far.
    pub(super) fn plain_in(&self) -> u64 {
        self.plain_in
    }

    /// A read during the handshake used `used` bytes and left `held` waiting; refused past the bound while
    /// the handshake is `still_handshaking`.
    pub(super) fn handshake_read(
        &mut self,
        used: usize,
        held: usize,
        still_handshaking: bool,
    ) -> Result<(), TlsFailure> {
        self.handshake_in += used as u64;
        let taken = self.handshake_in + held as u64;
        if still_handshaking && taken > MAX_HANDSHAKE_BYTES {
            return Err(TlsFailure::Oversized { bytes: taken, limit: MAX_HANDSHAKE_BYTES });
        }
        Ok(())
    }

    /// A read after the handshake used `used` bytes of ciphertext that yielded `plain` bytes.
    pub(super) fn traffic_read(&mut self, used: usize, plain: u64) -> Result<(), TlsFailure> {
        self.overhead_in += (used as u64).saturating_sub(plain);
        if self.overhead_in > BARREN_ALLOWANCE + self.plain_in.saturating_mul(OVERHEAD_PER_PLAIN_BYTE) {
            return Err(TlsFailure::Abuse { overhead: self.overhead_in, plaintext: self.plain_in });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_judged_on_its_announced_length() {
        let hello = |announced: u32, record_len: u16| {
            let mut v = vec![HANDSHAKE_RECORD, 3, 1];
            v.extend_from_slice(&record_len.to_be_bytes());
            v.push(CLIENT_HELLO);
            v.extend_from_slice(&announced.to_be_bytes()[1..]);
            v
        };
        assert!(client_hello_too_large(&hello(2000, 2004)).is_none());
        assert!(matches!(client_hello_too_large(&hello(0xffff, 0x4000)), Some(TlsFailure::Oversized { .. })));
        // The header does not fit the first record: nothing can be told from it.
        assert!(client_hello_too_large(&hello(0xffff, 1)).is_none());
        assert!(client_hello_too_large(&[HANDSHAKE_RECORD, 3]).is_none());
    }

    #[test]
    fn records_without_plaintext_are_allowed_a_little_then_refused() {
        let mut l = InputLedger::default();
        assert!(l.handshake_read(3000, 0, false).is_ok());
        // A kilobyte of data in records of a byte each costs 22 KB of overhead: fine.
        l.plaintext(1000);
        assert!(l.traffic_read(23_000, 1000).is_ok());
        // Empty records and key updates past the allowance are not.
        let mut refused = false;
        for _ in 0..10_000 {
            if l.traffic_read(49, 0).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
        // An unfinished handshake past its bound is refused; a finished one is not judged on it.
        assert!(InputLedger::default().handshake_read(10_000, 3_000, true).is_err());
        assert!(InputLedger::default().handshake_read(10_000, 3_000, false).is_ok());
    }
}
