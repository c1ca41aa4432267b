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
//!
//! A process of a `listen:` group has no port of its own: rolld holds the
//! public port and its program hands each connection to one process's
//! socket, a check's by its loopback source port (`check_through`). Such a
//! check connects to the public address from that port, on a socket bound
//! with SO_REUSEADDR and closed with SO_LINGER 0 (a reset), so that it
//! leaves no TIME_WAIT behind and the next check from the same port can
//! start at once. Its TCP check passes only once the process accepted the
//! connection: the kernel completes the handshake into rolld's socket
//! whether anyone accepts or not.

use crate::config::{Check, Host};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport};

/// How much of a body is searched for `body:`.
const BODY_LIMIT: u64 = 1 << 20;
/// How much of a body a failure shows, in characters.
const EXCERPT_CHARS: usize = 80;
/// At most this many addresses of a resolved name are tried.
const MAX_ADDRS: usize = 8;
/// How long a check of a `listen:` process waits between two looks at
/// whether the process accepted its connection, or between two tries to
/// connect from a port that an earlier connection still holds.
const RETRY_EVERY: Duration = Duration::from_millis(5);

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

/// Runs every check of one process of a `listen:` group: through the
/// public address `public`, from the loopback source port `from`, so that
/// rolld's program sends the connection to that process's socket (see
/// `through`). Each check takes at most its own timeout. A check's `host:`
/// names only the Host header here (`host:port` with the public port,
/// unless `headers:` sets one): the connection goes to the public address,
/// whatever `host:` is or resolves to.
pub fn check_through(checks: &[Check], public: SocketAddr, from: u16) -> Result<(), String> {
    let (target, source) = through(public, from);
    checks.iter().try_for_each(|c| match c {
        Check::Http { host, path, status, headers, body, timeout } => {
            let get = Get {
                authority: format!("{host}:{}", public.port()),
                path: path.clone(),
                status: *status,
                headers: headers.clone(),
                body: body.clone(),
                timeout: *timeout,
            };
            let sent = get.header("host").unwrap_or(&get.authority);
            let what = format!("GET http://{target}{path} from port {from} (Host: {sent})");
            get.call_from(source, target).map_err(|e| format!("{what}: {e}"))
        }
        Check::Tcp { timeout, .. } => {
            accept_check(source, target, *timeout).map_err(|e| format!("connect to {target} from port {from}: {e}"))
        }
    })
}

/// Where a check of a `listen:` process connects, and from where: to the
/// public address (the loopback of its family when it is the unspecified
/// one, 0.0.0.0 or `[::]`), from port `from` of that same loopback,
/// 127.0.0.1 or ::1. Traffic from the loopback to any address of this
/// host stays on `lo`, where the program looks for check source ports. An
/// IPv4-mapped IPv6 address is the IPv4 address it maps.
pub fn through(public: SocketAddr, from: u16) -> (SocketAddr, SocketAddr) {
    let ip = public.ip().to_canonical();
    let loopback = if ip.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
    let to = if ip.is_unspecified() { loopback } else { ip };
    (SocketAddr::new(to, public.port()), SocketAddr::new(loopback, from))
}

/// A connection from `source` to `target`, connected before `deadline`,
/// non-blocking; a socket of `sys::bound_tcp_socket`.
fn connect_from(
    source: SocketAddr,
    target: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let sock = crate::sys::bound_tcp_socket(&source).map_err(|e| format!("cannot bind {source}: {e}"))?;
    // The reset that ends an earlier check's connection from this port
    // leaves when its last descriptor closes, and a child rolld forks
    // holds a copy of it until its exec: until then the pair of addresses
    // is taken. The connect is tried again, until the deadline.
    let started = loop {
        match crate::sys::connect_begin(&sock, &target) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left <= RETRY_EVERY {
                    return Err(format!("{source} to {target} is still in use by an earlier connection: {e}"));
                }
                std::thread::sleep(RETRY_EVERY);
            }
            r => break r.map_err(|e| io_failure(&e, timeout))?,
        }
    };
    if started {
        return Ok(sock);
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {timeout:?}"));
        }
        if crate::sys::poll_writable(&[sock.as_fd()], left).map_err(|e| format!("poll: {e}"))?[0] {
            break;
        }
    }
    match connected(&sock, timeout) {
        Outcome::Open => Ok(sock),
        Outcome::Failed(e) => Err(e),
        Outcome::Pending => Err(format!("timed out after {timeout:?}")),
    }
}

/// A TCP check of a `listen:` process: passes once the process accepted
/// the connection, seen through sock_diag (`tcp::accepted`) or, when the
/// process has closed it again already, by what it sent: nothing else
/// sends on a connection still waiting in an accept queue. A reset is no
/// proof: the kernel may send one for a connection nobody accepted.
fn accept_check(source: SocketAddr, target: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let sock = connect_from(source, target, deadline, timeout)?;
    loop {
        match crate::tcp::accepted(target, source) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(format!("connected, but cannot tell whether a process accepted it: {e}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("connected, but no process accepted it within {timeout:?}"));
        }
        let wait = left.min(RETRY_EVERY);
        if crate::sys::poll_readable(&[sock.as_fd()], Some(wait)).map_err(|e| format!("poll: {e}"))?[0] {
            match sock.peek(&mut [0u8; 1]) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("connected, then {e} before a process was seen to accept it")),
            }
        }
    }
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
            out[i] = connected(&sock, timeout);
        }
        pending = still;
        if opened {
            break;
        }
        opened = out.contains(&Outcome::Open);
    }
    out
}

/// What became of a connect that `poll_writable` found done.
fn connected(sock: &TcpStream, timeout: Duration) -> Outcome {
    match sock.take_error() {
        Ok(None) if sock.peer_addr().is_ok() => Outcome::Open,
        Ok(None) => Outcome::Failed("connection closed at once".into()),
        Ok(Some(e)) | Err(e) => Outcome::Failed(io_failure(&e, timeout)),
    }
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
        self.ask(&agent_config(left).build().new_agent(), addr)
    }

    /// The GET on a connection of its own from `source` to `target` (see
    /// `check_through`), made before ureq is asked: ureq writes the request
    /// on it and reads the answer, as it would on one it made.
    fn call_from(&self, source: SocketAddr, target: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let sock = connect_from(source, target, deadline, self.timeout)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {:?}", self.timeout));
        }
        sock.set_nonblocking(false).map_err(|e| e.to_string())?;
        let config = agent_config(left).build();
        let resolver = ureq::unversioned::resolver::DefaultResolver::default();
        self.ask(&ureq::Agent::with_parts(config, Handover(Mutex::new(Some(sock))), resolver), target)
    }

    /// Sends the GET for `http://addr/path` through `agent` and judges the
    /// answer.
    fn ask(&self, agent: &ureq::Agent, addr: SocketAddr) -> Result<(), String> {
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

/// The settings of every check's ureq agent: the time left, no redirect,
/// no idle connection kept, any status an answer to judge, and no proxy
/// from the environment (`HTTP_PROXY`, set for a service's outgoing
/// traffic, must not carry checks of a backend on this host).
fn agent_config(left: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(left))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .max_redirects(0)
}

/// A ureq connector that hands over one connection made beforehand, once.
#[derive(Debug)]
struct Handover(Mutex<Option<TcpStream>>);

impl Connector for Handover {
    type Out = Connection;

    fn connect(&self, details: &ConnectionDetails, _: Option<()>) -> Result<Option<Connection>, ureq::Error> {
        let taken = self.0.lock().map(|mut s| s.take()).unwrap_or(None);
        let sock = taken.ok_or_else(|| ureq::Error::Io(std::io::Error::other("the one connection is used up")))?;
        let (input, output) = (details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Connection { sock, buffers: LazyBuffers::new(input, output) }))
    }
}

/// The connection `Handover` gives ureq: blocking reads and writes, each
/// bounded by the time ureq says is left. Never reused.
#[derive(Debug)]
struct Connection {
    sock: TcpStream,
    buffers: LazyBuffers,
}

impl Connection {
    /// The bound of one read or write, or the timeout when none is left.
    fn limit(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
        match *timeout.after {
            _ if timeout.after.is_not_happening() => Ok(None),
            d if d.is_zero() => Err(ureq::Error::Timeout(timeout.reason)),
            d => Ok(Some(d)),
        }
    }

    fn failed(e: std::io::Error, timeout: &NextTimeout) -> ureq::Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
            _ => ureq::Error::Io(e),
        }
    }
}

impl Transport for Connection {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write;
        let timeout = timeout.for_write();
        self.sock.set_write_timeout(Self::limit(timeout)?)?;
        let out = &self.buffers.output()[..amount];
        (&self.sock).write_all(out).map_err(|e| Self::failed(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let limit = Self::limit(timeout)?;
        let until = limit.map(|d| Instant::now() + d);
        self.sock.set_read_timeout(limit)?;
        // A signal ends a read that has a timeout (signal(7)), whatever
        // SA_RESTART says: it goes on with the time left.
        let n = loop {
            match (&self.sock).read(self.buffers.input_append_buf()) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if let Some(until) = until {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(ureq::Error::Timeout(timeout.reason));
                        }
                        self.sock.set_read_timeout(Some(left))?;
                    }
                }
                r => break r.map_err(|e| Self::failed(e, &timeout))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        false
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
