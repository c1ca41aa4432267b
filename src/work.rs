//! The work that runs beside the loop, never in it.
//!
//! Two kinds of slow work exist. Blocking calls (a smoke check, a render,
//! a connection count, reading the config again) run on worker threads, a pool that grows to
//! `MAX_WORKERS` and keeps its threads; each result is queued on a channel,
//! then a byte is written to a pipe that the loop polls (the self-pipe
//! order: result first, then the wakeup). Processes (an after_start
//! `run_proc`) are children like the backends: spawned in their own process
//! group, reaped by the daemon's one reaper; what they print comes back
//! through a socket in the poll set, is logged line by line, and its tail
//! kept for the error message. The loop never waits for either.

use crate::config::Config;
use crate::group::{Event, Level};
use crate::log;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// At most this many blocking calls run at once; more wait their turn.
pub const MAX_WORKERS: usize = 64;
/// What is kept of a step's output for its error message.
const TAIL_BYTES: usize = 2048;
/// A line of a step's output longer than this is logged in pieces.
const LINE_MAX: usize = 4096;

/// Who asked for a piece of work: the daemon's id of a group.
pub type Owner = u64;

/// What a piece of work hands back.
pub enum Done {
    /// An event for the group the daemon knows as `Owner`.
    Group(Owner, Event),
    /// The config, read again by the daemon's read number `u64` (its
    /// files and templates, its users looked up: any of which can take
    /// time).
    Config(u64, Result<Config, Vec<String>>),
}

type Task = Box<dyn FnOnce() -> Done + Send>;

pub struct Work {
    tasks: Sender<Task>,
    queue: Arc<Mutex<Receiver<Task>>>,
    results: Receiver<Done>,
    results_tx: Sender<Done>,
    wake_rx: UnixStream,
    wake_tx: Arc<UnixStream>,
    threads: usize,
    /// Tasks submitted whose results have not been taken yet.
    pending: usize,
    steps: HashMap<i32, Output>,
}

/// The output of a running step.
struct Output {
    group: String,
    sock: UnixStream,
    line: Vec<u8>,
    tail: Vec<u8>,
    /// The other end is closed: nothing more to poll for.
    eof: bool,
}

impl Work {
    pub fn new() -> io::Result<Work> {
        let (tasks, queue) = mpsc::channel();
        let (results_tx, results) = mpsc::channel();
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Work {
            tasks,
            queue: Arc::new(Mutex::new(queue)),
            results,
            results_tx,
            wake_rx,
            wake_tx: Arc::new(wake_tx),
            threads: 0,
            pending: 0,
            steps: HashMap::new(),
        })
    }

    /// The descriptor that becomes readable when results are waiting.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }

    /// Runs `task` on a worker thread; its event comes back from `take`.
    pub fn submit(&mut self, owner: Owner, task: impl FnOnce() -> Event + Send + 'static) {
        self.run(Box::new(move || Done::Group(owner, task())));
    }

    /// Reads the config at `path` on a worker thread, as read number `n`;
    /// it comes back from `take`.
    pub fn load(&mut self, n: u64, path: std::path::PathBuf) {
        self.run(Box::new(move || {
            let read = std::panic::catch_unwind(|| crate::config::load(&path));
            Done::Config(n, read.unwrap_or_else(|_| Err(vec![format!("{}: reading it failed", path.display())])))
        }));
    }

    fn run(&mut self, task: Task) {
        self.pending += 1;
        if self.pending > self.threads && self.threads < MAX_WORKERS {
            let spawned = self.spawn_worker();
            if let Err(e) = spawned {
                log::log(Level::Error, "rolld", None, &format!("cannot start a worker thread: {e}"));
            }
        }
        if self.threads == 0 {
            // No worker at all: run it here rather than never.
            let _ = self.results_tx.send(task());
            let _ = (&*self.wake_tx).write(&[1]);
            return;
        }
        let _ = self.tasks.send(task);
    }

    fn spawn_worker(&mut self) -> io::Result<()> {
        let queue = self.queue.clone();
        let results = self.results_tx.clone();
        let wake = self.wake_tx.clone();
        std::thread::Builder::new().name("rolld-worker".into()).spawn(move || {
            loop {
                let next = queue.lock().map(|q| q.recv());
                let Ok(Ok(task)) = next else { return };
                if results.send(task()).is_err() {
                    return;
                }
                // A full pipe already holds a wakeup.
                let _ = (&*wake).write(&[1]);
            }
        })?;
        self.threads += 1;
        Ok(())
    }

    /// The results that have arrived, in the order they came.
    pub fn take(&mut self) -> Vec<Done> {
        let mut buf = [0u8; 256];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let out: Vec<Done> = self.results.try_iter().collect();
        self.pending = self.pending.saturating_sub(out.len());
        out
    }

    /// A socket for a step's output: the end to give the child, after the
    /// loop's end is registered for `pid` by `watch_step`.
    pub fn output_pair() -> io::Result<(UnixStream, OwnedFd)> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        theirs.shutdown(std::net::Shutdown::Read)?;
        Ok((ours, theirs.into()))
    }

    /// Follows the output of the step process `pid` of `group`.
    pub fn watch_step(&mut self, pid: i32, group: &str, sock: UnixStream) {
        self.steps
            .insert(pid, Output { group: group.to_string(), sock, line: Vec::new(), tail: Vec::new(), eof: false });
    }

    pub fn is_step(&self, pid: i32) -> bool {
        self.steps.contains_key(&pid)
    }

    /// The output sockets to poll, with their pids.
    pub fn step_fds(&self) -> Vec<(i32, BorrowedFd<'_>)> {
        self.steps.iter().filter(|(_, o)| !o.eof).map(|(pid, o)| (*pid, o.sock.as_fd())).collect()
    }

    /// Reads what step `pid` printed so far.
    pub fn read_step(&mut self, pid: i32) {
        if let Some(o) = self.steps.get_mut(&pid) {
            o.read();
        }
    }

    /// The step `pid` ended: the rest of its output is read (what is
    /// there now; a process it left behind may hold the socket open) and
    /// its tail returned.
    pub fn end_step(&mut self, pid: i32) -> String {
        let Some(mut o) = self.steps.remove(&pid) else { return String::new() };
        o.read();
        o.flush_line();
        let text = String::from_utf8_lossy(&o.tail).into_owned();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Output {
    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        // Bounded per call, so a step that prints without end cannot hold
        // the loop.
        for _ in 0..16 {
            match (&self.sock).read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
                Err(_) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.take(&buf[..n]),
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        for &b in bytes {
            if b == b'\n' || self.line.len() >= LINE_MAX {
                self.flush_line();
                if b == b'\n' {
                    continue;
                }
            }
            self.line.push(b);
        }
    }

    fn flush_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        log::log(Level::Info, &self.group, None, &format!("after_start | {text}"));
        self.line.clear();
    }
}
