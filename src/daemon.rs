//! The loop: sleeps in poll(2) on the signal pipe until the nearest group
//! deadline (forever when idle), turns signals, child exits and deadlines
//! into events for the groups, and carries out the actions they return.

use crate::config::{self, Config, GroupConfig};
use crate::group::{Action, Event, Group, Level, Outcome, fmt_ports};
use crate::signals::Signals;
use crate::{actions, log, process, smoke, sys, tcp};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

const ROLLD: &str = "rolld";

struct Daemon {
    path: PathBuf,
    groups: Vec<Group>,
    /// The config each group is run with, from the last valid read.
    cfgs: Vec<Rc<GroupConfig>>,
    reload_pending: bool,
    exiting: bool,
    exit_code: u8,
}

/// Runs the daemon for the config at `path`; returns the exit code.
pub fn run(path: &Path) -> u8 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs {
                log::error(ROLLD, e);
            }
            log::error(ROLLD, &format!("{} problem(s) in the config; nothing started", errs.len()));
            return 2;
        }
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error(ROLLD, &format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    if std::process::id() != 1 {
        if let Err(e) = sys::set_child_subreaper() {
            log::log(Level::Warn, ROLLD, None, &format!("cannot become a child subreaper: {e}"));
        }
    }
    log::info(ROLLD, &format!("pid {} running {}", std::process::id(), cfg.path.display()));
    let mut d = Daemon {
        path: path.to_path_buf(),
        groups: Vec::new(),
        cfgs: Vec::new(),
        reload_pending: false,
        exiting: false,
        exit_code: 0,
    };
    d.apply(cfg);
    loop {
        if d.exiting && d.groups.iter().all(Group::is_gone) {
            break;
        }
        let timeout = d.next_deadline().map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = sys::poll_readable(&[signals.fd()], timeout) {
            log::error(ROLLD, &format!("poll: {e}"));
        }
        let sigs = signals.take();
        d.reap();
        for sig in sigs {
            match sig {
                libc::SIGTERM | libc::SIGINT if !d.exiting => {
                    let name = if sig == libc::SIGTERM { "SIGTERM" } else { "SIGINT" };
                    log::info(ROLLD, &format!("{name}: stopping every set"));
                    d.shutdown();
                }
                libc::SIGHUP if !d.exiting => {
                    if d.groups.iter().all(Group::is_idle) {
                        log::info(ROLLD, "SIGHUP: reloading the config");
                    } else if !d.reload_pending {
                        log::info(ROLLD, "SIGHUP during a rollout: another rollout will follow this one");
                    }
                    d.reload_pending = true;
                }
                _ => {}
            }
        }
        d.tick();
        if d.reload_pending && !d.exiting && d.groups.iter().all(Group::is_idle) {
            d.reload_pending = false;
            d.reload();
        }
    }
    // Orphans handed to rolld (as PID 1 or subreaper) are reaped too.
    while let Ok(Some(_)) = sys::reap_any() {}
    log::info(ROLLD, &format!("rolld exiting ({})", d.exit_code));
    d.exit_code
}

impl Daemon {
    fn next_deadline(&self) -> Option<Instant> {
        self.groups.iter().filter_map(Group::next_deadline).min()
    }

    /// Starts the groups of a new valid config: a first start for a new
    /// group, a rollout for a running one, a stop for one that is gone.
    fn apply(&mut self, cfg: Config) {
        for i in 0..self.groups.len() {
            if !cfg.groups.iter().any(|c| c.name == self.groups[i].name) {
                log::info(&self.groups[i].name, "no longer in the config: stopping it");
                self.feed(i, Event::Terminate);
            }
        }
        for gc in cfg.groups {
            let gc = Rc::new(gc);
            let i = match self.groups.iter().position(|g| g.name == gc.name) {
                Some(i) => {
                    self.cfgs[i] = gc.clone();
                    i
                }
                None => {
                    self.groups.push(Group::new(&gc.name));
                    self.cfgs.push(gc.clone());
                    self.groups.len() - 1
                }
            };
            let (first, avoid) = match &self.groups[i].live {
                Some(live) => ((live.index + 1) % gc.worksets.len(), live.ports()),
                None => (0, Vec::new()),
            };
            let ev = match choose_workset(&gc, first, &avoid) {
                Ok(index) => Event::Start { cfg: gc, index },
                Err(reason) => Event::StartRefused(reason),
            };
            self.feed(i, ev);
        }
    }

    fn reload(&mut self) {
        match config::load(&self.path) {
            Ok(cfg) => self.apply(cfg),
            Err(errs) => {
                for e in &errs {
                    log::error(ROLLD, e);
                }
                log::error(ROLLD, &format!("{} problem(s) in the config: nothing changed", errs.len()));
            }
        }
    }

    fn shutdown(&mut self) {
        self.exiting = true;
        self.reload_pending = false;
        for i in 0..self.groups.len() {
            self.feed(i, Event::Terminate);
        }
    }

    fn reap(&mut self) {
        loop {
            match sys::reap_any() {
                Ok(Some((pid, status))) => {
                    if let Some(i) = self.groups.iter().position(|g| g.owns(pid)) {
                        self.feed(i, Event::Exited { pid, status });
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::error(ROLLD, &format!("waitpid: {e}"));
                    break;
                }
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.groups.len() {
            if self.groups[i].next_deadline().is_some_and(|t| t <= now) {
                self.feed(i, Event::Tick);
            }
        }
        // A group removed from the config is dropped once it has stopped.
        if !self.exiting {
            let mut i = 0;
            while i < self.groups.len() {
                if self.groups[i].is_gone() {
                    self.groups.remove(i);
                    self.cfgs.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Gives `ev` to group `i` and carries out what it asks, feeding each
    /// result back, until it asks for nothing more.
    fn feed(&mut self, i: usize, ev: Event) {
        let mut queue: VecDeque<Action> = self.groups[i].handle(Instant::now(), ev).into();
        while let Some(action) = queue.pop_front() {
            if let Some(ev) = self.perform(i, action) {
                queue.extend(self.groups[i].handle(Instant::now(), ev));
            }
        }
    }

    fn perform(&mut self, i: usize, action: Action) -> Option<Event> {
        let name = self.groups[i].name.clone();
        match action {
            Action::Spawn { cfg, ports } => {
                Some(Event::Spawned(ports.into_iter().map(|p| (p, process::spawn(&cfg, p))).collect()))
            }
            Action::Smoke { cfg, ports } => {
                let (mut passed, mut failed) = (Vec::new(), Vec::new());
                for p in ports {
                    match smoke::check_port(&cfg.checks, p) {
                        Ok(()) => passed.push(p),
                        Err(e) => failed.push((p, e)),
                    }
                }
                Some(Event::Smoke { passed, failed })
            }
            Action::AfterStart { cfg, ports, old_ports } => {
                Some(Event::AfterStart(actions::run_all(&cfg, &ports, &old_ports)))
            }
            Action::Revert { cfg, ports, old_ports } => {
                match actions::run_all(&cfg, &ports, &old_ports) {
                    Ok(()) => log::info(&name, &format!("after_start run again for the live set {}", fmt_ports(&ports))),
                    Err(e) => log::error(&name, &format!("pointing back at {} failed too: {e}", fmt_ports(&ports))),
                }
                None
            }
            Action::Count { ports } => Some(Event::Connections(tcp::connections(&ports))),
            Action::Signal { pgid, sig } => {
                if let Err(e) = sys::kill_group(pgid, sig) {
                    log::error(&name, &format!("cannot send signal {sig} to process group {pgid}: {e}"));
                }
                None
            }
            Action::Log { level, port, msg } => {
                log::log(level, &name, port, &msg);
                None
            }
            Action::Done { outcome, summary } => {
                let (level, port) = match &outcome {
                    Outcome::Ok => (Level::Info, None),
                    Outcome::RolledBack { port, .. } => (Level::Warn, *port),
                    Outcome::StartFailed { port, .. } => (Level::Error, *port),
                };
                log::log(level, &name, port, &summary);
                if let Some((path, lines)) = port.and_then(|p| process::stderr_tail(&self.cfgs[i], p, 5)) {
                    if !lines.is_empty() {
                        log::log(level, &name, port, &format!("last lines of {}:", path.display()));
                        for l in lines {
                            log::log(level, &name, port, &format!("  | {l}"));
                        }
                    }
                }
                if matches!(outcome, Outcome::StartFailed { .. }) && !self.exiting {
                    self.exit_code = 1;
                    self.shutdown();
                }
                None
            }
        }
    }
}

/// The first workset from `first` on, wrapping, that shares no port with
/// `avoid` (the live set) and whose ports nothing listens on.
fn choose_workset(cfg: &GroupConfig, first: usize, avoid: &[u16]) -> Result<usize, String> {
    let n = cfg.worksets.len();
    let mut busy_all = Vec::new();
    for k in 0..n {
        let index = (first + k) % n;
        let ports = &cfg.worksets[index];
        if ports.iter().any(|p| avoid.contains(p)) {
            continue;
        }
        let busy = tcp::busy_ports(ports);
        if busy.is_empty() {
            return Ok(index);
        }
        let held: Vec<String> = busy.iter().map(|(p, who)| format!("port {p} is held by {who}")).collect();
        log::log(Level::Warn, &cfg.name, Some(busy[0].0), &format!("workset {index}: {}; trying the next one", held.join(", ")));
        busy_all.extend(held);
    }
    Err(format!("no free workset: {}", busy_all.join(", ")))
}
