//! Peer links (`--cluster-peer`): a node's messages sent straight to the other nodes over TCP, beside Redis.
//! Over Redis a message costs the cluster a hop through a third process (the node writes it, Redis wakes and
//! writes it to every subscriber, the sender wakes again for its own copy and the answer); over a peer link it
//! goes from the node that made it to the nodes that apply it. Redis keeps everything else: leases, the
//! streams that fill gaps, history, and the bus whenever a peer link is not up.
//!
//! Each node that listens puts `<address> <token>` under `{p}:node:{id}:peer` with its lease; a node connects
//! to every live node that advertises one, opens with the token ([`wire::Hello`]) and, once accepted, sends
//! its messages there. Links are one-way (the connecting node's messages); this table is sans-IO — the
//! reactor moves the bytes of link indices from [`PEER_BASE`] on, like the Redis links'.

pub mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use self::wire::{take_frames, write_frame, Hello, PeerError, ACCEPTED};
use crate::app::LinkRequest;

/// The first link index of peer links (below it: the Redis commands, bus and sentinel connections).
pub const PEER_BASE: usize = 3;

/// Peer links a node keeps at most, both ways (so a cluster of up to 17 nodes is fully meshed; past that,
/// messages to the nodes without a link go over the bus).
pub const MAX_PEER_LINKS: usize = 32;

/// A link whose connect or opening has not completed after this long is given up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The first wait before connecting to a node again after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest wait before connecting to a node again.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// `--cluster-peer`: where this node listens for the other nodes.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The address it listens on and advertises (a concrete IP; the port as bound).
    pub addr: SocketAddr,
    /// The bound listener, handed to the reactor once.
    pub listener: Option<Arc<std::net::TcpListener>>,
}

/// The figures of `wschat_cluster_peer_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Outgoing links open and accepted.
    pub links: u64,
    /// Messages sent over peer links (one per message, whatever the number of peers).
    pub sent_total: u64,
    /// Links refused or dropped: a bad opening, a peer that did not accept, one too slow to read.
    pub failures_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// The connect was asked of the reactor.
    Connecting,
    /// The opening line is written; `OK` awaited.
    Opened,
    /// Accepted: messages may go.
    Ready,
}

#[derive(Debug)]
enum Peer {
    Free,
    /// Dropped, its close not yet taken by the reactor: not handed out again before (a connection accepted
    /// meanwhile would get the index whose close is pending).
    Closing,
    /// This node's link to `node`.
    Out {
        node: u64,
        opening: Opening,
        since: Instant,
        out: Vec<u8>,
        answer: Vec<u8>,
    },
    /// A link from another node (`from` once its opening line was accepted).
    In {
        from: Option<u64>,
        since: Instant,
        buf: Vec<u8>,
        out: Vec<u8>,
    },
}

/// Who this node is to the nodes that open links to it, and what it takes from them.
#[derive(Debug)]
struct Identity {
    me: u64,
    prefix: String,
    token: String,
    /// The largest message sent or taken over a link.
    max_message: usize,
}

impl Identity {
    /// Whether an opening line is for this node, from another node of the same chat, with its token.
    fn accepts(&self, hello: &Hello) -> bool {
        // A constant-time comparison is not needed: the token is as secret as the Redis keys, and a wrong
        // guess costs the guesser a connection.
        hello.prefix == self.prefix && hello.to == self.me && hello.token == self.token && hello.from != self.me
    }
}

/// A node's peer links, sans-IO.
#[derive(Debug)]
pub struct Peers {
    id: Identity,
    /// Bytes waiting for a peer's socket past which the peer counts as too slow: its link is dropped and
    /// the bus carries the messages.
    out_cap: usize,
    links: Vec<Peer>,
    /// The link to each node, by node.
    outbound: HashMap<u64, usize>,
    /// Nodes whose address was asked of Redis and not answered yet.
    asked: HashSet<u64>,
    /// Nodes not to connect to before a time (a failure's back-off), with the next back-off.
    retry: HashMap<u64, (Instant, Duration)>,
    requests: Vec<LinkRequest>,
    stats: PeerStats,
}

impl Peers {
    /// The table of node `me` of the chat under `prefix`, whose links are opened with `token`; messages up
    /// to `max_message` bytes go over links, and a peer that leaves `out_cap` bytes unread is dropped.
    pub fn new(me: u64, prefix: &str, token: String, max_message: usize, out_cap: usize) -> Peers {
        Peers {
            id: Identity { me, prefix: prefix.to_string(), token, max_message },
            out_cap,
            links: (0..MAX_PEER_LINKS).map(|_| Peer::Free).collect(),
            outbound: HashMap::new(),
            asked: HashSet::new(),
            retry: HashMap::new(),
            requests: Vec::new(),
            stats: PeerStats::default(),
        }
    }

    /// The token other nodes must open a link with.
    pub fn token(&self) -> &str {
        &self.id.token
    }

    /// The figures for /metrics.
    pub fn stats(&self) -> PeerStats {
        let mut s = self.stats;
        s.links = self.links.iter().filter(|p| matches!(p, Peer::Out { opening: Opening::Ready, .. })).count() as u64;
        s
    }

    /// Takes the connects and closes asked since the last call.
    pub fn requests(&mut self, out: &mut Vec<LinkRequest>) {
        out.append(&mut self.requests);
        for peer in &mut self.links {
            if matches!(peer, Peer::Closing) {
                *peer = Peer::Free;
            }
        }
    }

    /// Whether `node`'s address should be asked of Redis now (it is then counted as asked).
    pub fn wants_address(&mut self, node: u64, now: Instant) -> bool {
        if node == self.id.me || self.outbound.contains_key(&node) || self.asked.contains(&node) {
            return false;
        }
        if self.retry.get(&node).is_some_and(|&(at, _)| now < at) {
            return false;
        }
        self.asked.insert(node)
    }

    /// Redis answered where `node` listens (`<address> <token>`, or nothing: it does not listen): a link is
    /// opened, or tried again later.
    pub fn address(&mut self, node: u64, value: Option<&[u8]>, now: Instant) {
        if !self.asked.remove(&node) || self.outbound.contains_key(&node) {
            return;
        }
        let parsed = value.and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| {
            let (addr, token) = v.split_once(' ')?;
            Some((addr.parse::<SocketAddr>().ok()?, token.to_string()))
        });
        let Some((addr, token)) = parsed else {
            // A node without --cluster-peer (or not registered yet): asked again after a back-off.
            self.back_off(node, now);
            return;
        };
        let Some(i) = self.free_link() else {
            debug!("cluster: no peer link left for node {node:016x}; its messages go over the bus");
            self.back_off(node, now);
            return;
        };
        let hello = Hello { prefix: self.id.prefix.clone(), from: self.id.me, to: node, token }.encode();
        self.links[i] = Peer::Out { node, opening: Opening::Connecting, since: now, out: hello, answer: Vec::new() };
        self.outbound.insert(node, i);
        self.requests.push(LinkRequest::Connect { link: PEER_BASE + i, addr });
    }

    /// A free link for a connection another node opened, if one is left.
    pub fn accepted(&mut self, now: Instant) -> Option<usize> {
        let i = self.free_link()?;
        self.links[i] = Peer::In { from: None, since: now, buf: Vec::new(), out: Vec::new() };
        Some(PEER_BASE + i)
    }

    /// Link `link`'s connect completed: its opening line goes out.
    pub fn connected(&mut self, link: usize) {
        if let Some(Peer::Out { opening: opening @ Opening::Connecting, .. }) = self.peer(link) {
            *opening = Opening::Opened;
        }
    }

    /// Bytes read from link `link`: the messages they complete are appended to `messages` with the node
    /// that sent them. A link that broke the protocol is closed (and `false` returned).
    pub fn input(&mut self, link: usize, bytes: &[u8], now: Instant, messages: &mut Vec<(u64, Vec<u8>)>) -> bool {
        let outcome = match link.checked_sub(PEER_BASE).and_then(|i| self.links.get_mut(i)) {
            Some(Peer::Out { node, opening, answer, .. }) => {
                let node = *node;
                match *opening {
                    Opening::Opened => {
                        answer.extend_from_slice(bytes);
                        if answer.len() < ACCEPTED.len() {
                            Ok(())
                        } else if answer.starts_with(ACCEPTED) {
                            *opening = Opening::Ready;
                            answer.clear();
                            self.retry.remove(&node);
                            info!("cluster: peer link to node {node:016x} up");
                            Ok(())
                        } else {
                            Err(PeerError::Refused)
                        }
                    }
                    // The accepting side sends nothing after OK; whatever else comes is not kept.
                    _ => Ok(()),
                }
            }
            Some(Peer::In { from, buf, out, .. }) => {
                // What stays buffered is bounded: an opening line over MAX_HELLO or a frame over `max` is
                // refused, so at most one partial frame waits.
                buf.extend_from_slice(bytes);
                Self::take_input(&self.id, from, buf, out, messages)
            }
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => true,
            Err(e) => {
                warn!("cluster: peer link {} dropped: {e}", link - PEER_BASE);
                self.stats.failures_total += 1;
                self.fail(link, now);
                false
            }
        }
    }

    /// An incoming link's buffer: its opening line checked once, then its whole messages cut out.
    fn take_input(
        id: &Identity,
        from: &mut Option<u64>,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        messages: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), PeerError> {
        let node = match *from {
            Some(node) => node,
            None => {
                let Some((hello, used)) = Hello::take(buf)? else { return Ok(()) };
                if !id.accepts(&hello) {
                    return Err(PeerError::BadHello);
                }
                *from = Some(hello.from);
                out.extend_from_slice(ACCEPTED);
                buf.drain(..used);
                info!("cluster: peer link from node {:016x} accepted", hello.from);
                hello.from
            }
        };
        let mut got = Vec::new();
        let used = take_frames(buf, id.max_message, &mut got)?;
        buf.drain(..used);
        messages.extend(got.into_iter().map(|m| (node, m)));
        Ok(())
    }

    /// Link `link`'s connection failed or was closed by the other side.
    pub fn closed(&mut self, link: usize, now: Instant) {
        if let Some(peer) = self.peer(link) {
            if let Peer::Out { node, opening, .. } = std::mem::replace(peer, Peer::Free) {
                if opening == Opening::Ready {
                    info!("cluster: peer link to node {node:016x} lost; its messages go over the bus");
                }
                self.outbound.remove(&node);
                self.back_off(node, now);
            }
        }
    }

    /// Bytes to write on link `link`.
    pub fn output(&self, link: usize) -> &[u8] {
        match link.checked_sub(PEER_BASE).and_then(|i| self.links.get(i)) {
            Some(Peer::Out { opening: Opening::Opened | Opening::Ready, out, .. }) => out,
            Some(Peer::In { out, .. }) => out,
            _ => &[],
        }
    }

    /// `n` bytes of [`Peers::output`] were written.
    pub fn written(&mut self, link: usize, n: usize) {
        if let Some(Peer::Out { out, .. } | Peer::In { out, .. }) = self.peer(link) {
            out.drain(..n.min(out.len()));
        }
    }

    /// Whether every link has written all it holds.
    pub fn idle(&self) -> bool {
        (PEER_BASE..PEER_BASE + MAX_PEER_LINKS).all(|link| self.output(link).is_empty())
    }

    /// Whether messages may go to `node` over its link.
    pub fn ready(&self, node: u64) -> bool {
        self.outbound.get(&node).is_some_and(|&i| matches!(self.links[i], Peer::Out { opening: Opening::Ready, .. }))
    }

    /// Queues `message` for `node`, whose link must be [`Peers::ready`]; a peer that left more than the cap
    /// unread is dropped instead (and `false` returned: the message must go over the bus).
    pub fn send(&mut self, node: u64, message: &[u8], now: Instant) -> bool {
        let Some(&i) = self.outbound.get(&node) else { return false };
        let cap = self.out_cap;
        let Peer::Out { opening: Opening::Ready, out, .. } = &mut self.links[i] else { return false };
        if out.len() + message.len() > cap {
            warn!("cluster: node {node:016x} reads its peer link too slowly; its messages go over the bus");
            self.stats.failures_total += 1;
            self.fail(PEER_BASE + i, now);
            return false;
        }
        write_frame(out, message);
        true
    }

    /// One message went to every peer over the links.
    pub fn count_sent(&mut self) {
        self.stats.sent_total += 1;
    }

    /// Whether a message of `len` bytes may go over a link: within what the other side takes and what a
    /// link may hold unwritten.
    pub fn fits(&self, len: usize) -> bool {
        wire::fits(len, self.id.max_message.min(self.out_cap))
    }

    /// Closes the links to nodes `alive` says are gone, and gives up openings that took too long.
    pub fn tend(&mut self, now: Instant, alive: impl Fn(u64) -> bool) {
        for i in 0..self.links.len() {
            let drop = match &self.links[i] {
                Peer::Out { node, opening, since, .. } => {
                    !alive(*node) || *opening != Opening::Ready && now >= *since + OPEN_TIMEOUT
                }
                Peer::In { from: None, since, .. } => now >= *since + OPEN_TIMEOUT,
                _ => false,
            };
            if drop {
                self.fail(PEER_BASE + i, now);
            }
        }
        self.retry.retain(|&node, _| alive(node));
    }

    /// When [`Peers::tend`] has something to do (an opening's time-out).
    pub fn wakeup(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|p| match p {
                Peer::Out { opening: Opening::Connecting | Opening::Opened, since, .. }
                | Peer::In { from: None, since, .. } => Some(*since + OPEN_TIMEOUT),
                _ => None,
            })
            .min()
    }

    /// Drops link `link` (the reactor is asked to close it).
    fn fail(&mut self, link: usize, now: Instant) {
        self.requests.push(LinkRequest::Close { link });
        self.closed(link, now);
        if let Some(peer) = self.peer(link) {
            *peer = Peer::Closing;
        }
    }

    fn back_off(&mut self, node: u64, now: Instant) {
        let wait = self.retry.get(&node).map_or(FIRST_RETRY, |&(_, w)| w);
        self.retry.insert(node, (now + wait, (wait * 2).min(MAX_RETRY)));
    }

    fn free_link(&self) -> Option<usize> {
        self.links.iter().position(|p| matches!(p, Peer::Free))
    }

    fn peer(&mut self, link: usize) -> Option<&mut Peer> {
        link.checked_sub(PEER_BASE).and_then(|i| self.links.get_mut(i))
    }
}

#[cfg(test)]
mod tests;
