//! One address cannot lock others out, against the real daemon: unfinished handshakes count against their
//! address (`--max-connections-per-ip`, and a share of the WebSocket port's socket budget when that is off);
//! behind a trusted proxy the web port's cap on unfinished requests is the client's, from its PROXY header;
//! a web answer still being written counts against its address; an IPv6 /64 is one address.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::probe::{connect_from, eventually, metric};
use common::{upgrade_request, Daemon};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The status of the answer to a WebSocket upgrade sent (after `prefix`) from `local`; 0 when closed without
/// one.
fn upgrade_from(local: &str, ws: SocketAddr, prefix: &[u8]) -> (u16, TcpStream) {
    let mut s = connect_from(Some(ip(local)), ws, false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = prefix.to_vec();
    req.extend_from_slice(upgrade_request("").as_bytes());
    let _ = s.write_all(&req);
    (status_of(&mut s), s)
}

/// The status code of the answer on `s` (0 when it closed or timed out without one).
fn status_of(s: &mut TcpStream) -> u16 {
    let mut head = [0u8; 12];
    match s.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0),
        Err(_) => 0,
    }
}

/// `n` sockets from `local` to `addr` that send nothing (or only `prefix`).
fn silent(local: &str, addr: SocketAddr, n: usize, prefix: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect_from(Some(ip(local)), addr, false);
            if !prefix.is_empty() {
                s.write_all(prefix).unwrap();
            }
            s
        })
        .collect()
}

/// Of `socks`, how many the daemon answered with `status` (reading each for at most `wait`).
fn answered(socks: &mut [TcpStream], status: u16, wait: Duration) -> usize {
    socks
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(wait)).unwrap();
            status_of(s)
        })
        .filter(|&got| got == status)
        .count()
}

#[test]
fn unfinished_handshakes_count_against_the_per_address_limit() {
    let d = Daemon::start(&["--max-connections-per-ip", "2"]);
    // Two silent sockets hold 127.0.0.2's two places: a third is refused at once, not when it speaks.
    let _held = silent("127.0.0.2", d.ws, 2, b"");
    assert!(eventually(Duration::from_secs(2), || metric(d.http, "wschat_connections") == 0));
    let mut third = silent("127.0.0.2", d.ws, 1, b"");
    assert_eq!(answered(&mut third, 429, Duration::from_secs(5)), 1, "the third socket from 127.0.0.2");
    // Another address is served.
    assert_eq!(upgrade_from("127.0.0.3", d.ws, b"").0, 101);
    assert_eq!(metric(d.http, "wschat_per_ip_rejections_total"), 1);
}

#[test]
fn one_address_cannot_take_the_websocket_port_s_socket_budget() {
    // Budget: 10 connections + 1024 for handshakes in flight = 1034 sockets; an address's share of unfinished
    // handshakes is half of it (517), whatever --max-connections-per-ip says (off here).
    let d = Daemon::start(&["--max-connections", "10"]);
    let mut flood = silent("127.0.0.2", d.ws, 1100, b"");
    // The socket past its share is answered 429 at accept.
    let refused = answered(&mut flood[1000..], 429, Duration::from_millis(500));
    assert_eq!(refused, 100, "the sockets past 127.0.0.2's share are refused");
    let (status, _ok) = upgrade_from("127.0.0.3", d.ws, b"");
    assert_eq!(status, 101, "another address is still admitted");
    assert!(metric(d.http, "wschat_per_ip_rejections_total") >= 100);
    drop(flood);
}

#[test]
fn behind_a_proxy_header_the_web_port_caps_the_client_not_the_proxy() {
    // 127.0.0.1 is the proxy (as HAProxy with send-proxy-v2 would be); each connection names its client.
    let d = Daemon::start(&["--proxy-protocol", "--trust-proxy", "127.0.0.1/32"]);
    let header = |client: &str| format!("PROXY TCP4 {client} 127.0.0.1 40000 55151\r\n").into_bytes();
    // One client holds 300 idle connections: its 9th and later are refused (503), so the web port's 256
    // sockets are not all taken.
    let mut idle = silent("127.0.0.1", d.http, 300, &header("198.51.100.7"));
    let refused = answered(&mut idle[8..], 503, Duration::from_secs(5));
    assert_eq!(refused, 292, "past 8 unfinished requests, 198.51.100.7 is refused");
    // Another client gets the page's health.
    let mut s = connect_from(Some(ip("127.0.0.1")), d.http, false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = header("198.51.100.8");
    req.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(&req).unwrap();
    assert_eq!(status_of(&mut s), 200, "another client behind the same proxy");
    drop(idle);
}

#[test]
fn an_ipv6_slash_64_counts_as_one_address() {
    let d = Daemon::start(&["--proxy-protocol", "--trust-proxy", "127.0.0.1/32", "--max-connections-per-ip", "1"]);
    let v6 = |client: &str| format!("PROXY TCP6 {client} 2001:db8::ff 40000 7272\r\n").into_bytes();
    let (first, _a) = upgrade_from("127.0.0.1", d.ws, &v6("2001:db8:1:2::1"));
    assert_eq!(first, 101);
    let (same_64, _b) = upgrade_from("127.0.0.1", d.ws, &v6("2001:db8:1:2:ffff:ffff:ffff:fffe"));
    assert_eq!(same_64, 429, "another address of the same /64");
    let (other_64, _c) = upgrade_from("127.0.0.1", d.ws, &v6("2001:db8:1:3::1"));
    assert_eq!(other_64, 101, "the next /64 is another client");
}

#[test]
fn a_web_answer_still_being_written_counts_against_its_address() {
    let dir = std::env::temp_dir().join(format!("wschat-answer-counted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), vec![b'x'; 8 << 20]).unwrap();
    let d = Daemon::start(&["--web-root", dir.to_str().unwrap(), "--max-web-pending-per-ip", "4"]);
    // Four clients that ask for 8 MiB and never read: their answers stay unwritten, and count.
    let get = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..4).map(|_| connect_from(Some(ip("127.0.0.2")), d.http, true)).collect();
    for s in &mut slow {
        s.write_all(get).unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || metric(d.http, "wschat_http_requests_total") >= 4));
    let mut fifth = connect_from(Some(ip("127.0.0.2")), d.http, false);
    fifth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    fifth.write_all(get).unwrap();
    assert_eq!(status_of(&mut fifth), 503, "a fifth request while four answers are still being written");
    // Another address is served.
    let mut other = connect_from(Some(ip("127.0.0.3")), d.http, false);
    other.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(status_of(&mut other), 200);
    drop(slow);
    let _ = std::fs::remove_dir_all(&dir);
}
