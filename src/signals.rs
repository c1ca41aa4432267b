//! Signals arrive through a self-pipe.
//!
//! Each handler first sets its flag, then writes a byte to the pipe (the
//! order signal-hook's `low_level::pipe` documents), so the loop, woken by
//! the pipe, drains it and then reads the flags: a signal is never seen in
//! the pipe without its flag, and a flag set after the drain wakes the next
//! poll. Handlers (not `SIG_IGN`) are installed, so children start with
//! default dispositions after exec, and PID 1 gets TERM and INT too.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub const HANDLED: [i32; 4] = [libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGCHLD];

pub struct Signals {
    read: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for sig in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig, flag.clone())?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((sig, flag));
        }
        Ok(Signals { read, flags })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe, then returns the signals seen since the last call.
    pub fn take(&mut self) -> Vec<i32> {
        let mut buf = [0u8; 256];
        while matches!(self.read.read(&mut buf), Ok(n) if n > 0) {}
        self.flags.iter().filter(|(_, f)| f.swap(false, Ordering::SeqCst)).map(|(s, _)| *s).collect()
    }
}
