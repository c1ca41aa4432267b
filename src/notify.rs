//! sd_notify: tells systemd when rolld is ready and when it reloads, with
//! one datagram per message to `$NOTIFY_SOCKET`, without libsystemd.
//!
//! With `Type=notify-reload`, `systemctl reload` sends SIGHUP and waits for
//! `RELOADING=1` then `READY=1`, so it returns when the rollout has ended.

use std::os::unix::net::UnixDatagram;

pub struct Notifier {
    sock: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket);
    /// without it every call does nothing.
    pub fn from_env() -> Notifier {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = p.into_string().ok()?;
            let addr = match p.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&p).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        Notifier { sock }
    }

    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.sock
            && let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            crate::log::error("rolld", &format!("sd_notify: {e}"));
        }
    }
}
