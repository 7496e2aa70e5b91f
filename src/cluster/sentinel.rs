//! Redis Sentinel, as a node uses it: what a sentinel answers about the master (`SENTINEL
//! get-master-addr-by-name`, the `+switch-master` push, the master's `ROLE`) read into addresses, the
//! errors that mean "ask again", and the one question asked at start, before the loop runs, so that a URL
//! naming a master no sentinel knows is an error at once rather than a node that never joins.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use super::link::{Event, Link, RedisUrl, Value};

/// How long the question at start waits for each sentinel.
const START_TIMEOUT: Duration = Duration::from_secs(1);

/// The error replies of a server that is not (or not yet, or no longer) a usable master — or a master that
/// takes no write for want of replicas (`min-replicas-to-write`): the node reconnects (with Sentinel, asks
/// the sentinels again) and writes what was refused again, rather than count it lost.
pub fn means_not_master(error: &str) -> bool {
    ["READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS"].iter().any(|e| error.starts_with(e))
}

/// The master's address in an answer to `SENTINEL get-master-addr-by-name`: `[ip, port]`; `None` for
/// nil (the sentinel does not know the name) or anything else.
pub fn master_addr(value: &Value) -> Option<SocketAddr> {
    let Value::Array(items) = value else { return None };
    let [Value::Bulk(ip), Value::Bulk(port)] = items.as_slice() else { return None };
    let ip: IpAddr = std::str::from_utf8(ip).ok()?.parse().ok()?;
    let port: u16 = std::str::from_utf8(port).ok()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The new address of `master` in a `+switch-master` push (`name old-ip old-port new-ip new-port`); `None`
/// for another master's or a malformed one.
pub fn switched_to(payload: &[u8], master: &str) -> Option<SocketAddr> {
    let text = std::str::from_utf8(payload).ok()?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [name, _, _, ip, port] = parts.as_slice() else { return None };
    if *name != master {
        return None;
    }
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// Whether an answer to `ROLE` says master; otherwise what it says (for the log).
pub fn role(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(items) => match items.first().and_then(Value::as_bytes) {
            Some(b"master") => Ok(()),
            Some(other) => Err(String::from_utf8_lossy(other).into_owned()),
            None => Err(format!("{value:?}")),
        },
        other => Err(format!("{other:?}")),
    }
}

/// Why the question at start found no master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// A sentinel answered that it knows no master of that name.
    UnknownMaster {
        /// The name.
        master: String,
        /// The sentinel that said so.
        sentinel: SocketAddr,
    },
    /// No sentinel answered (each with why).
    NoAnswer(Vec<(SocketAddr, String)>),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::UnknownMaster { master, sentinel } => {
                write!(f, "the sentinel at {sentinel} knows no master named {master:?}")
            }
            StartError::NoAnswer(tries) => {
                let tries: Vec<String> = tries.iter().map(|(a, why)| format!("{a}: {why}")).collect();
                write!(f, "no sentinel answered ({})", tries.join("; "))
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Asks the sentinels in turn where `master` is, logging in with `login`; the first answer counts. Blocking,
/// bounded by [`START_TIMEOUT`] per sentinel: for the start, before the loop runs.
pub fn ask_at_start(sentinels: &[SocketAddr], login: &RedisUrl, master: &str) -> Result<SocketAddr, StartError> {
    let mut tries = Vec::new();
    for &sentinel in sentinels {
        match ask_one(sentinel, login, master) {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) => return Err(StartError::UnknownMaster { master: master.to_string(), sentinel }),
            Err(why) => tries.push((sentinel, why)),
        }
    }
    Err(StartError::NoAnswer(tries))
}

fn ask_one(sentinel: SocketAddr, login: &RedisUrl, master: &str) -> Result<Option<SocketAddr>, String> {
    let mut stream = TcpStream::connect_timeout(&sentinel, START_TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(START_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(START_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut link = Link::new(login);
    link.command(1, &[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()]);
    stream.write_all(link.pending_output()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed the connection".to_string());
        }
        link.feed(&buf[..n]);
        if let super::link::State::Failed(why) = link.state() {
            return Err(why.clone());
        }
        if let Some(Event::Reply { value, .. }) = link.next_event() {
            return match value {
                Value::Nil => Ok(None),
                Value::Error(e) => Err(e),
                v => master_addr(&v).map(Some).ok_or_else(|| format!("an answer that is no address: {v:?}")),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn answers_read_into_addresses() {
        let addr = master_addr(&Value::Array(vec![bulk("127.0.0.1"), bulk("6380")]));
        assert_eq!(addr, Some("127.0.0.1:6380".parse().unwrap()));
        assert_eq!(master_addr(&Value::Nil), None);
        assert_eq!(master_addr(&Value::Array(vec![bulk("host"), bulk("6380")])), None);
        assert_eq!(master_addr(&Value::Array(vec![bulk("::1"), bulk("70000")])), None);
        let push = b"mymaster 127.0.0.1 7400 127.0.0.1 7401";
        assert_eq!(switched_to(push, "mymaster"), Some("127.0.0.1:7401".parse().unwrap()));
        assert_eq!(switched_to(push, "other"), None);
        assert_eq!(switched_to(b"mymaster 1 2", "mymaster"), None);
        assert_eq!(role(&Value::Array(vec![bulk("master"), Value::Int(0), Value::Array(vec![])])), Ok(()));
        assert_eq!(role(&Value::Array(vec![bulk("slave"), bulk("127.0.0.1")])), Err("slave".to_string()));
        assert!(role(&Value::Error("NOPERM".into())).is_err());
        assert!(means_not_master("READONLY You can't write against a read only replica."));
        assert!(means_not_master("LOADING Redis is loading the dataset in memory"));
        assert!(means_not_master("MASTERDOWN Link with MASTER is down"));
        assert!(means_not_master("NOREPLICAS Not enough good replicas to write."));
        assert!(!means_not_master("OOM command not allowed"));
    }

    #[test]
    fn a_sentinel_that_is_not_there_is_said_so() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let login = RedisUrl { host: String::new(), port: 0, user: None, password: None, db: 0 };
        match ask_at_start(&[closed], &login, "m") {
            Err(StartError::NoAnswer(tries)) => assert_eq!(tries.len(), 1),
            other => panic!("{other:?}"),
        }
    }
}
