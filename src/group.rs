//! The blue/green state machine of one group, free of I/O.
//!
//! `Group::handle(now, event)` returns the actions to carry out; the daemon
//! performs them and feeds their results back as events. Time enters only
//! as the `now` argument, and `next_deadline` says when the group next
//! wants a `Tick`, so tests drive it with made-up instants and no process.
//!
//! A rollout is: spawn the new set, check it until every port passes,
//! switch (after_start), drain the old set, stop it. Whatever set leaves
//! service, the old one after a switch or the new one on a rollback, goes
//! through the same `retiring` slot, drain and stop.

use crate::config::GroupConfig;
use crate::sys::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often unready ports are checked again.
pub const SMOKE_INTERVAL: Duration = Duration::from_millis(10);
/// How often connections on a draining set are counted.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const HEALTHY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq)]
pub struct Proc {
    pub port: u16,
    /// Running process (and process group) id; `None` once reaped.
    pub pid: Option<i32>,
    /// Last process group, kept after the leader is reaped so stragglers
    /// of the group can still be killed.
    pub pgid: Option<i32>,
    pub started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
    pub restarts: u32,
}

#[derive(Clone, Debug)]
pub struct Set {
    /// Index of the workset in its config.
    pub index: usize,
    pub cfg: Rc<GroupConfig>,
    pub procs: Vec<Proc>,
}

impl Set {
    fn new(cfg: Rc<GroupConfig>, index: usize, now: Instant) -> Set {
        let procs = cfg.worksets[index]
            .iter()
            .map(|&port| Proc {
                port,
                pid: None,
                pgid: None,
                started: now,
                backoff: BACKOFF_FIRST,
                restart_at: None,
                restarts: 0,
            })
            .collect();
        Set { index, cfg, procs }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.procs.iter().map(|p| p.port).collect()
    }

    fn alive(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.pid.is_some())
    }

    /// Cancels pending restarts and sends the stop signal to every running
    /// process group of the set; its stop timeout.
    fn signal_stop(&mut self, out: &mut Vec<Action>) -> Duration {
        for p in self.procs.iter_mut() {
            p.restart_at = None;
            if let Some(pid) = p.pid {
                out.push(Action::Signal { pgid: pid, sig: self.cfg.stop_signal });
            }
        }
        self.cfg.timing.stop_timeout
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Start a set on workset `index` of `cfg`: the first start when
    /// nothing is live, a rollout otherwise.
    Start {
        cfg: Rc<GroupConfig>,
        index: usize,
    },
    /// A rollout could not even begin (for example, no free workset).
    StartRefused(String),
    /// Result of `Action::Spawn`, one entry per port.
    Spawned(Vec<(u16, Result<i32, String>)>),
    Exited {
        pid: i32,
        status: ExitStatus,
    },
    /// Result of `Action::Smoke`: ports that passed, and the failures.
    Smoke {
        passed: Vec<u16>,
        failed: Vec<(u16, String)>,
    },
    AfterStart(Result<(), String>),
    /// Result of `Action::Revert`.
    Reverted(Result<(), String>),
    Connections(usize),
    /// Result of `Action::CheckGroups`.
    GroupsAlive(Vec<i32>),
    Tick,
    Terminate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The new set is live and the old one stopped (or, on the first
    /// start, the set is live).
    Ok,
    /// The new set was stopped; the old set still serves.
    RolledBack { reason: String, port: Option<u16> },
    /// The first start failed: nothing serves.
    StartFailed { reason: String, port: Option<u16> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Spawn {
        cfg: Rc<GroupConfig>,
        ports: Vec<u16>,
    },
    Smoke {
        cfg: Rc<GroupConfig>,
        ports: Vec<u16>,
    },
    /// Run after_start for `ports`; the answer is `Event::AfterStart`.
    AfterStart {
        cfg: Rc<GroupConfig>,
        ports: Vec<u16>,
        old_ports: Vec<u16>,
    },
    /// Run after_start to point back at `ports` after a failed switch; the
    /// answer is `Event::Reverted`.
    Revert {
        cfg: Rc<GroupConfig>,
        ports: Vec<u16>,
        old_ports: Vec<u16>,
    },
    Count {
        ports: Vec<u16>,
    },
    Signal {
        pgid: i32,
        sig: i32,
    },
    Log {
        level: Level,
        port: Option<u16>,
        msg: String,
    },
    /// Which of these process groups still have members; the answer is
    /// `Event::GroupsAlive`.
    CheckGroups {
        pgids: Vec<i32>,
    },
    /// A phase of the rollout ended, after `took`.
    Phase {
        name: &'static str,
        took: Duration,
    },
    /// The rollout (or first start) ended; `summary` is its log line.
    Done {
        outcome: Outcome,
        summary: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    Ready {
        deadline: Instant,
        next_check: Instant,
        passed: Vec<u16>,
    },
    Switching,
    /// after_start runs again for the live set, after it failed for the new.
    Reverting,
    Draining {
        quiet_since: Option<Instant>,
        deadline: Instant,
        next_count: Instant,
    },
    Stopping(Stop),
    ShuttingDown(Stop),
    Gone,
}

/// A stop under way: when to send SIGKILL, then, once every leader is
/// reaped, the process groups that still had members at the last look.
#[derive(Clone, Debug, PartialEq)]
struct Stop {
    kill_at: Option<Instant>,
    linger: Option<Linger>,
}

#[derive(Clone, Debug, PartialEq)]
struct Linger {
    pgids: Vec<i32>,
    next_check: Option<Instant>,
    give_up: Instant,
}

/// How often emptied process groups are looked at after their SIGKILL.
const LINGER_INTERVAL: Duration = Duration::from_millis(20);

impl Stop {
    fn new(kill_at: Instant) -> Stop {
        Stop { kill_at: Some(kill_at), linger: None }
    }

    fn deadline(&self) -> Option<Instant> {
        let check = self.linger.as_ref().and_then(|l| l.next_check);
        self.kill_at.into_iter().chain(check).min()
    }
}

/// Timestamps of one rollout, for its log line.
#[derive(Clone, Debug)]
struct Rollout {
    started: Instant,
    from: Vec<u16>,
    to: Vec<u16>,
    marks: Vec<(&'static str, Instant)>,
    outcome: Option<Outcome>,
}

impl Rollout {
    /// Ends the phase `name` at `now`; the action that reports it.
    fn mark(&mut self, name: &'static str, now: Instant) -> Action {
        let prev = self.marks.last().map_or(self.started, |m| m.1);
        self.marks.push((name, now));
        Action::Phase { name, took: now.saturating_duration_since(prev) }
    }

    fn phases(&self) -> String {
        let mut prev = self.started;
        let mut out = Vec::new();
        for (name, t) in &self.marks {
            out.push(format!("{name} {}", fmt_duration(t.saturating_duration_since(prev))));
            prev = *t;
        }
        out.push(format!("total {}", fmt_duration(prev.saturating_duration_since(self.started))));
        out.join(", ")
    }
}

pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.2}s", d.as_secs_f64()) }
}

pub fn fmt_ports(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub live: Option<Set>,
    pub new: Option<Set>,
    pub retiring: Option<Set>,
    phase: Phase,
    rollout: Option<Rollout>,
}

impl Group {
    pub fn new(name: &str) -> Group {
        Group { name: name.to_string(), live: None, new: None, retiring: None, phase: Phase::Idle, rollout: None }
    }

    /// Takes over `procs` (port, pid), a live set left running by a rolld
    /// that died. They are not rolld's children: their exits must come from
    /// pidfds. The next `Start` rolls them over like any live set.
    pub fn adopt(&mut self, cfg: Rc<GroupConfig>, index: usize, procs: &[(u16, i32)], now: Instant) {
        let procs = procs
            .iter()
            .map(|&(port, pid)| Proc {
                port,
                pid: Some(pid),
                pgid: Some(pid),
                started: now,
                backoff: BACKOFF_FIRST,
                restart_at: None,
                restarts: 0,
            })
            .collect();
        let index = index % cfg.worksets.len().max(1);
        self.live = Some(Set { index, cfg, procs });
    }

    /// True when no rollout is under way and a new one may start.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// True once a shutdown has stopped every process.
    pub fn is_gone(&self) -> bool {
        self.phase == Phase::Gone
    }

    /// A short name of the current phase, for status output.
    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Idle => "idle",
            Phase::Ready { .. } => "starting",
            Phase::Switching => "switching",
            Phase::Reverting => "reverting",
            Phase::Draining { .. } => "draining",
            Phase::Stopping(_) => "stopping",
            Phase::ShuttingDown(_) => "shutting-down",
            Phase::Gone => "gone",
        }
    }

    /// Every process this group is responsible for, with its port.
    pub fn pids(&self) -> impl Iterator<Item = (i32, u16)> + '_ {
        self.sets().flat_map(|s| s.alive().map(|p| (p.pid.unwrap_or(0), p.port)))
    }

    pub fn owns(&self, pid: i32) -> bool {
        self.pids().any(|(p, _)| p == pid)
    }

    fn sets(&self) -> impl Iterator<Item = &Set> {
        self.live.iter().chain(self.new.iter()).chain(self.retiring.iter())
    }

    /// When the group next needs a `Tick`; `None` means never (idle).
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Ready { next_check, .. } => Some(*next_check),
            Phase::Draining { next_count, .. } => Some(*next_count),
            Phase::Stopping(stop) | Phase::ShuttingDown(stop) => stop.deadline(),
            Phase::Idle | Phase::Switching | Phase::Reverting | Phase::Gone => None,
        };
        let restarts = self.live.iter().flat_map(|s| s.procs.iter()).filter_map(|p| p.restart_at);
        phase.into_iter().chain(restarts).min()
    }

    pub fn handle(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Start { cfg, index } => self.start(now, cfg, index, &mut out),
            Event::StartRefused(reason) => {
                let outcome = match self.live {
                    Some(_) => Outcome::RolledBack { reason: reason.clone(), port: None },
                    None => Outcome::StartFailed { reason: reason.clone(), port: None },
                };
                let summary = match &outcome {
                    Outcome::StartFailed { .. } => format!("start failed: {reason}"),
                    _ => format!("rollout rolled back: {reason}"),
                };
                out.push(Action::Done { outcome, summary });
            }
            Event::Spawned(results) => self.spawned(now, results, &mut out),
            Event::Exited { pid, status } => self.exited(now, pid, status, &mut out),
            Event::Smoke { passed, failed } => self.smoked(now, passed, failed, &mut out),
            Event::AfterStart(result) => self.switched(now, result, &mut out),
            Event::Reverted(result) => self.reverted(now, result, &mut out),
            Event::Connections(n) => self.counted(now, n, &mut out),
            Event::GroupsAlive(alive) => self.lingering(now, alive, &mut out),
            Event::Tick => self.tick(now, &mut out),
            Event::Terminate => self.terminate(now, &mut out),
        }
        out
    }

    fn log(&self, out: &mut Vec<Action>, level: Level, port: Option<u16>, msg: String) {
        out.push(Action::Log { level, port, msg });
    }

    fn start(&mut self, now: Instant, cfg: Rc<GroupConfig>, index: usize, out: &mut Vec<Action>) {
        if self.phase != Phase::Idle {
            return;
        }
        let set = Set::new(cfg.clone(), index, now);
        let ports = set.ports();
        let from = self.live.as_ref().map(Set::ports).unwrap_or_default();
        self.rollout = Some(Rollout { started: now, from, to: ports.clone(), marks: Vec::new(), outcome: None });
        let what = if self.live.is_some() { "rollout" } else { "start" };
        self.log(out, Level::Info, None, format!("{what}: spawning workset {index} on {}", fmt_ports(&ports)));
        self.new = Some(set);
        self.phase = Phase::Ready { deadline: now + cfg.timing.start_timeout, next_check: now, passed: Vec::new() };
        out.push(Action::Spawn { cfg, ports });
    }

    fn spawned(&mut self, now: Instant, results: Vec<(u16, Result<i32, String>)>, out: &mut Vec<Action>) {
        let mut failure = None;
        let mut restarted = Vec::new();
        for (port, result) in results {
            let in_new = self.new.as_ref().is_some_and(|s| s.procs.iter().any(|p| p.port == port));
            let set = if in_new { self.new.as_mut() } else { self.live.as_mut() };
            let Some(proc) = set.and_then(|s| s.procs.iter_mut().find(|p| p.port == port)) else { continue };
            match result {
                Ok(pid) => {
                    proc.pid = Some(pid);
                    proc.pgid = Some(pid);
                    proc.started = now;
                    if !in_new {
                        restarted.push((port, pid));
                    }
                }
                Err(e) if in_new => failure = failure.or(Some((port, format!("cannot spawn: {e}")))),
                Err(e) => {
                    let wait = proc.backoff;
                    proc.restart_at = Some(now + wait);
                    proc.backoff = (wait * 2).min(BACKOFF_MAX);
                    let msg = format!("cannot restart: {e}; next try in {}", fmt_duration(wait));
                    out.push(Action::Log { level: Level::Error, port: Some(port), msg });
                }
            }
        }
        for (port, pid) in restarted {
            self.log(out, Level::Info, Some(port), format!("restarted as pid {pid}"));
        }
        if let Some((port, reason)) = failure {
            self.fail(now, reason, Some(port), out);
        } else if let Some(r) = self.rollout.as_mut().filter(|_| in_ready(&self.phase) && self.new.is_some()) {
            out.push(r.mark("spawn", now));
        }
    }

    fn exited(&mut self, now: Instant, pid: i32, status: ExitStatus, out: &mut Vec<Action>) {
        let shutting = matches!(self.phase, Phase::ShuttingDown(_));
        // A new set's process that exits before the switch fails the rollout.
        if let Some(p) = find(&mut self.new, pid) {
            p.pid = None;
            let port = p.port;
            if shutting {
                self.log(out, Level::Info, Some(port), format!("stopped ({status})"));
            } else {
                let reason = format!("port {port} exited ({status}) before it was ready");
                self.fail(now, reason, Some(port), out);
            }
        } else if let Some(p) = find(&mut self.retiring, pid) {
            p.pid = None;
            let port = p.port;
            let expected = matches!(self.phase, Phase::Stopping(_) | Phase::ShuttingDown(_));
            let (level, what) =
                if expected { (Level::Info, "stopped") } else { (Level::Warn, "exited while draining") };
            self.log(out, level, Some(port), format!("{what} ({status})"));
        } else if let Some(p) = find(&mut self.live, pid) {
            p.pid = None;
            let port = p.port;
            if shutting {
                self.log(out, Level::Info, Some(port), format!("stopped ({status})"));
            } else {
                if now.saturating_duration_since(p.started) >= HEALTHY {
                    p.backoff = BACKOFF_FIRST;
                }
                let wait = p.backoff;
                p.restart_at = Some(now + wait);
                p.backoff = (wait * 2).min(BACKOFF_MAX);
                p.restarts += 1;
                let pgid = p.pgid;
                let msg = format!("pid {pid} exited unexpectedly ({status}); restarting in {}", fmt_duration(wait));
                self.log(out, Level::Warn, Some(port), msg);
                // Workers the process left behind would hold its port.
                if let Some(pgid) = pgid {
                    out.push(Action::Signal { pgid, sig: libc::SIGKILL });
                }
            }
        } else {
            return;
        }
        self.check_stopped(now, out);
    }

    fn smoked(&mut self, now: Instant, ok: Vec<u16>, failed: Vec<(u16, String)>, out: &mut Vec<Action>) {
        let Phase::Ready { deadline, next_check, passed } = &mut self.phase else { return };
        let Some(new) = &self.new else { return };
        passed.extend(ok);
        let waiting: Vec<u16> = new.ports().into_iter().filter(|p| !passed.contains(p)).collect();
        if waiting.is_empty() {
            let old_ports = self.live.as_ref().map(Set::ports).unwrap_or_default();
            let (cfg, ports) = (new.cfg.clone(), new.ports());
            if let Some(r) = self.rollout.as_mut() {
                out.push(r.mark("ready", now));
            }
            self.phase = Phase::Switching;
            out.push(Action::AfterStart { cfg, ports, old_ports });
        } else if now >= *deadline {
            let timeout = fmt_duration(new.cfg.timing.start_timeout);
            let (port, why) = failed.into_iter().next().unwrap_or((waiting[0], "no answer".into()));
            let reason = format!("port {port} not ready within start_timeout {timeout}: {why}");
            self.fail(now, reason, Some(port), out);
        } else {
            *next_check = (now + SMOKE_INTERVAL).min(*deadline);
        }
    }

    fn switched(&mut self, now: Instant, result: Result<(), String>, out: &mut Vec<Action>) {
        if self.phase != Phase::Switching {
            return;
        }
        let Some(new) = self.new.take() else { return };
        let timing = new.cfg.timing;
        match result {
            Ok(()) => {
                if let Some(r) = self.rollout.as_mut() {
                    out.push(r.mark("after_start", now));
                }
                self.retiring = self.live.replace(new);
                if self.retiring.is_some() {
                    self.phase = Phase::Draining {
                        quiet_since: Some(now),
                        deadline: now + timing.drain_timeout,
                        next_count: now,
                    };
                } else {
                    self.finish(now, Outcome::Ok, out);
                }
            }
            Err(e) => {
                let reason = format!("after_start failed: {e}");
                if let Some(live) = &self.live {
                    let (ports, old_ports) = (live.ports(), new.ports());
                    let msg = format!("{reason}; pointing back at the live set, draining the new one");
                    out.push(Action::Log { level: Level::Warn, port: None, msg });
                    out.push(Action::Revert { cfg: new.cfg.clone(), ports, old_ports });
                    if let Some(r) = self.rollout.as_mut() {
                        r.outcome = Some(Outcome::RolledBack { reason: reason.clone(), port: None });
                    }
                    // The LB may already have sent requests to the new set:
                    // it is drained once the LB points back.
                    self.retiring = Some(new);
                    self.phase = Phase::Reverting;
                } else {
                    self.new = Some(new);
                    self.fail(now, reason, None, out);
                }
            }
        }
    }

    /// The LB points back at the live set (or could not be made to): the
    /// new set's drain, and its quiet period, start now.
    fn reverted(&mut self, now: Instant, result: Result<(), String>, out: &mut Vec<Action>) {
        if self.phase != Phase::Reverting {
            return;
        }
        let live = self.live.as_ref().map(Set::ports).unwrap_or_default();
        match result {
            Ok(()) => {
                self.log(out, Level::Info, None, format!("after_start run again for the live set {}", fmt_ports(&live)))
            }
            Err(e) => {
                self.log(out, Level::Error, None, format!("pointing back at {} failed too: {e}", fmt_ports(&live)))
            }
        }
        let drain_timeout = self.retiring.as_ref().map_or(Duration::ZERO, |s| s.cfg.timing.drain_timeout);
        self.phase = Phase::Draining { quiet_since: Some(now), deadline: now + drain_timeout, next_count: now };
    }

    fn counted(&mut self, now: Instant, n: usize, out: &mut Vec<Action>) {
        let Phase::Draining { quiet_since, deadline, next_count } = &mut self.phase else { return };
        let Some(set) = &self.retiring else { return };
        let quiet =
            set.cfg.timing.drain_quiet.max(self.live.as_ref().map_or(Duration::ZERO, |l| l.cfg.timing.drain_quiet));
        if n > 0 {
            *quiet_since = None;
        } else if quiet_since.is_none() {
            *quiet_since = Some(now);
        }
        if quiet_since.is_some_and(|q| now.saturating_duration_since(q) >= quiet) {
            self.begin_stop(now, "drain", out);
        } else if now >= *deadline {
            let msg = format!("drain_timeout reached with {n} connection(s) left on the old set; stopping it anyway");
            self.begin_stop(now, "drain", out);
            self.log(out, Level::Warn, None, msg);
        } else {
            *next_count = (now + DRAIN_INTERVAL).min(*deadline);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        // Crash restarts of the live set.
        if !matches!(self.phase, Phase::ShuttingDown(_) | Phase::Gone)
            && let Some(live) = self.live.as_mut()
        {
            let due: Vec<u16> = live
                .procs
                .iter_mut()
                .filter(|p| p.restart_at.is_some_and(|t| t <= now))
                .map(|p| {
                    p.restart_at = None;
                    p.port
                })
                .collect();
            if !due.is_empty() {
                out.push(Action::Spawn { cfg: live.cfg.clone(), ports: due });
            }
        }
        match &mut self.phase {
            Phase::Ready { next_check, .. } if *next_check <= now => {
                *next_check = now + SMOKE_INTERVAL;
                if let Some(new) = &self.new {
                    let passed = match &self.phase {
                        Phase::Ready { passed, .. } => passed.clone(),
                        _ => Vec::new(),
                    };
                    let ports = new.ports().into_iter().filter(|p| !passed.contains(p)).collect();
                    out.push(Action::Smoke { cfg: new.cfg.clone(), ports });
                }
            }
            Phase::Draining { next_count, .. } if *next_count <= now => {
                *next_count = now + DRAIN_INTERVAL;
                if let Some(set) = &self.retiring {
                    out.push(Action::Count { ports: set.ports() });
                }
            }
            Phase::Stopping(Stop { linger: Some(l), .. }) | Phase::ShuttingDown(Stop { linger: Some(l), .. })
                if l.next_check.is_some_and(|t| t <= now) =>
            {
                l.next_check = None;
                out.push(Action::CheckGroups { pgids: l.pgids.clone() });
            }
            Phase::Stopping(Stop { kill_at, .. }) | Phase::ShuttingDown(Stop { kill_at, .. })
                if kill_at.is_some_and(|t| t <= now) =>
            {
                *kill_at = None;
                let sets: Vec<&Set> = self.live.iter().chain(self.new.iter()).chain(self.retiring.iter()).collect();
                let stopping: Vec<&Set> =
                    if matches!(self.phase, Phase::Stopping(_)) { self.retiring.iter().collect() } else { sets };
                let mut acts = Vec::new();
                for set in stopping {
                    for p in set.alive() {
                        let msg = format!(
                            "pid {} still running after stop_timeout {}; sending SIGKILL to its process group",
                            p.pid.unwrap_or(0),
                            fmt_duration(set.cfg.timing.stop_timeout)
                        );
                        acts.push(Action::Log { level: Level::Warn, port: Some(p.port), msg });
                        acts.push(Action::Signal { pgid: p.pid.unwrap_or(0), sig: libc::SIGKILL });
                    }
                }
                out.extend(acts);
            }
            _ => {}
        }
    }

    fn terminate(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::ShuttingDown(_) | Phase::Gone) {
            return;
        }
        let sets = self.live.iter_mut().chain(self.new.iter_mut()).chain(self.retiring.iter_mut());
        let stop_timeout = sets.map(|set| set.signal_stop(out)).max().unwrap_or_default();
        self.phase = Phase::ShuttingDown(Stop::new(now + stop_timeout));
        self.check_stopped(now, out);
    }

    /// A failure before the switch: stop the new set, keep the live one.
    fn fail(&mut self, now: Instant, reason: String, port: Option<u16>, out: &mut Vec<Action>) {
        if !in_ready(&self.phase) {
            return;
        }
        let outcome = match self.live {
            Some(_) => Outcome::RolledBack { reason: reason.clone(), port },
            None => Outcome::StartFailed { reason: reason.clone(), port },
        };
        if let Some(r) = self.rollout.as_mut() {
            r.outcome = Some(outcome);
        }
        self.log(out, Level::Warn, port, format!("{reason}; stopping the new set"));
        let failed_in = if self.phase == Phase::Switching { "after_start" } else { "ready" };
        self.retiring = self.new.take();
        self.begin_stop(now, failed_in, out);
    }

    /// Ends the rollout's phase `ended` and stops the retiring set.
    fn begin_stop(&mut self, now: Instant, ended: &'static str, out: &mut Vec<Action>) {
        if let Some(r) = self.rollout.as_mut() {
            out.push(r.mark(ended, now));
        }
        let stop_timeout = self.retiring.as_mut().map(|set| set.signal_stop(out)).unwrap_or_default();
        self.phase = Phase::Stopping(Stop::new(now + stop_timeout));
        self.check_stopped(now, out);
    }

    /// Once every leader of the stopped sets is reaped, kills what is left
    /// in their process groups and looks until the groups are empty.
    fn check_stopped(&mut self, now: Instant, out: &mut Vec<Action>) {
        let (sets, stop): (Vec<&Set>, &Stop) = match &self.phase {
            Phase::Stopping(stop) => (self.retiring.iter().collect(), stop),
            Phase::ShuttingDown(stop) => (self.sets().collect(), stop),
            _ => return,
        };
        if stop.linger.is_some() || sets.iter().any(|s| s.alive().next().is_some()) {
            return;
        }
        let pgids: Vec<i32> = sets.iter().flat_map(|s| s.procs.iter().filter_map(|p| p.pgid)).collect();
        let stop_timeout = sets.iter().map(|s| s.cfg.timing.stop_timeout).max().unwrap_or_default();
        for &pgid in &pgids {
            out.push(Action::Signal { pgid, sig: libc::SIGKILL });
        }
        out.push(Action::CheckGroups { pgids: pgids.clone() });
        if let Phase::Stopping(stop) | Phase::ShuttingDown(stop) = &mut self.phase {
            stop.linger = Some(Linger { pgids, next_check: None, give_up: now + stop_timeout });
        }
    }

    fn lingering(&mut self, now: Instant, alive: Vec<i32>, out: &mut Vec<Action>) {
        let (Phase::Stopping(Stop { linger: Some(l), .. }) | Phase::ShuttingDown(Stop { linger: Some(l), .. })) =
            &mut self.phase
        else {
            return;
        };
        if !alive.is_empty() && now < l.give_up {
            l.pgids = alive;
            l.next_check = Some(now + LINGER_INTERVAL);
            return;
        }
        if !alive.is_empty() {
            let msg = format!("process group(s) {alive:?} still have members after SIGKILL; giving up on them");
            self.log(out, Level::Error, None, msg);
        }
        if matches!(self.phase, Phase::Stopping(_)) {
            self.retiring = None;
            let outcome = self.rollout.as_mut().and_then(|r| r.outcome.take()).unwrap_or(Outcome::Ok);
            self.finish(now, outcome, out);
        } else {
            self.live = None;
            self.new = None;
            self.retiring = None;
            self.phase = Phase::Gone;
            self.log(out, Level::Info, None, "all processes stopped".into());
        }
    }

    fn finish(&mut self, now: Instant, outcome: Outcome, out: &mut Vec<Action>) {
        let Some(mut r) = self.rollout.take() else {
            self.phase = Phase::Idle;
            return;
        };
        if matches!(self.phase, Phase::Stopping(_)) {
            out.push(r.mark("stop", now));
        }
        let summary = match &outcome {
            Outcome::Ok if r.from.is_empty() => format!("live on {} ({})", fmt_ports(&r.to), r.phases()),
            Outcome::Ok => format!("rollout ok: {} -> {} ({})", fmt_ports(&r.from), fmt_ports(&r.to), r.phases()),
            Outcome::RolledBack { reason, .. } => {
                format!("rollout rolled back: {reason}; still live on {} ({})", fmt_ports(&r.from), r.phases())
            }
            Outcome::StartFailed { reason, .. } => format!("start failed: {reason} ({})", r.phases()),
        };
        self.phase = Phase::Idle;
        out.push(Action::Done { outcome, summary });
    }
}

fn in_ready(phase: &Phase) -> bool {
    matches!(phase, Phase::Ready { .. } | Phase::Switching)
}

fn find(set: &mut Option<Set>, pid: i32) -> Option<&mut Proc> {
    set.as_mut()?.procs.iter_mut().find(|p| p.pid == Some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Check, Timing};
    use std::path::PathBuf;

    const TERM: i32 = libc::SIGTERM;
    const KILL: i32 = libc::SIGKILL;

    fn cfg() -> Rc<GroupConfig> {
        Rc::new(GroupConfig {
            name: "web".into(),
            base: PathBuf::from("/tmp"),
            argv: vec!["app".into(), "{numproc}".into()],
            directory: PathBuf::from("/tmp"),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            worksets: vec![vec![8001, 8002], vec![8501, 8502]],
            checks: vec![Check::Tcp { host: Default::default(), timeout: Duration::from_secs(1) }],
            actions: Vec::new(),
            timing: Timing {
                start_timeout: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(60),
                drain_quiet: Duration::from_secs(1),
                stop_timeout: Duration::from_secs(10),
                action_timeout: Duration::from_secs(3),
            },
            stop_signal: TERM,
            credentials: None,
        })
    }

    /// `handle` without the phase reports, which one test checks alone.
    trait Drive {
        fn run(&mut self, now: Instant, ev: Event) -> Vec<Action>;
    }

    impl Drive for Group {
        fn run(&mut self, now: Instant, ev: Event) -> Vec<Action> {
            self.handle(now, ev).into_iter().filter(|a| !matches!(a, Action::Phase { .. })).collect()
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    fn signals(acts: &[Action]) -> Vec<(i32, i32)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Signal { pgid, sig } => Some((*pgid, *sig)),
                _ => None,
            })
            .collect()
    }

    fn done(acts: &[Action]) -> Option<(Outcome, String)> {
        acts.iter().find_map(|a| match a {
            Action::Done { outcome, summary } => Some((outcome.clone(), summary.clone())),
            _ => None,
        })
    }

    fn exit(g: &mut Group, t: Instant, pid: i32) -> Vec<Action> {
        let a = g.run(t, Event::Exited { pid, status: ExitStatus::Code(0) });
        settle(g, t, a)
    }

    /// Answers a look at the process groups with "all empty".
    fn settle(g: &mut Group, t: Instant, mut a: Vec<Action>) -> Vec<Action> {
        if a.iter().any(|a| matches!(a, Action::CheckGroups { .. })) {
            a.extend(g.run(t, Event::GroupsAlive(Vec::new())));
        }
        a
    }

    /// Starts workset `index` with pids `pids` and runs it to the switch.
    fn roll_to_switch(g: &mut Group, t: Instant, index: usize, pids: [i32; 2]) -> Vec<Action> {
        let ports = cfg().worksets[index].clone();
        let a = g.run(t, Event::Start { cfg: cfg(), index });
        assert!(a.contains(&Action::Spawn { cfg: cfg(), ports: ports.clone() }));
        let a = g.run(t, Event::Spawned(vec![(ports[0], Ok(pids[0])), (ports[1], Ok(pids[1]))]));
        assert!(signals(&a).is_empty());
        assert_eq!(g.next_deadline(), Some(t));
        let a = g.run(t, Event::Tick);
        assert!(a.contains(&Action::Smoke { cfg: cfg(), ports: ports.clone() }));
        g.run(ms(t, 5), Event::Smoke { passed: ports, failed: Vec::new() })
    }

    /// A group live on workset 0 with pids 11 and 12.
    fn live_group(t0: Instant) -> Group {
        let mut g = Group::new("web");
        let a = roll_to_switch(&mut g, t0, 0, [11, 12]);
        assert!(matches!(a[0], Action::AfterStart { .. }));
        let a = g.run(ms(t0, 6), Event::AfterStart(Ok(())));
        let (outcome, summary) = done(&a).expect("first start done");
        assert_eq!(outcome, Outcome::Ok);
        assert!(summary.starts_with("live on 8001,8002"), "{summary}");
        assert!(g.is_idle());
        assert_eq!(g.next_deadline(), None, "idle means no wakeup");
        g
    }

    #[test]
    fn first_start_goes_live() {
        live_group(Instant::now());
    }

    #[test]
    fn rollout_switches_drains_then_stops_old_set() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = roll_to_switch(&mut g, ms(t0, 100), 1, [21, 22]);
        assert_eq!(a, vec![Action::AfterStart { cfg: cfg(), ports: vec![8501, 8502], old_ports: vec![8001, 8002] }]);
        let t = ms(t0, 200);
        let a = g.run(t, Event::AfterStart(Ok(())));
        assert!(signals(&a).is_empty(), "nothing stopped at the switch");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502]);
        // Connections keep the old set alive; the quiet period restarts.
        assert_eq!(g.run(t, Event::Tick), vec![Action::Count { ports: vec![8001, 8002] }]);
        assert!(g.run(ms(t0, 900), Event::Connections(2)).is_empty());
        assert!(g.run(ms(t0, 1300), Event::Connections(0)).is_empty(), "quiet only since 1.3 s");
        assert!(g.run(ms(t0, 2200), Event::Connections(0)).is_empty());
        let a = g.run(ms(t0, 2300), Event::Connections(0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        assert!(exit(&mut g, ms(t0, 2400), 11).iter().all(|a| !matches!(a, Action::Done { .. })));
        assert!(!g.is_idle(), "rollout ends only when every old process is reaped");
        let a = exit(&mut g, ms(t0, 2500), 12);
        assert_eq!(signals(&a), vec![(11, KILL), (12, KILL)], "stragglers of the old groups are killed");
        let (outcome, summary) = done(&a).unwrap();
        assert_eq!(outcome, Outcome::Ok);
        assert!(summary.starts_with("rollout ok: 8001,8002 -> 8501,8502 (spawn"), "{summary}");
        for phase in ["spawn", "ready", "after_start", "drain", "stop", "total"] {
            assert!(summary.contains(phase), "{summary} lacks {phase}");
        }
        assert!(g.is_idle());
    }

    #[test]
    fn quiet_period_counts_from_the_switch() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        roll_to_switch(&mut g, ms(t0, 100), 1, [21, 22]);
        g.run(ms(t0, 200), Event::AfterStart(Ok(())));
        assert!(g.run(ms(t0, 1100), Event::Connections(0)).is_empty());
        let a = g.run(ms(t0, 1200), Event::Connections(0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
    }

    #[test]
    fn drain_timeout_stops_anyway_and_says_how_many_were_left() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        roll_to_switch(&mut g, t0, 1, [21, 22]);
        g.run(t0, Event::AfterStart(Ok(())));
        assert!(g.run(ms(t0, 59_000), Event::Connections(3)).is_empty());
        let a = g.run(ms(t0, 60_000), Event::Connections(3));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        assert!(
            a.iter().any(
                |a| matches!(a, Action::Log { level: Level::Warn, msg, .. } if msg.contains("3 connection(s) left"))
            )
        );
    }

    #[test]
    fn stop_timeout_escalates_to_sigkill() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        roll_to_switch(&mut g, t0, 1, [21, 22]);
        g.run(t0, Event::AfterStart(Ok(())));
        g.run(ms(t0, 1000), Event::Connections(0));
        exit(&mut g, ms(t0, 1100), 11);
        assert_eq!(g.next_deadline(), Some(ms(t0, 11_000)));
        let a = g.run(ms(t0, 11_000), Event::Tick);
        assert_eq!(signals(&a), vec![(12, KILL)]);
        assert_eq!(g.next_deadline(), None);
        let a = g.run(ms(t0, 11_010), Event::Exited { pid: 12, status: ExitStatus::Signal(9) });
        let a = settle(&mut g, ms(t0, 11_010), a);
        assert_eq!(done(&a).unwrap().0, Outcome::Ok);
    }

    #[test]
    fn smoke_timeout_rolls_back_and_keeps_the_live_set() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        g.run(t0, Event::Tick);
        let a = g.run(ms(t0, 20), Event::Smoke { passed: vec![8501], failed: vec![(8502, "answered 500".into())] });
        assert!(a.is_empty());
        assert_eq!(g.next_deadline(), Some(ms(t0, 30)));
        assert_eq!(g.run(ms(t0, 30), Event::Tick), vec![Action::Smoke { cfg: cfg(), ports: vec![8502] }]);
        let a = g.run(ms(t0, 5000), Event::Smoke { passed: vec![], failed: vec![(8502, "answered 500".into())] });
        assert_eq!(signals(&a), vec![(21, TERM), (22, TERM)]);
        exit(&mut g, ms(t0, 5010), 21);
        let a = exit(&mut g, ms(t0, 5020), 22);
        let (outcome, summary) = done(&a).unwrap();
        assert!(matches!(outcome, Outcome::RolledBack { port: Some(8502), .. }), "{outcome:?}");
        assert!(summary.contains("port 8502 not ready within start_timeout 5.00s: answered 500"), "{summary}");
        assert!(summary.contains("(spawn 0ms, ready 5.00s, stop 20ms, total 5.02s)"), "{summary}");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002]);
        assert!(g.is_idle());
    }

    #[test]
    fn new_process_exit_rolls_back_at_once() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(ms(t0, 50), Event::Exited { pid: 22, status: ExitStatus::Code(3) });
        assert_eq!(signals(&a), vec![(21, TERM)]);
        let a = exit(&mut g, ms(t0, 60), 21);
        let (outcome, summary) = done(&a).unwrap();
        assert!(matches!(outcome, Outcome::RolledBack { port: Some(8502), .. }));
        assert!(summary.contains("port 8502 exited (exit 3) before it was ready"), "{summary}");
    }

    #[test]
    fn spawn_error_rolls_back() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        let a = g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Err("No such file".into()))]));
        assert_eq!(signals(&a), vec![(21, TERM)]);
        let (outcome, _) = done(&exit(&mut g, t0, 21)).unwrap();
        assert!(matches!(outcome, Outcome::RolledBack { reason, .. } if reason.contains("cannot spawn: No such file")));
    }

    #[test]
    fn failed_after_start_points_back_and_drains_the_new_set() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        roll_to_switch(&mut g, t0, 1, [21, 22]);
        let a = g.run(ms(t0, 10), Event::AfterStart(Err("run_proc failed (exit 1)".into())));
        assert!(a.contains(&Action::Revert { cfg: cfg(), ports: vec![8001, 8002], old_ports: vec![8501, 8502] }));
        assert!(signals(&a).is_empty(), "the new set drains first");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002]);
        assert_eq!(g.next_deadline(), None, "no drain before the LB points back");
        // The quiet period starts when the revert (2 s here) has ended.
        let a = g.run(ms(t0, 2010), Event::Reverted(Ok(())));
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Log { msg, .. } if msg.contains("run again for the live set 8001,8002")))
        );
        assert_eq!(g.run(ms(t0, 2010), Event::Tick), vec![Action::Count { ports: vec![8501, 8502] }]);
        assert!(g.run(ms(t0, 3000), Event::Connections(0)).is_empty(), "quiet for 0.99 s only");
        let a = g.run(ms(t0, 3010), Event::Connections(0));
        assert_eq!(signals(&a), vec![(21, TERM), (22, TERM)]);
        exit(&mut g, ms(t0, 3020), 21);
        let (outcome, summary) = done(&exit(&mut g, ms(t0, 3030), 22)).unwrap();
        assert!(matches!(outcome, Outcome::RolledBack { .. }));
        assert!(summary.contains("after_start failed: run_proc failed (exit 1)"), "{summary}");
    }

    #[test]
    fn first_start_failure_is_reported_as_such() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        g.run(t0, Event::Start { cfg: cfg(), index: 0 });
        g.run(t0, Event::Spawned(vec![(8001, Ok(11)), (8002, Ok(12))]));
        let a = g.run(t0, Event::Exited { pid: 11, status: ExitStatus::Signal(11) });
        assert_eq!(signals(&a), vec![(12, TERM)]);
        let (outcome, summary) = done(&exit(&mut g, t0, 12)).unwrap();
        assert!(matches!(outcome, Outcome::StartFailed { port: Some(8001), .. }));
        assert!(summary.contains("signal 11"), "{summary}");
        assert!(g.live.is_none());
    }

    #[test]
    fn crashed_live_process_restarts_with_doubling_capped_backoff() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let mut t = ms(t0, 1000);
        let mut pid = 11;
        for want in [1, 2, 4, 8, 16, 30, 30] {
            let a = g.run(t, Event::Exited { pid, status: ExitStatus::Signal(9) });
            assert!(a.contains(&Action::Signal { pgid: pid, sig: KILL }), "its group is cleaned");
            assert_eq!(g.next_deadline(), Some(t + Duration::from_secs(want)));
            assert!(g.run(t + Duration::from_secs(want) - Duration::from_millis(1), Event::Tick).is_empty());
            t += Duration::from_secs(want);
            assert_eq!(g.run(t, Event::Tick), vec![Action::Spawn { cfg: cfg(), ports: vec![8001] }]);
            pid += 100;
            g.run(t, Event::Spawned(vec![(8001, Ok(pid))]));
            assert_eq!(g.next_deadline(), None);
        }
        // A healthy minute resets the backoff.
        t += Duration::from_secs(61);
        g.run(t, Event::Exited { pid, status: ExitStatus::Code(1) });
        assert_eq!(g.next_deadline(), Some(t + Duration::from_secs(1)));
    }

    #[test]
    fn reload_requests_while_busy_are_ignored_by_the_group() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        assert!(g.run(t0, Event::Start { cfg: cfg(), index: 0 }).is_empty());
        assert!(!g.is_idle());
    }

    #[test]
    fn terminate_mid_rollout_stops_every_set_then_kills_and_ends() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(ms(t0, 10), Event::Terminate);
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM), (21, TERM), (22, TERM)]);
        for pid in [11, 21, 22] {
            exit(&mut g, ms(t0, 20), pid);
        }
        // A new set's exit during shutdown is not a rollback.
        assert!(!g.is_gone());
        let a = g.run(ms(t0, 10_010), Event::Tick);
        assert_eq!(signals(&a), vec![(12, KILL)]);
        let a = g.run(ms(t0, 10_020), Event::Exited { pid: 12, status: ExitStatus::Signal(9) });
        assert!(a.contains(&Action::CheckGroups { pgids: vec![11, 12, 21, 22] }));
        assert!(!g.is_gone(), "not before the process groups are empty");
        let a = g.run(ms(t0, 10_020), Event::GroupsAlive(vec![]));
        assert!(done(&a).is_none());
        assert!(g.is_gone());
    }

    #[test]
    fn refused_start_is_a_rollback_when_live_and_a_failure_when_not() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = g.run(t0, Event::StartRefused("no free workset".into()));
        assert!(matches!(done(&a).unwrap().0, Outcome::RolledBack { .. }));
        let mut fresh = Group::new("web");
        let a = fresh.run(t0, Event::StartRefused("no free workset".into()));
        assert!(matches!(done(&a).unwrap().0, Outcome::StartFailed { .. }));
    }

    #[test]
    fn phases_are_reported_in_order_with_their_durations() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let mut seen = Vec::new();
        let mut go = |g: &mut Group, t: Instant, ev: Event| {
            for a in g.handle(t, ev) {
                if let Action::Phase { name, took } = a {
                    seen.push((name, took.as_millis()));
                }
            }
        };
        go(&mut g, ms(t0, 1000), Event::Start { cfg: cfg(), index: 1 });
        go(&mut g, ms(t0, 1003), Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        go(&mut g, ms(t0, 1003), Event::Tick);
        go(&mut g, ms(t0, 1100), Event::Smoke { passed: vec![8501, 8502], failed: vec![] });
        go(&mut g, ms(t0, 1120), Event::AfterStart(Ok(())));
        go(&mut g, ms(t0, 2120), Event::Connections(0));
        go(&mut g, ms(t0, 2150), Event::Exited { pid: 11, status: ExitStatus::Code(0) });
        go(&mut g, ms(t0, 2160), Event::Exited { pid: 12, status: ExitStatus::Code(0) });
        go(&mut g, ms(t0, 2160), Event::GroupsAlive(vec![]));
        assert_eq!(seen, vec![("spawn", 3), ("ready", 97), ("after_start", 20), ("drain", 1000), ("stop", 40)]);
    }

    #[test]
    fn a_stop_ends_only_when_the_process_groups_are_empty() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        roll_to_switch(&mut g, t0, 1, [21, 22]);
        g.run(t0, Event::AfterStart(Ok(())));
        g.run(ms(t0, 1000), Event::Connections(0));
        g.run(ms(t0, 1100), Event::Exited { pid: 11, status: ExitStatus::Code(0) });
        let a = g.run(ms(t0, 1200), Event::Exited { pid: 12, status: ExitStatus::Code(0) });
        assert_eq!(signals(&a), vec![(11, KILL), (12, KILL)], "stragglers of the groups are killed");
        assert!(a.contains(&Action::CheckGroups { pgids: vec![11, 12] }));
        assert!(done(&a).is_none());
        // A forked worker of 12 takes a while to die.
        assert!(g.run(ms(t0, 1200), Event::GroupsAlive(vec![12])).is_empty());
        assert_eq!(g.next_deadline(), Some(ms(t0, 1220)));
        assert_eq!(g.run(ms(t0, 1220), Event::Tick), vec![Action::CheckGroups { pgids: vec![12] }]);
        let a = g.run(ms(t0, 1221), Event::GroupsAlive(vec![]));
        assert_eq!(done(&a).unwrap().0, Outcome::Ok);
        assert!(g.is_idle());
        // One that never empties is given up after stop_timeout, loudly.
        roll_to_switch(&mut g, ms(t0, 2000), 0, [31, 32]);
        g.run(ms(t0, 2000), Event::AfterStart(Ok(())));
        g.run(ms(t0, 3000), Event::Connections(0));
        g.run(ms(t0, 3000), Event::Exited { pid: 21, status: ExitStatus::Code(0) });
        g.run(ms(t0, 3000), Event::Exited { pid: 22, status: ExitStatus::Code(0) });
        assert!(g.run(ms(t0, 12_999), Event::GroupsAlive(vec![21])).is_empty());
        let a = g.run(ms(t0, 13_000), Event::GroupsAlive(vec![21]));
        assert!(a.iter().any(|a| matches!(a, Action::Log { level: Level::Error, msg, .. } if msg.contains("[21]"))));
        assert!(done(&a).is_some());
    }
}
