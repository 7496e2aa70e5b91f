//! Unguessable ids: 128 bits from the operating system's random source as 32 hex digits (resume session ids,
//! a cluster node's peer-link token).

/// A fresh id, or `None` when the random source fails.
pub fn hex128() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let (a, b) = (super::hex128().unwrap(), super::hex128().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
