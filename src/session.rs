//! Control clients, served from the poll set without ever waiting on one.
//!
//! Every client socket is non-blocking. A request is one line of at most
//! `MAX_REQUEST` bytes that must arrive whole within `REQUEST_TIMEOUT` of
//! the connection; a client that dribbles, sends too much or nothing is
//! told why, logged and cut, and nobody else waits for it. Replies are
//! buffered and written as the client reads them; a reply must be taken
//! within `REPLY_TIMEOUT`, and a waiting `reload` client that stops reading
//! is cut once `MAX_BUFFERED` bytes are queued for it.
//!
//! Every line a client is sent is escaped here (`log::escape`), where it is
//! queued: whatever text a line carries, it is one line, so no message can
//! end it and forge the next (an `end ok`). Poll results are matched to
//! clients by id, as a client may be gone between the poll and the serve.

use crate::control::Request;
use crate::group::Level;
use crate::{log, sys};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

pub const MAX_REQUEST: usize = 4096;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_BUFFERED: usize = 1 << 20;
/// Clients connected at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 256;
/// After EMFILE or ENFILE on accept, the listener rests this long (it
/// stays readable, and polling it at once would spin).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

pub type ClientId = u64;

#[derive(Debug, PartialEq)]
enum State {
    /// Until its request line is whole.
    Reading,
    /// Its request is with the daemon.
    Answering,
    /// A `reload` client, sent lines as the round goes.
    Following,
    /// Closed once its output is written.
    Closing,
}

struct Client {
    id: ClientId,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    state: State,
    deadline: Option<Instant>,
    /// Nothing more to do with it.
    done: bool,
}

#[derive(Default)]
pub struct Sessions {
    clients: Vec<Client>,
    next: ClientId,
    /// No accept before this, after running out of descriptors.
    paused_until: Option<Instant>,
}

/// Parses a request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    match line.trim() {
        "reload" => Ok(Request::Reload),
        "status" => Ok(Request::Status { json: false }),
        "status json" => Ok(Request::Status { json: true }),
        "promote" => Ok(Request::EndBake { revert: false }),
        "revert" => Ok(Request::EndBake { revert: true }),
        other => Err(format!("unknown request {other:?}")),
    }
}

impl Sessions {
    /// Accepts every waiting connection (a few at most per call, so a
    /// flood cannot hold the loop).
    pub fn accept(&mut self, listener: &UnixListener, now: Instant) {
        for _ in 0..64 {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if self.paused_until.is_none() {
                        let msg = format!("control socket: accept: {e}; accepting again in 100 ms");
                        log::log(Level::Error, "rolld", None, &msg);
                    }
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) => {
                    log::log(Level::Error, "rolld", None, &format!("control socket: accept: {e}"));
                    return;
                }
            };
            self.paused_until = None;
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS {
                let _ = (&stream).write(b"error too many clients\n");
                log::log(
                    Level::Warn,
                    "rolld",
                    None,
                    &format!("control client refused: {MAX_CLIENTS} already connected"),
                );
                continue;
            }
            self.next += 1;
            let mut c = Client {
                id: self.next,
                stream,
                input: Vec::new(),
                output: Vec::new(),
                state: State::Reading,
                deadline: Some(now + REQUEST_TIMEOUT),
                done: false,
            };
            match sys::peer_uid(c.stream.as_fd()) {
                Ok(uid) if uid == sys::euid() || uid == 0 => {}
                Ok(uid) => c.refuse(&format!("uid {uid} may not control this rolld"), now),
                Err(e) => c.refuse(&format!("SO_PEERCRED: {e}"), now),
            }
            self.clients.push(c);
        }
    }

    /// The descriptors to poll, each with its client and the events it
    /// waits for.
    pub fn fds(&self) -> Vec<(ClientId, BorrowedFd<'_>, i16)> {
        self.clients
            .iter()
            .map(|c| {
                let mut ev = 0;
                if c.state == State::Reading {
                    ev |= libc::POLLIN;
                }
                if !c.output.is_empty() {
                    ev |= libc::POLLOUT;
                }
                (c.id, c.stream.as_fd(), ev)
            })
            .collect()
    }

    /// Serves the clients after a poll, given the `revents` of each client
    /// polled; the requests that arrived whole. A client gone since the
    /// poll is passed over.
    pub fn serve(&mut self, polled: &[(ClientId, i16)], now: Instant) -> Vec<(ClientId, Request)> {
        let mut out = Vec::new();
        for &(id, rev) in polled {
            if rev == 0 {
                continue;
            }
            let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else { continue };
            if c.state == State::Reading
                && let Some(req) = c.read(now)
            {
                out.push((c.id, req));
            }
            c.flush();
            if rev & (libc::POLLHUP | libc::POLLERR) != 0 && c.state != State::Reading {
                c.done = true;
            }
        }
        self.clients.retain(|c| !c.done);
        out
    }

    /// Queues `line` for client `id`, escaped: one line, whatever it holds.
    pub fn send(&mut self, id: ClientId, line: &str) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.queue(line);
        }
        self.clients.retain(|c| !c.done);
    }

    /// Keeps client `id` open for the lines of a round.
    pub fn follow(&mut self, id: ClientId) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.state = State::Following;
            c.deadline = None;
        }
    }

    /// Closes client `id` once what is queued for it is written.
    pub fn close(&mut self, id: ClientId, now: Instant) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.state = State::Closing;
            c.deadline = Some(now + REPLY_TIMEOUT);
            c.flush();
        }
        self.clients.retain(|c| !c.done);
    }

    /// Whether client `id` is still connected.
    pub fn is_open(&self, id: ClientId) -> bool {
        self.clients.iter().any(|c| c.id == id)
    }

    /// Cuts the clients whose time is up.
    pub fn expire(&mut self, now: Instant) {
        for c in &mut self.clients {
            if c.deadline.is_some_and(|d| d <= now) {
                let what = if c.state == State::Reading { "no whole request" } else { "its reply not read" };
                let t = if c.state == State::Reading { REQUEST_TIMEOUT } else { REPLY_TIMEOUT };
                let msg = format!("control client cut: {what} within {}s", t.as_secs_f64());
                log::log(Level::Warn, "rolld", None, &msg);
                if c.state == State::Reading {
                    let _ = (&c.stream).write(b"error request timed out\n");
                }
                c.done = true;
            }
        }
        self.clients.retain(|c| !c.done);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().filter_map(|c| c.deadline).chain(self.paused_until).min()
    }

    /// Whether the listener is to be polled now (not resting after EMFILE).
    pub fn accepting(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
        self.paused_until.is_none()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Client {
    fn refuse(&mut self, why: &str, now: Instant) {
        log::log(Level::Warn, "rolld", None, &format!("control client refused: {why}"));
        self.state = State::Closing;
        self.deadline = Some(now + REPLY_TIMEOUT);
        self.queue(&format!("error {why}"));
    }

    /// Reads what is there; the request once its line is whole.
    fn read(&mut self, now: Instant) -> Option<crate::control::Request> {
        let mut buf = [0u8; 1024];
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.done = true;
                    return None;
                }
            }
            if self.input.len() > MAX_REQUEST {
                break;
            }
        }
        let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
            if self.input.len() > MAX_REQUEST {
                let msg = format!("control client cut: request longer than {MAX_REQUEST} bytes");
                log::log(Level::Warn, "rolld", None, &msg);
                let _ = (&self.stream).write(b"error request too long\n");
                self.done = true;
            }
            return None;
        };
        let line = String::from_utf8_lossy(&self.input[..end]).into_owned();
        match parse_request(&line) {
            Ok(req) => {
                self.state = State::Answering;
                self.deadline = Some(now + REPLY_TIMEOUT);
                Some(req)
            }
            Err(e) => {
                self.refuse(&e, now);
                None
            }
        }
    }

    fn queue(&mut self, line: &str) {
        let line = log::escape(line);
        if self.output.len() + line.len() + 1 > MAX_BUFFERED {
            let msg = format!("control client cut: more than {MAX_BUFFERED} bytes queued and not read");
            log::log(Level::Warn, "rolld", None, &msg);
            self.done = true;
            return;
        }
        self.output.extend_from_slice(line.as_bytes());
        self.output.push(b'\n');
        self.flush();
    }

    fn flush(&mut self) {
        while !self.output.is_empty() {
            match (&self.stream).write(&self.output) {
                Ok(0) => break,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
        if self.output.is_empty() && self.state == State::Closing {
            self.done = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_and_unknown_ones_named() {
        assert_eq!(parse_request("reload\n"), Ok(Request::Reload));
        assert_eq!(parse_request("status"), Ok(Request::Status { json: false }));
        assert_eq!(parse_request("status json\r"), Ok(Request::Status { json: true }));
        assert_eq!(parse_request("promote"), Ok(Request::EndBake { revert: false }));
        assert_eq!(parse_request("revert\n"), Ok(Request::EndBake { revert: true }));
        assert_eq!(parse_request("stop\x1b"), Err("unknown request \"stop\\u{1b}\"".to_string()));
    }

    fn pair(s: &mut Sessions, listener: &UnixListener, path: &std::path::Path, now: Instant) -> UnixStream {
        let c = UnixStream::connect(path).unwrap();
        s.accept(listener, now);
        c
    }

    fn poll_once(s: &mut Sessions, now: Instant) -> Vec<(ClientId, Request)> {
        let polled: Vec<(ClientId, i16)> = s.fds().iter().map(|(id, _, ev)| (*id, *ev)).collect();
        s.serve(&polled, now)
    }

    /// Two `reload` clients, the first hung up: it is removed (its line
    /// cannot be written) between the poll and the serve, and the second,
    /// still there, is not cut by the first one's POLLHUP.
    #[test]
    fn a_hangup_is_matched_to_its_own_client() {
        let dir = std::env::temp_dir().join(format!("rolld-session-hup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let mut first = pair(&mut s, &listener, &path, t0);
        let mut second = pair(&mut s, &listener, &path, t0);
        first.write_all(b"reload\n").unwrap();
        second.write_all(b"reload\n").unwrap();
        let ids: Vec<ClientId> = poll_once(&mut s, t0).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 2);
        for &id in &ids {
            s.follow(id);
        }
        drop(first);
        let fds = s.fds();
        let polled: Vec<(BorrowedFd<'_>, i16)> = fds.iter().map(|(_, fd, ev)| (*fd, *ev)).collect();
        let revents = sys::poll(&polled, Some(Duration::from_secs(1))).unwrap();
        let revents: Vec<(ClientId, i16)> = fds.iter().map(|c| c.0).zip(revents).collect();
        drop((fds, polled));
        assert!(revents[0].1 & libc::POLLHUP != 0 && revents[1].1 == 0, "{revents:?}");
        // A line for both, as a broadcast sends it: the first is gone.
        s.send(ids[0], "log x");
        s.send(ids[1], "log x");
        assert!(!s.is_open(ids[0]) && s.is_open(ids[1]));
        s.serve(&revents, t0);
        assert!(s.is_open(ids[1]), "the second client was cut by the first one's hangup");
        s.send(ids[1], "end ok");
        s.close(ids[1], t0);
        let mut got = String::new();
        second.read_to_string(&mut got).unwrap();
        assert_eq!(got, "log x\nend ok\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Whatever a line holds, the client gets one line, escaped.
    #[test]
    fn each_line_sent_is_one_line_escaped() {
        let dir = std::env::temp_dir().join(format!("rolld-session-esc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let mut c = pair(&mut s, &listener, &path, t0);
        c.write_all(b"status\n").unwrap();
        let id = poll_once(&mut s, t0)[0].0;
        let mut want = Vec::new();
        for (raw, shown) in log::HOSTILE {
            s.send(id, &format!("log web {raw}"));
            want.push(format!("log web {shown}"));
        }
        s.close(id, t0);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want.join("\n") + "\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_request_is_read_whole_and_a_dribbler_is_cut() {
        let dir = std::env::temp_dir().join(format!("rolld-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let mut slow = pair(&mut s, &listener, &path, t0);
        slow.write_all(b"sta").unwrap();
        assert!(poll_once(&mut s, t0).is_empty());
        let mut fast = pair(&mut s, &listener, &path, t0);
        fast.write_all(b"status\n").unwrap();
        let reqs = poll_once(&mut s, t0);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].1, Request::Status { json: false });
        s.send(reqs[0].0, "hello");
        s.close(reqs[0].0, t0);
        let mut got = String::new();
        fast.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
        assert_eq!(s.len(), 1, "the slow one is still reading");
        s.expire(t0 + REQUEST_TIMEOUT);
        assert!(s.is_empty(), "cut at its deadline");
        let mut got = String::new();
        slow.read_to_string(&mut got).unwrap();
        assert_eq!(got, "error request timed out\n");
        // One that sends too much without a newline is cut at once.
        let mut big = pair(&mut s, &listener, &path, t0);
        big.write_all(&vec![b'x'; MAX_REQUEST + 10]).unwrap();
        poll_once(&mut s, t0);
        assert!(s.is_empty());
        let mut got = String::new();
        big.read_to_string(&mut got).unwrap();
        assert_eq!(got, "error request too long\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
