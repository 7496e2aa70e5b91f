//! A client's real address behind proxies, sans IO: bytes and header values in, addresses out, no sockets.
//!
//! Three pieces, all pure:
//!
//! - [`Cidr`] and [`TrustedProxies`]: the `--trust-proxy CIDR` allow-list (repeatable). Nothing a connection
//!   says about its origin is believed unless its peer address is in it.
//! - [`protocol`]: the PROXY protocol (HAProxy, v1 text and v2 binary) that a TCP load balancer sends before
//!   the connection's own bytes; [`parse`] decodes it incrementally.
//! - [`forwarded`]: `X-Forwarded-For` and `Forwarded` (RFC 7239) request headers written by HTTP proxies;
//!   [`client_addr`] walks them from the right past trusted hops.
//!
//! How the reactor is meant to use it:
//!
//! 1. With `--proxy-protocol`, a connection accepted on either port (WebSocket or web) from a trusted peer
//!    must start with a PROXY header: its input goes through [`parse`] before anything else (`Ok(None)`: keep
//!    reading, under the handshake timeout; an error: close the connection; `Ok(Some((n, header)))`: drop
//!    the `n` bytes and go on with the rest as the request). [`ProxyHeader::client_ip`] is then the
//!    connection's address (`LOCAL`/`UNKNOWN` keep the peer's). From an untrusted peer no header is
//!    expected or parsed, so a client cannot spoof one (the spec forbids guessing whether one is present).
//! 2. When the upgrade request or a web request's head is complete, [`client_addr`] takes the address from
//!    step 1 (or the socket's peer) as `peer`, the trusted set, and the head's headers; forwarding headers
//!    count only when that `peer` is trusted.
//! 3. The resulting address (canonical: an IPv4-mapped IPv6 address is given as IPv4) replaces `Conn::peer`'s
//!    address for everything that names a client: the log lines, `--trace-frames`, and a per-address limit
//!    (admission of the upgrade is to use it, not the proxy's address).

pub mod cidr;
pub mod forwarded;
pub mod protocol;

pub use cidr::{Cidr, CidrError, TrustedProxies};
pub use forwarded::{client_addr, client_addr_of_head, ClientAddr, Origin};
pub use protocol::{parse, Endpoints, ProxyError, ProxyHeader, Version};
