//! A node whose master Sentinel watches: the sentinel connection (asked where the master is, then
//! subscribed to `+switch-master`, each sentinel in turn when one is away), the master's `ROLE` checked
//! before anything is written to it, and the master's move — both master connections dropped and made
//! again to the new one, where what was not confirmed is written again.

use std::time::Duration;

use log::{info, warn};

use super::{Node, Purpose, SlotState, BUS, COMMANDS, SENTINEL};
use crate::app::LinkRequest;
use crate::cluster::link::{Event, Value};
use crate::cluster::sentinel::{master_addr, role, switched_to};

/// The tag of the question where the master is, on the sentinel connection.
const ASK: u64 = 1;
/// The tag of the subscription to `+switch-master`.
const SWITCH: u64 = 2;

/// A lost master connection asks the sentinels again at most this often.
const ASK_AGAIN_EVERY: Duration = Duration::from_secs(1);

impl Node {
    /// The sentinel to connect to next, with Sentinel.
    pub(super) fn sentinel_addr(&self) -> Option<std::net::SocketAddr> {
        let s = self.cfg.sentinel.as_ref()?;
        s.sentinels.get(self.sentinel_at % s.sentinels.len().max(1)).copied()
    }

    /// The sentinel connection is up: log in, ask where the master is, then listen for its moves.
    pub(super) fn sentinel_up(&mut self) {
        let Some(s) = self.cfg.sentinel.as_ref() else { return };
        let (login, master) = (s.login.clone(), s.master.clone());
        let slot = &mut self.slots[SENTINEL];
        slot.up(&login, self.now);
        if let Some(l) = slot.link() {
            l.command(ASK, &[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()]);
            l.subscribe(SWITCH, &[b"+switch-master"]);
        }
    }

    /// The sentinel connection is down: the next sentinel is tried after the back-off. The node keeps the
    /// master it has.
    pub(super) fn sentinel_down(&mut self, reason: &str) {
        let slot = &mut self.slots[SENTINEL];
        let was_up = slot.is_up();
        slot.down(reason, self.now);
        self.stats.sentinel_up = 0;
        let at = self.sentinel_addr();
        self.sentinel_at += 1;
        match (was_up, self.master) {
            (true, Some(master)) => {
                warn!("cluster: sentinel at {at:?} lost ({reason}); keeping the master at {master}, trying the next sentinel")
            }
            (true, None) => warn!("cluster: sentinel at {at:?} lost ({reason}); trying the next sentinel"),
            (false, _) => {
                self.stats.sentinel_failures_total += 1;
                if self.stats.sentinel_failures_total % 10 == 1 {
                    warn!("cluster: cannot reach the sentinel at {at:?}: {reason}");
                }
            }
        }
    }

    /// Something the sentinel connection brought.
    pub(super) fn on_sentinel(&mut self, event: Event) {
        match event {
            Event::Reply { tag: ASK, value } => match master_addr(&value) {
                Some(addr) => {
                    self.stats.sentinel_up = 1;
                    self.master_at(addr);
                }
                None => {
                    let why = match value {
                        Value::Nil => "it knows no such master".to_string(),
                        other => format!("{other:?}"),
                    };
                    warn!("cluster: the sentinel at {:?} did not say where the master is: {why}", self.sentinel_addr());
                    self.drop_link(SENTINEL, "no master address");
                }
            },
            Event::Reply { tag: SWITCH, value } if value.is_error() => {
                warn!("cluster: SUBSCRIBE +switch-master refused by a sentinel: {value:?}");
                self.drop_link(SENTINEL, "subscription refused");
            }
            Event::Message { payload, .. } => {
                let master = self.cfg.sentinel.as_ref().map_or("", |s| s.master.as_str());
                if let Some(addr) = switched_to(&payload, master) {
                    info!("cluster: the sentinels switched the master to {addr}");
                    self.master_at(addr);
                }
            }
            _ => {}
        }
    }

    /// The sentinels say the master is at `addr`: if that is a move, both master connections are dropped and
    /// made again there at once.
    fn master_at(&mut self, addr: std::net::SocketAddr) {
        if self.master == Some(addr) {
            return;
        }
        if let Some(old) = self.master {
            self.stats.master_changes_total += 1;
            info!("cluster: master moved from {old} to {addr}");
        } else {
            info!("cluster: the master is at {addr}");
        }
        self.master = Some(addr);
        self.cfg.url.host = addr.ip().to_string();
        self.cfg.url.port = addr.port();
        // The sentinels just said where it is: these drops are no reason to ask them again.
        self.resolved_at = Some(self.now);
        for link in [COMMANDS, BUS] {
            if !matches!(self.slots[link].state, SlotState::Down { .. }) {
                self.drop_link(link, "the master moved");
            }
            self.slots[link].state = SlotState::Down { retry_at: self.now };
        }
        self.resolved_at = None;
    }

    /// Closes `link` and takes it down for `reason`.
    pub(super) fn drop_link(&mut self, link: usize, reason: &str) {
        if !matches!(self.slots[link].state, SlotState::Down { .. }) {
            self.requests.push(LinkRequest::Close { link });
            self.link_down(link, reason);
        }
    }

    /// A master connection was lost or refused what it was given: with Sentinel, the sentinels are asked
    /// again (the sentinel connection is made anew, which asks first), at most once a second.
    pub(super) fn ask_sentinels_again(&mut self) {
        if self.cfg.sentinel.is_none() || self.resolved_at.is_some_and(|t| self.now < t + ASK_AGAIN_EVERY) {
            return;
        }
        self.resolved_at = Some(self.now);
        if self.slots[SENTINEL].is_up() {
            self.requests.push(LinkRequest::Close { link: SENTINEL });
            let slot = &mut self.slots[SENTINEL];
            slot.down("asking again where the master is", self.now);
            slot.state = SlotState::Down { retry_at: self.now };
            slot.backoff = super::slot::FIRST_BACKOFF;
        }
    }

    /// The commands connection is up to a server the sentinels named: it is used once it says it is the
    /// master.
    pub(super) fn check_role(&mut self) {
        let tag = self.next_tag;
        if let Some(link) = self.slots[COMMANDS].link() {
            link.command(tag, &[b"ROLE"]);
            self.next_tag += 1;
            self.inflight.insert(tag, Purpose::Role);
        }
    }

    /// The answer to `ROLE`: a master is used; anything else (a replica the failover has not reached yet,
    /// a demoted master) is left, and the sentinels asked again.
    pub(super) fn on_role(&mut self, value: &Value) {
        match role(value) {
            Ok(()) => self.commands_up(),
            Err(said) => {
                warn!(
                    "cluster: the server at {:?} says it is {said}, not the master; asking the sentinels again",
                    self.master
                );
                self.drop_link(COMMANDS, "not the master");
                self.drop_link(BUS, "not the master");
            }
        }
    }
}
