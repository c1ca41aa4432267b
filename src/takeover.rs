//! Takeover: what a rolld started after its predecessor was killed does
//! with the processes that predecessor left, as its state file records
//! them. Live sets become this rolld's live sets (to be rolled over by the
//! first round); a set that was draining goes on draining, then stops;
//! anything else is stopped. A recorded pid whose start time or process
//! group differs is someone else's and is left alone.
//!
//! Each process is watched by a pidfd, opened before its identity is
//! checked, so the pid cannot be recycled between the two. Where pidfds
//! are not available (kernels before 5.3, seccomp profiles that refuse
//! pidfd_open), its identity in /proc is looked at every
//! `POLL_INTERVAL` instead.
//!
//! It runs once, before the loop starts and before anything is served.

use crate::config::Config;
use crate::group::{Group, Level, fmt_ports};
use crate::state::{self, Entry};
use crate::{log, sys};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
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

/// The groups taken over, and how their processes are watched.
pub fn take_over(state_path: &Path, cfg: &Config) -> (Vec<Group>, Vec<Watched>) {
    let mut groups = Vec::new();
    let mut watched = Vec::new();
    let entries = match state::read(state_path) {
        Ok(Some(e)) => e,
        Ok(None) => return (groups, watched),
        Err(e) => {
            log::log(Level::Warn, ROLLD, None, &format!("state file: {e}"));
            return (groups, watched);
        }
    };
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
    (groups, watched)
}

/// Stops processes of a predecessor that were not serving: stop signal,
/// then SIGKILL after the stop timeout, waiting on their pidfds (or
/// looking at /proc without one).
fn stop_stale(cfg: &Config, stale: Vec<(Entry, Watch)>) {
    let mut waiting = Vec::new();
    let mut timeout = Duration::ZERO;
    for (e, w) in stale {
        let gc = cfg.groups.iter().find(|g| g.name == e.group);
        let sig = gc.map_or(libc::SIGTERM, |g| g.stop_signal);
        timeout = timeout.max(gc.map_or(Duration::from_secs(10), |g| g.timing.stop_timeout));
        let msg = format!("stopping pid {} left by a previous rolld", e.pid);
        log::log(Level::Warn, &e.group, Some(e.port), &msg);
        if sys::kill_group(e.pid, sig).is_ok() {
            waiting.push((e, w));
        }
    }
    let deadline = Instant::now() + timeout;
    for (e, w) in waiting {
        if !wait_until(e.pid, &w, deadline) {
            log::log(Level::Warn, &e.group, Some(e.port), &format!("pid {} still running: SIGKILL", e.pid));
        }
        let _ = sys::kill_group(e.pid, libc::SIGKILL);
    }
}

/// Waits for the watched process to end, until `deadline`: whether it did.
/// A signal that interrupts the wait is not the deadline.
fn wait_until(pid: i32, w: &Watch, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let gone = match w {
            Watch::Pidfd(fd) => matches!(sys::poll_readable(&[fd.as_fd()], Some(left)).as_deref(), Ok([true])),
            Watch::Poll(start) => {
                let gone = ended(pid, *start);
                if !gone && !left.is_zero() {
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                }
                gone
            }
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}
