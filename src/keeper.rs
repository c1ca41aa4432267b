//! The keeper: a process that holds a copy of every socket of the
//! `listen:` groups, so that they outlive a SIGKILL of rolld in the order
//! rolld made them.
//!
//! Without it, the sockets only rolld held (the bank no process serves,
//! and the control socket) would close with rolld. The kernel would move
//! the group's last members into their places, and the program left
//! attached would send new connections to sockets other than those it
//! names: some to a process draining, which may be stopped with them in
//! its queue. With the keeper, the group, its order and its program stay
//! as they were; the live set serves on as if rolld still ran, and a
//! successor takes every socket back from the keeper (pidfd_getfd) and
//! goes on where its predecessor stopped.
//!
//! It is rolld's own binary started as `rolld-sockets CONFIG` (so `pidof
//! rolld` never names it), in its own process group, with the sockets as its
//! descriptors 3, 4, ... and nothing else of rolld's. It sleeps, ignores
//! the signals of a terminal and of a broad `kill`, and ends on SIGTERM or
//! SIGKILL. rolld starts a new one whenever the set of pools changes (the
//! new one first, recorded in the state file, then the old one goes), and
//! kills it when it exits.

use crate::config::Config;
use crate::pool::Pool;
use crate::state::{self, Held};
use crate::sys;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The keeper's argv[0], and its name in /proc (15 bytes at most).
pub const NAME: &str = "rolld-sockets";

/// A keeper started by this rolld (its child, not yet reaped).
pub struct Keeper {
    pub pid: i32,
    start: u64,
    /// The pools it holds, by group, in the order of its descriptors.
    pools: Vec<(String, Arc<Pool>)>,
    pub since: Instant,
}

impl Keeper {
    /// Starts a keeper of `pools` for the rolld running `config` (its
    /// second argument: `ps` tells whose keeper it is).
    pub fn spawn(pools: Vec<(String, Arc<Pool>)>, config: &Path) -> io::Result<Keeper> {
        let fds: Vec<BorrowedFd<'_>> = pools.iter().flat_map(|(_, p)| p.all()).collect();
        let arg = |b: &[u8]| std::ffi::CString::new(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
        let argv = [arg(NAME.as_bytes())?, arg(config.as_os_str().as_bytes())?];
        let pid = sys::spawn_with_fds(c"/proc/self/exe", &argv, &fds)?;
        let start = state::identity(pid).map_or(0, |i| i.0);
        Ok(Keeper { pid, start, pools, since: Instant::now() })
    }

    /// Whether it holds exactly `pools`.
    pub fn keeps(&self, pools: &[(String, Arc<Pool>)]) -> bool {
        self.pools.len() == pools.len()
            && self.pools.iter().zip(pools).all(|(a, b)| a.0 == b.0 && Arc::ptr_eq(&a.1, &b.1))
    }

    /// Where each group's sockets are in it, for the state file.
    pub fn held(&self) -> Vec<Held> {
        let mut fd = 3;
        let mut out = Vec::with_capacity(self.pools.len());
        for (group, p) in &self.pools {
            out.push(Held {
                group: group.clone(),
                addr: p.addr(),
                procs: p.slots(),
                check_from: p.check_from(),
                fd,
                pid: self.pid,
                start: self.start,
            });
            fd += 2 * p.slots() as i32 + 1;
        }
        out
    }

    /// SIGKILL: it is rolld's child, not yet reaped, so the number is its
    /// own. The reaping is left to rolld's loop.
    pub fn kill(&self) -> io::Result<()> {
        sys::kill_group(self.pid, libc::SIGKILL)
    }
}

/// What the process started as `NAME` does.
pub fn run() -> ! {
    sys::sleep_forever(c"rolld-sockets")
}

/// A predecessor's keeper, found alive in the state file: its pid and its
/// pidfd, through which it is killed once a keeper of this rolld holds
/// what it held.
pub struct Previous {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

impl Previous {
    pub fn kill(&self) -> io::Result<()> {
        sys::pidfd_kill_group(self.pidfd.as_fd(), self.pid, libc::SIGKILL)
    }
}

/// What `recover` takes back.
#[derive(Default)]
pub struct Recovered {
    /// The pools taken, by group.
    pub pools: Vec<(String, Pool)>,
    /// The groups whose sockets could not be taken, and why.
    pub failed: Vec<(String, String)>,
    /// The keepers found, to be killed once a new keeper holds the pools.
    pub keepers: Vec<Previous>,
}

/// Takes back, from the keepers `held` names, the sockets of each group
/// of `cfg` whose `listen:` layout is the one recorded.
pub fn recover(held: &[Held], cfg: &Config) -> Recovered {
    let mut pools = Vec::new();
    let mut failed = Vec::new();
    let mut keepers: Vec<Previous> = Vec::new();
    for h in held {
        let Some(gc) = cfg.groups.iter().find(|g| g.name == h.group) else { continue };
        let Some(l) = &gc.listen else { continue };
        let keeper = match keepers.iter().position(|k| k.pid == h.pid) {
            Some(k) => Ok(k),
            None => open(h).map(|pidfd| {
                keepers.push(Previous { pid: h.pid, pidfd });
                keepers.len() - 1
            }),
        };
        let taken = keeper.and_then(|k| {
            if (l.addr, l.procs, l.check_from) != (h.addr, h.procs, h.check_from) {
                return Err(format!(
                    "the sockets of a previous rolld are {} with {} processes and check_from {}; the config says {} \
                     with {} and {}",
                    h.addr, h.procs, h.check_from, l.addr, l.procs, l.check_from
                ));
            }
            take(keepers[k].pidfd.as_fd(), h)
                .map_err(|e| format!("cannot take the sockets of {} from pid {}: {e}", h.addr, h.pid))
        });
        match taken {
            Ok(pool) => pools.push((h.group.clone(), pool)),
            Err(e) => failed.push((h.group.clone(), e)),
        }
    }
    Recovered { pools, failed, keepers }
}

/// A pidfd of the keeper `h` names, once it is known to be that process.
fn open(h: &Held) -> Result<OwnedFd, String> {
    let pidfd = sys::pidfd_open(h.pid).map_err(|e| format!("the keeper of its sockets, pid {}: {e}", h.pid))?;
    if state::identity(h.pid).map(|i| i.0) != Some(h.start) {
        return Err(format!("the keeper of its sockets, pid {}, has ended", h.pid));
    }
    Ok(pidfd)
}

/// The pool of `h`, from the keeper behind `pidfd`.
fn take(pidfd: BorrowedFd<'_>, h: &Held) -> io::Result<Pool> {
    let socks: Vec<OwnedFd> =
        (0..2 * h.procs as i32 + 1).map(|i| sys::pidfd_getfd(pidfd, h.fd + i)).collect::<io::Result<_>>()?;
    Pool::adopt(h.addr, h.procs, h.check_from, socks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The keeper's descriptors are exactly those given, in order, after
    /// /dev/null as 0, 1 and 2; and a program that cannot run is an error
    /// of the spawn, not a child that dies.
    #[test]
    fn a_child_gets_exactly_the_descriptors_given() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let argv = [c"sleep".to_owned(), c"5".to_owned()];
        let pid = sys::spawn_with_fds(c"/bin/sleep", &argv, &[b.as_fd(), a.as_fd()]).unwrap();
        let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .map(|e| {
                let n = e.file_name().to_str().unwrap().parse().unwrap();
                (n, std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned())
            })
            .collect();
        fds.sort();
        let _ = sys::kill_group(pid, libc::SIGKILL);
        sys::reap(pid);
        let socket = |l: &TcpListener| format!("socket:[{}]", sys::inode(l.as_fd()).unwrap());
        let null = "/dev/null".to_string();
        assert_eq!(fds, vec![(0, null.clone()), (1, null.clone()), (2, null), (3, socket(&b)), (4, socket(&a))]);

        let e = sys::spawn_with_fds(c"/nonexistent/keeper", &argv, &[a.as_fd()]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
