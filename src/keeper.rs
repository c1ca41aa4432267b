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
//! It is rolld's own binary started as `rolld-sockets STATE_FILE` (so
//! `pidof rolld` never names it), in its own process group, with the sockets as its
//! descriptors 3, 4, ... and nothing else of rolld's. It sleeps, ignores
//! the signals of a terminal and of a broad `kill`, and ends on SIGTERM or
//! SIGKILL. rolld starts a new one whenever the set of pools changes: the
//! new one first, then the state file records both, and only then is the
//! old one killed, so that a SIGKILL of rolld at any point leaves a keeper
//! the state file names. rolld kills its keeper when it exits. A keeper
//! started just before a SIGKILL, before the state file named it, is
//! found by its state file's path and killed by the successor.

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
    /// Starts a keeper of `pools` for the rolld whose state file is
    /// `state_path` (its second argument: `ps` tells whose keeper it is,
    /// and `kill_strays` finds it).
    pub fn spawn(pools: Vec<(String, Arc<Pool>)>, state_path: &Path) -> io::Result<Keeper> {
        let fds: Vec<BorrowedFd<'_>> = pools.iter().flat_map(|(_, p)| p.all()).collect();
        let arg = |b: &[u8]| std::ffi::CString::new(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
        let argv = [arg(NAME.as_bytes())?, arg(state_path.as_os_str().as_bytes())?];
        let pid = sys::spawn_with_fds(c"/proc/self/exe", &argv, &fds)?;
        let start = state::identity(pid).map_or(0, |i| i.0);
        Ok(Keeper { pid, start, pools, since: Instant::now() })
    }

    /// Whether it holds every pool of `pools` (and maybe more).
    pub fn covers(&self, pools: &[(String, Arc<Pool>)]) -> bool {
        pools.iter().all(|p| self.pools.iter().any(|k| k.0 == p.0 && Arc::ptr_eq(&k.1, &p.1)))
    }

    /// Whether every pool it holds is one of `pools`.
    pub fn within(&self, pools: &[(String, Arc<Pool>)]) -> bool {
        self.pools.iter().all(|p| pools.iter().any(|w| w.0 == p.0 && Arc::ptr_eq(&w.1, &p.1)))
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

/// Why a successor could not take descriptors from a keeper, if it could
/// not: `pidfd_getfd` missing (Linux before 5.6, or refused by a seccomp
/// profile), or Yama's ptrace_scope (3 refuses everyone; 1 and 2 refuse
/// a process without CAP_SYS_PTRACE, and the keeper is not a
/// successor's child).
pub fn takeback_blocked() -> Option<String> {
    let me = match sys::pidfd_open(std::process::id() as i32) {
        Ok(fd) => fd,
        Err(e) => return Some(format!("pidfd_open: {e}")),
    };
    if let Err(e) = sys::pidfd_getfd(me.as_fd(), 0) {
        return Some(format!("pidfd_getfd: {e}"));
    }
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
    match scope.trim().parse::<u8>().ok()? {
        0 => None,
        3 => Some("kernel.yama.ptrace_scope is 3: no process may take another's descriptors".into()),
        n if sys::euid() != 0 => Some(format!(
            "kernel.yama.ptrace_scope is {n}: without CAP_SYS_PTRACE, a successor cannot take descriptors from a \
             keeper it did not start"
        )),
        _ => None,
    }
}

/// Kills the keepers of the rolld recording `state_path` that run as
/// rolld's user and are none of `known`: left by a rolld killed between
/// starting a keeper and recording it in the state file. Only a process
/// named `NAME` in /proc (read without its memory) has its command line
/// read, and it is killed through a pidfd opened before that read. The
/// pids killed.
pub fn kill_strays(state_path: &Path, known: &[i32]) -> Vec<i32> {
    let want: Vec<u8> = [NAME.as_bytes(), b"\0", state_path.as_os_str().as_bytes(), b"\0"].concat();
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut killed = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if pid == me || known.contains(&pid) {
            continue;
        }
        let path = e.path();
        let ours = std::os::unix::fs::MetadataExt::uid(&match e.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        }) == sys::euid();
        if !ours || std::fs::read(path.join("comm")).ok().as_deref() != Some(format!("{NAME}\n").as_bytes()) {
            continue;
        }
        let Ok(pidfd) = sys::pidfd_open(pid) else { continue };
        if std::fs::read(path.join("cmdline")).ok().as_deref() == Some(&want[..])
            && sys::pidfd_kill(pidfd.as_fd(), libc::SIGKILL).is_ok()
        {
            killed.push(pid);
        }
    }
    killed
}

/// A predecessor's keeper, found alive in the state file: its pid, its
/// pidfd (through which it is killed once a keeper of this rolld holds
/// what it held), and what the state file said it held, recorded again
/// while it lives.
pub struct Previous {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub held: Vec<Held>,
}

impl Previous {
    /// SIGKILL to the process itself, through its pidfd (it leads no
    /// group of use to anyone: it only sleeps).
    pub fn kill(&self) -> io::Result<()> {
        sys::pidfd_kill(self.pidfd.as_fd(), libc::SIGKILL)
    }
}

/// What `recover` takes back.
#[derive(Default)]
pub struct Recovered {
    /// The pools taken, by group.
    pub pools: Vec<(String, Pool)>,
    /// The groups whose sockets could not be taken, and why.
    pub failed: Vec<(String, String)>,
    /// Every keeper the state file names that still runs, whether or not
    /// its groups are still configured: each is killed once a new keeper
    /// holds what is still wanted.
    pub keepers: Vec<Previous>,
}

/// Takes back, from the keepers `held` names, the sockets of each group
/// of `cfg` that has `listen:`, in the layout they were made with (a
/// layout the config has changed since is refused later, by the round,
/// with the processes still serving). A group named by two keepers (the
/// predecessor was killed while it replaced its keeper) is taken from the
/// first that gives it.
pub fn recover(held: &[Held], cfg: &Config) -> Recovered {
    let mut r = Recovered::default();
    let mut ended: Vec<(i32, String)> = Vec::new();
    for h in held {
        if r.keepers.iter().any(|k| k.pid == h.pid) || ended.iter().any(|e| e.0 == h.pid) {
            continue;
        }
        match open(h) {
            Ok(pidfd) => {
                let held = held.iter().filter(|x| x.pid == h.pid).cloned().collect();
                r.keepers.push(Previous { pid: h.pid, pidfd, held });
            }
            Err(e) => ended.push((h.pid, e)),
        }
    }
    let mut names: Vec<&str> = held.iter().map(|h| h.group.as_str()).collect();
    names.dedup();
    for name in names {
        if r.pools.iter().any(|p| p.0 == name) || r.failed.iter().any(|f| f.0 == name) {
            continue;
        }
        if !cfg.groups.iter().any(|g| g.name == name && g.listen.is_some()) {
            continue;
        }
        let mut why = Vec::new();
        for h in held.iter().filter(|h| h.group == name) {
            let Some(k) = r.keepers.iter().find(|k| k.pid == h.pid) else {
                why.extend(ended.iter().filter(|e| e.0 == h.pid).map(|e| e.1.clone()));
                continue;
            };
            match take(k.pidfd.as_fd(), h) {
                Ok(pool) => {
                    r.pools.push((name.to_string(), pool));
                    why.clear();
                    break;
                }
                Err(e) => why.push(format!("cannot take the sockets of {} from pid {}: {e}", h.addr, h.pid)),
            }
        }
        if !why.is_empty() {
            r.failed.push((name.to_string(), why.join("; ")));
        }
    }
    r
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
    let socks: Vec<OwnedFd> = (0..2 * h.procs as i32 + 1)
        .map(|i| sys::pidfd_getfd(pidfd, h.fd.saturating_add(i)))
        .collect::<io::Result<_>>()?;
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

    /// A keeper of this state file that the state file does not name is
    /// killed; one it names, and one of another state file, are not.
    #[test]
    fn a_stray_keeper_of_the_same_state_file_is_killed_and_no_other() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        // A process's name is the last part of the path it was started
        // from: `sleep` started through a link named `rolld-sockets`.
        let dir = std::env::temp_dir().join(format!("rolld-strays-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join(NAME);
        std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
        let spawn = |state: &str| std::process::Command::new(&exe).arg0(NAME).arg(state).spawn().unwrap();
        // `sleep` takes its one argument as the state file's path.
        let (mut stray, mut other) = (spawn("infinity"), spawn("3600"));
        let pid = stray.id() as i32;
        assert_eq!(kill_strays(Path::new("infinity"), &[pid]), Vec::<i32>::new(), "a keeper it names");
        assert_eq!(kill_strays(Path::new("infinity"), &[]), vec![pid]);
        assert_eq!(stray.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(other.try_wait().unwrap().is_none(), "the keeper of another state file runs on");
        other.kill().unwrap();
        other.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
