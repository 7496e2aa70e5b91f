//! systemd integration: readiness notifications (`READY=1` once both ports listen, `STOPPING=1` when a
//! signal starts the shutdown, `RELOADING=1` then `READY=1` around a SIGHUP reload) through
//! `NOTIFY_SOCKET`, and socket activation: with `LISTEN_FDS` set for this process the daemon serves the listening sockets it was handed instead of binding, so that a restart
//! refuses no connection attempt (they wait in the sockets' backlog). Names come from `LISTEN_FDNAMES`
//! (`ws` and `http`); without names the first socket is the WebSocket port and the second the web port. The
//! `sd-notify` crate speaks the protocol; without `NOTIFY_SOCKET` or `LISTEN_FDS` nothing happens.

use std::fmt;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use log::debug;
use sd_notify::NotifyState;

/// A state change for the service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Both ports listen: the service is up.
    Ready,
    /// The shutdown began.
    Stopping,
    /// A reload (SIGHUP) began; `Ready` follows when it is done.
    Reloading,
}

/// Tells the service manager (when `NOTIFY_SOCKET` names one; otherwise nothing happens).
pub fn notify(state: State) {
    let result = match state {
        State::Ready => sd_notify::notify(&[NotifyState::Ready]),
        State::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
        // systemd (Type=notify-reload) wants the monotonic time of the reload's start beside RELOADING=1.
        State::Reloading => match NotifyState::monotonic_usec_now() {
            Ok(now) => sd_notify::notify(&[NotifyState::Reloading, now]),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        debug!("sd_notify {state:?} failed: {e}");
    }
}

/// The two listening sockets handed over by the service manager.
#[derive(Debug)]
pub struct Activated {
    /// The WebSocket port's listener.
    pub ws: TcpListener,
    /// The web port's listener.
    pub http: TcpListener,
}

/// Why the handed-over sockets cannot be used.
#[derive(Debug)]
pub enum ActivationError {
    /// Reading `LISTEN_FDS` failed.
    Env(std::io::Error),
    /// Not exactly two sockets.
    Count(usize),
    /// Names that are not `ws` and `http`.
    Names(Vec<String>),
    /// A handed-over descriptor is not a listening TCP socket.
    NotListening(RawFd),
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::Env(e) => write!(f, "socket activation: cannot read LISTEN_FDS: {e}"),
            ActivationError::Count(n) => {
                write!(f, "socket activation handed {n} socket(s); wschat needs two, named ws and http")
            }
            ActivationError::Names(names) => {
                write!(f, "socket activation names {names:?}; wschat needs ws and http (FileDescriptorName=)")
            }
            ActivationError::NotListening(fd) => write!(f, "socket activation: fd {fd} is not a listening TCP socket"),
        }
    }
}

impl std::error::Error for ActivationError {}

/// The sockets the service manager handed to this process, if it handed any (`LISTEN_PID` names this
/// process; the daemon starts no other process, so the variables are left as they are).
pub fn activated() -> Result<Option<Activated>, ActivationError> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names().map_err(ActivationError::Env)?.collect();
    if fds.is_empty() {
        return Ok(None);
    }
    let (ws, http) = pick(&fds)?;
    Ok(Some(Activated { ws: listener(ws)?, http: listener(http)? }))
}

/// Which descriptor is which: by name (`ws`, `http`), else in order.
fn pick(fds: &[(RawFd, String)]) -> Result<(RawFd, RawFd), ActivationError> {
    if fds.len() != 2 {
        return Err(ActivationError::Count(fds.len()));
    }
    let named = |name: &str| fds.iter().find(|(_, n)| n == name).map(|(fd, _)| *fd);
    match (named("ws"), named("http")) {
        (Some(ws), Some(http)) => Ok((ws, http)),
        _ if fds.iter().all(|(_, n)| n.is_empty() || n == "unknown") => Ok((fds[0].0, fds[1].0)),
        _ => Err(ActivationError::Names(fds.iter().map(|(_, n)| n.clone()).collect())),
    }
}

/// Takes `fd` over as a non-blocking listener, after checking that it is a listening TCP socket.
fn listener(fd: RawFd) -> Result<TcpListener, ActivationError> {
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the int it is given; fd is only read.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 || accepting == 0 {
        return Err(ActivationError::NotListening(fd));
    }
    // SAFETY: the service manager handed this descriptor to this process, which owns it from now on; nothing
    // else in the process uses it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true).map_err(|_| ActivationError::NotListening(fd))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_told_apart_by_name_or_order() {
        let named = [(4, "http".to_string()), (3, "ws".to_string())];
        assert_eq!(pick(&named).unwrap(), (3, 4));
        let unnamed = [(3, "unknown".to_string()), (4, "unknown".to_string())];
        assert_eq!(pick(&unnamed).unwrap(), (3, 4));
        assert!(matches!(pick(&[(3, "ws".to_string())]), Err(ActivationError::Count(1))));
        assert!(matches!(pick(&[(3, "a".to_string()), (4, "b".to_string())]), Err(ActivationError::Names(_))));
        assert!(ActivationError::Count(3).to_string().contains("needs two"));
    }

    #[test]
    fn a_descriptor_that_does_not_listen_is_refused() {
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        assert!(matches!(listener(file.as_raw_fd()), Err(ActivationError::NotListening(_))));
    }
}
