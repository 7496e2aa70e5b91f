//! Raw broadcast peer: every text message to every client, sender included, verbatim. One thread
//! (current_thread runtime), a reader task and a batching writer task per client.
//! Usage: peer-tokio-tungstenite [ADDR] (default 127.0.0.1:9001; port 0 picks one). Prints
//! `peer listening ws=ADDR` once bound.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<u64, UnboundedSender<Message>>>>;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        println!("peer listening ws={}", listener.local_addr().expect("local addr"));
        let peers = Peers::default();
        let mut next_id = 0;
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                next_id += 1;
                tokio::spawn(client(next_id, stream, peers.clone()));
            }
        }
    });
}

async fn client(id: u64, stream: TcpStream, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = unbounded_channel::<Message>();
    peers.lock().unwrap().insert(id, tx);
    // Writer: feed everything queued, then one flush (one write syscall for the batch).
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let mut ok = sink.feed(msg).await.is_ok();
            while let (true, Ok(msg)) = (ok, rx.try_recv()) {
                ok = sink.feed(msg).await.is_ok();
            }
            if !ok || sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        match msg {
            // Message clones share the payload (Bytes): the text is not copied per recipient.
            Message::Text(_) => peers.lock().unwrap().values().for_each(|tx| drop(tx.send(msg.clone()))),
            Message::Close(_) => break,
            _ => {}
        }
    }
    peers.lock().unwrap().remove(&id);
    writer.abort();
}
