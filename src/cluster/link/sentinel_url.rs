//! `redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`: the sentinels that know where the
//! master named MASTER is, and how to log in to it; and [`ClusterUrl`], either form of `--cluster`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::url::{host_port, parse_db, parse_host_port, parse_userinfo, RedisUrl, UrlError};

/// The port of a sentinel named without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The longest master name accepted.
pub const MAX_MASTER_NAME: usize = 64;

/// Where the sentinels are and which master they watch.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, in the URL's order (asked in turn).
    pub sentinels: Vec<(String, u16)>,
    /// The master's name in the sentinels' configuration.
    pub master: String,
    /// The master's ACL user, when the URL names one.
    pub user: Option<String>,
    /// The master's password, when the URL gives one.
    pub password: Option<String>,
    /// The database on the master.
    pub db: u32,
}

/// Either form of `--cluster`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClusterUrl {
    /// One Redis server.
    Redis(RedisUrl),
    /// A master found through Sentinel.
    Sentinel(SentinelUrl),
}

impl ClusterUrl {
    /// Parses `redis://…` or `redis+sentinel://…`.
    pub fn parse(url: &str) -> Result<ClusterUrl, UrlError> {
        if url.starts_with("redis+sentinel://") {
            SentinelUrl::parse(url).map(ClusterUrl::Sentinel)
        } else {
            RedisUrl::parse(url).map(ClusterUrl::Redis)
        }
    }
}

impl SentinelUrl {
    /// Parses `redis+sentinel://[user:password@]HOST[:PORT][,HOST[:PORT]…]/MASTER[/DB]`; a sentinel's port
    /// defaults to 26379. The user and password are the master's (and the sentinels', unless
    /// `--cluster-sentinel-password` gives theirs).
    pub fn parse(url: &str) -> Result<SentinelUrl, UrlError> {
        let rest = url.strip_prefix("redis+sentinel://").ok_or(UrlError::Scheme)?;
        if let Some(i) = rest.find(['?', '#']) {
            return Err(UrlError::Unexpected(rest[i..].to_string()));
        }
        let (authority, path) = rest.split_once('/').ok_or_else(|| UrlError::Master(String::new()))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = parse_userinfo(userinfo)?;
        let sentinels =
            hosts.split(',').map(|h| parse_host_port(h, DEFAULT_SENTINEL_PORT)).collect::<Result<Vec<_>, _>>()?;
        let (master, db) = match path.split_once('/') {
            Some((m, db)) => (m, parse_db(Some(db))?),
            None => (path, 0),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        if master.is_empty() || master.len() > MAX_MASTER_NAME || !master.bytes().all(valid) {
            return Err(UrlError::Master(master.to_string()));
        }
        Ok(SentinelUrl { sentinels, master: master.to_string(), user, password, db })
    }

    /// The sentinels' addresses, in order (host names are resolved, which may block: call it at start-up).
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let mut all = Vec::new();
        for (host, port) in &self.sentinels {
            all.extend(host_port(host, *port).to_socket_addrs()?);
        }
        Ok(all)
    }

    /// How to log in to the master found at `addr`.
    pub fn master_url(&self, addr: SocketAddr) -> RedisUrl {
        let (user, password, db) = (self.user.clone(), self.password.clone(), self.db);
        RedisUrl { host: addr.ip().to_string(), port: addr.port(), user, password, db }
    }

    /// How to log in to a sentinel: `password` (`--cluster-sentinel-password`) when given, else the URL's.
    pub fn sentinel_login(&self, password: Option<&str>) -> RedisUrl {
        let (user, password) = match password {
            Some(p) => (None, Some(p.to_string())),
            None => (self.user.clone(), self.password.clone()),
        };
        RedisUrl { host: String::new(), port: 0, user, password, db: 0 }
    }
}

/// The URL with the password masked, for logs.
impl fmt::Display for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis+sentinel://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            _ => {}
        }
        let hosts: Vec<String> = self.sentinels.iter().map(|(h, p)| host_port(h, *p)).collect();
        write!(f, "{}/{}", hosts.join(","), self.master)?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SentinelUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let u = SentinelUrl::parse("redis+sentinel://:p%40ss@10.0.0.1,10.0.0.2:26380,[::1]:7/mymaster/3").unwrap();
        assert_eq!(
            u.sentinels,
            [("10.0.0.1".to_string(), 26379), ("10.0.0.2".to_string(), 26380), ("::1".to_string(), 7)]
        );
        assert_eq!(
            (u.master.as_str(), u.db, u.user.as_deref(), u.password.as_deref()),
            ("mymaster", 3, None, Some("p@ss"))
        );
        assert_eq!(u.to_string(), "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:7/mymaster/3");
        let addr: SocketAddr = "127.0.0.1:6380".parse().unwrap();
        let m = u.master_url(addr);
        assert_eq!((m.host_port(), m.password.as_deref(), m.db), ("127.0.0.1:6380".to_string(), Some("p@ss"), 3));
        let s = u.sentinel_login(Some("other"));
        assert_eq!((s.user, s.password.as_deref(), s.db), (None, Some("other"), 0));
        assert_eq!(u.sentinel_login(None).password.as_deref(), Some("p@ss"));
        let plain = ClusterUrl::parse("redis+sentinel://h/m").unwrap();
        assert!(matches!(plain, ClusterUrl::Sentinel(ref s) if s.sentinels == [("h".to_string(), 26379)] && s.db == 0));
        assert!(matches!(ClusterUrl::parse("redis://h:1"), Ok(ClusterUrl::Redis(_))));
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong() {
        let bad = |s: &str| SentinelUrl::parse(s).expect_err(s);
        assert_eq!(bad("redis+sentinel://h:1"), UrlError::Master(String::new()));
        assert_eq!(bad("redis+sentinel://h:1/"), UrlError::Master(String::new()));
        assert_eq!(bad("redis+sentinel://h:1/a b"), UrlError::Master("a b".to_string()));
        assert_eq!(bad("redis+sentinel://h:1,/m"), UrlError::EmptyHost);
        assert_eq!(bad("redis+sentinel://h:0/m"), UrlError::Port("0".to_string()));
        assert_eq!(bad("redis+sentinel://h/m/x"), UrlError::Db("x".to_string()));
        assert_eq!(bad("redis+sentinel://h/m/1/2"), UrlError::Unexpected("1/2".to_string()));
        assert_eq!(bad("redis+sentinel://u@h/m"), UrlError::UserWithoutPassword);
        assert!(matches!(bad("redis+sentinel://h/m?x=1"), UrlError::Unexpected(_)));
        assert!(bad(&format!("redis+sentinel://h/{}", "m".repeat(65))).to_string().contains("master name"));
    }
}
