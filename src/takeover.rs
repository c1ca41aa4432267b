//! Takeover: what a rolld started after its predecessor was killed does
//! with the processes that predecessor left, as its state file records
//! them. Live sets become this rolld's live sets (to be rolled over by the
//! first round); a set that was draining goes on draining, then stops;
//! anything else is stopped. A recorded pid whose start time or process
//! group differs is someone else's and is left alone. The sockets of a
//! `listen:` group are taken back from the predecessor's keeper (see
//! `keeper`) first.
//!
//! Each process is watched by a pidfd, opened before its identity is
//! checked, so the pid cannot be recycled between the two. Where pidfds
//! are not available (kernels before 5.3, seccomp profiles that refuse
//! pidfd_open), its identity in /proc is looked at every
//! `POLL_INTERVAL` instead.
//!
//! It runs once, before the loop starts and before anything is served: the
//! stop of what is not taken over waits here, up to the longest stop
//! timeout. Every signal to a taken-over process group, here and in the
//! loop, goes through `signal_group`.

use crate::config::Config;
use crate::group::{Group, Level, fmt_ports};
use crate::keeper::{self, Previous};
use crate::pool::Pool;
use crate::state::{self, Entry};
use crate::{log, sys};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLLD: &str = "rolld";
/// How often a process without a pidfd is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How a taken-over process is seen to end.
pub enum Watch {
    Pidfd(OwnedFd),
    /// Its start time: it has ended once /proc shows another, or none.
    Poll(u64),
}

/// A taken-over process: its pid and how it is watched.
pub type Watched = (i32, Watch);

/// Opens the watch on `e` and checks that it is still the process recorded.
fn watch(e: &Entry) -> Option<Watch> {
    let w = match sys::pidfd_open(e.pid) {
        Ok(fd) => Watch::Pidfd(fd),
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return None,
        Err(err) => {
            let msg = format!("pidfd of pid {}: {err}; watching it through /proc instead", e.pid);
            log::log(Level::Warn, &e.group, Some(e.port), &msg);
            Watch::Poll(e.start)
        }
    };
    (state::identity(e.pid) == Some((e.start, e.pid))).then_some(w)
}

/// Whether the watched process `pid` has ended, for a `Watch::Poll`.
pub fn ended(pid: i32, start: u64) -> bool {
    state::identity(pid) != Some((start, pid))
}

/// What a rolld takes over from its predecessor.
#[derive(Default)]
pub struct Taken {
    pub groups: Vec<Group>,
    /// How their processes are watched.
    pub watched: Vec<Watched>,
    /// The sockets of `listen:` groups, taken back from the keeper.
    pub pools: Vec<(String, Pool)>,
    /// The predecessor's keepers, to be killed once a keeper of this
    /// rolld holds the pools.
    pub keepers: Vec<Previous>,
}

/// The groups taken over, and how their processes are watched.
pub fn take_over(state_path: &Path, cfg: &Config) -> Taken {
    let mut taken = Taken::default();
    let saved = match state::read(state_path) {
        Ok(Some(s)) => s,
        Ok(None) => return taken,
        Err(e) => {
            log::log(Level::Warn, ROLLD, None, &format!("state file: {e}"));
            return taken;
        }
    };
    let keeper::Recovered { pools, failed, keepers } = keeper::recover(&saved.sockets, cfg);
    for (name, pool) in &pools {
        log::log(Level::Warn, name, None, &format!("took back the sockets of {} from a previous rolld", pool.addr()));
    }
    for (name, why) in failed {
        log::log(Level::Warn, &name, None, &why);
    }
    (taken.pools, taken.keepers) = (pools, keepers);
    let (groups, watched) = (&mut taken.groups, &mut taken.watched);
    let entries = saved.procs;
    let mut live: BTreeMap<String, Vec<(u16, i32)>> = BTreeMap::new();
    let mut draining: BTreeMap<String, Vec<(u16, i32)>> = BTreeMap::new();
    let mut stale = Vec::new();
    for e in entries {
        let Some(w) = watch(&e) else { continue };
        let known = cfg.groups.iter().any(|g| g.name == e.group);
        match (known, e.role) {
            (true, state::Role::Live) => live.entry(e.group.clone()).or_default().push((e.port, e.pid)),
            (true, state::Role::Drain) => draining.entry(e.group.clone()).or_default().push((e.port, e.pid)),
            _ => {
                stale.push((e, w));
                continue;
            }
        }
        watched.push((e.pid, w));
    }
    stop_stale(cfg, stale);
    for (name, procs) in live {
        let Some(gc) = cfg.groups.iter().find(|g| g.name == name) else { continue };
        let mut group = Group::new(&name);
        group.adopt(Arc::new(gc.clone()), &procs, Instant::now());
        let ports: Vec<u16> = procs.iter().map(|p| p.0).collect();
        let msg = format!("took over the live set {} of a previous rolld; rolling it over", fmt_ports(&ports));
        log::log(Level::Warn, &name, None, &msg);
        groups.push(group);
    }
    for (name, procs) in draining {
        let Some(gc) = cfg.groups.iter().find(|g| g.name == name) else { continue };
        let i = match groups.iter().position(|g| g.name == name) {
            Some(i) => i,
            None => {
                groups.push(Group::new(&name));
                groups.len() - 1
            }
        };
        groups[i].adopt_draining(Arc::new(gc.clone()), &procs, Instant::now());
        let ports: Vec<u16> = procs.iter().map(|p| p.0).collect();
        let msg = format!(
            "took over the draining set {} of a previous rolld; draining it, then stopping it",
            fmt_ports(&ports)
        );
        log::log(Level::Warn, &name, None, &msg);
    }
    taken
}

/// Sends `sig` to the process group of the taken-over process `pid`
/// (watched by `w`) only while that group is known to be the one it led:
/// through its pidfd (see `sys::pidfd_kill_group`: from Linux 6.9 even
/// after it ended, to what is left of its group), or, without a pidfd,
/// right after /proc shows it alive. Otherwise nothing is sent: the number
/// may belong to someone else's group by then.
pub fn signal_group(pid: i32, w: &Watch, sig: i32) -> io::Result<()> {
    match w {
        Watch::Pidfd(fd) => sys::pidfd_kill_group(fd.as_fd(), pid, sig),
        Watch::Poll(start) if !ended(pid, *start) => sys::kill_group(pid, sig),
        Watch::Poll(_) => Ok(()),
    }
}

/// A process being stopped, and when it gets SIGKILL.
type Stopping = (Entry, Watch, Instant);

/// Stops processes of a predecessor that were not serving: the stop
/// signal to each one's group, then SIGKILL to those still running after
/// their stop timeout. They are all watched at once: a leader seen to end
/// has what is left of its group killed at that moment (as the daemon's
/// own children are when reaped), and is not signalled after it.
fn stop_stale(cfg: &Config, stale: Vec<(Entry, Watch)>) {
    let mut stopping: Vec<Stopping> = Vec::new();
    for (e, w) in stale {
        let gc = cfg.groups.iter().find(|g| g.name == e.group);
        let sig = gc.map_or(libc::SIGTERM, |g| g.stop_signal);
        let timeout = gc.map_or(Duration::from_secs(10), |g| g.timing.stop_timeout);
        let msg = format!("stopping pid {} left by a previous rolld", e.pid);
        log::log(Level::Warn, &e.group, Some(e.port), &msg);
        match signal_group(e.pid, &w, sig) {
            Ok(()) => stopping.push((e, w, Instant::now() + timeout)),
            Err(err) => {
                let msg = format!("cannot send signal {sig} to process group {}: {err}", e.pid);
                log::log(Level::Error, &e.group, Some(e.port), &msg);
            }
        }
    }
    while !stopping.is_empty() {
        let mut ended = wait_any(&stopping).into_iter();
        let now = Instant::now();
        stopping.retain(|(e, w, kill_at)| {
            let gone = ended.next().unwrap_or(false);
            if !gone && now < *kill_at {
                return true;
            }
            if !gone {
                log::log(Level::Warn, &e.group, Some(e.port), &format!("pid {} still running: SIGKILL", e.pid));
            }
            let _ = signal_group(e.pid, w, libc::SIGKILL);
            false
        });
    }
}

/// Waits until a process of `stopping` ends or the nearest SIGKILL is due
/// (a signal may end the wait sooner): whether each has ended. Those
/// without a pidfd are looked at in /proc every 20 ms.
fn wait_any(stopping: &[Stopping]) -> Vec<bool> {
    let next = stopping.iter().map(|s| s.2).min();
    let mut timeout = next.map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()));
    if stopping.iter().any(|s| matches!(s.1, Watch::Poll(_))) {
        timeout = timeout.min(Duration::from_millis(20));
    }
    let fds: Vec<BorrowedFd<'_>> = stopping
        .iter()
        .filter_map(|s| match &s.1 {
            Watch::Pidfd(fd) => Some(fd.as_fd()),
            Watch::Poll(_) => None,
        })
        .collect();
    let mut ready = sys::poll_readable(&fds, Some(timeout))
        .unwrap_or_else(|_| {
            std::thread::sleep(timeout);
            vec![false; fds.len()]
        })
        .into_iter();
    stopping
        .iter()
        .map(|(e, w, _)| match w {
            Watch::Pidfd(_) => ready.next().unwrap_or(false),
            Watch::Poll(start) => ended(e.pid, *start),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    /// Waits (5 s at most) until `pid` runs no more; whether it ended.
    fn ends(pid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while state::identity(pid).is_some() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Whether the kernel has `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9).
    fn signals_groups_by_pidfd() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
        (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 9)
    }

    #[test]
    fn a_leader_alive_has_its_group_signalled_whatever_watches_it() {
        for how in ["pidfd", "pidfd before 6.9", "/proc"] {
            let mut child = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
            let pid = child.id() as i32;
            let fd = sys::pidfd_open(pid).unwrap();
            let sent = match how {
                "pidfd" => signal_group(pid, &Watch::Pidfd(fd), libc::SIGKILL),
                "pidfd before 6.9" => sys::kill_group_while_led(fd.as_fd(), pid, libc::SIGKILL),
                _ => signal_group(pid, &Watch::Poll(state::identity(pid).unwrap().0), libc::SIGKILL),
            };
            sent.unwrap();
            assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL), "{how}");
        }
    }

    /// The leader has ended and been reaped; a member of its group is left.
    /// By number its group is no longer known to be its own: only the
    /// pidfd's own group (Linux 6.9) reaches the member.
    #[test]
    fn a_group_whose_leader_is_reaped_is_reached_only_through_the_pidfd() {
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null & echo $!"])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = leader.id() as i32;
        // Read while the leader, not yet reaped, is at most a zombie.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let start = state::parse_stat(&stat).unwrap().start;
        let fd = sys::pidfd_open(pid).unwrap();
        let out = std::io::read_to_string(leader.stdout.take().unwrap()).unwrap();
        let member: i32 = out.trim().parse().unwrap();
        assert!(leader.wait().unwrap().success());
        assert_eq!(state::identity(member).map(|i| i.1), Some(pid), "the member holds the group");

        sys::kill_group_while_led(fd.as_fd(), pid, libc::SIGKILL).unwrap();
        signal_group(pid, &Watch::Poll(start), libc::SIGKILL).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = state::identity(member).is_some();
        if signals_groups_by_pidfd() {
            signal_group(pid, &Watch::Pidfd(fd), libc::SIGKILL).unwrap();
            assert!(ends(member), "the pidfd's group is reached after its leader");
        } else {
            // The member still holds the number: it is its group.
            sys::kill_group(pid, libc::SIGKILL).unwrap();
        }
        assert!(alive, "signalled by number once its leader was reaped");
    }
}
