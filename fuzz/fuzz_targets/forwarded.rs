//! `Forwarded` and `X-Forwarded-For` on arbitrary header values, and on arbitrary request heads.
//!
//! Input layout: byte 0 picks the peer and the trusted set; the rest is split at its first two newlines
//! into a `Forwarded` value, an `X-Forwarded-For` value and a request head. Checked: no panic; the address
//! is canonical (never IPv4-mapped IPv6); an untrusted peer is the answer whatever the headers say; with no
//! forwarding header the peer is the answer; the answer is the peer, a trusted proxy, or an address that
//! one of the headers names.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use wschat::proxy::{client_addr, client_addr_of_head, Origin, TrustedProxies};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let peer = match pick & 3 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        2 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let trusted = match (pick >> 2) & 3 {
        0 => Ok(TrustedProxies::default()),
        1 => TrustedProxies::parse(["10.0.0.0/8"]),
        2 => TrustedProxies::parse(["10.0.0.0/8", "::1/128", "2001:db8::/32"]),
        _ => TrustedProxies::parse(["0.0.0.0/0", "::/0"]),
    }
    .expect("valid blocks");
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let forwarded = parts.next().unwrap_or_default();
    let xff = parts.next().unwrap_or_default();
    let head = parts.next().unwrap_or_default();
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if pick & 0x10 != 0 {
        headers.push(("Forwarded", forwarded));
    }
    if pick & 0x20 != 0 {
        headers.push(("x-forwarded-for", xff));
    }
    headers.push(("Host", b"example"));
    let got = client_addr(peer, &trusted, headers.iter().copied());
    assert_eq!(got.addr, got.addr.to_canonical(), "canonical: {got:?}");
    let canonical_peer = peer.to_canonical();
    if !trusted.is_trusted(canonical_peer) || headers.len() == 1 {
        assert_eq!((got.addr, got.origin), (canonical_peer, Origin::Peer), "{got:?}");
    }
    if got.addr != canonical_peer && !trusted.is_trusted(got.addr) {
        assert_eq!(got.origin, Origin::Header, "{got:?}");
    }
    let from_head = client_addr_of_head(peer, &trusted, head);
    assert!(from_head == peer || from_head == from_head.to_canonical(), "{from_head}");
});
