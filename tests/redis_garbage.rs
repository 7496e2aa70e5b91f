//! A Redis that answers garbage cannot take a cluster node down: a fake server (a plain `TcpListener` of
//! this test, on a free loopback port) answers every command with a reply of arrays nested 31 000 deep
//! (about 120 KiB, enough to overflow a recursive decoder's stack). The node refuses it before decoding,
//! drops the connection, counts it, says why on `/healthz`, and retries with its back-off; once a real
//! redis-server takes the port over, the node joins and chats.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::cluster::{health, node, send};
use common::probe::{eventually, login, metric};
use common::redis::RedisServer;
use common::{skip_or_fail, Daemon};
use serde_json::json;

/// The fake server: accepts on `listener` until `stop`, answering each read of a command with `reply`;
/// counts the connections it took.
fn fake_redis(listener: TcpListener, reply: Vec<u8>, stop: Arc<AtomicBool>, conns: Arc<AtomicUsize>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("non-blocking listener");
        let mut clients: Vec<JoinHandle<()>> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    conns.fetch_add(1, Ordering::SeqCst);
                    let (reply, stop) = (reply.clone(), stop.clone());
                    clients.push(std::thread::spawn(move || answer(stream, &reply, &stop)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        drop(listener);
        for c in clients {
            let _ = c.join();
        }
    })
}

fn answer(mut stream: TcpStream, reply: &[u8], stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            // The node hangs up as soon as it has seen enough of the reply: a failed write ends this client.
            Ok(_) => {
                if stream.write_all(reply).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_reply_nested_31_000_deep_leaves_the_node_up_and_it_joins_once_redis_is_real() {
    let test = "a_reply_nested_31_000_deep_leaves_the_node_up_and_it_joins_once_redis_is_real";
    if !RedisServer::installed() {
        return skip_or_fail(test, "redis-server (Debian package redis-server)");
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    let mut reply = b"*1\r\n".repeat(31_000);
    reply.extend_from_slice(b":1\r\n");
    let (stop, conns) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let fake = fake_redis(listener, reply, stop.clone(), conns.clone());

    let url = format!("redis://127.0.0.1:{port}");
    let mut a = Daemon::start(&["--cluster", &url]);
    // Both links (commands and subscription) are refused, then refused again after their back-off.
    let seen = eventually(Duration::from_secs(15), || metric(a.http, "wschat_cluster_garbage_total") >= 4);
    assert!(seen, "garbage counted: {}", metric(a.http, "wschat_cluster_garbage_total"));
    assert!(conns.load(Ordering::SeqCst) >= 4, "the node reconnected after each refusal");
    assert!(a.child.try_wait().expect("wait").is_none(), "the node is still running");
    let (status, reason) = health(a.http);
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("link to Redis is down: bad RESP from the server: arrays nested deeper than 8"),
        "{reason}"
    );
    assert_eq!(metric(a.http, "wschat_cluster_up"), 0);

    stop.store(true, Ordering::SeqCst);
    fake.join().expect("the fake server's thread");
    let Some(redis) = RedisServer::start_on(port) else { return skip_or_fail(test, "redis-server") };
    assert!(eventually(Duration::from_secs(20), || health(a.http).0 == 200), "joined: {:?}", health(a.http));
    assert!(a.child.try_wait().expect("wait").is_none());
    let b = node(&redis, &[]);
    let (mut x, _) = login(a.ws, "x", "r");
    let (mut y, _) = login(b.ws, "y", "r");
    assert_eq!(x.read_json()["type"], "login", "y's login reaches x on the other node");
    send(&mut y, json!({"type":"say","to_uid":"all","content":"hello through a real Redis"}));
    assert_eq!(x.read_json()["content"], "hello through a real Redis");
    a.terminate(Duration::from_secs(5));
}
