//! Smoke tests: one check of one port, bounded in time.
//!
//! A check connects to every address of its host at once (non-blocking
//! connects and one poll, no thread) and stops at the first that accepts or
//! at the check's timeout: a check never takes longer than its timeout, and
//! an address that hangs costs the others none of their time. A TCP check
//! then passes. An HTTP check sends its GET to each address that accepted
//! (on a connection of its own), to several at once each on a thread of its
//! own, and passes when one answers as expected. `localhost`, the default
//! host, is the loopback of both families, ::1 and 127.0.0.1, whatever
//! /etc/hosts says (RFC 6761), so a backend bound to either one passes. A
//! failed check says what happened at each address (refused, timed out,
//! the status, the start of a body that lacks the expected text, quoted
//! as Rust writes a string literal). Other text from elsewhere (an OS or
//! ureq error) is escaped where the message leaves rolld (`log::escape`).
//!
//! HTTP checks use a fresh ureq agent that keeps no idle connection, and
//! send `Connection: close`: a pooled connection from rolld would later
//! count as a request in flight and hold up the drain of that port.

use crate::config::{Check, Host};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How much of a body is searched for `body:`.
const BODY_LIMIT: u64 = 1 << 20;
/// How much of a body a failure shows, in characters.
const EXCERPT_CHARS: usize = 80;
/// At most this many addresses of a resolved name are tried.
const MAX_ADDRS: usize = 8;

/// Runs every check on `port`; the first failure, described, or Ok. Each
/// check takes at most its own timeout.
pub fn check_port(checks: &[Check], port: u16) -> Result<(), String> {
    checks.iter().try_for_each(|c| match c {
        Check::Http { host, path, status, headers, body, timeout } => {
            let get = Get {
                authority: format!("{host}:{port}"),
                path: path.clone(),
                status: *status,
                headers: headers.clone(),
                body: body.clone(),
                timeout: *timeout,
            };
            let what = get.describe();
            http(host, port, get).map_err(|e| format!("{what}: {e}"))
        }
        Check::Tcp { host, timeout } => {
            let deadline = Instant::now() + *timeout;
            let tcp = || -> Result<(), String> {
                let addrs = targets(host, port, deadline, *timeout)?;
                let out = connect_all(&addrs, deadline, *timeout);
                if out.iter().any(|o| matches!(o, Outcome::Open)) {
                    return Ok(());
                }
                Err(report(&addrs, &out, deadline, *timeout))
            };
            tcp().map_err(|e| format!("connect to {host}:{port}: {e}"))
        }
    })
}

/// The addresses a check of `host` tries, or None for a name, which has to
/// be resolved first.
pub fn addresses(host: &Host, port: u16) -> Option<Vec<SocketAddr>> {
    match host {
        Host::Localhost => {
            Some(vec![SocketAddr::from((Ipv6Addr::LOCALHOST, port)), SocketAddr::from((Ipv4Addr::LOCALHOST, port))])
        }
        Host::Ip(ip) => Some(vec![SocketAddr::new(*ip, port)]),
        Host::Name(_) => None,
    }
}

/// The addresses of `host`, resolved before `deadline` when it is a name.
fn targets(host: &Host, port: u16, deadline: Instant, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    match (addresses(host, port), host) {
        (Some(a), _) => Ok(a),
        (None, Host::Name(name)) => resolve(name, port, deadline, timeout),
        (None, _) => unreachable!("only a name needs resolving"),
    }
}

/// What became of one address.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// It accepted a connection (for an HTTP check: not asked yet).
    Open,
    Failed(String),
    /// No answer yet.
    Pending,
}

/// Connects to every address at once, until one accepts, every one has
/// failed, or `deadline`. Once one accepts, those that did as well in the
/// meantime are Open too; the others stay Pending. The connections are
/// closed on return.
fn connect_all(addrs: &[SocketAddr], deadline: Instant, timeout: Duration) -> Vec<Outcome> {
    let mut out = vec![Outcome::Pending; addrs.len()];
    let mut pending: Vec<(usize, TcpStream)> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        match crate::sys::connect_start(addr) {
            Ok((_, true)) => out[i] = Outcome::Open,
            Ok((sock, false)) => pending.push((i, sock)),
            Err(e) => out[i] = Outcome::Failed(io_failure(&e, timeout)),
        }
    }
    let mut opened = out.contains(&Outcome::Open);
    while !pending.is_empty() {
        // After the first success, one more look at the others, not a wait.
        let left = if opened { Duration::ZERO } else { deadline.saturating_duration_since(Instant::now()) };
        if left.is_zero() && !opened {
            break;
        }
        let fds: Vec<_> = pending.iter().map(|(_, s)| s.as_fd()).collect();
        let ready = match crate::sys::poll_writable(&fds, left) {
            Ok(r) => r,
            Err(e) => {
                for (i, _) in &pending {
                    out[*i] = Outcome::Failed(format!("poll: {e}"));
                }
                break;
            }
        };
        let mut still = Vec::new();
        for ((i, sock), ready) in pending.into_iter().zip(ready) {
            if !ready {
                still.push((i, sock));
                continue;
            }
            out[i] = match sock.take_error() {
                Ok(None) if sock.peer_addr().is_ok() => Outcome::Open,
                Ok(None) => Outcome::Failed("connection closed at once".into()),
                Ok(Some(e)) | Err(e) => Outcome::Failed(io_failure(&e, timeout)),
            };
        }
        pending = still;
        if opened {
            break;
        }
        opened = out.contains(&Outcome::Open);
    }
    out
}

/// Every address with what became of it.
fn report(addrs: &[SocketAddr], out: &[Outcome], deadline: Instant, timeout: Duration) -> String {
    let each: Vec<String> = addrs
        .iter()
        .zip(out)
        .map(|(a, o)| match o {
            Outcome::Failed(e) => format!("{a} {e}"),
            _ if Instant::now() >= deadline => format!("{a} timed out after {timeout:?}"),
            _ => format!("{a} still connecting when the others had answered"),
        })
        .collect();
    each.join("; ")
}

/// An HTTP check: the GET goes to each address that accepted a connection,
/// at once when there are several.
fn http(host: &Host, port: u16, get: Get) -> Result<(), String> {
    let timeout = get.timeout;
    let deadline = Instant::now() + timeout;
    let addrs = targets(host, port, deadline, timeout)?;
    let mut out = connect_all(&addrs, deadline, timeout);
    let open: Vec<usize> = (0..addrs.len()).filter(|&i| out[i] == Outcome::Open).collect();
    if let [i] = open[..] {
        let left = deadline.saturating_duration_since(Instant::now());
        match get.call(addrs[i], left) {
            Ok(()) => return Ok(()),
            Err(e) => out[i] = Outcome::Failed(e),
        }
    } else if !open.is_empty() {
        let get = Arc::new(get);
        let (tx, rx) = mpsc::channel();
        for &i in &open {
            let (tx, get, addr) = (tx.clone(), Arc::clone(&get), addrs[i]);
            let left = deadline.saturating_duration_since(Instant::now());
            // A thread still running at the deadline ends by itself: its
            // request is bounded by `left`. Its result then goes nowhere.
            let spawned = std::thread::Builder::new().name("smoke".into()).spawn(move || {
                let _ = tx.send((i, get.call(addr, left)));
            });
            out[i] = match spawned {
                Ok(_) => Outcome::Pending,
                Err(e) => Outcome::Failed(format!("not asked: cannot start a thread: {e}")),
            };
        }
        drop(tx);
        while out.contains(&Outcome::Pending) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((_, Ok(()))) => return Ok(()),
                Ok((i, Err(e))) => out[i] = Outcome::Failed(e),
                Err(_) => break,
            }
        }
    }
    Err(report(&addrs, &out, deadline, timeout))
}

/// The addresses of `name`, looked up on a thread of its own so that a
/// resolver that does not answer costs no more than the time left. Such a
/// thread lingers until the resolver gives up, and its answer is dropped.
fn resolve(name: &str, port: u16, deadline: Instant, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = mpsc::channel();
    let owned = name.to_string();
    std::thread::Builder::new()
        .name("smoke-resolve".into())
        .spawn(move || {
            let _ = tx.send((owned.as_str(), port).to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })
        .map_err(|e| format!("resolve {name}: cannot start a thread: {e}"))?;
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(found)) => {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for a in found {
                if !addrs.contains(&a) && addrs.len() < MAX_ADDRS {
                    addrs.push(a);
                }
            }
            if addrs.is_empty() { Err(format!("resolve {name}: no address")) } else { Ok(addrs) }
        }
        Ok(Err(e)) => Err(format!("resolve {name}: {e}")),
        Err(_) => Err(format!("resolve {name}: no answer within {timeout:?}")),
    }
}

/// One HTTP check, owned, for the threads that run it.
struct Get {
    /// `host:port` as in the URL; the Host header unless `headers` has one.
    authority: String,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout: Duration,
}

impl Get {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// `GET http://localhost:8001/health`, with the Host header when the
    /// config sets it (and no other header: they may hold secrets).
    fn describe(&self) -> String {
        let url = format!("GET http://{}{}", self.authority, self.path);
        match self.header("host") {
            Some(h) => format!("{url} (Host: {h})"),
            None => url,
        }
    }

    fn call(&self, addr: SocketAddr, left: Duration) -> Result<(), String> {
        if left.is_zero() {
            return Err(format!("timed out after {:?}", self.timeout));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(left))
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_redirects(0)
            .build()
            .new_agent();
        let mut req = agent.get(format!("http://{addr}{}", self.path)).header("Connection", "close");
        if self.header("host").is_none() {
            req = req.header("Host", &self.authority);
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let mut resp = req.call().map_err(|e| self.failure(e))?;
        let code = resp.status().as_u16();
        let limit = if code != self.status {
            EXCERPT_CHARS as u64 * 4
        } else if self.body.is_some() {
            BODY_LIMIT
        } else {
            return Ok(());
        };
        let mut got = Vec::new();
        let read = resp.body_mut().as_reader().take(limit).read_to_end(&mut got);
        if code != self.status {
            return Err(format!("answered {code} (want {}), {}", self.status, excerpt(&got)));
        }
        let want = self.body.as_deref().unwrap_or_default();
        if contains(&got, want.as_bytes()) {
            return Ok(());
        }
        let seen = match read {
            Err(e) => {
                format!("reading it failed after {} bytes ({e}), {}", got.len(), excerpt(&got))
            }
            Ok(_) if got.len() as u64 == BODY_LIMIT => {
                format!("not in its first {} KiB, {}", BODY_LIMIT >> 10, excerpt(&got))
            }
            Ok(_) => excerpt(&got),
        };
        Err(format!("answered {code} with a body without {want:?}: {seen}"))
    }

    fn failure(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!("timed out after {:?}", self.timeout),
            ureq::Error::Io(e) => io_failure(&e, self.timeout),
            e => e.to_string(),
        }
    }
}

fn io_failure(e: &std::io::Error, timeout: Duration) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "refused".into(),
        TimedOut | WouldBlock => format!("timed out after {timeout:?}"),
        _ => e.to_string(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The start of a body, quoted, with everything unprintable escaped.
fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "the body is empty".into();
    }
    let text = String::from_utf8_lossy(body);
    let mut shown = in_quotes(&text.chars().take(EXCERPT_CHARS).collect::<String>());
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        shown.push_str("...");
    }
    format!("the body begins \"{shown}\"")
}

/// Text for between double quotes, as Rust writes a string literal:
/// control characters, `"` and `\` escaped.
fn in_quotes(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == '"' || c == '\\' { c.escape_debug().to_string() } else { c.to_string() })
        .collect()
}

#[cfg(test)]
#[path = "smoke_tests.rs"]
mod tests;
