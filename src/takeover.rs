//! Takeover: what a rolld started after its predecessor was killed does
//! with the processes that predecessor left, as its state file records
//! them. Live sets become this rolld's live sets (watched by pidfd, to be
//! rolled over by the first round); anything else is stopped. A recorded
//! pid whose start time or process group differs is someone else's and is
//! left alone.
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

/// The groups taken over, and the pidfds of their processes.
pub fn take_over(state_path: &Path, cfg: &Config) -> (Vec<Group>, Vec<(i32, OwnedFd)>) {
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
    let mut stale = Vec::new();
    for e in entries {
        if state::identity(e.pid) != Some((e.start, e.pid)) {
            continue;
        }
        if e.live && cfg.groups.iter().any(|g| g.name == e.group) {
            live.entry(e.group.clone()).or_default().push((e.port, e.pid));
        } else {
            stale.push(e);
        }
    }
    stop_stale(cfg, &stale);
    for (name, procs) in live {
        let Some(gc) = cfg.groups.iter().find(|g| g.name == name) else { continue };
        let mut group = Group::new(&name);
        group.adopt(Arc::new(gc.clone()), &procs, Instant::now());
        for &(port, pid) in &procs {
            match sys::pidfd_open(pid) {
                Ok(fd) => watched.push((pid, fd)),
                Err(e) => log::log(Level::Warn, &name, Some(port), &format!("pidfd of pid {pid}: {e}")),
            }
        }
        let ports: Vec<u16> = procs.iter().map(|p| p.0).collect();
        let msg = format!("took over the live set {} of a previous rolld; rolling it over", fmt_ports(&ports));
        log::log(Level::Warn, &name, None, &msg);
        groups.push(group);
    }
    (groups, watched)
}

/// Stops processes of a predecessor that were not serving: stop signal,
/// then SIGKILL after the stop timeout, waiting on pidfds.
fn stop_stale(cfg: &Config, stale: &[Entry]) {
    let mut waiting = Vec::new();
    let mut timeout = Duration::ZERO;
    for e in stale {
        let gc = cfg.groups.iter().find(|g| g.name == e.group);
        let sig = gc.map_or(libc::SIGTERM, |g| g.stop_signal);
        timeout = timeout.max(gc.map_or(Duration::from_secs(10), |g| g.timing.stop_timeout));
        let msg = format!("stopping pid {} left by a previous rolld", e.pid);
        log::log(Level::Warn, &e.group, Some(e.port), &msg);
        if let (Ok(fd), Ok(())) = (sys::pidfd_open(e.pid), sys::kill_group(e.pid, sig)) {
            waiting.push((e, fd));
        }
    }
    let deadline = Instant::now() + timeout;
    for (e, fd) in waiting {
        let left = deadline.saturating_duration_since(Instant::now());
        if !matches!(sys::poll_readable(&[fd.as_fd()], Some(left)).as_deref(), Ok([true])) {
            log::log(Level::Warn, &e.group, Some(e.port), &format!("pid {} still running: SIGKILL", e.pid));
        }
        let _ = sys::kill_group(e.pid, libc::SIGKILL);
    }
}
