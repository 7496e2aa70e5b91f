//! The client's address from `X-Forwarded-For` and `Forwarded` (RFC 7239) request headers, believed only from
//! a trusted peer.
//!
//! Each header is a list of hops, the client first and every proxy appending the address it received the
//! request from; several lines of one header are one list in order. Only the right end is written by proxies
//! we trust, so the list is walked from the right: addresses of trusted proxies are passed over and the first
//! untrusted address is the client. Decisions:
//!
//! - **Untrusted peer**: the headers are ignored, the client is the peer (anyone can write them).
//! - **Every entry trusted**: the left-most entry (the request came from inside).
//! - **An unusable entry stops the walk**: a malformed entry, `unknown` or an obfuscated identifier (`_hidden`)
//!   hides who is behind it, so nothing left of it is believed; the answer is the nearest address already
//!   walked (a trusted proxy vouched for by the ones right of it), or the peer when the right-most entry is
//!   itself unusable.
//! - **Both headers present**: each is resolved on its own; when they agree that address is taken, when they
//!   disagree the peer is. A trusted proxy usually maintains one of the two, and a client can send the other
//!   forged: preferring either header blindly would let that forgery through, while a forged header that
//!   disagrees with the maintained one only makes the client count as its proxy.
//! - Ports and brackets are dropped; empty list elements are ignored (RFC 9110 §5.6.1); every address is
//!   returned canonical (`::ffff:1.2.3.4` becomes `1.2.3.4`) so one client has one address in logs and limits.
//! - `X-Forwarded-For` entries may be `1.2.3.4`, `1.2.3.4:port`, `2001:db8::1`, `[2001:db8::1]` or
//!   `[2001:db8::1]:port`. In `Forwarded` only the `for` parameter is read, its node as RFC 7239 §6 writes it
//!   (IPv6 only in brackets), quoted or not (an unquoted `for=[::1]:80` is taken though the RFC wants quotes);
//!   an element without `for`, or with it twice, is unusable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cidr::TrustedProxies;

/// Where a [`ClientAddr`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The peer itself: it is not trusted, or it is trusted and sent no forwarding header.
    Peer,
    /// The right-most untrusted entry of a forwarding header.
    Header,
    /// Every entry was a trusted proxy: the left-most one.
    AllTrusted,
    /// An unusable entry stopped the walk: the nearest trusted hop before it, or the peer.
    Stopped,
    /// `Forwarded` and `X-Forwarded-For` disagreed: the peer.
    Conflict,
}

/// A client's address and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address, canonical (an IPv4-mapped IPv6 address is given as IPv4).
    pub addr: IpAddr,
    /// Where it came from.
    pub origin: Origin,
}

/// One entry of a forwarding header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    /// An address (canonical).
    Addr(IpAddr),
    /// Malformed, `unknown`, obfuscated, or a `Forwarded` element without one `for`.
    Unusable,
}

/// The client's address behind `peer` given the request head's headers as (name, value) pairs (httparse's
/// `Header` as `(h.name, h.value)`); names are matched case-insensitively, other headers are skipped.
pub fn client_addr<'a>(
    peer: IpAddr,
    trusted: &TrustedProxies,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> ClientAddr {
    let peer = peer.to_canonical();
    if !trusted.is_trusted(peer) {
        return ClientAddr { addr: peer, origin: Origin::Peer };
    }
    let mut forwarded = Vec::new();
    let mut xff = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("forwarded") {
            forwarded_hops(value, &mut forwarded);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff_hops(value, &mut xff);
        }
    }
    match (forwarded.is_empty(), xff.is_empty()) {
        (true, true) => ClientAddr { addr: peer, origin: Origin::Peer },
        (false, true) => walk(peer, trusted, &forwarded),
        (true, false) => walk(peer, trusted, &xff),
        (false, false) => {
            let (a, b) = (walk(peer, trusted, &forwarded), walk(peer, trusted, &xff));
            if a.addr == b.addr {
                a
            } else {
                ClientAddr { addr: peer, origin: Origin::Conflict }
            }
        }
    }
}

/// Walks `hops` from the right behind the trusted `peer`.
fn walk(peer: IpAddr, trusted: &TrustedProxies, hops: &[Hop]) -> ClientAddr {
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match *hop {
            Hop::Addr(a) if trusted.is_trusted(a) => nearest = a,
            Hop::Addr(a) => return ClientAddr { addr: a, origin: Origin::Header },
            Hop::Unusable => return ClientAddr { addr: nearest, origin: Origin::Stopped },
        }
    }
    ClientAddr { addr: nearest, origin: if hops.is_empty() { Origin::Peer } else { Origin::AllTrusted } }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Appends the entries of one `X-Forwarded-For` value.
fn xff_hops(value: &[u8], hops: &mut Vec<Hop>) {
    for entry in value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty()) {
        let addr = std::str::from_utf8(entry).ok().and_then(|s| node(s, true));
        hops.push(addr.map_or(Hop::Unusable, Hop::Addr));
    }
}

/// The address of a node (`1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, and `::1` when `bare_v6`), or None for
/// anything else (`unknown`, `_obfuscated`, garbage). An obfuscated port (`:_p1`) is accepted and ignored.
fn node(s: &str, bare_v6: bool) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let a: Ipv6Addr = inside.parse().ok()?;
        if !after.is_empty() {
            port(after.strip_prefix(':')?)?;
        }
        return Some(IpAddr::V6(a).to_canonical());
    }
    if bare_v6 {
        if let Ok(a) = s.parse::<Ipv6Addr>() {
            return Some(IpAddr::V6(a).to_canonical());
        }
    }
    let (host, p) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let a: Ipv4Addr = host.parse().ok()?;
    if let Some(p) = p {
        port(p)?;
    }
    Some(IpAddr::V4(a))
}

/// Checks a node's port: 1 to 5 digits up to 65535, or `_` and an obfuscated identifier.
fn port(p: &str) -> Option<()> {
    if let Some(obf) = p.strip_prefix('_') {
        let ok = !obf.is_empty() && obf.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        return ok.then_some(());
    }
    let ok = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().ok()? <= 65535;
    ok.then_some(())
}

/// Appends the elements of one `Forwarded` value; a structural error (unterminated quote, stray character)
/// ends the value with one unusable entry, since nothing right of it can be placed.
fn forwarded_hops(value: &[u8], hops: &mut Vec<Hop>) {
    let mut p = Cursor { s: value, i: 0 };
    loop {
        p.skip_ows();
        match p.peek() {
            None => return,
            Some(b',') => {
                p.i += 1;
                continue;
            }
            Some(_) => {}
        }
        match p.element() {
            Some(hop) => hops.push(hop),
            None => {
                hops.push(Hop::Unusable);
                return;
            }
        }
        // `element` stops only at the end or at a comma.
        p.i += 1;
    }
}

/// A position in a `Forwarded` value.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.i += 1;
        }
    }

    /// One element up to the next top-level comma or the end: its `for` node, or None on a structural error.
    fn element(&mut self) -> Option<Hop> {
        let mut found: Option<Hop> = None;
        let mut twice = false;
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => {
                    self.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let start = self.i;
            while self.peek().is_some_and(is_tchar) {
                self.i += 1;
            }
            let name = &self.s[start..self.i];
            if name.is_empty() || self.peek() != Some(b'=') {
                return None;
            }
            self.i += 1;
            let value = if self.peek() == Some(b'"') { self.quoted()? } else { self.bare()? };
            if name.eq_ignore_ascii_case(b"for") {
                twice |= found.is_some();
                let addr = std::str::from_utf8(&value).ok().and_then(|s| node(s, false));
                found = Some(addr.map_or(Hop::Unusable, Hop::Addr));
            }
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => self.i += 1,
                Some(_) => return None,
            }
        }
        Some(if twice { Hop::Unusable } else { found.unwrap_or(Hop::Unusable) })
    }

    /// An unquoted value: visible characters other than `,` `;` `"` (`:` `[` `]` tolerated).
    fn bare(&mut self) -> Option<Vec<u8>> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_graphic() && !b",;\"".contains(&b)) {
            self.i += 1;
        }
        (self.i > start).then(|| self.s[start..self.i].to_vec())
    }

    /// A quoted string with its quoted pairs undone; None when unterminated or holding a control character.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let c = self.peek()?;
                    if c.is_ascii_control() && c != b'\t' {
                        return None;
                    }
                    out.push(c);
                    self.i += 1;
                }
                _ if b.is_ascii_control() && b != b'\t' => return None,
                _ => out.push(b),
            }
        }
    }
}

/// The client address a complete HTTP request head gives through a trusted proxy's forwarding headers, as
/// [`client_addr`] decides; `peer` itself when the peer is not trusted, the head does not parse, or it names
/// nobody. (For the web port, whose requests are parsed elsewhere; the upgrade collects its headers itself.)
pub fn client_addr_of_head(peer: IpAddr, trusted: &TrustedProxies, head: &[u8]) -> IpAddr {
    if !trusted.is_trusted(peer.to_canonical()) {
        return peer;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return peer;
    }
    client_addr(peer, trusted, req.headers.iter().map(|h| (h.name, h.value))).addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse(["10.0.0.0/8", "fd00::/8", "127.0.0.1"]).unwrap()
    }

    /// The client behind `peer` with the given headers.
    fn resolve(peer: &str, headers: &[(&str, &str)]) -> ClientAddr {
        client_addr(ip(peer), &trusted(), headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    fn at(addr: &str, origin: Origin) -> ClientAddr {
        ClientAddr { addr: ip(addr), origin }
    }

    fn xff_list(v: &str) -> Vec<Hop> {
        let mut h = Vec::new();
        xff_hops(v.as_bytes(), &mut h);
        h
    }

    fn fwd_list(v: &str) -> Vec<Hop> {
        let mut h = Vec::new();
        forwarded_hops(v.as_bytes(), &mut h);
        h
    }

    fn a(s: &str) -> Hop {
        Hop::Addr(ip(s))
    }

    const U: Hop = Hop::Unusable;

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let forged = [("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=1.2.3.4")];
        assert_eq!(resolve("203.0.113.9", &forged), at("203.0.113.9", Origin::Peer));
        assert_eq!(resolve("203.0.113.9", &forged[..1]), at("203.0.113.9", Origin::Peer));
        assert_eq!(resolve("203.0.113.9", &forged[1..]), at("203.0.113.9", Origin::Peer));
        assert_eq!(resolve("2001:db8::9", &forged), at("2001:db8::9", Origin::Peer));
        // Even an untrusted peer's mapped address is given canonical.
        assert_eq!(resolve("::ffff:203.0.113.9", &forged), at("203.0.113.9", Origin::Peer));
        // Nothing is trusted by default.
        let h = [("X-Forwarded-For", b"1.2.3.4".as_slice())];
        assert_eq!(client_addr(ip("10.0.0.1"), &TrustedProxies::default(), h), at("10.0.0.1", Origin::Peer));
    }

    #[test]
    fn trusted_peer_without_headers_is_the_client() {
        assert_eq!(resolve("10.0.0.1", &[]), at("10.0.0.1", Origin::Peer));
        assert_eq!(
            resolve("10.0.0.1", &[("Host", "x"), ("X-Forwarded-Host", "1.2.3.4")]),
            at("10.0.0.1", Origin::Peer)
        );
        // Empty values are no entries.
        assert_eq!(resolve("10.0.0.1", &[("X-Forwarded-For", ""), ("Forwarded", " , ")]), at("10.0.0.1", Origin::Peer));
    }

    #[test]
    fn xff_right_most_untrusted_entry() {
        assert_eq!(resolve("10.0.0.1", &[("X-Forwarded-For", "198.51.100.7")]), at("198.51.100.7", Origin::Header));
        // A forged left part is passed over: the right-most untrusted entry is the one our proxy saw.
        let chain = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2")];
        assert_eq!(resolve("10.0.0.1", &chain), at("198.51.100.7", Origin::Header));
        // Repeated lines are one list in order; names in any case.
        let lines = [("x-forwarded-for", "6.6.6.6"), ("X-FORWARDED-FOR", "198.51.100.7,10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &lines), at("198.51.100.7", Origin::Header));
        let lines = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &lines), at("198.51.100.7", Origin::Header));
        // Ports and brackets dropped, IPv6 bare or bracketed, mapped made canonical, tabs and empty elements.
        for (v, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            ("[::ffff:198.51.100.7]:80", "198.51.100.7"),
            ("\t198.51.100.7 ,, 10.1.1.1\t,", "198.51.100.7"),
            ("198.51.100.7, fd00::1, ::ffff:10.3.3.3", "198.51.100.7"),
        ] {
            assert_eq!(resolve("10.0.0.1", &[("X-Forwarded-For", v)]), at(want, Origin::Header), "{v}");
        }
        // From an IPv6 or a mapped trusted peer alike.
        assert_eq!(resolve("fd00::1", &chain), at("198.51.100.7", Origin::Header));
        assert_eq!(resolve("::ffff:10.0.0.1", &chain), at("198.51.100.7", Origin::Header));
    }

    #[test]
    fn all_trusted_gives_the_left_most() {
        let v = [("X-Forwarded-For", "10.9.9.9, 10.1.1.1, fd00::2")];
        assert_eq!(resolve("127.0.0.1", &v), at("10.9.9.9", Origin::AllTrusted));
        let v = [("X-Forwarded-For", "::ffff:10.9.9.9")];
        assert_eq!(resolve("127.0.0.1", &v), at("10.9.9.9", Origin::AllTrusted));
        let v = [("Forwarded", "for=10.9.9.9;proto=https, for=\"[fd00::3]\"")];
        assert_eq!(resolve("127.0.0.1", &v), at("10.9.9.9", Origin::AllTrusted));
    }

    #[test]
    fn unusable_entries_stop_the_walk() {
        // Right-most entry unusable: the peer.
        for v in ["198.51.100.7, garbage", "198.51.100.7, unknown", "198.51.100.7, _hidden", "1.2.3.4, 1.2.3"] {
            assert_eq!(resolve("10.0.0.1", &[("X-Forwarded-For", v)]), at("10.0.0.1", Origin::Stopped), "{v}");
        }
        // Behind trusted hops: the nearest trusted hop, nothing left of the unusable entry is believed.
        let v = [("X-Forwarded-For", "198.51.100.7, unknown, 10.1.1.1, 10.2.2.2")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.1.1.1", Origin::Stopped));
        // Left of the untrusted client, garbage does not matter.
        let v = [("X-Forwarded-For", "garbage, 198.51.100.7, 10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &v), at("198.51.100.7", Origin::Header));
        // Bad ports, zones, stray brackets and non-UTF-8 bytes are unusable.
        for e in [
            "1.2.3.4:",
            "1.2.3.4:65536",
            "1.2.3.4:123456",
            "1.2.3.4:x",
            "1.2.3.4:80:80",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "[1.2.3.4]",
            "fe80::1%eth0",
            "01.2.3.4",
            "1.2.3.4 5.6.7.8",
        ] {
            assert_eq!(xff_list(e), vec![U], "{e}");
        }
        let mut h = Vec::new();
        xff_hops(b"198.51.100.7, \xff\xfe", &mut h);
        assert_eq!(h, vec![a("198.51.100.7"), U]);
    }

    #[test]
    fn forwarded_rfc_7239_examples() {
        // RFC 7239 §4 and §7.1 examples.
        assert_eq!(fwd_list("for=\"_gazonk\""), vec![U]);
        assert_eq!(fwd_list("For=\"[2001:db8:cafe::17]:4711\""), vec![a("2001:db8:cafe::17")]);
        assert_eq!(fwd_list("for=192.0.2.60;proto=http;by=203.0.113.43"), vec![a("192.0.2.60")]);
        assert_eq!(fwd_list("for=192.0.2.43, for=198.51.100.17"), vec![a("192.0.2.43"), a("198.51.100.17")]);
        assert_eq!(
            fwd_list("for=192.0.2.43,for=\"[2001:db8:cafe::17]\",for=unknown"),
            vec![a("192.0.2.43"), a("2001:db8:cafe::17"), U]
        );
        assert_eq!(fwd_list("for=unknown, for=192.0.2.43"), vec![U, a("192.0.2.43")]);
        assert_eq!(fwd_list("for=\"192.0.2.43:47011\""), vec![a("192.0.2.43")]);
        assert_eq!(fwd_list("for=\"[2001:db8:cafe::17]:_p4\""), vec![a("2001:db8:cafe::17")]);
        assert_eq!(fwd_list("for=_hidden, for=_SEVKISEK"), vec![U, U]);
        assert_eq!(fwd_list("for=UNKNOWN"), vec![U]);
    }

    #[test]
    fn forwarded_syntax() {
        // Quoted pairs, commas and semicolons inside quotes, OWS around elements and pairs, empty pairs.
        assert_eq!(fwd_list("for=\"192.0.2.\\43\""), vec![a("192.0.2.43")]);
        assert_eq!(fwd_list("by=\"a,b;c\";for=192.0.2.1"), vec![a("192.0.2.1")]);
        assert_eq!(
            fwd_list("  for=192.0.2.1 ; proto=https ;; ,\t, for=192.0.2.2 "),
            vec![a("192.0.2.1"), a("192.0.2.2")]
        );
        assert_eq!(fwd_list(",,"), vec![]);
        // Unquoted IPv6 in brackets is tolerated; bare IPv6 is not a node.
        assert_eq!(fwd_list("for=[2001:db8::1]:80"), vec![a("2001:db8::1")]);
        assert_eq!(fwd_list("for=\"2001:db8::1\""), vec![U]);
        // Elements without one `for` are unusable.
        assert_eq!(fwd_list("proto=https"), vec![U]);
        assert_eq!(fwd_list(";"), vec![U]);
        assert_eq!(fwd_list("for=192.0.2.1;for=192.0.2.2"), vec![U]);
        // Structural errors end the value with one unusable entry.
        for v in [
            "for=\"192.0.2.1",
            "for=192.0.2.1 x",
            "for 192.0.2.1",
            "for = 192.0.2.1",
            "=192.0.2.1",
            "for=",
            "for=;",
            "for=\"\\",
            "for=\"a\u{1}\"",
            "for=192.0.2.1\"x\"",
        ] {
            assert_eq!(fwd_list(v), vec![U], "{v:?}");
        }
        assert_eq!(fwd_list("for=192.0.2.1, for=\"x, for=192.0.2.2"), vec![a("192.0.2.1"), U]);
    }

    #[test]
    fn forwarded_resolution() {
        let v = [("Forwarded", "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, for=10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &v), at("2001:db8::7", Origin::Header));
        let v = [("Forwarded", "for=198.51.100.7"), ("forwarded", "for=_hidden;by=10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.0.0.1", Origin::Stopped));
        let v = [("Forwarded", "for=198.51.100.7, for=unknown, for=10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.1.1.1", Origin::Stopped));
        // A structural error in a later line still sits right of the earlier entries.
        let v = [("Forwarded", "for=198.51.100.7"), ("Forwarded", "for=\"10.1.1.1")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.0.0.1", Origin::Stopped));
    }

    #[test]
    fn both_headers_must_agree() {
        // A proxy maintaining both: they agree.
        let v = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7"), ("Forwarded", "for=198.51.100.7")];
        assert_eq!(resolve("10.0.0.1", &v), at("198.51.100.7", Origin::Header));
        // The proxy maintains X-Forwarded-For and the client forged Forwarded: they disagree, the peer.
        let v = [("Forwarded", "for=6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.0.0.1", Origin::Conflict));
        // The other way round.
        let v = [("Forwarded", "for=198.51.100.7"), ("X-Forwarded-For", "6.6.6.6")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.0.0.1", Origin::Conflict));
        // Agreement on a stop counts as agreement.
        let v = [("Forwarded", "for=unknown"), ("X-Forwarded-For", "unknown")];
        assert_eq!(resolve("10.0.0.1", &v), at("10.0.0.1", Origin::Stopped));
    }

    #[test]
    fn nodes() {
        assert_eq!(node("1.2.3.4", false), Some(ip("1.2.3.4")));
        assert_eq!(node("1.2.3.4:0", false), Some(ip("1.2.3.4")));
        assert_eq!(node("1.2.3.4:65535", false), Some(ip("1.2.3.4")));
        assert_eq!(node("1.2.3.4:_a.b-c_", false), Some(ip("1.2.3.4")));
        assert_eq!(node("1.2.3.4:_", false), None);
        assert_eq!(node("1.2.3.4:_a/b", false), None);
        assert_eq!(node("::1", false), None);
        assert_eq!(node("::1", true), Some(ip("::1")));
        assert_eq!(node("[::1]", false), Some(ip("::1")));
        assert_eq!(node("[::1]:", false), None);
        assert_eq!(node("[::1]:+80", false), None);
        assert_eq!(node("", true), None);
        assert_eq!(node("[]", true), None);
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(
            peer in proptest::array::uniform4(any::<u8>()),
            values in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..4),
        ) {
            let peer = IpAddr::from(peer);
            let t = TrustedProxies::parse(["0.0.0.0/1", "128.0.0.0/2", "::/1"]).unwrap();
            let headers: Vec<(&str, &[u8])> = values
                .iter()
                .map(|(f, v)| (if *f { "Forwarded" } else { "X-Forwarded-For" }, v.as_slice()))
                .collect();
            let got = client_addr(peer, &t, headers.iter().copied());
            if !t.is_trusted(peer) {
                prop_assert_eq!(got, ClientAddr { addr: peer, origin: Origin::Peer });
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "[ -~\t]{0,80}") {
            let _ = fwd_list(&s);
            let _ = xff_list(&s);
        }

        #[test]
        fn xff_chain_resolves_to_right_most_untrusted(
            chain in proptest::collection::vec(proptest::array::uniform4(any::<u8>()), 1..8),
        ) {
            let t = trusted();
            let text = chain.iter().map(|o| std::net::Ipv4Addr::from(*o).to_string()).collect::<Vec<_>>().join(", ");
            let got = client_addr(ip("10.0.0.1"), &t, [("X-Forwarded-For", text.as_bytes())]);
            let want = chain.iter().rev().map(|o| IpAddr::from(*o)).find(|a| !t.is_trusted(*a));
            match want {
                Some(w) => prop_assert_eq!(got, ClientAddr { addr: w, origin: Origin::Header }),
                None => prop_assert_eq!(got, ClientAddr { addr: IpAddr::from(chain[0]), origin: Origin::AllTrusted }),
            }
        }
    }

    #[test]
    fn a_request_head_names_the_client_only_through_a_trusted_peer() {
        let trusted = TrustedProxies::parse(["127.0.0.1/32"]).unwrap();
        let head = b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.4\r\n\r\n";
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(client_addr_of_head(proxy, &trusted, head), "198.51.100.4".parse::<IpAddr>().unwrap());
        assert_eq!(client_addr_of_head(other, &trusted, head), other, "an untrusted peer's header counts for nothing");
        assert_eq!(client_addr_of_head(proxy, &trusted, b"GET / HTTP/1.1\r\n"), proxy, "an unfinished head");
        assert_eq!(client_addr_of_head(proxy, &trusted, b"GET / HTTP/1.1\r\n\r\n"), proxy, "no header");
    }
}
