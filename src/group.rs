//! The blue/green state machine of one group, free of I/O.
//!
//! `Group::handle(now, event)` returns the actions to carry out; the daemon
//! performs them and feeds their results back as events. Time enters only
//! as the `now` argument, and `next_deadline` says when the group next
//! wants a `Tick`, so tests drive it with made-up instants and no process.
//!
//! A rollout is: spawn the new set and check each of its ports until it
//! passes (`Starting`), run after_start for it (`Switching`), drain the old
//! set (`Draining`), stop it (`Stopping`). Whatever set leaves service, the
//! old one after a switch or the new one on a rollback (after `Reverting`
//! points the LB back), goes through the same drain and stop. Each phase
//! owns the set it works on; the live set is the group's own. `on` lists
//! every (phase, event) pair, the ignored ones included.
//!
//! Nothing a phase waits for blocks: checks, after_start steps and counts
//! are actions whose results come back as events, tagged with a sequence
//! number so that a late answer to an abandoned question is ignored, and
//! each wait has a deadline here.

use crate::config::{Action as Step, GroupConfig};
use crate::plan::{self, Target};
use crate::sys::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a port that failed its check is checked again.
pub const SMOKE_INTERVAL: Duration = Duration::from_millis(10);
/// How often a restarted process of a `listen:` group that failed its
/// check is checked again.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often connections on a draining set are counted.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const HEALTHY: Duration = Duration::from_secs(60);
/// How often emptied process groups are looked at after their SIGKILL.
const LINGER_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Clone, Debug, PartialEq)]
pub struct Proc {
    pub port: u16,
    /// Running process (and process group) id; `None` once reaped.
    pub pid: Option<i32>,
    /// Its process group, while the leader is known to lead it: cleared
    /// when the leader is reaped, the moment the group's stragglers are
    /// killed. Past that instant the number may belong to a new group of
    /// someone else's, so it is never signalled again.
    pub pgid: Option<i32>,
    pub started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
    pub restarts: u32,
    /// A restarted process of a `listen:` group, until one of its checks
    /// passes: it gets no new connection before (`serving`).
    probe: Option<Probe>,
    /// Its place in the live set (which a rollout by batches replaces):
    /// its port's place in its workset in the config that started it, and
    /// nothing in another config (see `plan`).
    pub slot: usize,
    /// The rollout of the group that started it (1 for the first start;
    /// 0 for a process taken over from a previous rolld).
    pub rollout: u64,
    /// Its health checks (`health:`), once one has been asked for.
    pub health: Option<HealthState>,
    /// After a heal put it in its slot: how long the slot waited, and the
    /// slot is not healed again before `heal_after`.
    heal_backoff: Duration,
    heal_after: Option<Instant>,
}

/// The health checks of one live process (`health:`).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthState {
    /// The process they are of: a restarted one starts anew.
    pid: i32,
    /// Checks failed in a row.
    pub fails: u32,
    /// When the last check ended, and how.
    pub last: Option<(Instant, Result<(), String>)>,
    in_flight: bool,
}

/// The checks of a restarted process of a `listen:` group.
#[derive(Clone, Debug, PartialEq)]
struct Probe {
    state: CheckState,
    /// Said that it has not passed within start_timeout.
    warned: bool,
}

impl Proc {
    /// Whether new connections may go to it (`listen:`): it runs and, if
    /// it was restarted, has passed its check since.
    pub fn serving(&self) -> bool {
        self.pid.is_some() && self.probe.is_none()
    }

    /// The leader was reaped (or, taken over, seen to end): what is left
    /// of its group is killed now, and the group is never signalled again.
    /// (A taken-over group is reached only where the kernel can still tell
    /// it apart: see `takeover::signal_group`.) The group, for a look at
    /// whether it has emptied.
    fn reaped(&mut self, out: &mut Vec<Action>) -> Option<i32> {
        self.pid = None;
        self.probe = None;
        let pgid = self.pgid.take()?;
        out.push(Action::Signal { pgid, sig: libc::SIGKILL });
        Some(pgid)
    }

    fn new(t: Target, pid: Option<i32>, rollout: u64, now: Instant) -> Proc {
        Proc {
            port: t.port,
            pid,
            pgid: pid,
            started: now,
            backoff: BACKOFF_FIRST,
            restart_at: None,
            restarts: 0,
            probe: None,
            slot: t.slot,
            rollout,
            health: None,
            heal_backoff: Duration::ZERO,
            heal_after: None,
        }
    }

    /// Its health checks, if they are of the process running now.
    pub fn health_now(&self) -> Option<&HealthState> {
        self.health.as_ref().filter(|h| Some(h.pid) == self.pid)
    }

    /// Failed its last `n` health checks in a row.
    fn sick(&self, n: u32) -> bool {
        self.health_now().is_some_and(|h| h.fails >= n)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    pub cfg: Arc<GroupConfig>,
    pub procs: Vec<Proc>,
}

impl Set {
    fn new(cfg: Arc<GroupConfig>, targets: &[Target], rollout: u64, now: Instant) -> Set {
        let procs: Vec<Proc> = targets.iter().map(|&t| Proc::new(t, None, rollout, now)).collect();
        Set { cfg, procs }
    }

    /// The workset of its config that has `port`, for status and logs: a
    /// number that means something in that config only.
    pub fn workset_of(&self, port: u16) -> Option<usize> {
        plan::locate(&self.cfg, port).map(|(_, w)| w)
    }

    /// The workset of its first process.
    pub fn workset(&self) -> Option<usize> {
        self.workset_of(self.procs.first()?.port)
    }

    /// The slots of its processes, in order.
    fn slots(&self) -> Vec<usize> {
        self.procs.iter().map(|p| p.slot).collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.procs.iter().map(|p| p.port).collect()
    }

    fn alive(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.pid.is_some())
    }

    fn find(&mut self, pid: i32) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.pid == Some(pid))
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
        cfg: Arc<GroupConfig>,
        index: usize,
    },
    /// A rollout that moves each slot to its own target (`surge`).
    StartPlan {
        cfg: Arc<GroupConfig>,
        plan: Vec<Target>,
    },
    /// A rollout could not even begin (for example, no free workset).
    StartRefused(String),
    /// The group is gone from the config: drain its live set, stop it.
    Retire,
    /// Result of `Action::Spawn`, one entry per port.
    Spawned(Vec<(u16, Result<i32, String>)>),
    /// A process of a set was reaped (or, taken over, seen to end).
    Exited {
        pid: i32,
        status: ExitStatus,
    },
    /// One port's check of `Action::Smoke` `seq` ended.
    Checked {
        seq: u64,
        port: u16,
        result: Result<(), String>,
    },
    /// Step `seq` is a process now running as `pid` (its process group).
    StepRunning {
        seq: u64,
        pid: i32,
    },
    /// Step `seq` ended without a process of its own (a render), or its
    /// process could not be started.
    StepDone {
        seq: u64,
        result: Result<(), String>,
    },
    /// A step's process ended; `output` is the tail of what it printed.
    ActionExited {
        pid: i32,
        status: ExitStatus,
        output: String,
    },
    /// Result of `Action::Count` `seq`: connections per port.
    Connections {
        seq: u64,
        counts: Result<Vec<(u16, usize)>, String>,
    },
    /// Result of `Action::CheckGroups`.
    GroupsAlive(Vec<i32>),
    /// The check of `Action::Probe` ended.
    Probed {
        port: u16,
        pid: i32,
        result: Result<(), String>,
    },
    /// `rolld promote`: a bake under way ends now, as if its time were up.
    Promote,
    /// `rolld revert`: a bake under way is reverted now.
    Revert,
    /// The health check of `Action::Health` ended.
    HealthChecked {
        port: u16,
        pid: i32,
        result: Result<(), String>,
    },
    /// The answer to `Action::LbErrors` `seq`: the errors the LB counted
    /// on the processes on trial, and a line naming them.
    LbErrors {
        seq: u64,
        result: Result<(u64, String), String>,
    },
    /// The answer to `Action::Heal`: where the slot of `port` goes, or
    /// why it cannot move.
    HealPlan {
        port: u16,
        target: Result<Target, String>,
    },
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
    /// A rollout by batches failed after `moved` of the `total` slots had
    /// moved: those serve on the new release, the others on the old.
    Partial { moved: usize, total: usize, reason: String, port: Option<u16> },
    /// The new set failed during its bake: traffic went back to the old
    /// set, which serves again, and the new one was stopped.
    Reverted { reason: String, port: Option<u16> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Spawn {
        cfg: Arc<GroupConfig>,
        ports: Vec<u16>,
    },
    /// Check each of `ports`, all at once; each answers `Event::Checked`.
    Smoke {
        cfg: Arc<GroupConfig>,
        seq: u64,
        ports: Vec<u16>,
    },
    /// Check `port`, whose process `pid` of the live set was restarted;
    /// the answer is `Event::Probed`.
    Probe {
        cfg: Arc<GroupConfig>,
        port: u16,
        pid: i32,
    },
    /// The health check of `port`, run by live process `pid`; the answer
    /// is `Event::HealthChecked`.
    Health {
        cfg: Arc<GroupConfig>,
        port: u16,
        pid: i32,
    },
    /// Where the slot `slot` of the live set (now on `port`) may move for
    /// a heal; the answer is `Event::HealPlan`.
    Heal {
        cfg: Arc<GroupConfig>,
        slot: usize,
        port: u16,
    },
    /// Run after_start step `step` of `cfg` for `ports` (the set to point
    /// at) and `old_ports`; it answers `Event::StepRunning` then
    /// `Event::ActionExited` (a run_proc), or `Event::StepDone`.
    RunStep {
        cfg: Arc<GroupConfig>,
        seq: u64,
        step: usize,
        ports: Vec<u16>,
        old_ports: Vec<u16>,
    },
    /// Count the connections on `ports`; the answer is `Event::Connections`.
    Count {
        seq: u64,
        ports: Vec<u16>,
    },
    /// During a bake, read the errors the LB (`haproxy:`) counted on
    /// `ports` since the rollout began; the answer is `Event::LbErrors`.
    LbErrors {
        cfg: Arc<GroupConfig>,
        seq: u64,
        ports: Vec<u16>,
    },
    /// The drain of `ports` was cut at drain_timeout: what the switch
    /// knows of them (a load balancer's sessions) is cut too, before the
    /// set stops. Nothing answers.
    Cut {
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
    /// A phase of the rollout ended, after `took`; in batch `batch` of a
    /// rollout by batches (1-based, and how many).
    Phase {
        name: &'static str,
        took: Duration,
        batch: Option<(usize, usize)>,
    },
    /// The rollout (or first start) ended; `summary` is its log line,
    /// `tally` what its drains and stops came to.
    Done {
        outcome: Outcome,
        summary: String,
        tally: Tally,
    },
}

/// What a rollout's drains and stops came to, as rolld saw them: its
/// receipt when no load balancer reports one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Drains begun.
    pub drains: usize,
    /// Connections the retiring sets held as their drains began.
    pub drained: usize,
    /// Connections left when drain_timeout cut a drain short.
    pub left_at_timeout: Option<usize>,
    /// Processes that needed SIGKILL.
    pub killed: usize,
}

impl Tally {
    /// For the summary line (no parenthesis: the phases are the line's
    /// last one): `None` when nothing was drained or killed.
    pub fn line(&self) -> Option<String> {
        if self.drains == 0 && self.killed == 0 {
            return None;
        }
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut out = format!("{} drained", plural(self.drained, "connection", "connections"));
        if let Some(n) = self.left_at_timeout {
            out.push_str(&format!(", {n} left at drain_timeout"));
        }
        if self.killed > 0 {
            out.push_str(&format!(", {} SIGKILL", plural(self.killed, "process needed", "processes needed")));
        }
        Some(out)
    }
}

/// What a set is to the group, as the state file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Live,
    /// Retired from service, its connections drained.
    Drain,
    /// Starting, switching, or being stopped.
    Other,
}

/// Where one port of a starting set stands.
#[derive(Clone, Debug, PartialEq)]
enum CheckState {
    /// To be checked at this instant.
    Due(Instant),
    InFlight,
    Passed,
}

#[derive(Clone, Debug, PartialEq)]
struct PortCheck {
    port: u16,
    state: CheckState,
    /// Why its last check failed.
    last: Option<String>,
}

/// The after_start steps under way for one set of ports.
#[derive(Clone, Debug, PartialEq)]
struct Job {
    cfg: Arc<GroupConfig>,
    ports: Vec<u16>,
    old_ports: Vec<u16>,
    /// Pointing the LB back at the live set after a failed switch.
    revert: bool,
    step: usize,
    seq: u64,
    /// The step's process, while it runs.
    pid: Option<i32>,
    deadline: Instant,
}

impl Job {
    fn describe(&self) -> String {
        match self.cfg.actions.get(self.step) {
            Some(Step::RunProc { command }) => format!("run_proc: `{command}`"),
            Some(Step::ReplaceFile { output, .. }) => format!("replace_file {}", output.display()),
            Some(Step::Route) => "the switch of new connections".into(),
            Some(Step::Haproxy) => "the switch through HAProxy".into(),
            None => "after_start".into(),
        }
    }

    /// The step is past action_timeout: its process is killed; a render,
    /// given up, loses its turn to write (`output::Turn`). Why it failed.
    fn expired(&self, out: &mut Vec<Action>) -> String {
        let ended = match self.pid {
            Some(pid) => {
                out.push(Action::Signal { pgid: pid, sig: libc::SIGKILL });
                "killed"
            }
            None => "given up, it will not write",
        };
        let limit = self.cfg.timing.action_timeout.as_secs_f64();
        format!("{} did not finish within {limit}s; {ended}", self.describe())
    }

    /// The step's result, when `ev` is the end of the step under way.
    fn result(&self, ev: &Event) -> Option<Result<(), String>> {
        match ev {
            Event::StepDone { seq, result } if *seq == self.seq => Some(result.clone()),
            Event::ActionExited { pid, status, output } if Some(*pid) == self.pid => {
                if *status == ExitStatus::Code(0) {
                    return Some(Ok(()));
                }
                let tail = if output.trim().is_empty() { String::new() } else { format!(": {}", output.trim()) };
                Some(Err(format!("{} failed ({status}){tail}", self.describe())))
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Drain {
    seq: u64,
    quiet_since: Option<Instant>,
    deadline: Instant,
    /// When to count next; `None` while a count is under way.
    next_count: Option<Instant>,
    /// The last count, per port.
    last: Option<Vec<(u16, usize)>>,
    /// When to log the drain's progress next, and how often; `None`: never.
    next_report: Option<Instant>,
    report_every: Duration,
    /// Why the last count failed, if it did.
    failing: Option<String>,
}

/// A drain as `rolld status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DrainView {
    pub ports: Vec<u16>,
    /// The last count per port, once there is one.
    pub counts: Option<Vec<(u16, usize)>>,
    pub deadline: Instant,
}

/// A stop under way: when to send SIGKILL, then, once every leader is
/// reaped, the process groups that still had members at the last look.
#[derive(Clone, Debug, PartialEq)]
struct Stop {
    kill_at: Option<Instant>,
    linger: Option<Linger>,
    /// The groups whose leaders were reaped during this stop.
    reaped: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq)]
struct Linger {
    pgids: Vec<i32>,
    next_check: Option<Instant>,
    give_up: Instant,
}

impl Stop {
    fn new(kill_at: Instant) -> Stop {
        Stop { kill_at: Some(kill_at), linger: None, reaped: Vec::new() }
    }

    fn deadline(&self) -> Option<Instant> {
        let check = self.linger.as_ref().and_then(|l| l.next_check);
        self.kill_at.into_iter().chain(check).min()
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    /// The new set is spawned, then each port checked until it passes.
    Starting {
        set: Set,
        deadline: Instant,
        checks: Vec<PortCheck>,
    },
    /// after_start runs for the new set.
    Switching {
        set: Set,
        job: Job,
    },
    /// after_start runs again for the live set, after it failed for `set`,
    /// which drains next.
    Reverting {
        set: Set,
        job: Job,
    },
    /// `set` has left service; its connections are counted.
    Draining {
        set: Set,
        drain: Drain,
    },
    Stopping {
        set: Set,
        stop: Stop,
    },
    /// After a switch with `bake`: the new processes serve and are watched;
    /// `set`, the one they replaced, has had its drain_signal and runs on,
    /// to be switched back to should they fail before `bake.until`.
    Baking {
        set: Set,
        bake: Bake,
    },
    /// A bake failed: after_start points the LB back at `set`, which is
    /// live again once it has.
    Unbaking {
        set: Set,
        bake: Bake,
        job: Job,
    },
    /// SIGTERM: every set of the group stops.
    ShuttingDown {
        sets: Vec<Set>,
        stop: Stop,
    },
    Gone,
}

/// A bake under way (`Phase::Baking`).
#[derive(Clone, Debug, PartialEq)]
struct Bake {
    until: Instant,
    /// The ports of the processes on trial.
    ports: Vec<u16>,
    /// In a rollout by batches, the places in the live set of the
    /// processes on trial, in the order of the retiring set's; `None`:
    /// the whole live set is on trial.
    slots: Option<Vec<usize>>,
    /// The live set's config before the switch, back on a revert.
    live_cfg: Arc<GroupConfig>,
    /// With `haproxy.revert_errors`, the LB's error counters of the
    /// processes on trial.
    lb: Option<LbWatch>,
}

/// How often a bake reads the LB's error counters: every `LB_FIRST` in
/// its first `LB_EARLY`, when a release that fails under traffic fails
/// (each read sooner is fewer requests answered by it), then every
/// `LB_EVERY`; again after a read failed, `LB_RETRY`.
const LB_FIRST: Duration = Duration::from_millis(10);
const LB_EARLY: Duration = Duration::from_secs(2);
const LB_EVERY: Duration = Duration::from_millis(100);
const LB_RETRY: Duration = Duration::from_secs(1);

/// The LB's error counters of a bake's processes on trial: read every
/// `LB_EVERY`, they revert it at `limit`. A bake passes only on a read
/// asked at or after its end: while the counters cannot be read, it waits.
#[derive(Clone, Debug, PartialEq)]
struct LbWatch {
    limit: u64,
    /// When the bake began.
    since: Instant,
    /// When the next read is due.
    next: Instant,
    /// The read under way: its seq and when it was asked.
    asked: Option<(u64, Instant)>,
    /// The last read failed, and the log said so.
    failing: bool,
    /// The errors counted at the last read that answered.
    last: Option<u64>,
}

impl LbWatch {
    /// When the next read is to be asked: none while one is under way; at
    /// the bake's end `until` too, unless reads fail (then they are tried
    /// every `LB_RETRY`).
    fn due(&self, until: Instant) -> Option<Instant> {
        match self.asked {
            Some(_) => None,
            None if self.failing => Some(self.next),
            None => Some(self.next.min(until)),
        }
    }
}

/// A bake as `rolld status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct BakeView {
    /// The ports on trial, and those of the set kept to revert to.
    pub ports: Vec<u16>,
    pub old: Vec<u16>,
    pub until: Instant,
    /// With `haproxy.revert_errors`: the errors HAProxy counted on the
    /// processes on trial at the last read, and whether reads now fail.
    pub lb_errors: Option<u64>,
    pub lb_unread: bool,
}

/// One rollout: where it moves the slots, by batches of `size`, and the
/// timestamps of its phases, for its log line.
#[derive(Clone, Debug)]
struct Rollout {
    cfg: Arc<GroupConfig>,
    started: Instant,
    from: Vec<u16>,
    plan: Vec<Target>,
    size: usize,
    /// The batch under way (0-based).
    batch: usize,
    /// Slots moved by the batches that ended well.
    moved: usize,
    marks: Vec<(usize, &'static str, Instant)>,
    outcome: Option<Outcome>,
    tally: Tally,
    /// A heal: a rollout of one slot, whose process is stopped undrained.
    heal: Option<Heal>,
}

/// The process a heal replaces, and why.
#[derive(Clone, Debug)]
struct Heal {
    port: u16,
    pid: i32,
    why: String,
    /// How long the slot waits after this heal before the next.
    backoff: Duration,
}

impl Rollout {
    fn batches(&self) -> usize {
        self.plan.len().div_ceil(self.size.max(1))
    }

    fn by_batches(&self) -> bool {
        self.batches() > 1
    }

    /// Whether it moves some slots and leaves the others: by batches, or
    /// a heal.
    fn by_slots(&self) -> bool {
        self.by_batches() || self.heal.is_some()
    }

    fn targets(&self) -> &[Target] {
        let start = self.batch * self.size;
        &self.plan[start.min(self.plan.len())..(start + self.size).min(self.plan.len())]
    }

    fn to(&self) -> Vec<u16> {
        self.plan.iter().map(|t| t.port).collect()
    }

    /// Ends the phase `name` at `now`; the action that reports it.
    fn mark(&mut self, name: &'static str, now: Instant) -> Action {
        let prev = self.marks.last().map_or(self.started, |m| m.2);
        self.marks.push((self.batch, name, now));
        let batch = self.by_batches().then(|| (self.batch + 1, self.batches()));
        Action::Phase { name, took: now.saturating_duration_since(prev), batch }
    }

    fn phases(&self) -> String {
        let mut prev = self.started;
        let mut out = String::new();
        let mut batch = None;
        for (b, name, t) in &self.marks {
            if self.by_batches() && batch != Some(*b) {
                if batch.is_some() {
                    out.push_str("; ");
                }
                out.push_str(&format!("batch {}: ", b + 1));
                batch = Some(*b);
            } else if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&format!("{name} {}", fmt_duration(t.saturating_duration_since(prev))));
            prev = *t;
        }
        let sep = if out.is_empty() {
            ""
        } else if self.by_batches() {
            "; "
        } else {
            ", "
        };
        out.push_str(&format!("{sep}total {}", fmt_duration(prev.saturating_duration_since(self.started))));
        out
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
    phase: Phase,
    rollout: Option<Rollout>,
    /// Tags checks, steps and counts, so that a late answer is ignored.
    seq: u64,
    /// Gone from the config: once its set has drained and stopped, the
    /// group is gone.
    removed: bool,
    /// Rollouts begun (the first start is 1).
    rollouts: u64,
    /// When the live set's health checks (`health:`) are next due.
    health_at: Option<Instant>,
    /// Heals of the live set's slots that ended well.
    pub heals: u64,
    /// Every live process failed its last check: said once.
    all_failing: bool,
}

impl Group {
    pub fn new(name: &str) -> Group {
        Group {
            name: name.to_string(),
            live: None,
            phase: Phase::Idle,
            rollout: None,
            seq: 0,
            removed: false,
            rollouts: 0,
            health_at: None,
            heals: 0,
            all_failing: false,
        }
    }

    /// Takes over `procs` (port, pid), a live set left running by a rolld
    /// that died, in any mix of worksets. They are not rolld's children:
    /// their exits must come from pidfds. The next `Start` rolls them over
    /// like any live set. They are put in the order of their ports' slots
    /// in `cfg` (ports it does not have last), and each one's place in that
    /// order is its slot.
    pub fn adopt(&mut self, cfg: Arc<GroupConfig>, procs: &[(u16, i32)], now: Instant) {
        let mut found: Vec<(usize, u16, i32)> = procs
            .iter()
            .map(|&(port, pid)| (plan::locate(&cfg, port).map_or(usize::MAX, |(slot, _)| slot), port, pid))
            .collect();
        found.sort_unstable();
        let procs = found
            .into_iter()
            .enumerate()
            .map(|(slot, (_, port, pid))| Proc::new(Target { slot, port }, Some(pid), 0, now))
            .collect();
        self.live = Some(Set { cfg, procs });
    }

    /// Takes over `procs`, a set that a rolld that died was draining: the
    /// drain goes on (its drain_signal was sent already), then the set
    /// stops. The group is idle again after that.
    pub fn adopt_draining(&mut self, cfg: Arc<GroupConfig>, procs: &[(u16, i32)], now: Instant) {
        let live = self.live.take();
        self.adopt(cfg.clone(), procs, now);
        let set = std::mem::replace(&mut self.live, live);
        if let Some(set) = set {
            self.phase = self.drain_phase(set, &cfg, now);
        }
    }

    /// The batch under way of a rollout by batches: (1-based, how many).
    pub fn batch(&self) -> Option<(usize, usize)> {
        self.rollout.as_ref().filter(|r| r.by_batches()).map(|r| (r.batch + 1, r.batches()))
    }

    /// True when no rollout is under way and a new one may start.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// True once every process has stopped for good (a shutdown, or a
    /// group removed from the config).
    pub fn is_gone(&self) -> bool {
        self.phase == Phase::Gone
    }

    /// A short name of the current phase, for status output.
    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Idle => "idle",
            Phase::Starting { .. } => "starting",
            Phase::Switching { .. } => "switching",
            Phase::Reverting { .. } => "reverting",
            Phase::Draining { .. } => "draining",
            Phase::Stopping { .. } => "stopping",
            Phase::Baking { .. } => "baking",
            Phase::Unbaking { .. } => "reverting",
            Phase::ShuttingDown { .. } => "shutting-down",
            Phase::Gone => "gone",
        }
    }

    /// The set a rollout is bringing in, until it is live.
    pub fn incoming(&self) -> Option<&Set> {
        match &self.phase {
            Phase::Starting { set, .. } | Phase::Switching { set, .. } => Some(set),
            _ => None,
        }
    }

    /// A spawn of `ports` starts the rollout's new processes (not a crash
    /// restart of live ones, which may come in the middle of a rollout).
    pub fn spawns_incoming(&self, ports: &[u16]) -> bool {
        self.incoming().is_some_and(|s| !ports.is_empty() && ports.iter().all(|p| s.procs.iter().any(|q| q.port == *p)))
    }

    /// Every set with its processes, and what it is to the group.
    pub fn sets(&self) -> Vec<(&Set, Role)> {
        let mut out: Vec<(&Set, Role)> = self.live.iter().map(|s| (s, Role::Live)).collect();
        match &self.phase {
            Phase::Starting { set, .. }
            | Phase::Switching { set, .. }
            | Phase::Reverting { set, .. }
            | Phase::Stopping { set, .. } => out.push((set, Role::Other)),
            // A successor of a rolld killed during a bake drains and
            // stops this set: the bake ends as if promoted.
            Phase::Draining { set, .. } | Phase::Baking { set, .. } | Phase::Unbaking { set, .. } => {
                out.push((set, Role::Drain))
            }
            Phase::ShuttingDown { sets, .. } => out.extend(sets.iter().map(|s| (s, Role::Other))),
            Phase::Idle | Phase::Gone => {}
        }
        out
    }

    /// The after_start step the group waits for, if any: the only one
    /// whose render may still write (`output::Turn`).
    pub fn step_awaited(&self) -> Option<u64> {
        match &self.phase {
            Phase::Switching { job, .. } | Phase::Reverting { job, .. } | Phase::Unbaking { job, .. } => Some(job.seq),
            _ => None,
        }
    }

    /// The process of the after_start step under way, if any.
    fn step_pid(&self) -> Option<i32> {
        match &self.phase {
            Phase::Switching { job, .. } | Phase::Reverting { job, .. } | Phase::Unbaking { job, .. } => job.pid,
            _ => None,
        }
    }

    /// Whether `pid` is one of this group's processes (a backend or the
    /// process of an after_start step).
    pub fn owns(&self, pid: i32) -> bool {
        self.step_pid() == Some(pid) || self.sets().iter().any(|(s, _)| s.procs.iter().any(|p| p.pid == Some(pid)))
    }

    /// When the group next needs a `Tick`; `None` means never (idle).
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Starting { deadline, checks, .. } => checks
                .iter()
                .filter_map(|c| match c.state {
                    CheckState::Due(t) => Some(t),
                    _ => None,
                })
                .chain([*deadline])
                .min(),
            Phase::Switching { job, .. } | Phase::Reverting { job, .. } | Phase::Unbaking { job, .. } => {
                Some(job.deadline)
            }
            Phase::Draining { drain, .. } => Some(drain.next_count.unwrap_or(drain.deadline).min(drain.deadline)),
            Phase::Stopping { stop, .. } | Phase::ShuttingDown { stop, .. } => stop.deadline(),
            Phase::Baking { bake, .. } => match &bake.lb {
                None => Some(bake.until),
                Some(w) => w.due(bake.until),
            },
            Phase::Idle | Phase::Gone => None,
        };
        let live = self.live.iter().flat_map(|s| s.procs.iter());
        let restarts = live.clone().filter_map(|p| p.restart_at);
        let probes = live.filter_map(|p| match p.probe {
            Some(Probe { state: CheckState::Due(t), .. }) => Some(t),
            _ => None,
        });
        phase.into_iter().chain(restarts).chain(probes).chain(self.health_due()).min()
    }

    pub fn handle(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        self.phase = self.on(phase, now, ev, &mut out);
        // The health checks of a live set start `every` after it is there.
        match self.live.as_ref().and_then(|l| l.cfg.health) {
            Some(h) if self.health_at.is_none() => self.health_at = Some(now + h.every),
            Some(_) => {}
            None => self.health_at = None,
        }
        out
    }

    /// The table: what each event does in each phase.
    fn on(&mut self, phase: Phase, now: Instant, ev: Event, out: &mut Vec<Action>) -> Phase {
        use Event as E;
        use Phase as P;
        match (phase, ev) {
            (P::Gone, _) => P::Gone,
            (p @ P::ShuttingDown { .. }, E::Terminate) => p,
            (p, E::Terminate) => self.terminate(p, now, out),
            (p, E::Exited { pid, status }) => self.exited(p, now, pid, status, out),
            (p, E::Probed { port, pid, result }) => {
                self.probed(now, port, pid, result, out);
                p
            }
            (p, E::Spawned(results)) => self.spawned(p, now, results, out),
            (p, E::HealthChecked { port, pid, result }) => self.health_checked(p, now, port, pid, result, out),
            (P::Idle, E::HealPlan { port, target }) => self.heal(now, port, target, out),
            (p, E::Tick) => {
                let p = self.tick(p, now, out);
                self.check_health(&p, now, out);
                p
            }
            (P::Idle, E::Start { cfg, index }) => match plan::to_workset(&cfg, index) {
                Some(plan) => self.start(now, cfg, plan, out),
                None => {
                    self.refused(format!("the config has no workset {index}"), out);
                    P::Idle
                }
            },
            (P::Idle, E::StartPlan { cfg, plan }) => self.start(now, cfg, plan, out),
            (P::Idle, E::StartRefused(reason)) => {
                self.refused(reason, out);
                P::Idle
            }
            (P::Idle, E::Retire) => self.retire(now, out),
            (P::Starting { set, deadline, mut checks }, E::Checked { seq, port, result }) if seq == self.seq => {
                if let Some(c) = checks.iter_mut().find(|c| c.port == port && c.state == CheckState::InFlight) {
                    match result {
                        Ok(()) => c.state = CheckState::Passed,
                        Err(e) => {
                            c.state = CheckState::Due((now + SMOKE_INTERVAL).min(deadline));
                            c.last = Some(e);
                        }
                    }
                }
                if checks.iter().all(|c| c.state == CheckState::Passed) {
                    self.ready(set, now, out)
                } else {
                    P::Starting { set, deadline, checks }
                }
            }
            (P::Switching { set, mut job } | P::Reverting { set, mut job }, E::StepRunning { seq, pid })
                if seq == job.seq =>
            {
                job.pid = Some(pid);
                if job.revert { P::Reverting { set, job } } else { P::Switching { set, job } }
            }
            (P::Switching { set, job }, ev @ (E::StepDone { .. } | E::ActionExited { .. })) => match job.result(&ev) {
                None => P::Switching { set, job },
                Some(Ok(())) => match self.next_step(job, now, out) {
                    Some(job) => P::Switching { set, job },
                    None => self.switched(set, now, out),
                },
                Some(Err(e)) => self.switch_failed(set, format!("after_start failed: {e}"), now, out),
            },
            (P::Reverting { set, job }, ev @ (E::StepDone { .. } | E::ActionExited { .. })) => match job.result(&ev) {
                None => P::Reverting { set, job },
                Some(Ok(())) => match self.next_step(job, now, out) {
                    Some(job) => P::Reverting { set, job },
                    None => self.reverted(set, Ok(()), now, out),
                },
                Some(Err(e)) => self.reverted(set, Err(e), now, out),
            },
            (P::Draining { set, drain }, E::Connections { seq, counts }) if seq == drain.seq => {
                self.counted(set, drain, now, counts, out)
            }
            (p @ (P::Stopping { .. } | P::ShuttingDown { .. }), E::GroupsAlive(alive)) => {
                self.lingering(p, now, alive, out)
            }
            (P::Unbaking { set, bake, mut job }, E::StepRunning { seq, pid }) if seq == job.seq => {
                job.pid = Some(pid);
                P::Unbaking { set, bake, job }
            }
            (P::Unbaking { set, bake, job }, ev @ (E::StepDone { .. } | E::ActionExited { .. })) => {
                match job.result(&ev) {
                    None => P::Unbaking { set, bake, job },
                    Some(Ok(())) => match self.next_step(job, now, out) {
                        Some(job) => P::Unbaking { set, bake, job },
                        None => self.unbaked(set, bake, Ok(()), now, out),
                    },
                    Some(Err(e)) => self.unbaked(set, bake, Err(e), now, out),
                }
            }
            (P::Baking { set, bake }, E::Promote) => self.baked(set, bake, " (promoted)", now, out),
            (P::Baking { set, bake }, E::LbErrors { seq, result }) => self.lb_read(set, bake, seq, result, now, out),
            (P::Baking { set, bake }, E::Revert) => {
                self.revert(set, bake, "rolld revert asked for it".into(), None, now, out)
            }
            // A step started for a job that no longer waits for it: it must
            // not be left running.
            (p, E::StepRunning { pid, .. }) => {
                out.push(Action::Signal { pgid: pid, sig: libc::SIGKILL });
                p
            }
            // Ignored: a start or removal while busy (the daemon starts
            // rounds only when every group is idle), and answers that the
            // phase no longer waits for (a check, step, count or look at
            // process groups that was overtaken by a failure, a deadline or
            // a shutdown).
            (
                p,
                E::Start { .. }
                | E::StartPlan { .. }
                | E::StartRefused(_)
                | E::Retire
                | E::Checked { .. }
                | E::StepDone { .. }
                | E::ActionExited { .. }
                | E::Connections { .. }
                | E::GroupsAlive(_)
                | E::Promote
                | E::Revert
                | E::LbErrors { .. }
                | E::HealPlan { .. },
            ) => p,
        }
    }

    fn log(&self, out: &mut Vec<Action>, level: Level, port: Option<u16>, msg: String) {
        out.push(Action::Log { level, port, msg });
    }

    fn mark(&mut self, name: &'static str, now: Instant, out: &mut Vec<Action>) {
        if let Some(r) = self.rollout.as_mut() {
            out.push(r.mark(name, now));
        }
    }

    fn start(&mut self, now: Instant, cfg: Arc<GroupConfig>, plan: Vec<Target>, out: &mut Vec<Action>) -> Phase {
        let from = self.live.as_ref().map(Set::ports).unwrap_or_default();
        // `plan` makes a plan for the live set as it is; one that starts
        // nothing or lands on a live port is refused, never trusted.
        if plan.is_empty() {
            self.refused("nothing to start".into(), out);
            return Phase::Idle;
        }
        if let Some(t) = plan.iter().find(|t| from.contains(&t.port)) {
            self.refused(format!("port {} is live already", t.port), out);
            return Phase::Idle;
        }
        self.rollouts += 1;
        let live_slots = self.live.as_ref().map(Set::slots);
        let size = plan::batch_size(&cfg, &plan, live_slots.as_deref());
        let r = Rollout {
            cfg,
            started: now,
            from,
            plan,
            size,
            batch: 0,
            moved: 0,
            marks: Vec::new(),
            outcome: None,
            tally: Tally::default(),
            heal: None,
        };
        if r.by_batches() {
            let msg = format!(
                "rollout: {} -> {} in {} batches of {}",
                fmt_ports(&r.from),
                fmt_ports(&r.to()),
                r.batches(),
                r.size
            );
            self.log(out, Level::Info, None, msg);
        }
        self.rollout = Some(r);
        self.start_batch(now, out)
    }

    /// Spawns the processes of the rollout's batch under way.
    fn start_batch(&mut self, now: Instant, out: &mut Vec<Action>) -> Phase {
        let Some(r) = self.rollout.as_ref() else { return Phase::Idle };
        let cfg = r.cfg.clone();
        let set = Set::new(cfg.clone(), r.targets(), self.rollouts, now);
        let ports = set.ports();
        let what = if self.live.is_some() { "rollout" } else { "start" };
        let msg = match set.workset() {
            _ if r.heal.is_some() => format!("heal: spawning {}", fmt_ports(&ports)),
            _ if r.by_batches() => format!("batch {}/{}: spawning {}", r.batch + 1, r.batches(), fmt_ports(&ports)),
            Some(w) => format!("{what}: spawning workset {w} on {}", fmt_ports(&ports)),
            None => format!("{what}: spawning {}", fmt_ports(&ports)),
        };
        self.log(out, Level::Info, None, msg);
        self.seq += 1;
        let checks = ports.iter().map(|&port| PortCheck { port, state: CheckState::Due(now), last: None }).collect();
        out.push(Action::Spawn { cfg: cfg.clone(), ports });
        Phase::Starting { set, deadline: now + cfg.timing.start_timeout, checks }
    }

    /// The ports the LB is to send to once `set` (a batch) is switched in,
    /// and the live ports it retires.
    fn switch_ports(&self, set: &Set) -> (Vec<u16>, Vec<u16>) {
        let live = self.live.as_ref().map(Set::ports).unwrap_or_default();
        if !self.rollout.as_ref().is_some_and(Rollout::by_slots) {
            return (set.ports(), live);
        }
        let mut ports = live;
        let mut old = Vec::new();
        for p in &set.procs {
            if let Some(slot) = ports.get_mut(p.slot) {
                old.push(*slot);
                *slot = p.port;
            }
        }
        (ports, old)
    }

    fn refused(&mut self, reason: String, out: &mut Vec<Action>) {
        let (outcome, summary) = match self.live {
            Some(_) => (Outcome::RolledBack { reason: reason.clone(), port: None }, "rollout rolled back"),
            None => (Outcome::StartFailed { reason: reason.clone(), port: None }, "start failed"),
        };
        out.push(Action::Done { outcome, summary: format!("{summary}: {reason}"), tally: Tally::default() });
    }

    fn retire(&mut self, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.removed = true;
        let Some(set) = self.live.take() else {
            self.log(out, Level::Info, None, "no longer in the config; nothing was running".into());
            return Phase::Gone;
        };
        let msg = format!("no longer in the config: draining {} before stopping it", fmt_ports(&set.ports()));
        self.log(out, Level::Info, None, msg);
        let cfg = set.cfg.clone();
        self.drain(set, &cfg, now, out)
    }

    /// `set` has left service: it gets its drain_signal, and its
    /// connections are counted until they have been gone for drain_quiet.
    /// `cfg`, the newest config of the group, says how.
    fn drain(&mut self, set: Set, cfg: &GroupConfig, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.drain_signal(&set, cfg, out);
        self.drain_phase(set, cfg, now)
    }

    /// Sends `cfg`'s drain_signal, if any, to the running processes of `set`.
    fn drain_signal(&mut self, set: &Set, cfg: &GroupConfig, out: &mut Vec<Action>) {
        if let Some(sig) = cfg.drain_signal {
            let ports: Vec<u16> = set.alive().map(|p| p.port).collect();
            for p in set.alive() {
                out.push(Action::Signal { pgid: p.pid.unwrap_or(0), sig });
            }
            if !ports.is_empty() {
                self.log(
                    out,
                    Level::Info,
                    None,
                    format!("drain_signal {} sent to {}", crate::sys::signal_name(sig), fmt_ports(&ports)),
                );
            }
        }
    }

    /// A drain of `set` that begins now.
    fn drain_phase(&mut self, set: Set, cfg: &GroupConfig, now: Instant) -> Phase {
        self.seq += 1;
        let timing = cfg.timing;
        let next_report = (!timing.drain_report.is_zero()).then(|| now + timing.drain_report);
        let drain = Drain {
            seq: self.seq,
            quiet_since: Some(now),
            deadline: now + timing.drain_timeout,
            next_count: Some(now),
            last: None,
            next_report,
            report_every: timing.drain_report,
            failing: None,
        };
        Phase::Draining { set, drain }
    }

    /// The drain under way, if any.
    pub fn draining(&self) -> Option<DrainView> {
        match &self.phase {
            Phase::Draining { set, drain } => {
                Some(DrainView { ports: set.ports(), counts: drain.last.clone(), deadline: drain.deadline })
            }
            _ => None,
        }
    }

    fn spawned(
        &mut self,
        phase: Phase,
        now: Instant,
        results: Vec<(u16, Result<i32, String>)>,
        out: &mut Vec<Action>,
    ) -> Phase {
        let mut phase = phase;
        let mut failure = None;
        let mut restarted = Vec::new();
        let mut starting = false;
        for (port, result) in results {
            let new = match &mut phase {
                Phase::Starting { set, .. } => set.procs.iter_mut().find(|p| p.port == port),
                _ => None,
            };
            if let Some(proc) = new {
                starting = true;
                match result {
                    Ok(pid) => {
                        (proc.pid, proc.pgid, proc.started) = (Some(pid), Some(pid), now);
                    }
                    Err(e) => failure = failure.or(Some((port, format!("cannot spawn: {e}")))),
                }
                continue;
            }
            let Some(proc) = self.live.as_mut().and_then(|s| s.procs.iter_mut().find(|p| p.port == port)) else {
                continue;
            };
            match result {
                Ok(pid) => {
                    (proc.pid, proc.pgid, proc.started) = (Some(pid), Some(pid), now);
                    restarted.push((port, pid));
                }
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
            self.probe(port, pid, out);
        }
        match (phase, failure) {
            (Phase::Starting { set, .. }, Some((port, reason))) => {
                self.fail(set, reason, Some(port), "ready", now, out)
            }
            (phase, _) => {
                if starting {
                    self.mark("spawn", now, out);
                }
                phase
            }
        }
    }

    fn exited(&mut self, phase: Phase, now: Instant, pid: i32, status: ExitStatus, out: &mut Vec<Action>) -> Phase {
        match phase {
            Phase::Starting { mut set, deadline, checks } => match set.find(pid) {
                Some(p) => {
                    p.reaped(out);
                    let reason = format!("port {} exited ({status}) before it was ready", p.port);
                    let port = p.port;
                    self.fail(set, reason, Some(port), "ready", now, out)
                }
                None => {
                    self.live_exited(now, pid, status, out);
                    Phase::Starting { set, deadline, checks }
                }
            },
            // The LB may already point at the new set: a process of it
            // that ends now fails the switch, which is then undone.
            Phase::Switching { mut set, job } => match set.find(pid) {
                Some(p) => {
                    p.reaped(out);
                    let reason = format!("port {} exited ({status}) during after_start", p.port);
                    if let Some(step) = job.pid {
                        out.push(Action::Signal { pgid: step, sig: libc::SIGKILL });
                    }
                    self.switch_failed(set, reason, now, out)
                }
                None => {
                    self.live_exited(now, pid, status, out);
                    Phase::Switching { set, job }
                }
            },
            Phase::Reverting { mut set, job } => {
                if let Some(p) = set.find(pid) {
                    p.reaped(out);
                    self.log(
                        out,
                        Level::Warn,
                        Some(p.port),
                        format!("exited while the LB was pointed back ({status})"),
                    );
                } else {
                    self.live_exited(now, pid, status, out);
                }
                Phase::Reverting { set, job }
            }
            Phase::Draining { mut set, drain } => {
                if let Some(p) = set.find(pid) {
                    p.reaped(out);
                    self.log(out, Level::Warn, Some(p.port), format!("exited while draining ({status})"));
                } else {
                    self.live_exited(now, pid, status, out);
                }
                Phase::Draining { set, drain }
            }
            Phase::Baking { set, bake } => self.exited_baking(set, bake, now, pid, status, out),
            Phase::Unbaking { mut set, bake, job } => {
                let on_trial = |p: &&mut Proc| bake.ports.contains(&p.port);
                if let Some(p) = set.find(pid).or_else(|| self.live.as_mut()?.find(pid).filter(on_trial)) {
                    p.reaped(out);
                    let (port, msg) = (p.port, format!("exited while the LB was pointed back ({status})"));
                    self.log(out, Level::Warn, Some(port), msg);
                } else {
                    self.live_exited(now, pid, status, out);
                }
                Phase::Unbaking { set, bake, job }
            }
            Phase::Stopping { mut set, mut stop } => {
                if let Some(p) = set.find(pid) {
                    stop.reaped.extend(p.reaped(out));
                    self.log(out, Level::Info, Some(p.port), format!("stopped ({status})"));
                } else {
                    self.live_exited(now, pid, status, out);
                }
                self.check_stopped(Phase::Stopping { set, stop }, now, out)
            }
            Phase::ShuttingDown { mut sets, mut stop } => {
                if let Some(p) = sets.iter_mut().find_map(|s| s.find(pid)) {
                    stop.reaped.extend(p.reaped(out));
                    self.log(out, Level::Info, Some(p.port), format!("stopped ({status})"));
                }
                self.check_stopped(Phase::ShuttingDown { sets, stop }, now, out)
            }
            Phase::Idle => {
                self.live_exited(now, pid, status, out);
                Phase::Idle
            }
            Phase::Gone => Phase::Gone,
        }
    }

    /// A live process of a `listen:` group restarted as `pid`: it is
    /// checked at once, and gets new connections once it passes.
    fn probe(&mut self, port: u16, pid: i32, out: &mut Vec<Action>) {
        let Some(live) = self.live.as_mut().filter(|s| s.cfg.listen.is_some()) else { return };
        let Some(p) = live.procs.iter_mut().find(|p| p.port == port && p.pid == Some(pid)) else { return };
        p.probe = Some(Probe { state: CheckState::InFlight, warned: false });
        out.push(Action::Probe { cfg: live.cfg.clone(), port, pid });
    }

    /// The check of a restarted live process ended: once it passes, the
    /// process serves; until then it is checked again every
    /// `PROBE_INTERVAL`, and said once not to pass within start_timeout.
    fn probed(&mut self, now: Instant, port: u16, pid: i32, result: Result<(), String>, out: &mut Vec<Action>) {
        let Some(live) = self.live.as_mut() else { return };
        let timeout = live.cfg.timing.start_timeout;
        let Some(p) = live.procs.iter_mut().find(|p| p.port == port && p.pid == Some(pid)) else { return };
        let Some(probe) = p.probe.as_mut().filter(|c| c.state == CheckState::InFlight) else { return };
        match result {
            Ok(()) => {
                p.probe = None;
                let msg = format!("pid {pid} passes its check: new connections go to it again");
                self.log(out, Level::Info, Some(port), msg);
            }
            Err(e) => {
                probe.state = CheckState::Due(now + PROBE_INTERVAL);
                if !probe.warned && now.saturating_duration_since(p.started) >= timeout {
                    probe.warned = true;
                    let msg = format!(
                        "pid {pid}, restarted, has not passed its check within start_timeout {}: {e}; \
                         it gets no new connections until it does",
                        fmt_duration(timeout)
                    );
                    self.log(out, Level::Warn, Some(port), msg);
                }
            }
        }
    }

    /// A live process ended: it is restarted after a backoff.
    fn live_exited(&mut self, now: Instant, pid: i32, status: ExitStatus, out: &mut Vec<Action>) {
        let Some(p) = self.live.as_mut().and_then(|s| s.find(pid)) else { return };
        // Workers the process left behind would hold its port.
        p.reaped(out);
        if now.saturating_duration_since(p.started) >= HEALTHY {
            p.backoff = BACKOFF_FIRST;
        }
        let wait = p.backoff;
        p.restart_at = Some(now + wait);
        p.backoff = (wait * 2).min(BACKOFF_MAX);
        p.restarts += 1;
        let port = p.port;
        let msg = format!("pid {pid} exited unexpectedly ({status}); restarting in {}", fmt_duration(wait));
        self.log(out, Level::Warn, Some(port), msg);
    }

    /// Every port of the new set passed: after_start points the LB at it.
    fn ready(&mut self, set: Set, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.mark("ready", now, out);
        let (ports, old_ports) = self.switch_ports(&set);
        let job =
            Job { cfg: set.cfg.clone(), ports, old_ports, revert: false, step: 0, seq: 0, pid: None, deadline: now };
        match self.launch(job, now, out) {
            Some(job) => Phase::Switching { set, job },
            None => self.switched(set, now, out),
        }
    }

    /// Starts step `job.step`, or `None` when every step has run.
    fn launch(&mut self, mut job: Job, now: Instant, out: &mut Vec<Action>) -> Option<Job> {
        if job.step >= job.cfg.actions.len() {
            return None;
        }
        self.seq += 1;
        (job.seq, job.pid, job.deadline) = (self.seq, None, now + job.cfg.timing.action_timeout);
        out.push(Action::RunStep {
            cfg: job.cfg.clone(),
            seq: job.seq,
            step: job.step,
            ports: job.ports.clone(),
            old_ports: job.old_ports.clone(),
        });
        Some(job)
    }

    fn next_step(&mut self, mut job: Job, now: Instant, out: &mut Vec<Action>) -> Option<Job> {
        job.step += 1;
        self.launch(job, now, out)
    }

    /// after_start succeeded: the new set is live, the old one drains.
    fn switched(&mut self, set: Set, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.mark("after_start", now, out);
        let batched = self.rollout.as_ref().is_some_and(Rollout::by_slots);
        if let (true, Some(live)) = (batched, self.live.as_mut()) {
            // The batch's slots change process; the ones they replace drain.
            let cfg = set.cfg.clone();
            let new_ports = set.ports();
            let mut old = Vec::new();
            let mut slots = Vec::new();
            for p in set.procs {
                if let Some(slot) = live.procs.get_mut(p.slot) {
                    slots.push(p.slot);
                    old.push(std::mem::replace(slot, p));
                }
            }
            let live_cfg = std::mem::replace(&mut live.cfg, cfg.clone());
            if let Some(r) = self.rollout.as_mut() {
                r.moved += old.len();
            }
            let bake = Bake { until: now + cfg.timing.bake, ports: new_ports, slots: Some(slots), live_cfg, lb: None };
            return self.retire_old(Set { cfg: cfg.clone(), procs: old }, &cfg, bake, now, out);
        }
        if let Some(r) = self.rollout.as_mut() {
            r.moved = r.plan.len();
        }
        let new_ports = set.ports();
        match self.live.replace(set) {
            Some(old) => {
                let cfg = self.live.as_ref().map(|l| l.cfg.clone()).unwrap_or_else(|| old.cfg.clone());
                let (until, live_cfg) = (now + cfg.timing.bake, old.cfg.clone());
                let bake = Bake { until, ports: new_ports, slots: None, live_cfg, lb: None };
                self.retire_old(old, &cfg, bake, now, out)
            }
            None => self.finish(now, Outcome::Ok, false, out),
        }
    }

    /// The switch to `set` failed: the LB is pointed back at the live set,
    /// then `set` drains; with nothing live, `set` just stops.
    fn switch_failed(&mut self, set: Set, reason: String, now: Instant, out: &mut Vec<Action>) -> Phase {
        let Some(live) = &self.live else { return self.fail(set, reason, None, "after_start", now, out) };
        let (ports, old_ports) = (live.ports(), set.ports());
        let msg = format!("{reason}; pointing back at the live set, draining the new one");
        self.log(out, Level::Warn, None, msg);
        if let Some(r) = self.rollout.as_mut() {
            r.outcome = Some(Outcome::RolledBack { reason, port: None });
        }
        let job =
            Job { cfg: set.cfg.clone(), ports, old_ports, revert: true, step: 0, seq: 0, pid: None, deadline: now };
        match self.launch(job, now, out) {
            // The LB may already have sent requests to the new set: it is
            // drained once the LB points back.
            Some(job) => Phase::Reverting { set, job },
            None => self.reverted(set, Ok(()), now, out),
        }
    }

    /// The LB points back at the live set (or could not be made to): the
    /// new set's drain, and its quiet period, start now.
    fn reverted(&mut self, set: Set, result: Result<(), String>, now: Instant, out: &mut Vec<Action>) -> Phase {
        let live = self.live.as_ref().map(Set::ports).unwrap_or_default();
        match result {
            Ok(()) => {
                self.log(out, Level::Info, None, format!("after_start run again for the live set {}", fmt_ports(&live)))
            }
            Err(e) => {
                self.log(out, Level::Error, None, format!("pointing back at {} failed too: {e}", fmt_ports(&live)))
            }
        }
        let cfg = set.cfg.clone();
        self.drain(set, &cfg, now, out)
    }

    /// The old set leaves service after a switch: with `bake`, it has its
    /// drain_signal and runs on while the new processes are on trial;
    /// without, it drains and stops.
    fn retire_old(
        &mut self,
        old: Set,
        cfg: &GroupConfig,
        mut bake: Bake,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Phase {
        if self.rollout.as_ref().is_some_and(|r| r.heal.is_some()) {
            // A frozen process answers nothing: there is nothing to drain,
            // and its stop_signal may go unheeded until the SIGKILL.
            return self.begin_stop(old, "drain", now, out);
        }
        if cfg.timing.bake.is_zero() {
            return self.drain(old, cfg, now, out);
        }
        self.drain_signal(&old, cfg, out);
        let limit = cfg.haproxy.as_ref().map_or(0, |h| h.revert_errors);
        if limit > 0 {
            bake.lb = Some(LbWatch { limit, since: now, next: now, asked: None, failing: false, last: None });
        }
        let msg = format!(
            "baking {} for {}: {} is kept running until then, to revert to{}",
            fmt_ports(&bake.ports),
            fmt_duration(cfg.timing.bake),
            fmt_ports(&old.ports()),
            if limit > 0 { format!(", or at {limit} error(s) counted by HAProxy") } else { String::new() }
        );
        self.log(out, Level::Info, None, msg);
        Phase::Baking { set: old, bake }
    }

    /// The bake under way, if any.
    pub fn baking(&self) -> Option<BakeView> {
        match &self.phase {
            Phase::Baking { set, bake } => {
                let lb = bake.lb.as_ref();
                Some(BakeView {
                    ports: bake.ports.clone(),
                    old: set.ports(),
                    until: bake.until,
                    lb_errors: lb.and_then(|w| w.last),
                    lb_unread: lb.is_some_and(|w| w.failing),
                })
            }
            _ => None,
        }
    }

    /// The bake ended well (`how`: why early): the old set drains and stops.
    fn baked(&mut self, set: Set, bake: Bake, how: &str, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.mark("bake", now, out);
        let msg =
            format!("bake of {} passed{how}; {} drains and stops", fmt_ports(&bake.ports), fmt_ports(&set.ports()));
        self.log(out, Level::Info, None, msg);
        let cfg = self.live.as_ref().map_or_else(|| set.cfg.clone(), |l| l.cfg.clone());
        self.drain_phase(set, &cfg, now)
    }

    /// A process ended during a bake: one on trial reverts it; one of the
    /// retiring set is only said (a revert restarts it); another live
    /// one is restarted.
    fn exited_baking(
        &mut self,
        mut set: Set,
        bake: Bake,
        now: Instant,
        pid: i32,
        status: ExitStatus,
        out: &mut Vec<Action>,
    ) -> Phase {
        if let Some(p) = set.find(pid) {
            p.reaped(out);
            let msg = format!("exited during the bake of the set after it ({status})");
            self.log(out, Level::Warn, Some(p.port), msg);
            return Phase::Baking { set, bake };
        }
        let on_trial = self.live.as_mut().and_then(|l| l.find(pid)).filter(|p| bake.ports.contains(&p.port));
        let Some(p) = on_trial else {
            self.live_exited(now, pid, status, out);
            return Phase::Baking { set, bake };
        };
        p.reaped(out);
        let port = p.port;
        self.revert(set, bake, format!("port {port} exited ({status}) during the bake"), Some(port), now, out)
    }

    /// The LB's error counters of the processes on trial were read: at the
    /// limit, the bake reverts; below it, a bake past its end passes, if
    /// the read was asked since. A read that fails is said once and tried
    /// again: the bake cannot pass until one answers.
    fn lb_read(
        &mut self,
        set: Set,
        mut bake: Bake,
        seq: u64,
        result: Result<(u64, String), String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Phase {
        let Some(w) = bake.lb.as_mut() else { return Phase::Baking { set, bake } };
        let Some((_, asked_at)) = w.asked.filter(|a| a.0 == seq) else { return Phase::Baking { set, bake } };
        w.asked = None;
        let ports = fmt_ports(&bake.ports);
        match result {
            Ok((n, what)) if n >= w.limit => {
                let reason = format!(
                    "HAProxy counted {n} error(s) on {ports} during the bake ({what}; revert_errors is {})",
                    w.limit
                );
                return self.revert(set, bake, reason, None, now, out);
            }
            Ok((n, _)) => {
                let every = if now < w.since + LB_EARLY { LB_FIRST } else { LB_EVERY };
                (w.next, w.last) = (now + every, Some(n));
                if std::mem::take(&mut w.failing) {
                    self.log(out, Level::Info, None, format!("HAProxy's counters of {ports} are read again"));
                }
                if asked_at >= bake.until {
                    return self.baked(set, bake, "", now, out);
                }
            }
            Err(e) => {
                w.next = now + LB_RETRY;
                if !std::mem::replace(&mut w.failing, true) {
                    let msg = format!(
                        "cannot read HAProxy's counters of {ports}: {e}; the bake cannot pass until they are \
                         read (rolld promote or rolld revert decide)"
                    );
                    self.log(out, Level::Warn, None, msg);
                }
            }
        }
        Phase::Baking { set, bake }
    }

    /// The processes on trial failed (`reason`): after_start points the
    /// LB back at the retiring set `old` (`Unbaking`).
    fn revert(
        &mut self,
        old: Set,
        bake: Bake,
        reason: String,
        port: Option<u16>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Phase {
        self.mark("bake", now, out);
        let Some(live) = self.live.as_ref() else {
            return self.begin_stop(old, "stop", now, out);
        };
        let ports = match &bake.slots {
            None => old.ports(),
            Some(slots) => {
                let mut ports = live.ports();
                for (&i, p) in slots.iter().zip(&old.procs) {
                    if let Some(port) = ports.get_mut(i) {
                        *port = p.port;
                    }
                }
                ports
            }
        };
        let cfg = live.cfg.clone();
        if let Some(r) = self.rollout.as_mut() {
            r.outcome = Some(Outcome::Reverted { reason: reason.clone(), port });
        }
        let msg = format!(
            "{reason}; reverting: pointing back at {}, then draining {}",
            fmt_ports(&ports),
            fmt_ports(&bake.ports)
        );
        self.log(out, Level::Warn, port, msg);
        let job =
            Job { cfg, ports, old_ports: bake.ports.clone(), revert: true, step: 0, seq: 0, pid: None, deadline: now };
        match self.launch(job, now, out) {
            Some(job) => Phase::Unbaking { set: old, bake, job },
            None => self.unbaked(old, bake, Ok(()), now, out),
        }
    }

    /// The LB points back at the retiring set `old`: it takes the places
    /// of the processes on trial in the live set again, and they drain.
    /// Should pointing back fail, the LB may still send to them: they stay
    /// live, and `old` drains and stops.
    fn unbaked(
        &mut self,
        old: Set,
        bake: Bake,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Phase {
        let Some(live) = self.live.as_mut() else {
            return self.begin_stop(old, "stop", now, out);
        };
        if let Err(e) = result {
            let msg = format!(
                "pointing back at {} failed too: {e}; {} stay live, and {} drains and stops",
                fmt_ports(&old.ports()),
                fmt_ports(&bake.ports),
                fmt_ports(&old.ports())
            );
            for p in live.procs.iter_mut().filter(|p| p.pid.is_none() && p.restart_at.is_none()) {
                p.restart_at = Some(now);
            }
            let cfg = live.cfg.clone();
            if let Some(Outcome::Reverted { reason, .. }) = self.rollout.as_mut().and_then(|r| r.outcome.as_mut()) {
                *reason = format!("{reason}; pointing back failed: {e}");
            }
            self.log(out, Level::Error, None, msg);
            return self.drain_phase(old, &cfg, now);
        }
        let new = match &bake.slots {
            None => std::mem::replace(live, old),
            Some(slots) => {
                let cfg = old.cfg.clone();
                let mut procs = Vec::new();
                for (&i, p) in slots.iter().zip(old.procs) {
                    if let Some(slot) = live.procs.get_mut(i) {
                        procs.push(std::mem::replace(slot, p));
                    }
                }
                live.cfg = bake.live_cfg.clone();
                Set { cfg, procs }
            }
        };
        // A retiring process that ended during the bake starts again.
        for p in live.procs.iter_mut().filter(|p| p.pid.is_none() && p.restart_at.is_none()) {
            p.restart_at = Some(now);
        }
        if let Some(r) = self.rollout.as_mut() {
            r.moved = r.moved.saturating_sub(if bake.slots.is_some() { new.procs.len() } else { r.moved });
        }
        self.reverted(new, Ok(()), now, out)
    }

    /// When the live set's health checks are next due: while idle or
    /// baking, with `health:`.
    fn health_due(&self) -> Option<Instant> {
        let checks = matches!(self.phase, Phase::Idle | Phase::Baking { .. });
        self.health_at.filter(|_| checks && self.live.as_ref().is_some_and(|l| l.cfg.health.is_some()))
    }

    /// Asks for the health checks of the live set when they are due (and
    /// the phase, `phase`, lets them run): one at a time per process, of
    /// each running process that serves.
    fn check_health(&mut self, phase: &Phase, now: Instant, out: &mut Vec<Action>) {
        if !matches!(phase, Phase::Idle | Phase::Baking { .. }) || self.health_at.is_none_or(|t| t > now) {
            return;
        }
        let Some(live) = self.live.as_mut() else { return };
        let Some(h) = live.cfg.health else { return };
        self.health_at = Some(now + h.every);
        for p in live.procs.iter_mut() {
            let (Some(pid), None) = (p.pid, &p.probe) else { continue };
            if p.health.as_ref().is_none_or(|s| s.pid != pid) {
                p.health = Some(HealthState { pid, fails: 0, last: None, in_flight: false });
            }
            if let Some(s) = p.health.as_mut().filter(|s| !s.in_flight) {
                s.in_flight = true;
                out.push(Action::Health { cfg: live.cfg.clone(), port: p.port, pid });
            }
        }
    }

    /// A health check ended. `failures` in a row fail a process on trial
    /// in a bake (a revert); once the round of checks is whole, an idle
    /// group heals a failing slot.
    fn health_checked(
        &mut self,
        phase: Phase,
        now: Instant,
        port: u16,
        pid: i32,
        result: Result<(), String>,
        out: &mut Vec<Action>,
    ) -> Phase {
        let Some(live) = self.live.as_mut() else { return phase };
        let Some(h) = live.cfg.health else { return phase };
        let Some(p) = live.procs.iter_mut().find(|p| p.port == port && p.pid == Some(pid)) else { return phase };
        let Some(s) = p.health.as_mut().filter(|s| s.pid == pid && s.in_flight) else { return phase };
        s.in_flight = false;
        let mut said = None;
        match &result {
            Ok(()) if s.fails >= h.failures => {
                said = Some((Level::Info, format!("pid {pid} passes its health check again")));
                s.fails = 0;
            }
            Ok(()) => s.fails = 0,
            Err(e) => {
                s.fails += 1;
                if s.fails == h.failures {
                    let msg = format!("pid {pid} failed its health check {} time(s) in a row: {e}", h.failures);
                    said = Some((Level::Warn, msg));
                }
            }
        }
        let failed = s.fails >= h.failures;
        s.last = Some((now, result.clone()));
        if let Some((level, msg)) = said {
            self.log(out, level, Some(port), msg);
        }
        match phase {
            Phase::Baking { set, bake } if failed && bake.ports.contains(&port) => {
                let e = result.err().unwrap_or_default();
                let reason =
                    format!("port {port} failed its health check {} time(s) in a row during the bake: {e}", h.failures);
                self.revert(set, bake, reason, Some(port), now, out)
            }
            Phase::Idle => {
                self.consider_heal(now, out);
                Phase::Idle
            }
            p => p,
        }
    }

    /// Once every live process's check of the round has ended: when all of
    /// them failed their last one, the cause is theirs in common (a
    /// database down), and none is replaced; else the first failing slot
    /// not backing off is healed.
    fn consider_heal(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(live) = self.live.as_ref() else { return };
        let Some(h) = live.cfg.health else { return };
        let running: Vec<&Proc> = live.alive().filter(|p| p.probe.is_none()).collect();
        if running.iter().any(|p| p.health_now().is_none_or(|s| s.in_flight)) {
            return;
        }
        let failing = |p: &&Proc| p.health_now().is_some_and(|s| s.fails > 0);
        let all = !running.is_empty() && running.iter().all(failing);
        if all && running.iter().any(|p| p.sick(h.failures)) {
            if !self.all_failing {
                self.all_failing = true;
                let why =
                    running.iter().find_map(|p| p.health_now()?.last.as_ref()?.1.clone().err()).unwrap_or_default();
                let msg = format!(
                    "every process of {} fails its health check ({why}): a cause they share, not one process; \
                     none is replaced",
                    fmt_ports(&live.ports())
                );
                self.log(out, Level::Error, None, msg);
            }
            return;
        }
        if self.all_failing && !all {
            self.all_failing = false;
            self.log(out, Level::Info, None, "health checks pass again on some processes".into());
        }
        let sick =
            live.procs.iter().enumerate().find(|(_, p)| p.sick(h.failures) && p.heal_after.is_none_or(|t| t <= now));
        if let Some((slot, p)) = sick {
            out.push(Action::Heal { cfg: live.cfg.clone(), slot, port: p.port });
        }
    }

    /// Heals the slot of `port`, should it still fail: a rollout of that
    /// slot alone to `target`'s port.
    fn heal(&mut self, now: Instant, port: u16, target: Result<Target, String>, out: &mut Vec<Action>) -> Phase {
        let Some(live) = self.live.as_mut() else { return Phase::Idle };
        let Some(h) = live.cfg.health else { return Phase::Idle };
        let from = live.ports();
        let cfg = live.cfg.clone();
        let Some((slot, p)) = live.procs.iter_mut().enumerate().find(|(_, p)| p.port == port) else {
            return Phase::Idle;
        };
        let (Some(pid), true) = (p.pid, p.sick(h.failures)) else { return Phase::Idle };
        let backoff = if p.heal_backoff.is_zero() || now.saturating_duration_since(p.started) >= HEALTHY {
            BACKOFF_FIRST
        } else {
            (p.heal_backoff * 2).min(BACKOFF_MAX)
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                (p.heal_backoff, p.heal_after) = (backoff, Some(now + backoff));
                let msg = format!("cannot heal the slot of pid {pid}: {e}; trying again in {}", fmt_duration(backoff));
                self.log(out, Level::Error, Some(port), msg);
                return Phase::Idle;
            }
        };
        let why = p.health_now().and_then(|s| s.last.as_ref()?.1.clone().err()).unwrap_or_default();
        let msg = format!(
            "healing the slot of pid {pid}, which failed its health check {} time(s) in a row ({why}): a new \
             process on {}, the other slots unchanged",
            h.failures, target.port
        );
        self.log(out, Level::Warn, Some(port), msg);
        self.rollouts += 1;
        self.rollout = Some(Rollout {
            cfg,
            started: now,
            from,
            plan: vec![Target { slot, port: target.port }],
            size: 1,
            batch: 0,
            moved: 0,
            marks: Vec::new(),
            outcome: None,
            tally: Tally::default(),
            heal: Some(Heal { port, pid, why, backoff }),
        });
        self.start_batch(now, out)
    }

    /// A heal ended: the slot waits `heal.backoff` before the next,
    /// whether its new process is in or the old one stays.
    fn healed(&mut self, r: Rollout, heal: Heal, outcome: Outcome, now: Instant, out: &mut Vec<Action>) -> Phase {
        let slot = r.plan.first().map_or(usize::MAX, |t| t.slot);
        let p = self.live.as_mut().and_then(|l| l.procs.get_mut(slot));
        if let Some(p) = p {
            (p.heal_backoff, p.heal_after) = (heal.backoff, Some(now + heal.backoff));
        }
        match outcome {
            Outcome::Ok => {
                self.heals += 1;
                let msg = format!(
                    "heal ok: pid {} on {} ({}) replaced by {} ({})",
                    heal.pid,
                    heal.port,
                    heal.why,
                    fmt_ports(&r.to()),
                    r.phases()
                );
                self.log(out, Level::Info, None, msg);
            }
            Outcome::RolledBack { reason, .. }
            | Outcome::StartFailed { reason, .. }
            | Outcome::Partial { reason, .. }
            | Outcome::Reverted { reason, .. } => {
                let msg = format!(
                    "heal failed: {reason}; pid {} stays on {}, and its slot is not healed again for {}",
                    heal.pid,
                    heal.port,
                    fmt_duration(heal.backoff)
                );
                self.log(out, Level::Warn, Some(heal.port), msg);
            }
        }
        Phase::Idle
    }

    fn counted(
        &mut self,
        set: Set,
        mut drain: Drain,
        now: Instant,
        counts: Result<Vec<(u16, usize)>, String>,
        out: &mut Vec<Action>,
    ) -> Phase {
        // A count that fails is no count: the drain goes on, loudly, until
        // one succeeds or drain_timeout.
        let counts = match counts {
            Ok(c) => {
                if drain.failing.take().is_some() {
                    self.log(
                        out,
                        Level::Info,
                        None,
                        format!("counting connections on {} works again", fmt_ports(&set.ports())),
                    );
                }
                c
            }
            Err(e) => {
                if drain.failing.as_deref() != Some(e.as_str()) {
                    let msg = format!(
                        "{e}; the drain of {} goes on until a count succeeds or drain_timeout",
                        fmt_ports(&set.ports())
                    );
                    self.log(out, Level::Error, None, msg);
                    drain.failing = Some(e);
                }
                drain.quiet_since = None;
                if now >= drain.deadline {
                    return self.drain_timed_out(set, drain, now, out);
                }
                drain.next_count = Some((now + DRAIN_INTERVAL).min(drain.deadline));
                return Phase::Draining { set, drain };
            }
        };
        let quiet =
            set.cfg.timing.drain_quiet.max(self.live.as_ref().map_or(Duration::ZERO, |l| l.cfg.timing.drain_quiet));
        let n: usize = counts.iter().map(|c| c.1).sum();
        if let Some(t) = drain.next_report.filter(|t| *t <= now) {
            drain.next_report = Some((t + drain.report_every).max(now));
            let per_port: Vec<String> = counts.iter().map(|(p, c)| format!("{p}: {c}")).collect();
            let left = fmt_duration(drain.deadline.saturating_duration_since(now));
            let ports = fmt_ports(&set.ports());
            let msg =
                format!("draining {ports}: {n} connection(s) left ({}); drain_timeout in {left}", per_port.join(", "));
            self.log(out, Level::Info, None, msg);
        }
        if drain.last.is_none()
            && let Some(r) = self.rollout.as_mut()
        {
            r.tally.drains += 1;
            r.tally.drained += n;
        }
        drain.last = Some(counts);
        if n > 0 {
            drain.quiet_since = None;
        } else if drain.quiet_since.is_none() {
            drain.quiet_since = Some(now);
        }
        if drain.quiet_since.is_some_and(|q| now.saturating_duration_since(q) >= quiet) {
            self.begin_stop(set, "drain", now, out)
        } else if now >= drain.deadline {
            self.drain_timed_out(set, drain, now, out)
        } else {
            drain.next_count = Some((now + DRAIN_INTERVAL).min(drain.deadline));
            Phase::Draining { set, drain }
        }
    }

    fn drain_timed_out(&mut self, set: Set, drain: Drain, now: Instant, out: &mut Vec<Action>) -> Phase {
        let counted = drain.last.as_ref().map(|c| c.iter().map(|c| c.1).sum::<usize>());
        if let Some(r) = self.rollout.as_mut() {
            r.tally.drains += usize::from(counted.is_none());
            r.tally.left_at_timeout = Some(r.tally.left_at_timeout.unwrap_or(0) + counted.unwrap_or(0));
        }
        let left = match counted {
            Some(n) => n.to_string(),
            None => "an unknown number of".to_string(),
        };
        let which = if self.removed { "its set" } else { "the old set" };
        let msg = format!("drain_timeout reached with {left} connection(s) left on {which}; stopping it anyway");
        out.push(Action::Cut { ports: set.ports() });
        let phase = self.begin_stop(set, "drain", now, out);
        self.log(out, Level::Warn, None, msg);
        phase
    }

    fn tick(&mut self, phase: Phase, now: Instant, out: &mut Vec<Action>) -> Phase {
        // Crash restarts of the live set.
        if let Some(live) = self.live.as_mut() {
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
            for p in live.procs.iter_mut() {
                if let (Some(probe), Some(pid)) = (p.probe.as_mut(), p.pid)
                    && matches!(probe.state, CheckState::Due(t) if t <= now)
                {
                    probe.state = CheckState::InFlight;
                    out.push(Action::Probe { cfg: live.cfg.clone(), port: p.port, pid });
                }
            }
        }
        match phase {
            Phase::Starting { set, deadline, mut checks } => {
                if now >= deadline {
                    let timeout = fmt_duration(set.cfg.timing.start_timeout);
                    let c = checks.iter().find(|c| c.state != CheckState::Passed).cloned();
                    let (port, why) = match c {
                        Some(PortCheck { port, last: Some(why), .. }) => (port, why),
                        Some(PortCheck { port, .. }) => (port, "no answer to its check yet".to_string()),
                        None => (set.procs.first().map_or(0, |p| p.port), "no answer".to_string()),
                    };
                    let reason = format!("port {port} not ready within start_timeout {timeout}: {why}");
                    return self.fail(set, reason, Some(port), "ready", now, out);
                }
                let due: Vec<u16> = checks
                    .iter_mut()
                    .filter(|c| matches!(c.state, CheckState::Due(t) if t <= now))
                    .map(|c| {
                        c.state = CheckState::InFlight;
                        c.port
                    })
                    .collect();
                if !due.is_empty() {
                    out.push(Action::Smoke { cfg: set.cfg.clone(), seq: self.seq, ports: due });
                }
                Phase::Starting { set, deadline, checks }
            }
            Phase::Switching { set, job } | Phase::Reverting { set, job } if now >= job.deadline => {
                let e = job.expired(out);
                if job.revert {
                    self.reverted(set, Err(e), now, out)
                } else {
                    self.switch_failed(set, format!("after_start failed: {e}"), now, out)
                }
            }
            Phase::Draining { set, mut drain } => {
                if drain.next_count.is_some_and(|t| t <= now) {
                    drain.next_count = None;
                    out.push(Action::Count { seq: drain.seq, ports: set.ports() });
                    Phase::Draining { set, drain }
                } else if drain.next_count.is_none() && now >= drain.deadline {
                    // The count under way has not answered by the deadline.
                    self.drain_timed_out(set, drain, now, out)
                } else {
                    Phase::Draining { set, drain }
                }
            }
            Phase::Baking { set, mut bake } => {
                let Some(w) = bake.lb.as_mut() else {
                    return if now >= bake.until {
                        self.baked(set, bake, "", now, out)
                    } else {
                        Phase::Baking { set, bake }
                    };
                };
                if w.due(bake.until).is_some_and(|t| now >= t) {
                    self.seq += 1;
                    w.asked = Some((self.seq, now));
                    let cfg = self.live.as_ref().map_or_else(|| set.cfg.clone(), |l| l.cfg.clone());
                    out.push(Action::LbErrors { cfg, seq: self.seq, ports: bake.ports.clone() });
                }
                Phase::Baking { set, bake }
            }
            Phase::Unbaking { set, bake, job } if now >= job.deadline => {
                let e = job.expired(out);
                self.unbaked(set, bake, Err(e), now, out)
            }
            Phase::Stopping { set, mut stop } => {
                let killed = self.stop_tick(&mut stop, std::slice::from_ref(&set), now, out);
                if let Some(r) = self.rollout.as_mut() {
                    r.tally.killed += killed;
                }
                Phase::Stopping { set, stop }
            }
            Phase::ShuttingDown { sets, mut stop } => {
                let _ = self.stop_tick(&mut stop, &sets, now, out);
                Phase::ShuttingDown { sets, stop }
            }
            p => p,
        }
    }

    /// The SIGKILLs due, and the look at the groups; how many processes
    /// were killed.
    fn stop_tick(&self, stop: &mut Stop, sets: &[Set], now: Instant, out: &mut Vec<Action>) -> usize {
        let mut killed = 0;
        if let Some(l) = stop.linger.as_mut().filter(|l| l.next_check.is_some_and(|t| t <= now)) {
            l.next_check = None;
            out.push(Action::CheckGroups { pgids: l.pgids.clone() });
        } else if stop.kill_at.is_some_and(|t| t <= now) {
            stop.kill_at = None;
            for set in sets {
                for p in set.alive() {
                    let msg = format!(
                        "pid {} still running after stop_timeout {}; sending SIGKILL to its process group",
                        p.pid.unwrap_or(0),
                        fmt_duration(set.cfg.timing.stop_timeout)
                    );
                    out.push(Action::Log { level: Level::Warn, port: Some(p.port), msg });
                    out.push(Action::Signal { pgid: p.pid.unwrap_or(0), sig: libc::SIGKILL });
                    killed += 1;
                }
            }
        }
        killed
    }

    /// SIGTERM: a running step is killed, and every set stops.
    fn terminate(&mut self, phase: Phase, now: Instant, out: &mut Vec<Action>) -> Phase {
        let mut sets: Vec<Set> = self.live.take().into_iter().collect();
        match phase {
            Phase::Switching { set, job } | Phase::Reverting { set, job } | Phase::Unbaking { set, job, .. } => {
                if let Some(pid) = job.pid {
                    let msg = format!("killing {} (pid {pid}): rolld is stopping", job.describe());
                    self.log(out, Level::Warn, None, msg);
                    out.push(Action::Signal { pgid: pid, sig: libc::SIGKILL });
                }
                sets.push(set);
            }
            Phase::Starting { set, .. }
            | Phase::Draining { set, .. }
            | Phase::Stopping { set, .. }
            | Phase::Baking { set, .. } => sets.push(set),
            Phase::ShuttingDown { sets: s, .. } => sets.extend(s),
            Phase::Idle | Phase::Gone => {}
        }
        let stop_timeout = sets.iter_mut().map(|set| set.signal_stop(out)).max().unwrap_or_default();
        self.check_stopped(Phase::ShuttingDown { sets, stop: Stop::new(now + stop_timeout) }, now, out)
    }

    /// A failure before the switch: stop the new set, keep the live one.
    fn fail(
        &mut self,
        set: Set,
        reason: String,
        port: Option<u16>,
        ended: &'static str,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Phase {
        let outcome = match self.live {
            Some(_) => Outcome::RolledBack { reason: reason.clone(), port },
            None => Outcome::StartFailed { reason: reason.clone(), port },
        };
        if let Some(r) = self.rollout.as_mut() {
            r.outcome = Some(outcome);
        }
        self.log(out, Level::Warn, port, format!("{reason}; stopping the new set"));
        self.begin_stop(set, ended, now, out)
    }

    /// Ends the rollout's phase `ended` and stops `set`.
    fn begin_stop(&mut self, mut set: Set, ended: &'static str, now: Instant, out: &mut Vec<Action>) -> Phase {
        self.mark(ended, now, out);
        let stop_timeout = set.signal_stop(out);
        self.check_stopped(Phase::Stopping { set, stop: Stop::new(now + stop_timeout) }, now, out)
    }

    /// Once every leader of the stopped sets is reaped (each group's
    /// stragglers were killed as its leader was), looks until the groups
    /// reaped during the stop are empty.
    fn check_stopped(&mut self, phase: Phase, now: Instant, out: &mut Vec<Action>) -> Phase {
        let (sets, stop): (Vec<&Set>, &Stop) = match &phase {
            Phase::Stopping { set, stop } => (vec![set], stop),
            Phase::ShuttingDown { sets, stop } => (sets.iter().collect(), stop),
            _ => return phase,
        };
        if stop.linger.is_some() || sets.iter().any(|s| s.alive().next().is_some()) {
            return phase;
        }
        let pgids = stop.reaped.clone();
        let stop_timeout = sets.iter().map(|s| s.cfg.timing.stop_timeout).max().unwrap_or_default();
        if pgids.is_empty() {
            return self.lingering(phase, now, Vec::new(), out);
        }
        out.push(Action::CheckGroups { pgids: pgids.clone() });
        let mut phase = phase;
        if let Phase::Stopping { stop, .. } | Phase::ShuttingDown { stop, .. } = &mut phase {
            stop.linger = Some(Linger { pgids, next_check: None, give_up: now + stop_timeout });
        }
        phase
    }

    fn lingering(&mut self, phase: Phase, now: Instant, alive: Vec<i32>, out: &mut Vec<Action>) -> Phase {
        let mut phase = phase;
        if let Phase::Stopping { stop, .. } | Phase::ShuttingDown { stop, .. } = &mut phase {
            match stop.linger.as_mut() {
                Some(l) if !alive.is_empty() && now < l.give_up => {
                    l.pgids = alive;
                    l.next_check = Some(now + LINGER_INTERVAL);
                    return phase;
                }
                // A look asked for before the leaders were all reaped.
                None if !alive.is_empty() => return phase,
                _ => {}
            }
        }
        if !alive.is_empty() {
            let msg = format!("process group(s) {alive:?} still have members after SIGKILL; giving up on them");
            self.log(out, Level::Error, None, msg);
        }
        match phase {
            Phase::Stopping { .. } if self.removed => {
                self.log(out, Level::Info, None, "removed from the config: drained and stopped".into());
                Phase::Gone
            }
            Phase::Stopping { .. } => {
                let outcome = self.rollout.as_mut().and_then(|r| r.outcome.take());
                let more = self.rollout.as_ref().is_some_and(|r| r.batch + 1 < r.batches());
                match outcome {
                    None if more => {
                        if let Some(r) = self.rollout.as_mut() {
                            out.push(r.mark("stop", now));
                            r.batch += 1;
                        }
                        self.start_batch(now, out)
                    }
                    outcome => self.finish(now, outcome.unwrap_or(Outcome::Ok), true, out),
                }
            }
            _ => {
                self.log(out, Level::Info, None, "all processes stopped".into());
                Phase::Gone
            }
        }
    }

    /// Ends the rollout; `stopped` when it ended with the stop of a set.
    fn finish(&mut self, now: Instant, outcome: Outcome, stopped: bool, out: &mut Vec<Action>) -> Phase {
        let Some(mut r) = self.rollout.take() else { return Phase::Idle };
        if let Some(heal) = r.heal.take() {
            return self.healed(r, heal, outcome, now, out);
        }
        if stopped {
            out.push(r.mark("stop", now));
        }
        // Slots moved by earlier batches stay moved.
        let outcome = match outcome {
            Outcome::RolledBack { reason, port } if r.moved > 0 => {
                Outcome::Partial { moved: r.moved, total: r.plan.len(), reason, port }
            }
            Outcome::Reverted { reason, port } if r.moved > 0 => {
                Outcome::Partial { moved: r.moved, total: r.plan.len(), reason: format!("reverted: {reason}"), port }
            }
            o => o,
        };
        let live = self.live.as_ref().map(Set::ports).unwrap_or_default();
        let to = r.to();
        let batches = if r.by_batches() { format!(" in {} batches of {}", r.batches(), r.size) } else { String::new() };
        let summary = match &outcome {
            Outcome::Ok if r.from.is_empty() => format!("live on {} ({})", fmt_ports(&to), r.phases()),
            Outcome::Ok => {
                format!("rollout ok: {} -> {}{batches} ({})", fmt_ports(&r.from), fmt_ports(&to), r.phases())
            }
            Outcome::RolledBack { reason, .. } => {
                format!("rollout rolled back: {reason}; still live on {} ({})", fmt_ports(&r.from), r.phases())
            }
            Outcome::StartFailed { reason, .. } => format!("start failed: {reason} ({})", r.phases()),
            Outcome::Reverted { reason, .. } => {
                format!("rollout reverted: {reason}; live on {} ({})", fmt_ports(&live), r.phases())
            }
            Outcome::Partial { moved, total, reason, .. } => format!(
                "rollout partial: {moved} of {total} slots on the new release; {reason}; live on {} ({})",
                fmt_ports(&live),
                r.phases()
            ),
        };
        out.push(Action::Done { outcome, summary, tally: r.tally });
        Phase::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Check, Timing};
    use std::path::PathBuf;

    const TERM: i32 = libc::SIGTERM;
    const KILL: i32 = libc::SIGKILL;
    /// The pid given to every after_start step.
    const LB: i32 = 900;

    fn cfg() -> Arc<GroupConfig> {
        Arc::new(GroupConfig {
            name: "web".into(),
            base: PathBuf::from("/tmp"),
            argv: vec!["app".into(), "{numproc}".into()],
            directory: PathBuf::from("/tmp"),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            worksets: vec![vec![8001, 8002], vec![8501, 8502]],
            checks: vec![Check::Tcp { host: Default::default(), timeout: Duration::from_secs(1) }],
            actions: vec![Step::RunProc { command: "reload-lb".into() }],
            timing: Timing {
                start_timeout: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(60),
                drain_quiet: Duration::from_secs(1),
                stop_timeout: Duration::from_secs(10),
                action_timeout: Duration::from_secs(3),
                drain_report: Duration::from_secs(5),
                bake: Duration::ZERO,
            },
            stop_signal: TERM,
            drain_signal: None,
            surge: None,
            credentials: None,
            listen: None,
            haproxy: None,
            health: None,
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
            Action::Done { outcome, summary, .. } => Some((outcome.clone(), summary.clone())),
            _ => None,
        })
    }

    fn smoke(acts: &[Action]) -> Option<(u64, Vec<u16>)> {
        acts.iter().find_map(|a| match a {
            Action::Smoke { seq, ports, .. } => Some((*seq, ports.clone())),
            _ => None,
        })
    }

    /// The after_start step asked for: seq, ports and old ports.
    fn step(acts: &[Action]) -> Option<(u64, Vec<u16>, Vec<u16>)> {
        acts.iter().find_map(|a| match a {
            Action::RunStep { seq, ports, old_ports, .. } => Some((*seq, ports.clone(), old_ports.clone())),
            _ => None,
        })
    }

    fn count(acts: &[Action]) -> Option<(u64, Vec<u16>)> {
        acts.iter().find_map(|a| match a {
            Action::Count { seq, ports } => Some((*seq, ports.clone())),
            _ => None,
        })
    }

    /// A count of `n` connections, all on the first port.
    fn conns(seq: u64, n: usize) -> Event {
        Event::Connections { seq, counts: Ok(vec![(8001, n), (8002, 0)]) }
    }

    #[test]
    fn a_count_that_fails_keeps_the_drain_going_and_says_why() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        let fail = |e: &str| Event::Connections { seq, counts: Err(e.to_string()) };
        let a = g.run(ms(t0, 50), fail("cannot count connections: netlink: EPERM; /proc/net/tcp: EMFILE"));
        assert!(has_log(
            &a,
            Level::Error,
            "cannot count connections: netlink: EPERM; /proc/net/tcp: EMFILE; the drain of 8001,8002 goes on"
        ));
        assert!(signals(&a).is_empty());
        assert!(
            g.run(ms(t0, 100), fail("cannot count connections: netlink: EPERM; /proc/net/tcp: EMFILE")).is_empty(),
            "said once"
        );
        // Failing well past drain_quiet: still no stop.
        assert!(signals(&g.run(ms(t0, 5000), fail("x"))).is_empty());
        assert_eq!(g.phase_name(), "draining");
        // A count that works again: the quiet period starts from it.
        let a = g.run(ms(t0, 5050), conns(seq, 0));
        assert!(has_log(&a, Level::Info, "counting connections on 8001,8002 works again"));
        assert!(signals(&a).is_empty(), "quiet only since now");
        assert_eq!(signals(&g.run(ms(t0, 6050), conns(seq, 0))), vec![(11, TERM), (12, TERM)]);
        // And at drain_timeout a drain that cannot count stops anyway, saying so.
        let (mut g, seq) = draining_group(t0);
        let a = g.run(ms(t0, 60_000), Event::Connections { seq, counts: Err("EPERM".into()) });
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        assert!(has_log(&a, Level::Warn, "drain_timeout reached with an unknown number of connection(s) left"));
    }

    /// The tally of a rollout's `Done`.
    fn tally(acts: &[Action]) -> Option<Tally> {
        acts.iter().find_map(|a| match a {
            Action::Done { tally, .. } => Some(tally.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_rollouts_tally_says_what_was_drained_cut_and_killed() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        assert!(signals(&g.run(ms(t0, 50), conns(seq, 3))).is_empty());
        let (seq2, _) = count(&g.run(ms(t0, 100), Event::Tick)).unwrap();
        assert_eq!(seq2, seq);
        // drain_timeout with one connection left, then a process that
        // ignores its stop signal.
        let a = g.run(ms(t0, 60_000), conns(seq, 1));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        let cut = a.iter().position(|a| *a == Action::Cut { ports: vec![8001, 8002] });
        let term = a.iter().position(|a| matches!(a, Action::Signal { .. }));
        assert!(cut.is_some() && cut < term, "what the switch holds is cut before the stop: {a:?}");
        exit(&mut g, ms(t0, 60_010), 11);
        let a = g.run(ms(t0, 70_000), Event::Tick);
        assert_eq!(signals(&a), vec![(12, KILL)]);
        let a = exit(&mut g, ms(t0, 70_010), 12);
        let t = tally(&a).expect("the rollout is done");
        assert_eq!(t, Tally { drains: 1, drained: 3, left_at_timeout: Some(1), killed: 1 });
        assert_eq!(t.line().unwrap(), "3 connections drained, 1 left at drain_timeout, 1 process needed SIGKILL");
        // A quiet rollout: what it drained, nothing cut, nothing killed.
        let (mut g, seq) = draining_group(t0);
        g.run(ms(t0, 50), conns(seq, 0));
        let a = g.run(ms(t0, 1100), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        exit(&mut g, ms(t0, 1110), 11);
        let a = exit(&mut g, ms(t0, 1120), 12);
        assert_eq!(tally(&a).unwrap().line().unwrap(), "0 connections drained");
    }

    fn has_log(acts: &[Action], level: Level, text: &str) -> bool {
        acts.iter().any(|a| matches!(a, Action::Log { level: l, msg, .. } if *l == level && msg.contains(text)))
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

    /// Runs the step asked for in `a` as pid LB, ending with `status`.
    fn run_step(g: &mut Group, t: Instant, a: &[Action], status: ExitStatus, output: &str) -> Vec<Action> {
        let (seq, _, _) = step(a).expect("an after_start step");
        assert!(g.run(t, Event::StepRunning { seq, pid: LB }).is_empty());
        assert!(g.owns(LB), "the step's process is the group's");
        g.run(t, Event::ActionExited { pid: LB, status, output: output.into() })
    }

    /// Passes every port of the smoke action in `a`.
    fn pass_all(g: &mut Group, t: Instant, a: &[Action]) -> Vec<Action> {
        let (seq, ports) = smoke(a).expect("a smoke action");
        let mut out = Vec::new();
        for port in ports {
            out.extend(g.run(t, Event::Checked { seq, port, result: Ok(()) }));
        }
        out
    }

    /// Starts workset `index` with pids `pids` and runs it to the switch:
    /// the actions that asked for after_start.
    fn roll_to_switch(g: &mut Group, t: Instant, index: usize, pids: [i32; 2]) -> Vec<Action> {
        let ports = cfg().worksets[index].clone();
        let a = g.run(t, Event::Start { cfg: cfg(), index });
        assert!(a.contains(&Action::Spawn { cfg: cfg(), ports: ports.clone() }));
        let a = g.run(t, Event::Spawned(vec![(ports[0], Ok(pids[0])), (ports[1], Ok(pids[1]))]));
        assert!(signals(&a).is_empty());
        assert_eq!(g.next_deadline(), Some(t));
        let a = g.run(t, Event::Tick);
        assert_eq!(smoke(&a).unwrap().1, ports, "every port is checked at once");
        pass_all(g, ms(t, 5), &a)
    }

    /// Starts the drain after a switch: the count's seq.
    fn drain_seq(g: &mut Group, t: Instant) -> u64 {
        let a = g.run(t, Event::Tick);
        count(&a).expect("a count").0
    }

    /// A group live on workset 0 with pids 11 and 12.
    fn live_group(t0: Instant) -> Group {
        let mut g = Group::new("web");
        let a = roll_to_switch(&mut g, t0, 0, [11, 12]);
        assert_eq!(step(&a).unwrap().1, vec![8001, 8002]);
        let a = run_step(&mut g, ms(t0, 6), &a, ExitStatus::Code(0), "");
        let (outcome, summary) = done(&a).expect("first start done");
        assert_eq!(outcome, Outcome::Ok);
        assert!(summary.starts_with("live on 8001,8002"), "{summary}");
        assert!(g.is_idle());
        assert_eq!(g.next_deadline(), None, "idle means no wakeup");
        g
    }

    /// A group rolled to workset 1 (pids 21, 22), draining 11 and 12.
    fn draining_group(t0: Instant) -> (Group, u64) {
        let mut g = live_group(t0);
        let a = roll_to_switch(&mut g, t0, 1, [21, 22]);
        let a = run_step(&mut g, t0, &a, ExitStatus::Code(0), "");
        assert!(signals(&a).is_empty(), "nothing stopped at the switch");
        let seq = drain_seq(&mut g, t0);
        (g, seq)
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
        assert_eq!(step(&a).unwrap().1, vec![8501, 8502]);
        assert_eq!(step(&a).unwrap().2, vec![8001, 8002]);
        assert_eq!(g.incoming().unwrap().ports(), vec![8501, 8502]);
        let t = ms(t0, 200);
        let a = run_step(&mut g, t, &a, ExitStatus::Code(0), "");
        assert!(signals(&a).is_empty(), "nothing stopped at the switch");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502]);
        // Connections keep the old set alive; the quiet period restarts.
        let a = g.run(t, Event::Tick);
        let (seq, ports) = count(&a).unwrap();
        assert_eq!(ports, vec![8001, 8002]);
        assert_eq!(g.next_deadline(), Some(t + cfg().timing.drain_timeout), "one count at a time");
        assert!(g.run(ms(t0, 900), conns(seq, 2)).is_empty());
        assert_eq!(g.next_deadline(), Some(ms(t0, 950)));
        assert!(g.run(ms(t0, 1300), conns(seq, 0)).is_empty(), "quiet only since 1.3 s");
        assert!(g.run(ms(t0, 2200), conns(seq, 0)).is_empty());
        let a = g.run(ms(t0, 2300), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        let a = exit(&mut g, ms(t0, 2400), 11);
        assert!(a.iter().all(|a| !matches!(a, Action::Done { .. })));
        assert_eq!(signals(&a), vec![(11, KILL)], "the stragglers of a group are killed as its leader is reaped");
        assert!(!g.is_idle(), "rollout ends only when every old process is reaped");
        let a = exit(&mut g, ms(t0, 2500), 12);
        assert_eq!(signals(&a), vec![(12, KILL)], "stragglers of the old groups are killed");
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
        let (mut g, seq) = draining_group(t0);
        assert!(g.run(ms(t0, 900), conns(seq, 0)).is_empty());
        let a = g.run(ms(t0, 1000), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
    }

    #[test]
    fn a_count_from_another_drain_is_ignored() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        assert!(g.run(ms(t0, 5000), conns(seq - 1, 0)).is_empty());
        assert_eq!(g.phase_name(), "draining");
    }

    #[test]
    fn drain_timeout_stops_anyway_and_says_how_many_were_left() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        assert!(signals(&g.run(ms(t0, 59_000), conns(seq, 3))).is_empty());
        let a = g.run(ms(t0, 60_000), conns(seq, 3));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        assert!(has_log(&a, Level::Warn, "3 connection(s) left"));
    }

    #[test]
    fn a_count_that_never_answers_ends_at_the_drain_timeout() {
        let t0 = Instant::now();
        let (mut g, _) = draining_group(t0);
        assert_eq!(g.next_deadline(), Some(ms(t0, 60_000)));
        assert!(g.run(ms(t0, 59_999), Event::Tick).is_empty());
        let a = g.run(ms(t0, 60_000), Event::Tick);
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        assert!(has_log(&a, Level::Warn, "an unknown number of connection(s) left"));
    }

    #[test]
    fn stop_timeout_escalates_to_sigkill() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        g.run(ms(t0, 1000), conns(seq, 0));
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
        let (seq, _) = smoke(&g.run(t0, Event::Tick)).unwrap();
        assert!(g.run(ms(t0, 20), Event::Checked { seq, port: 8501, result: Ok(()) }).is_empty());
        assert!(g.run(ms(t0, 20), Event::Checked { seq, port: 8502, result: Err("answered 500".into()) }).is_empty());
        assert_eq!(g.next_deadline(), Some(ms(t0, 30)));
        assert_eq!(smoke(&g.run(ms(t0, 30), Event::Tick)).unwrap().1, vec![8502], "only the failed port again");
        g.run(ms(t0, 4990), Event::Checked { seq, port: 8502, result: Err("answered 500".into()) });
        assert_eq!(g.next_deadline(), Some(ms(t0, 5000)), "never checked past the deadline");
        let a = g.run(ms(t0, 5000), Event::Tick);
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
    fn checks_that_never_answer_roll_back_at_start_timeout_not_later() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let (seq, _) = smoke(&g.run(t0, Event::Tick)).unwrap();
        assert_eq!(g.next_deadline(), Some(ms(t0, 5000)), "nothing to do until an answer or the deadline");
        let a = g.run(ms(t0, 5000), Event::Tick);
        assert_eq!(signals(&a), vec![(21, TERM), (22, TERM)]);
        assert!(has_log(&a, Level::Warn, "port 8501 not ready within start_timeout 5.00s: no answer to its check yet"));
        // The answers that come afterwards change nothing.
        assert!(g.run(ms(t0, 6000), Event::Checked { seq, port: 8501, result: Ok(()) }).is_empty());
        assert_eq!(g.phase_name(), "stopping");
    }

    #[test]
    fn check_results_count_in_any_order_and_stale_ones_are_ignored() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let (seq, _) = smoke(&g.run(t0, Event::Tick)).unwrap();
        assert!(g.run(t0, Event::Checked { seq: seq - 1, port: 8502, result: Ok(()) }).is_empty());
        assert!(g.run(t0, Event::Checked { seq, port: 8502, result: Ok(()) }).is_empty());
        assert!(g.run(t0, Event::Checked { seq, port: 8502, result: Ok(()) }).is_empty(), "a repeat is nothing");
        assert_eq!(g.phase_name(), "starting");
        let a = g.run(t0, Event::Checked { seq, port: 8501, result: Ok(()) });
        assert_eq!(step(&a).unwrap().1, vec![8501, 8502]);
        assert_eq!(g.phase_name(), "switching");
    }

    #[test]
    fn new_process_exit_rolls_back_at_once() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(ms(t0, 50), Event::Exited { pid: 22, status: ExitStatus::Code(3) });
        assert_eq!(signals(&a), vec![(22, KILL), (21, TERM)]);
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
        let a = roll_to_switch(&mut g, t0, 1, [21, 22]);
        let a = run_step(&mut g, ms(t0, 10), &a, ExitStatus::Code(1), "lb: bad config\n");
        let (_, ports, old) = step(&a).expect("after_start again");
        assert_eq!((ports, old), (vec![8001, 8002], vec![8501, 8502]), "pointing back at the live set");
        assert!(has_log(&a, Level::Warn, "run_proc: `reload-lb` failed (exit 1): lb: bad config"));
        assert!(signals(&a).is_empty(), "the new set drains first");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002]);
        assert_eq!(g.phase_name(), "reverting");
        assert_eq!(g.next_deadline(), Some(ms(t0, 3010)), "no drain before the LB points back");
        // The quiet period starts when the revert (2 s here) has ended.
        let a = run_step(&mut g, ms(t0, 2010), &a, ExitStatus::Code(0), "");
        assert!(has_log(&a, Level::Info, "run again for the live set 8001,8002"));
        let a = g.run(ms(t0, 2010), Event::Tick);
        let (seq, ports) = count(&a).unwrap();
        assert_eq!(ports, vec![8501, 8502]);
        assert!(g.run(ms(t0, 3000), conns(seq, 0)).is_empty(), "quiet for 0.99 s only");
        let a = g.run(ms(t0, 3010), conns(seq, 0));
        assert_eq!(signals(&a), vec![(21, TERM), (22, TERM)]);
        exit(&mut g, ms(t0, 3020), 21);
        let (outcome, summary) = done(&exit(&mut g, ms(t0, 3030), 22)).unwrap();
        assert!(matches!(outcome, Outcome::RolledBack { .. }));
        assert!(summary.contains("after_start failed: run_proc: `reload-lb` failed (exit 1)"), "{summary}");
    }

    #[test]
    fn a_step_past_action_timeout_is_killed_and_the_switch_undone() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = roll_to_switch(&mut g, t0, 1, [21, 22]);
        let (seq, _, _) = step(&a).unwrap();
        g.run(ms(t0, 5), Event::StepRunning { seq, pid: LB });
        assert_eq!(g.next_deadline(), Some(ms(t0, 3005)), "action_timeout after the step began");
        assert!(g.run(ms(t0, 3004), Event::Tick).is_empty());
        let a = g.run(ms(t0, 3005), Event::Tick);
        assert_eq!(signals(&a), vec![(LB, KILL)], "its whole process group, while its leader is unreaped");
        assert!(has_log(&a, Level::Warn, "run_proc: `reload-lb` did not finish within 3s; killed"));
        assert_eq!(step(&a).unwrap().1, vec![8001, 8002], "then pointed back");
        // The killed step's exit, reaped later, is nothing more.
        assert!(
            g.run(ms(t0, 3006), Event::ActionExited { pid: LB, status: ExitStatus::Signal(9), output: String::new() })
                .is_empty()
        );
        assert_eq!(g.phase_name(), "reverting");
    }

    #[test]
    fn a_render_step_ends_with_step_done() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = roll_to_switch(&mut g, t0, 1, [21, 22]);
        let (seq, _, _) = step(&a).unwrap();
        assert!(g.run(t0, Event::StepDone { seq: seq + 7, result: Ok(()) }).is_empty(), "not this step");
        let a = g.run(t0, Event::StepDone { seq, result: Err("replace_file x: denied".into()) });
        assert!(has_log(&a, Level::Warn, "after_start failed: replace_file x: denied"));
        assert_eq!(g.phase_name(), "reverting");
    }

    #[test]
    fn a_step_nobody_waits_for_is_killed() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = g.run(t0, Event::StepRunning { seq: 99, pid: 777 });
        assert_eq!(signals(&a), vec![(777, KILL)]);
    }

    #[test]
    fn first_start_failure_is_reported_as_such() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        g.run(t0, Event::Start { cfg: cfg(), index: 0 });
        g.run(t0, Event::Spawned(vec![(8001, Ok(11)), (8002, Ok(12))]));
        let a = g.run(t0, Event::Exited { pid: 11, status: ExitStatus::Signal(11) });
        assert_eq!(signals(&a), vec![(11, KILL), (12, TERM)], "what 11 left is killed; 12 is stopped");
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

    /// The config of a `listen:` group whose sockets are named by the check
    /// ports 8001 to 8004.
    fn listen_cfg() -> Arc<GroupConfig> {
        let mut c = (*cfg()).clone();
        c.listen = Some(crate::config::Listen { addr: ([127, 0, 0, 1], 8000).into(), procs: 2, check_from: 8001 });
        c.worksets = vec![vec![8001, 8002], vec![8003, 8004]];
        c.actions = vec![Step::Route];
        Arc::new(c)
    }

    fn serving(g: &Group) -> Vec<u16> {
        g.live.as_ref().unwrap().procs.iter().filter(|p| p.serving()).map(|p| p.port).collect()
    }

    #[test]
    fn a_restarted_listen_process_serves_once_its_check_passes() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        g.adopt(listen_cfg(), &[(8001, 11), (8002, 12)], t0);
        assert_eq!(serving(&g), vec![8001, 8002]);
        g.run(ms(t0, 100), Event::Exited { pid: 11, status: ExitStatus::Signal(9) });
        assert_eq!(serving(&g), vec![8002]);
        assert_eq!(g.run(ms(t0, 1100), Event::Tick), vec![Action::Spawn { cfg: listen_cfg(), ports: vec![8001] }]);
        let a = g.run(ms(t0, 1100), Event::Spawned(vec![(8001, Ok(21))]));
        assert!(a.contains(&Action::Probe { cfg: listen_cfg(), port: 8001, pid: 21 }), "{a:?}");
        assert_eq!(serving(&g), vec![8002], "restarted, not checked yet");
        assert_eq!(g.next_deadline(), None, "its check is under way");
        // A check that fails is made again PROBE_INTERVAL later.
        assert!(g.run(ms(t0, 1200), Event::Probed { port: 8001, pid: 21, result: Err("refused".into()) }).is_empty());
        assert_eq!(g.next_deadline(), Some(ms(t0, 1300)));
        assert_eq!(g.run(ms(t0, 1300), Event::Tick), vec![Action::Probe { cfg: listen_cfg(), port: 8001, pid: 21 }]);
        // An answer about another process of the port changes nothing.
        assert!(g.run(ms(t0, 1350), Event::Probed { port: 8001, pid: 11, result: Ok(()) }).is_empty());
        assert_eq!(serving(&g), vec![8002]);
        let a = g.run(ms(t0, 1400), Event::Probed { port: 8001, pid: 21, result: Ok(()) });
        assert!(has_log(&a, Level::Info, "pid 21 passes its check: new connections go to it again"));
        assert_eq!(serving(&g), vec![8001, 8002]);
        assert_eq!(g.next_deadline(), None);
        assert!(g.run(ms(t0, 1500), Event::Probed { port: 8001, pid: 21, result: Ok(()) }).is_empty(), "once");
    }

    #[test]
    fn a_restarted_listen_process_that_does_not_pass_is_said_once_and_checked_on() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        g.adopt(listen_cfg(), &[(8001, 11), (8002, 12)], t0);
        g.run(t0, Event::Exited { pid: 11, status: ExitStatus::Signal(9) });
        g.run(ms(t0, 1000), Event::Tick);
        g.run(ms(t0, 1000), Event::Spawned(vec![(8001, Ok(21))]));
        let fail = || Event::Probed { port: 8001, pid: 21, result: Err("answered 500".into()) };
        let mut warned = 0;
        let mut t = ms(t0, 1000);
        while t < ms(t0, 8000) {
            let a = g.run(t, fail());
            if has_log(&a, Level::Warn, "pid 21, restarted, has not passed its check within start_timeout 5.00s") {
                assert!(t >= ms(t0, 6000), "said only at start_timeout");
                warned += 1;
            }
            t = g.next_deadline().unwrap();
            assert_eq!(g.run(t, Event::Tick), vec![Action::Probe { cfg: listen_cfg(), port: 8001, pid: 21 }]);
        }
        assert_eq!(warned, 1);
        assert_eq!(serving(&g), vec![8002]);
        // It dies: its checks end; the next process is checked anew.
        g.run(t, Event::Exited { pid: 21, status: ExitStatus::Code(1) });
        assert!(g.run(t, fail()).is_empty());
        assert_eq!(g.next_deadline(), Some(t + Duration::from_secs(2)), "only its restart");
        // Not listen: a restarted process is not checked.
        let mut g = live_group(t0);
        g.run(t0, Event::Exited { pid: 11, status: ExitStatus::Signal(9) });
        g.run(ms(t0, 1000), Event::Tick);
        let a = g.run(ms(t0, 1000), Event::Spawned(vec![(8001, Ok(21))]));
        assert!(!a.iter().any(|a| matches!(a, Action::Probe { .. })), "{a:?}");
        assert_eq!(g.live.as_ref().unwrap().procs.iter().filter(|p| p.serving()).count(), 2);
    }

    #[test]
    fn a_live_process_is_restarted_while_a_step_runs() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = roll_to_switch(&mut g, t0, 1, [21, 22]);
        let (seq, _, _) = step(&a).unwrap();
        g.run(t0, Event::StepRunning { seq, pid: LB });
        g.run(ms(t0, 100), Event::Exited { pid: 12, status: ExitStatus::Signal(9) });
        assert_eq!(g.next_deadline(), Some(ms(t0, 1100)), "the restart comes before the step's deadline");
        assert_eq!(g.run(ms(t0, 1100), Event::Tick), vec![Action::Spawn { cfg: cfg(), ports: vec![8002] }]);
        assert_eq!(g.phase_name(), "switching");
        assert!(!g.spawns_incoming(&[8002]), "a restart does not begin a rollout (HAProxy's counters kept)");
        assert!(g.spawns_incoming(&[8501, 8502]));
    }

    #[test]
    fn a_group_whose_leader_was_reaped_is_never_signalled_again() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        // 11 crashes: its group is killed once, now.
        let a = g.run(ms(t0, 100), Event::Exited { pid: 11, status: ExitStatus::Signal(9) });
        assert_eq!(signals(&a), vec![(11, KILL)]);
        // Its restart fails, again and again; meanwhile number 11 may be
        // given to someone else's group.
        let t = ms(t0, 1100);
        assert_eq!(g.run(t, Event::Tick), vec![Action::Spawn { cfg: cfg(), ports: vec![8001] }]);
        let a = g.run(t, Event::Spawned(vec![(8001, Err("No such file".into()))]));
        assert!(signals(&a).is_empty());
        // A rollout, its stop of the old set, and a shutdown: never 11.
        let a = roll_to_switch(&mut g, ms(t0, 2000), 1, [21, 22]);
        let mut trace = vec![run_step(&mut g, ms(t0, 2000), &a, ExitStatus::Code(0), "")];
        let seq = drain_seq(&mut g, ms(t0, 2000));
        trace.push(g.run(ms(t0, 3000), conns(seq, 0)));
        trace.push(exit(&mut g, ms(t0, 3100), 12));
        trace.push(g.run(ms(t0, 4000), Event::Terminate));
        trace.push(exit(&mut g, ms(t0, 4100), 21));
        trace.push(exit(&mut g, ms(t0, 4100), 22));
        let sigs = all_signals(&trace);
        assert!(!sigs.iter().any(|s| s.0 == 11), "no signal to the old group 11: {sigs:?}");
        let looked: Vec<i32> = trace
            .iter()
            .flatten()
            .filter_map(|a| match a {
                Action::CheckGroups { pgids } => Some(pgids.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(!looked.contains(&11), "and no look at it either: {looked:?}");
        assert!(g.is_gone());
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
        assert!(a.contains(&Action::CheckGroups { pgids: vec![11, 21, 22, 12] }), "in the order reaped: {a:?}");
        assert!(!g.is_gone(), "not before the process groups are empty");
        let a = g.run(ms(t0, 10_020), Event::GroupsAlive(vec![]));
        assert!(done(&a).is_none());
        assert!(g.is_gone());
    }

    /// Brings a fresh group to phase `k` of a rollout; the pids it runs.
    fn group_in_phase(t0: Instant, k: usize) -> (Group, Vec<i32>) {
        let mut g = live_group(t0);
        if k == 0 {
            return (g, vec![11, 12]);
        }
        g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(t0, Event::Tick);
        if k == 1 {
            return (g, vec![11, 12, 21, 22]);
        }
        let a = pass_all(&mut g, t0, &a);
        let (seq, _, _) = step(&a).unwrap();
        g.run(t0, Event::StepRunning { seq, pid: LB });
        if k == 2 {
            return (g, vec![21, 22, 11, 12]);
        }
        let a = g.run(t0, Event::ActionExited { pid: LB, status: ExitStatus::Code(1), output: String::new() });
        let (seq, _, _) = step(&a).unwrap();
        g.run(t0, Event::StepRunning { seq, pid: LB });
        if k == 3 {
            return (g, vec![11, 12, 21, 22]);
        }
        g.run(t0, Event::ActionExited { pid: LB, status: ExitStatus::Code(0), output: String::new() });
        let seq = drain_seq(&mut g, t0);
        if k == 4 {
            return (g, vec![11, 12, 21, 22]);
        }
        g.run(ms(t0, 1000), conns(seq, 0));
        (g, vec![11, 12, 21, 22])
    }

    #[test]
    fn terminate_in_every_phase_kills_the_step_and_stops_every_set() {
        let t0 = Instant::now();
        for (k, name) in ["idle", "starting", "switching", "reverting", "draining", "stopping"].iter().enumerate() {
            let (mut g, pids) = group_in_phase(t0, k);
            assert_eq!(g.phase_name(), *name);
            let a = g.run(ms(t0, 2000), Event::Terminate);
            let sigs = signals(&a);
            let step_killed = sigs.contains(&(LB, KILL));
            assert_eq!(step_killed, k == 2 || k == 3, "{name}: the running step is killed: {sigs:?}");
            let mut termed: Vec<i32> = sigs.iter().filter(|s| s.1 == TERM).map(|s| s.0).collect();
            termed.sort();
            let mut want = pids.clone();
            want.sort();
            assert_eq!(termed, want, "{name}: every process gets its stop signal");
            assert_eq!(g.phase_name(), "shutting-down");
            assert!(g.run(ms(t0, 2001), Event::Terminate).is_empty(), "{name}: a second SIGTERM changes nothing");
            let mut last = Vec::new();
            for pid in pids {
                last = exit(&mut g, ms(t0, 2100), pid);
            }
            assert!(done(&last).is_none());
            assert!(g.is_gone(), "{name}: gone once every process has stopped");
        }
    }

    #[test]
    fn a_removed_group_drains_then_stops_then_is_gone() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = g.run(t0, Event::Retire);
        assert!(has_log(&a, Level::Info, "no longer in the config: draining 8001,8002"));
        assert!(signals(&a).is_empty(), "no stop before the drain");
        assert!(g.live.is_none());
        let a = g.run(t0, Event::Tick);
        let (seq, ports) = count(&a).unwrap();
        assert_eq!(ports, vec![8001, 8002]);
        assert!(g.run(ms(t0, 500), conns(seq, 1)).is_empty(), "a request in flight");
        assert!(g.run(ms(t0, 1000), conns(seq, 0)).is_empty());
        let a = g.run(ms(t0, 2000), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        exit(&mut g, ms(t0, 2010), 11);
        let a = exit(&mut g, ms(t0, 2020), 12);
        assert!(done(&a).is_none(), "no rollout to report");
        assert!(has_log(&a, Level::Info, "removed from the config: drained and stopped"));
        assert!(g.is_gone());
        let mut never = Group::new("web");
        never.run(t0, Event::Retire);
        assert!(never.is_gone(), "with nothing running, at once");
    }

    fn with_drain_signal() -> Arc<GroupConfig> {
        let mut c = (*cfg()).clone();
        c.drain_signal = Some(libc::SIGUSR1);
        Arc::new(c)
    }

    const USR1: i32 = libc::SIGUSR1;

    /// Every signal of every action of a whole rollout, in order.
    fn all_signals(trace: &[Vec<Action>]) -> Vec<(i32, i32)> {
        trace.iter().flat_map(|a| signals(a)).collect()
    }

    #[test]
    fn drain_signal_goes_once_to_the_retiring_set_after_the_switch() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        let c = with_drain_signal();
        let mut trace = Vec::new();
        trace.push(g.run(t0, Event::Start { cfg: c.clone(), index: 0 }));
        trace.push(g.run(t0, Event::Spawned(vec![(8001, Ok(11)), (8002, Ok(12))])));
        let a = g.run(t0, Event::Tick);
        let a = pass_all(&mut g, t0, &a);
        trace.push(run_step(&mut g, t0, &a, ExitStatus::Code(0), ""));
        assert!(g.is_idle());
        assert!(all_signals(&trace).is_empty(), "a first start drains nothing");
        // The rollout: nothing before the switch; the old set at the switch.
        let trace = vec![
            g.run(ms(t0, 100), Event::Start { cfg: c.clone(), index: 1 }),
            g.run(ms(t0, 100), Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))])),
        ];
        let a = g.run(ms(t0, 100), Event::Tick);
        let a = pass_all(&mut g, ms(t0, 100), &a);
        assert!(all_signals(&trace).is_empty() && signals(&a).is_empty(), "nothing before the switch");
        let a = run_step(&mut g, ms(t0, 200), &a, ExitStatus::Code(0), "");
        assert_eq!(signals(&a), vec![(11, USR1), (12, USR1)], "the old set, as the switch ends");
        assert!(has_log(&a, Level::Info, "drain_signal SIGUSR1 sent to 8001,8002"));
        let seq = drain_seq(&mut g, ms(t0, 200));
        let later = vec![
            g.run(ms(t0, 300), conns(seq, 2)),
            g.run(ms(t0, 1300), conns(seq, 0)),
            g.run(ms(t0, 2300), conns(seq, 0)),
            exit(&mut g, ms(t0, 2400), 11),
            exit(&mut g, ms(t0, 2400), 12),
        ];
        let sigs = all_signals(&later);
        assert!(!sigs.iter().any(|s| s.1 == USR1), "once only: {sigs:?}");
        assert!(!sigs.iter().any(|s| s.0 == 21 || s.0 == 22), "never the live set: {sigs:?}");
        assert_eq!(done(&later[4]).map(|d| d.0), Some(Outcome::Ok));
    }

    #[test]
    fn on_a_rollback_the_new_set_gets_drain_signal_once_the_lb_points_back() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let c = with_drain_signal();
        g.run(t0, Event::Start { cfg: c.clone(), index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(t0, Event::Tick);
        let a = pass_all(&mut g, t0, &a);
        let a = run_step(&mut g, t0, &a, ExitStatus::Code(1), "");
        assert!(signals(&a).is_empty(), "not while the LB is pointed back");
        let a = run_step(&mut g, ms(t0, 500), &a, ExitStatus::Code(0), "");
        assert_eq!(signals(&a), vec![(21, USR1), (22, USR1)], "the retiring new set, never 11 or 12");
    }

    #[test]
    fn a_removed_group_gets_drain_signal_before_its_drain() {
        let t0 = Instant::now();
        let mut g = Group::new("web");
        let c = with_drain_signal();
        g.adopt(c, &[(8001, 11), (8002, 12)], t0);
        let a = g.run(t0, Event::Retire);
        assert_eq!(signals(&a), vec![(11, USR1), (12, USR1)]);
        assert_eq!(g.phase_name(), "draining");
    }

    #[test]
    fn a_drain_reports_its_progress_at_the_report_interval() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        let reports = |a: &[Action]| {
            a.iter().filter(|a| matches!(a, Action::Log { msg, .. } if msg.starts_with("draining "))).count()
        };
        let mut seen = Vec::new();
        for k in 0..=240 {
            // A count every 50 ms for 12 s, 3 connections on 8001.
            let t = ms(t0, 50 * k);
            let a = g.run(t, conns(seq, 3));
            if reports(&a) > 0 {
                assert!(has_log(
                    &a,
                    Level::Info,
                    "draining 8001,8002: 3 connection(s) left (8001: 3, 8002: 0); drain_timeout in"
                ));
                seen.push(50 * k);
            }
        }
        assert_eq!(seen, vec![5000, 10_000], "every drain_report (5 s)");
        let view = g.draining().unwrap();
        assert_eq!(view.ports, vec![8001, 8002]);
        assert_eq!(view.counts, Some(vec![(8001, 3), (8002, 0)]));
        assert_eq!(view.deadline, ms(t0, 60_000));
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
            let mut asked = Vec::new();
            for a in g.handle(t, ev) {
                if let Action::Phase { name, took, .. } = a {
                    seen.push((name, took.as_millis()));
                } else {
                    asked.push(a);
                }
            }
            asked
        };
        go(&mut g, ms(t0, 1000), Event::Start { cfg: cfg(), index: 1 });
        go(&mut g, ms(t0, 1003), Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = go(&mut g, ms(t0, 1003), Event::Tick);
        let seq = smoke(&a).unwrap().0;
        go(&mut g, ms(t0, 1050), Event::Checked { seq, port: 8502, result: Ok(()) });
        let a = go(&mut g, ms(t0, 1100), Event::Checked { seq, port: 8501, result: Ok(()) });
        let seq = step(&a).unwrap().0;
        go(&mut g, ms(t0, 1101), Event::StepRunning { seq, pid: LB });
        go(&mut g, ms(t0, 1120), Event::ActionExited { pid: LB, status: ExitStatus::Code(0), output: String::new() });
        let seq = count(&go(&mut g, ms(t0, 1120), Event::Tick)).unwrap().0;
        go(&mut g, ms(t0, 2120), conns(seq, 0));
        go(&mut g, ms(t0, 2150), Event::Exited { pid: 11, status: ExitStatus::Code(0) });
        go(&mut g, ms(t0, 2160), Event::Exited { pid: 12, status: ExitStatus::Code(0) });
        go(&mut g, ms(t0, 2160), Event::GroupsAlive(vec![]));
        assert_eq!(seen, vec![("spawn", 3), ("ready", 97), ("after_start", 20), ("drain", 1000), ("stop", 40)]);
    }

    #[test]
    fn a_stop_ends_only_when_the_process_groups_are_empty() {
        let t0 = Instant::now();
        let (mut g, seq) = draining_group(t0);
        g.run(ms(t0, 1000), conns(seq, 0));
        let a = g.run(ms(t0, 1100), Event::Exited { pid: 11, status: ExitStatus::Code(0) });
        assert_eq!(signals(&a), vec![(11, KILL)], "stragglers of a group are killed as its leader is reaped");
        let a = g.run(ms(t0, 1200), Event::Exited { pid: 12, status: ExitStatus::Code(0) });
        assert_eq!(signals(&a), vec![(12, KILL)], "stragglers of the groups are killed");
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
        let a = roll_to_switch(&mut g, ms(t0, 2000), 0, [31, 32]);
        run_step(&mut g, ms(t0, 2000), &a, ExitStatus::Code(0), "");
        let seq = drain_seq(&mut g, ms(t0, 2000));
        g.run(ms(t0, 3000), conns(seq, 0));
        g.run(ms(t0, 3000), Event::Exited { pid: 21, status: ExitStatus::Code(0) });
        g.run(ms(t0, 3000), Event::Exited { pid: 22, status: ExitStatus::Code(0) });
        assert!(g.run(ms(t0, 12_999), Event::GroupsAlive(vec![21])).is_empty());
        let a = g.run(ms(t0, 13_000), Event::GroupsAlive(vec![21]));
        assert!(has_log(&a, Level::Error, "[21]"));
        assert!(done(&a).is_some());
    }

    // ------------------------------------------------------------ surge

    fn surge_cfg(k: usize) -> Arc<GroupConfig> {
        let mut c = (*cfg()).clone();
        c.worksets = vec![vec![8001, 8002, 8003, 8004], vec![8501, 8502, 8503, 8504]];
        c.surge = Some(k);
        Arc::new(c)
    }

    /// A surge group live on workset 0, pids 11..=14; its alive pids.
    fn live_surge(t0: Instant, k: usize) -> (Group, Vec<i32>) {
        let mut g = Group::new("web");
        let c = surge_cfg(k);
        let a = g.run(t0, Event::Start { cfg: c.clone(), index: 0 });
        assert_eq!(a.iter().filter(|a| matches!(a, Action::Spawn { .. })).count(), 1);
        g.run(t0, Event::Spawned(vec![(8001, Ok(11)), (8002, Ok(12)), (8003, Ok(13)), (8004, Ok(14))]));
        let a = g.run(t0, Event::Tick);
        assert_eq!(smoke(&a).unwrap().1.len(), 4, "a first start starts every slot at once");
        let a = pass_all(&mut g, t0, &a);
        let a = run_step(&mut g, t0, &a, ExitStatus::Code(0), "");
        assert!(done(&a).is_some());
        (g, vec![11, 12, 13, 14])
    }

    /// What one batch did: the LB's ports, and the outcome when it ended
    /// the rollout.
    struct BatchRun {
        lb: Vec<u16>,
        done: Option<(Outcome, String)>,
        spawned: Vec<u16>,
    }

    /// Runs the batch whose Spawn is in `a`; the new pids start at `pid`.
    /// `fail` makes its first port fail its smoke test until start_timeout.
    /// Asserts the N + K bound on `alive` at every step.
    fn run_batch(
        g: &mut Group,
        t: &mut Instant,
        a: Vec<Action>,
        pid: &mut i32,
        alive: &mut Vec<i32>,
        bound: usize,
        fail: bool,
    ) -> (BatchRun, Vec<Action>) {
        let ports = a
            .iter()
            .find_map(|a| match a {
                Action::Spawn { ports, .. } => Some(ports.clone()),
                _ => None,
            })
            .expect("a batch spawns");
        let spawned: Vec<(u16, Result<i32, String>)> = ports
            .iter()
            .map(|&p| {
                *pid += 1;
                (p, Ok(*pid))
            })
            .collect();
        let new_pids: Vec<i32> = spawned.iter().map(|s| *s.1.as_ref().unwrap()).collect();
        alive.extend(&new_pids);
        assert!(alive.len() <= bound, "{} processes alive, more than N + K = {bound}", alive.len());
        g.run(*t, Event::Spawned(spawned));
        let a = g.run(*t, Event::Tick);
        let (seq, checked) = smoke(&a).unwrap();
        assert_eq!(checked, ports);
        let mut lb = Vec::new();
        let a = if fail {
            g.run(*t, Event::Checked { seq, port: ports[0], result: Err("answered 500".into()) });
            *t += Duration::from_secs(5);
            g.run(*t, Event::Tick)
        } else {
            let a = pass_all(g, *t, &a);
            let (_, p, _) = step(&a).expect("after_start for the batch");
            lb = p;
            *t += Duration::from_millis(10);
            let a = run_step(g, *t, &a, ExitStatus::Code(0), "");
            let (seq, _) = count(&g.run(*t, Event::Tick)).expect("the retired slots drain");
            *t += Duration::from_secs(1);
            let mut a2 = a;
            a2.extend(g.run(*t, conns(seq, 0)));
            a2
        };
        // Whatever got its stop signal exits.
        let stopped: Vec<i32> = signals(&a).into_iter().filter(|s| s.1 == TERM).map(|s| s.0).collect();
        assert!(!stopped.is_empty(), "a batch ends with a stop");
        let mut out = Vec::new();
        for p in stopped {
            alive.retain(|&x| x != p);
            out.extend(exit(g, *t, p));
        }
        let d = done(&out);
        (BatchRun { lb, done: d, spawned: ports }, out)
    }

    #[test]
    fn surge_moves_the_slots_in_order_within_n_plus_k() {
        for k in [1, 2, 3] {
            let mut t = Instant::now();
            let (mut g, mut alive) = live_surge(t, k);
            let mut pid = 100;
            let mut a = g.run(t, Event::Start { cfg: surge_cfg(k), index: 1 });
            assert!(has_log(&a, Level::Info, &format!("in {} batches of {k}", 4usize.div_ceil(k))));
            let mut runs = Vec::new();
            loop {
                let (run, next) = run_batch(&mut g, &mut t, a, &mut pid, &mut alive, 4 + k, false);
                let end = run.done.is_some();
                runs.push(run);
                if end {
                    break;
                }
                a = next;
            }
            assert_eq!(runs.len(), 4usize.div_ceil(k), "surge {k}");
            let mut moved: Vec<u16> = Vec::new();
            for r in &runs {
                moved.extend(&r.spawned);
                // The LB's ports: the slots moved so far on their new port,
                // the others on their old one.
                let want: Vec<u16> =
                    (0..4).map(|i| if i < moved.len() { 8501 + i as u16 } else { 8001 + i as u16 }).collect();
                assert_eq!(r.lb, want, "surge {k}");
            }
            assert_eq!(moved, vec![8501, 8502, 8503, 8504], "slots in order");
            let (outcome, summary) = runs.last().unwrap().done.clone().unwrap();
            assert_eq!(outcome, Outcome::Ok);
            assert!(summary.contains(&format!("-> 8501,8502,8503,8504 in {} batches of {k}", runs.len())), "{summary}");
            assert!(summary.contains("batch 1: spawn") && summary.contains("; total"), "{summary}");
            assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502, 8503, 8504]);
            assert!(g.live.as_ref().unwrap().procs.iter().all(|p| p.rollout == 2), "put there by rollout 2");
            assert_eq!(alive.len(), 4);
        }
    }

    /// Surge 1; batch `f` (1-based) fails its smoke test.
    fn fail_in_batch(f: usize) -> (Group, Outcome, String, Vec<i32>) {
        let mut t = Instant::now();
        let (mut g, mut alive) = live_surge(t, 1);
        let mut pid = 100;
        let mut a = g.run(t, Event::Start { cfg: surge_cfg(1), index: 1 });
        for b in 1..=4 {
            let (run, next) = run_batch(&mut g, &mut t, a, &mut pid, &mut alive, 5, b == f);
            if let Some((o, s)) = run.done {
                assert_eq!(b, f, "the rollout ends at the failed batch");
                return (g, o, s, alive);
            }
            a = next;
        }
        panic!("no failure");
    }

    #[test]
    fn a_failure_in_batch_1_is_a_rollback() {
        let (g, outcome, summary, _) = fail_in_batch(1);
        assert!(matches!(outcome, Outcome::RolledBack { port: Some(8501), .. }), "{outcome:?}");
        assert!(summary.starts_with("rollout rolled back: port 8501 not ready"), "{summary}");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002, 8003, 8004]);
    }

    #[test]
    fn a_failure_in_a_later_batch_is_partial_and_keeps_the_moved_slots() {
        for (f, live) in [(2, [8501, 8002, 8003, 8004]), (4, [8501, 8502, 8503, 8004])] {
            let (g, outcome, summary, alive) = fail_in_batch(f);
            let moved = f - 1;
            assert_eq!(
                outcome,
                Outcome::Partial {
                    moved,
                    total: 4,
                    reason: format!("port {} not ready within start_timeout 5.00s: answered 500", 8500 + f),
                    port: Some(8500 + f as u16)
                }
            );
            assert!(summary.contains(&format!("rollout partial: {moved} of 4 slots on the new release")), "{summary}");
            assert!(summary.contains(&format!("live on {}", fmt_ports(&live))), "{summary}");
            assert_eq!(g.live.as_ref().unwrap().ports(), live.to_vec());
            assert_eq!(alive.len(), 4, "the failed batch's process is stopped");
            assert!(g.is_idle());
        }
    }

    #[test]
    fn a_failed_switch_in_a_batch_points_the_lb_at_the_slots_as_they_were() {
        let mut t = Instant::now();
        let (mut g, mut alive) = live_surge(t, 1);
        let mut pid = 100;
        let a = g.run(t, Event::Start { cfg: surge_cfg(1), index: 1 });
        let (_, a) = run_batch(&mut g, &mut t, a, &mut pid, &mut alive, 5, false);
        // Batch 2: the LB reload fails; the revert points at 8501 (moved), 8002, 8003, 8004.
        g.run(t, Event::Spawned(vec![(8502, Ok(202))]));
        assert!(a.iter().any(|a| matches!(a, Action::Spawn { ports, .. } if ports == &vec![8502])));
        let a = g.run(t, Event::Tick);
        let a = pass_all(&mut g, t, &a);
        assert_eq!(step(&a).unwrap().1, vec![8501, 8502, 8003, 8004]);
        assert_eq!(step(&a).unwrap().2, vec![8002]);
        let a = run_step(&mut g, t, &a, ExitStatus::Code(1), "");
        assert_eq!(step(&a).unwrap().1, vec![8501, 8002, 8003, 8004], "pointed back at the slots before batch 2");
        assert_eq!(step(&a).unwrap().2, vec![8502]);
        assert_eq!(g.batch(), Some((2, 4)));
    }

    #[test]
    fn the_rollout_after_a_partial_one_moves_every_slot_and_adoption_keeps_the_mix() {
        let (mut g, _, _, _) = fail_in_batch(3);
        let live = g.live.clone().unwrap();
        assert_eq!(live.ports(), vec![8501, 8502, 8003, 8004]);
        assert_eq!(live.procs.iter().map(|p| live.workset_of(p.port)).collect::<Vec<_>>(), [1, 1, 0, 0].map(Some));
        let plan = plan::next_slots(&surge_cfg(1), &live.ports(), |_| false).unwrap();
        assert_eq!(plan.iter().map(|t| t.port).collect::<Vec<_>>(), vec![8001, 8002, 8503, 8504]);
        let t = Instant::now();
        let a = g.run(t, Event::StartPlan { cfg: surge_cfg(1), plan });
        assert!(a.iter().any(|a| matches!(a, Action::Spawn { ports, .. } if ports == &vec![8001])));
        assert_eq!(g.batch(), Some((1, 4)));
        // A successor adopts the mix, by slot, whatever order the state file had.
        let mut h = Group::new("web");
        h.adopt(surge_cfg(1), &[(8003, 33), (8501, 31), (8004, 34), (8502, 32)], t);
        let l = h.live.as_ref().unwrap();
        assert_eq!(l.ports(), vec![8501, 8502, 8003, 8004]);
        assert_eq!(
            l.procs.iter().map(|p| (p.slot, l.workset_of(p.port))).collect::<Vec<_>>(),
            vec![(0, Some(1)), (1, Some(1)), (2, Some(0)), (3, Some(0))]
        );
        let a = h.run(t, Event::Start { cfg: surge_cfg(1), index: 0 });
        let (outcome, summary) = done(&a).expect("a plan onto live ports is refused");
        assert!(
            matches!(outcome, Outcome::RolledBack { .. }) && summary.contains("port 8003 is live already"),
            "{summary}"
        );
        let plan = plan::next_slots(&surge_cfg(1), &h.live.as_ref().unwrap().ports(), |_| false).unwrap();
        let a = h.run(t, Event::StartPlan { cfg: surge_cfg(1), plan });
        assert!(
            a.iter().any(|a| matches!(a, Action::Spawn { ports, .. } if ports.len() == 1)),
            "rolled by batches: {a:?}"
        );
    }

    /// A reload removes worksets under a live set: its old workset number
    /// is another workset, or none, in the new config. The live set is
    /// found there by its ports, and the rollout moves every slot within
    /// N + K.
    #[test]
    fn a_rollout_after_worksets_were_removed_finds_the_live_set_by_its_ports() {
        let with = |ws: &[[u16; 4]]| {
            let mut c = (*surge_cfg(1)).clone();
            c.worksets = ws.iter().map(|w| w.to_vec()).collect();
            Arc::new(c)
        };
        let (a, b, c) = ([8001, 8002, 8003, 8004], [8501, 8502, 8503, 8504], [9001, 9002, 9003, 9004]);
        for (new, busy, to) in [
            // The middle workset removed: the live one is now the second.
            (with(&[a, c]), vec![], [8001, 8002, 8003, 8004]),
            // The live workset dropped, a port of the first held.
            (with(&[a, b]), vec![8002], [8001, 8502, 8003, 8004]),
        ] {
            let mut t = Instant::now();
            let mut g = Group::new("web");
            g.run(t, Event::Start { cfg: with(&[a, b, c]), index: 2 });
            g.run(t, Event::Spawned(c.iter().zip(11..).map(|(&p, pid)| (p, Ok(pid))).collect()));
            let acts = g.run(t, Event::Tick);
            let acts = pass_all(&mut g, t, &acts);
            assert!(done(&run_step(&mut g, t, &acts, ExitStatus::Code(0), "")).is_some());
            let live = g.live.as_ref().unwrap().ports();
            assert!(plan::by_slots(&new, &live));
            let plan = plan::next_slots(&new, &live, |p| busy.contains(&p)).unwrap();
            assert_eq!(plan.iter().map(|t| t.port).collect::<Vec<_>>(), to);
            let (mut pid, mut alive) = (100, vec![11, 12, 13, 14]);
            let mut acts = g.run(t, Event::StartPlan { cfg: new, plan });
            let last = loop {
                let (run, next) = run_batch(&mut g, &mut t, acts, &mut pid, &mut alive, 5, false);
                if let Some(end) = run.done {
                    break end;
                }
                acts = next;
            };
            assert_eq!(last.0, Outcome::Ok, "{}", last.1);
            assert_eq!(g.live.as_ref().unwrap().ports(), to);
        }
        // A start on a workset the config does not have, or of nothing, is refused.
        let mut g = live_group(Instant::now());
        let acts = g.run(Instant::now(), Event::Start { cfg: cfg(), index: 2 });
        assert!(done(&acts).unwrap().1.contains("the config has no workset 2"), "{acts:?}");
        let acts = g.run(Instant::now(), Event::StartPlan { cfg: cfg(), plan: Vec::new() });
        assert!(done(&acts).unwrap().1.contains("nothing to start"), "{acts:?}");
        assert!(g.is_idle());
    }

    #[test]
    fn without_surge_a_group_rolls_all_at_once_as_before() {
        let t0 = Instant::now();
        let mut g = live_group(t0);
        let a = g.run(t0, Event::Start { cfg: cfg(), index: 1 });
        assert!(a.contains(&Action::Spawn { cfg: cfg(), ports: vec![8501, 8502] }));
        assert_eq!(g.batch(), None);
    }

    // ------------------------------------------------------------ bake

    fn bake_cfg(c: &GroupConfig, secs: u64) -> Arc<GroupConfig> {
        let mut c = c.clone();
        c.timing.bake = Duration::from_secs(secs);
        c.drain_signal = Some(libc::SIGUSR1);
        Arc::new(c)
    }

    /// `roll_to_switch` with config `c`, then its after_start run: the
    /// group bakes `ports` (pids `pids`).
    fn baking_group(t0: Instant) -> Group {
        let mut g = live_group(t0);
        let a = switch_to_bake(&mut g, t0, bake_cfg(&cfg(), 6));
        assert_eq!(signals(&a), vec![(11, libc::SIGUSR1), (12, libc::SIGUSR1)], "drain_signal, never stop_signal");
        assert!(has_log(&a, Level::Info, "baking 8501,8502 for 6.00s: 8001,8002 is kept running"));
        assert_eq!(g.phase_name(), "baking");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502], "the new set serves");
        assert!(g.owns(11) && g.owns(21));
        assert_eq!(g.baking().unwrap().until, t0 + Duration::from_secs(6));
        assert_eq!(g.next_deadline(), Some(t0 + Duration::from_secs(6)));
        g
    }

    /// A rollout of `g` with config `c` to 8501,8502 (pids 21, 22), up to
    /// its after_start run: the actions of the switch.
    fn switch_to_bake(g: &mut Group, t0: Instant, c: Arc<GroupConfig>) -> Vec<Action> {
        g.run(t0, Event::Start { cfg: c, index: 1 });
        g.run(t0, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(t0, Event::Tick);
        let a = pass_all(g, t0, &a);
        run_step(g, t0, &a, ExitStatus::Code(0), "")
    }

    /// The revert of a bake at `t`: after_start back to the old set, run
    /// ok; the new set's drain; its stop; the outcome.
    fn finish_revert(g: &mut Group, t: Instant, a: &[Action], alive: &[i32]) -> (Outcome, String) {
        let (_, ports, old) = step(a).expect("after_start back to the old set");
        assert_eq!((ports, old), (vec![8001, 8002], vec![8501, 8502]));
        assert_eq!(g.phase_name(), "reverting");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502], "live until the LB points back");
        run_step(g, t, a, ExitStatus::Code(0), "");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002], "the old set is live again");
        let (seq, counted) = count(&g.run(t, Event::Tick)).expect("the new set drains");
        assert_eq!(counted, vec![8501, 8502]);
        let a = g.run(t + Duration::from_secs(1), Event::Connections { seq, counts: Ok(vec![(8501, 0), (8502, 0)]) });
        let termed: Vec<i32> = signals(&a).into_iter().filter(|s| s.1 == TERM).map(|s| s.0).collect();
        assert_eq!(termed, alive);
        let mut last = Vec::new();
        for &pid in alive {
            last = exit(g, t + Duration::from_secs(1), pid);
        }
        assert!(g.is_idle());
        done(&last).expect("the rollout ends")
    }

    #[test]
    fn a_clean_bake_keeps_the_old_set_then_drains_and_stops_it() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        assert!(g.run(ms(t0, 3000), Event::Tick).is_empty(), "nothing before the bake ends");
        let a = g.run(ms(t0, 6000), Event::Tick);
        assert!(has_log(&a, Level::Info, "bake of 8501,8502 passed; 8001,8002 drains and stops"));
        assert!(signals(&a).is_empty(), "drain_signal was sent at the switch, once");
        assert_eq!(g.phase_name(), "draining");
        let (seq, ports) = count(&g.run(ms(t0, 6000), Event::Tick)).unwrap();
        assert_eq!(ports, vec![8001, 8002]);
        let a = g.run(ms(t0, 7000), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        exit(&mut g, ms(t0, 7100), 11);
        let (outcome, summary) = done(&exit(&mut g, ms(t0, 7100), 12)).unwrap();
        assert_eq!(outcome, Outcome::Ok);
        assert!(summary.contains("after_start 0ms, bake 6.00s, drain 1.00s"), "{summary}");
    }

    #[test]
    fn a_new_process_that_exits_during_the_bake_reverts_at_once() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 2000), Event::Exited { pid: 21, status: ExitStatus::Code(3) });
        assert!(
            has_log(
                &a,
                Level::Warn,
                "port 8501 exited (exit 3) during the bake; reverting: pointing back at 8001,8002, then draining 8501,8502"
            ),
            "{a:?}"
        );
        assert_eq!(signals(&a), vec![(21, KILL)], "what it left is killed; nothing else yet");
        let (outcome, summary) = finish_revert(&mut g, ms(t0, 2000), &a, &[22]);
        assert_eq!(
            outcome,
            Outcome::Reverted { reason: "port 8501 exited (exit 3) during the bake".into(), port: Some(8501) }
        );
        assert!(
            summary.starts_with("rollout reverted: port 8501 exited (exit 3) during the bake; live on 8001,8002"),
            "{summary}"
        );
        assert_eq!(g.live.as_ref().unwrap().procs.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![Some(11), Some(12)]);
    }

    #[test]
    fn promote_ends_the_bake_now_and_revert_reverts_now() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Promote);
        assert!(has_log(&a, Level::Info, "bake of 8501,8502 passed (promoted)"));
        assert_eq!(g.phase_name(), "draining");
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Revert);
        assert!(has_log(&a, Level::Warn, "rolld revert asked for it; reverting"));
        let (outcome, _) = finish_revert(&mut g, ms(t0, 1000), &a, &[21, 22]);
        assert_eq!(outcome, Outcome::Reverted { reason: "rolld revert asked for it".into(), port: None });
    }

    #[test]
    fn promote_and_revert_change_nothing_but_a_bake() {
        let t0 = Instant::now();
        for (k, name) in ["idle", "starting", "switching", "reverting", "draining", "stopping"].iter().enumerate() {
            for ev in [Event::Promote, Event::Revert] {
                let (mut g, _) = group_in_phase(t0, k);
                let before = format!("{g:?}");
                assert!(g.run(ms(t0, 2000), ev.clone()).is_empty(), "{name}: {ev:?}");
                assert_eq!(format!("{g:?}"), before, "{name}: {ev:?} changed the group");
            }
        }
    }

    #[test]
    fn an_old_process_that_exits_during_the_bake_is_restarted_by_a_revert() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Exited { pid: 12, status: ExitStatus::Code(0) });
        assert!(has_log(&a, Level::Warn, "exited during the bake of the set after it"));
        assert_eq!(g.phase_name(), "baking", "no revert for an old process");
        let a = g.run(ms(t0, 2000), Event::Exited { pid: 22, status: ExitStatus::Code(1) });
        run_step(&mut g, ms(t0, 2000), &a, ExitStatus::Code(0), "");
        assert_eq!(g.next_deadline(), Some(ms(t0, 2000)), "the old process restarts at once");
        let a = g.run(ms(t0, 2000), Event::Tick);
        assert!(a.contains(&Action::Spawn { cfg: cfg(), ports: vec![8002] }), "{a:?}");
    }

    #[test]
    fn a_failed_point_back_keeps_the_new_set_live_and_stops_the_old_one() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Exited { pid: 21, status: ExitStatus::Code(1) });
        let a = run_step(&mut g, ms(t0, 1000), &a, ExitStatus::Code(1), "lb down");
        assert!(
            has_log(
                &a,
                Level::Error,
                "pointing back at 8001,8002 failed too: run_proc: `reload-lb` failed (exit 1): lb down; 8501,8502 stay live, and 8001,8002 drains and stops"
            ),
            "{a:?}"
        );
        assert_eq!(g.phase_name(), "draining");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502]);
        assert_eq!(g.next_deadline(), Some(ms(t0, 1000)), "the new process that ended restarts");
        let a = g.run(ms(t0, 1000), Event::Tick);
        assert!(a.iter().any(|a| matches!(a, Action::Spawn { ports, .. } if ports == &vec![8501])), "{a:?}");
        let (seq, ports) = count(&a).unwrap();
        assert_eq!(ports, vec![8001, 8002]);
        let a = g.run(ms(t0, 2000), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        exit(&mut g, ms(t0, 2000), 11);
        let (outcome, summary) = done(&exit(&mut g, ms(t0, 2000), 12)).unwrap();
        assert!(matches!(outcome, Outcome::Partial { moved: 2, total: 2, .. }), "{outcome:?}");
        assert!(summary.contains("2 of 2 slots on the new release; reverted: port 8501"), "{summary}");
        assert!(summary.contains("pointing back failed: run_proc"), "{summary}");
    }

    #[test]
    fn a_point_back_past_action_timeout_is_a_failed_one() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Revert);
        let (seq, _, _) = step(&a).unwrap();
        g.run(ms(t0, 1000), Event::StepRunning { seq, pid: LB });
        assert_eq!(g.step_awaited(), Some(seq));
        let a = g.run(ms(t0, 4000), Event::Tick);
        assert!(signals(&a).contains(&(LB, KILL)));
        assert!(has_log(&a, Level::Error, "did not finish within 3s; killed"));
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502]);
    }

    #[test]
    fn terminate_during_a_bake_stops_both_sets() {
        let t0 = Instant::now();
        let mut g = baking_group(t0);
        let a = g.run(ms(t0, 1000), Event::Terminate);
        let mut termed: Vec<i32> = signals(&a).into_iter().filter(|s| s.1 == TERM).map(|s| s.0).collect();
        termed.sort();
        assert_eq!(termed, vec![11, 12, 21, 22]);
        for pid in [11, 12, 21, 22] {
            exit(&mut g, ms(t0, 1100), pid);
        }
        assert!(g.is_gone());
    }

    #[test]
    fn with_surge_each_batch_bakes_and_a_revert_keeps_the_batches_before() {
        let mut t = Instant::now();
        let (mut g, _) = live_surge(t, 2);
        let c = bake_cfg(&surge_cfg(2), 5);
        let a = g.run(t, Event::Start { cfg: c.clone(), index: 1 });
        assert!(a.contains(&Action::Spawn { cfg: c.clone(), ports: vec![8501, 8502] }));
        g.run(t, Event::Spawned(vec![(8501, Ok(21)), (8502, Ok(22))]));
        let a = g.run(t, Event::Tick);
        let a = pass_all(&mut g, t, &a);
        run_step(&mut g, t, &a, ExitStatus::Code(0), "");
        assert_eq!(g.baking().unwrap().ports, vec![8501, 8502]);
        t += Duration::from_secs(5);
        g.run(t, Event::Tick);
        let (seq, _) = count(&g.run(t, Event::Tick)).unwrap();
        let a = g.run(t + Duration::from_secs(1), conns(seq, 0));
        assert_eq!(signals(&a), vec![(11, TERM), (12, TERM)]);
        exit(&mut g, t, 11);
        let a = exit(&mut g, t, 12);
        assert!(a.contains(&Action::Spawn { cfg: c.clone(), ports: vec![8503, 8504] }), "batch 2 after batch 1's bake");
        g.run(t, Event::Spawned(vec![(8503, Ok(23)), (8504, Ok(24))]));
        let a = g.run(t, Event::Tick);
        let a = pass_all(&mut g, t, &a);
        run_step(&mut g, t, &a, ExitStatus::Code(0), "");
        assert_eq!(g.baking().unwrap().old, vec![8003, 8004]);
        let a = g.run(t + Duration::from_secs(1), Event::Exited { pid: 24, status: ExitStatus::Signal(11) });
        let (_, ports, old) = step(&a).unwrap();
        assert_eq!((ports, old), (vec![8501, 8502, 8003, 8004], vec![8503, 8504]), "batch 1 stays");
        run_step(&mut g, t, &a, ExitStatus::Code(0), "");
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8501, 8502, 8003, 8004]);
        assert_eq!(g.live.as_ref().unwrap().cfg, c, "batch 1's config is the live set's");
        let (seq, _) = count(&g.run(t, Event::Tick)).unwrap();
        let a = g.run(t + Duration::from_secs(2), Event::Connections { seq, counts: Ok(vec![(8503, 0), (8504, 0)]) });
        assert_eq!(signals(&a), vec![(23, TERM)]);
        let (outcome, summary) = done(&exit(&mut g, t, 23)).unwrap();
        assert!(matches!(outcome, Outcome::Partial { moved: 2, total: 4, .. }), "{outcome:?}");
        assert!(summary.contains("reverted: port 8504 exited"), "{summary}");
    }

    // ------------------------------------------------------------ health

    fn health_cfg() -> Arc<GroupConfig> {
        let mut c = (*cfg()).clone();
        c.health = Some(crate::config::Health { every: Duration::from_secs(1), failures: 2 });
        Arc::new(c)
    }

    /// A group live on 8001 and 8002 (pids 11, 12) with `health`, at t0.
    fn live_health(t0: Instant) -> Group {
        let mut g = Group::new("web");
        let c = health_cfg();
        g.run(t0, Event::Start { cfg: c.clone(), index: 0 });
        g.run(t0, Event::Spawned(vec![(8001, Ok(11)), (8002, Ok(12))]));
        let a = g.run(t0, Event::Tick);
        let a = pass_all(&mut g, t0, &a);
        let a = run_step(&mut g, t0, &a, ExitStatus::Code(0), "");
        assert!(done(&a).is_some());
        assert_eq!(g.next_deadline(), Some(ms(t0, 1000)), "the first checks, `every` after the start");
        g
    }

    fn health_checks(acts: &[Action]) -> Vec<(u16, i32)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Health { port, pid, .. } => Some((*port, *pid)),
                _ => None,
            })
            .collect()
    }

    fn heal_asked(acts: &[Action]) -> Option<(usize, u16)> {
        acts.iter().find_map(|a| match a {
            Action::Heal { slot, port, .. } => Some((*slot, *port)),
            _ => None,
        })
    }

    /// One round of health checks at `t`: each process asked for answers
    /// as `fails` says (the ports that fail).
    fn health_round(g: &mut Group, t: Instant, fails: &[u16]) -> Vec<Action> {
        let asked = health_checks(&g.run(t, Event::Tick));
        assert!(!asked.is_empty(), "checks due at {t:?}");
        let mut out = Vec::new();
        for (port, pid) in asked {
            let result = if fails.contains(&port) { Err("timed out after 1s".to_string()) } else { Ok(()) };
            out.extend(g.run(t, Event::HealthChecked { port, pid, result }));
        }
        out
    }

    /// Heals 8002 (pid 12) to 8502 as pid 22, from the Heal in `a`, at `t`.
    fn run_heal(g: &mut Group, t: Instant, a: &[Action], from: (u16, i32), to: (u16, i32)) -> Vec<Action> {
        assert_eq!(heal_asked(a), Some((1, from.0)));
        let a = g.run(t, Event::HealPlan { port: from.0, target: Ok(Target { slot: 1, port: to.0 }) });
        assert!(has_log(&a, Level::Warn, "healing the slot of pid"), "{a:?}");
        assert!(a.contains(&Action::Spawn { cfg: health_cfg(), ports: vec![to.0] }));
        g.run(t, Event::Spawned(vec![(to.0, Ok(to.1))]));
        let a = g.run(t, Event::Tick);
        assert_eq!(smoke(&a).unwrap().1, vec![to.0]);
        let a = pass_all(g, t, &a);
        let (_, ports, old) = step(&a).unwrap();
        assert_eq!((ports, old), (vec![8001, to.0], vec![from.0]), "the other slot unchanged");
        let a = run_step(g, t, &a, ExitStatus::Code(0), "");
        assert_eq!(signals(&a), vec![(from.1, TERM)], "stopped at once, undrained; nothing else signalled");
        assert!(count(&a).is_none());
        exit(g, t, from.1)
    }

    #[test]
    fn a_process_failing_its_health_checks_is_healed_on_its_slot() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        let a = health_round(&mut g, ms(t0, 1000), &[8002]);
        assert!(heal_asked(&a).is_none(), "one failure is not enough");
        assert!(health_checks(&g.run(ms(t0, 1500), Event::Tick)).is_empty(), "not before `every`");
        let a = health_round(&mut g, ms(t0, 2000), &[8002]);
        assert!(has_log(&a, Level::Warn, "pid 12 failed its health check 2 time(s) in a row: timed out after 1s"));
        let a = run_heal(&mut g, ms(t0, 2000), &a, (8002, 12), (8502, 22));
        assert!(has_log(&a, Level::Info, "heal ok: pid 12 on 8002 (timed out after 1s) replaced by 8502"), "{a:?}");
        assert!(done(&a).is_none(), "a heal is no rollout");
        assert!(g.is_idle());
        assert_eq!(g.heals, 1);
        let live = g.live.as_ref().unwrap();
        assert_eq!(live.ports(), vec![8001, 8502]);
        assert_eq!(live.procs[0].pid, Some(11), "the other slot untouched");
        // A check of the new process passes: its failures start at 0.
        let a = health_round(&mut g, ms(t0, 3000), &[]);
        assert!(a.iter().all(|a| !matches!(a, Action::Heal { .. })));
        assert_eq!(g.live.as_ref().unwrap().procs[1].health_now().unwrap().fails, 0);
    }

    #[test]
    fn no_heal_when_every_process_fails_at_once() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        health_round(&mut g, ms(t0, 1000), &[8001, 8002]);
        let a = health_round(&mut g, ms(t0, 2000), &[8001, 8002]);
        assert!(heal_asked(&a).is_none(), "{a:?}");
        assert!(has_log(&a, Level::Error, "every process of 8001,8002 fails its health check (timed out after 1s)"));
        let a = health_round(&mut g, ms(t0, 3000), &[8001, 8002]);
        assert!(heal_asked(&a).is_none() && !has_log(&a, Level::Error, "every process"), "said once: {a:?}");
        let a = health_round(&mut g, ms(t0, 4000), &[]);
        assert!(has_log(&a, Level::Info, "health checks pass again"));
        assert!(has_log(&a, Level::Info, "pid 11 passes its health check again"));
        assert_eq!(g.heals, 0);
        assert!(g.is_idle());
    }

    #[test]
    fn a_slot_that_fails_again_right_after_its_heal_backs_off() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        // Every new process of slot 1 fails at once: heals at 2 s, 4 s and
        // 6 s (waits of 1 s then 2 s, shorter than two failed checks), then
        // the 4 s wait holds the next one until 10 s.
        let mut on = (8002, 12);
        let mut pid = 12;
        let mut heals = Vec::new();
        for t in (1000..=10_000).step_by(1000) {
            let a = health_round(&mut g, ms(t0, t), &[on.0]);
            if heal_asked(&a).is_some() {
                pid += 10;
                let to = (if on.0 == 8002 { 8502 } else { 8002 }, pid);
                run_heal(&mut g, ms(t0, t), &a, on, to);
                on = to;
                heals.push(t);
            }
        }
        assert_eq!(heals, vec![2000, 4000, 6000, 10_000]);
        assert_eq!(g.heals, 4);
    }

    #[test]
    fn a_heal_whose_new_process_fails_keeps_the_old_one() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        health_round(&mut g, ms(t0, 1000), &[8002]);
        let a = health_round(&mut g, ms(t0, 2000), &[8002]);
        assert!(heal_asked(&a).is_some());
        g.run(ms(t0, 2000), Event::HealPlan { port: 8002, target: Ok(Target { slot: 1, port: 8502 }) });
        let a = g.run(ms(t0, 2000), Event::Spawned(vec![(8502, Err("EADDRINUSE".into()))]));
        assert_eq!(signals(&a), Vec::<(i32, i32)>::new());
        let a = settle(&mut g, ms(t0, 2000), a);
        assert!(has_log(&a, Level::Warn, "heal failed: cannot spawn: EADDRINUSE; pid 12 stays on 8002"), "{a:?}");
        assert!(done(&a).is_none());
        assert_eq!(g.live.as_ref().unwrap().ports(), vec![8001, 8002]);
        let a = health_round(&mut g, ms(t0, 3000), &[8002]);
        assert!(heal_asked(&a).is_some(), "again once the slot's wait is over");
        // Nowhere to go: said, and backed off.
        let a = g.run(ms(t0, 3000), Event::HealPlan { port: 8002, target: Err("no free port".into()) });
        assert!(has_log(&a, Level::Error, "cannot heal the slot of pid 12: no free port"));
        assert!(g.is_idle());
    }

    #[test]
    fn terminate_during_a_heal_stops_every_process() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        health_round(&mut g, ms(t0, 1000), &[8002]);
        let a = health_round(&mut g, ms(t0, 2000), &[8002]);
        assert!(heal_asked(&a).is_some());
        g.run(ms(t0, 2000), Event::HealPlan { port: 8002, target: Ok(Target { slot: 1, port: 8502 }) });
        g.run(ms(t0, 2000), Event::Spawned(vec![(8502, Ok(22))]));
        let a = g.run(ms(t0, 2100), Event::Terminate);
        let mut termed: Vec<i32> = signals(&a).into_iter().filter(|s| s.1 == TERM).map(|s| s.0).collect();
        termed.sort();
        assert_eq!(termed, vec![11, 12, 22]);
        for pid in [11, 12, 22] {
            exit(&mut g, ms(t0, 2200), pid);
        }
        assert!(g.is_gone());
    }

    /// `baking_group` with `haproxy:` and `revert_errors: 3`: the bake
    /// reads HAProxy's counters of the processes on trial at once.
    fn lb_baking_group(t0: Instant) -> (Group, u64) {
        let mut g = live_group(t0);
        let mut c = (*bake_cfg(&cfg(), 6)).clone();
        c.haproxy = Some(crate::config::Haproxy {
            socket: "/run/h.sock".into(),
            backend: "app".into(),
            state_file: None,
            revert_errors: 3,
        });
        let a = switch_to_bake(&mut g, t0, Arc::new(c));
        assert!(has_log(
            &a,
            Level::Info,
            "8001,8002 is kept running until then, to revert to, or at 3 error(s) counted by HAProxy"
        ));
        assert_eq!(g.next_deadline(), Some(t0), "the first read is due now");
        let seq = lb_read(&g.run(t0, Event::Tick)).expect("a read of HAProxy's counters");
        assert_eq!(g.next_deadline(), None, "a read under way: its answer comes first");
        (g, seq)
    }

    fn lb_read(acts: &[Action]) -> Option<u64> {
        acts.iter().find_map(|a| match a {
            Action::LbErrors { seq, ports, .. } => {
                assert_eq!(ports, &vec![8501, 8502], "the processes on trial");
                Some(*seq)
            }
            _ => None,
        })
    }

    fn lb_answer(seq: u64, n: u64) -> Event {
        Event::LbErrors { seq, result: Ok((n, format!("5xx {n}, econ 0, eresp 0"))) }
    }

    #[test]
    fn haproxys_errors_on_the_processes_on_trial_revert_the_bake_at_the_limit() {
        let t0 = Instant::now();
        let (mut g, seq) = lb_baking_group(t0);
        assert_eq!(g.baking().unwrap().lb_errors, None, "nothing read yet");
        assert!(g.run(ms(t0, 10), lb_answer(seq, 2)).is_empty(), "below the limit");
        assert_eq!((g.baking().unwrap().lb_errors, g.baking().unwrap().lb_unread), (Some(2), false));
        assert_eq!(g.next_deadline(), Some(ms(t0, 20)), "read again after LB_FIRST early in the bake");
        assert!(g.run(ms(t0, 15), Event::Tick).is_empty(), "not due yet");
        let seq = lb_read(&g.run(ms(t0, 20), Event::Tick)).unwrap();
        g.run(ms(t0, 2500), lb_answer(seq, 2));
        assert_eq!(g.next_deadline(), Some(ms(t0, 2600)), "then after LB_EVERY");
        let seq2 = lb_read(&g.run(ms(t0, 2600), Event::Tick)).unwrap();
        assert!(g.run(ms(t0, 2610), lb_answer(seq, 9)).is_empty(), "an answer to an earlier read is stale");
        let a = g.run(ms(t0, 2700), lb_answer(seq2, 3));
        let why =
            "HAProxy counted 3 error(s) on 8501,8502 during the bake (5xx 3, econ 0, eresp 0; revert_errors is 3)";
        assert!(has_log(&a, Level::Warn, &format!("{why}; reverting: pointing back at 8001,8002")), "{a:?}");
        let (outcome, summary) = finish_revert(&mut g, ms(t0, 2700), &a, &[21, 22]);
        assert_eq!(outcome, Outcome::Reverted { reason: why.into(), port: None });
        assert!(summary.contains(why), "{summary}");
    }

    #[test]
    fn a_bake_passes_only_on_a_read_of_haproxys_counters_asked_after_its_end() {
        let t0 = Instant::now();
        let (mut g, seq) = lb_baking_group(t0);
        g.run(ms(t0, 10), lb_answer(seq, 0));
        // A read asked before the end and answered after it is not enough.
        let seq = lb_read(&g.run(ms(t0, 5900), Event::Tick)).unwrap();
        assert!(g.run(ms(t0, 6000), Event::Tick).is_empty(), "the end waits for the read under way");
        g.run(ms(t0, 6010), lb_answer(seq, 0));
        assert_eq!(g.phase_name(), "baking");
        assert_eq!(g.next_deadline(), Some(ms(t0, 6000)), "past its end: a read is due now");
        // That read fails: said once, tried again every second, no pass.
        let seq = lb_read(&g.run(ms(t0, 6010), Event::Tick)).unwrap();
        let a = g.run(ms(t0, 6020), Event::LbErrors { seq, result: Err("HAProxy at /run/h.sock: refused".into()) });
        assert!(
            has_log(
                &a,
                Level::Warn,
                "cannot read HAProxy's counters of 8501,8502: HAProxy at /run/h.sock: refused; the bake cannot pass \
                 until they are read (rolld promote or rolld revert decide)"
            ),
            "{a:?}"
        );
        assert_eq!(g.next_deadline(), Some(ms(t0, 7020)), "tried again after LB_RETRY");
        assert!(g.run(ms(t0, 6030), Event::Tick).is_empty(), "not before");
        let seq = lb_read(&g.run(ms(t0, 7020), Event::Tick)).unwrap();
        let a = g.run(ms(t0, 7030), Event::LbErrors { seq, result: Err("refused".into()) });
        assert!(a.is_empty(), "said once: {a:?}");
        assert_eq!((g.phase_name(), g.next_deadline()), ("baking", Some(ms(t0, 8030))));
        let seq = lb_read(&g.run(ms(t0, 8030), Event::Tick)).unwrap();
        let a = g.run(ms(t0, 8040), lb_answer(seq, 1));
        assert!(has_log(&a, Level::Info, "HAProxy's counters of 8501,8502 are read again"));
        assert!(has_log(&a, Level::Info, "bake of 8501,8502 passed; 8001,8002 drains and stops"), "{a:?}");
        assert_eq!(g.phase_name(), "draining");
    }

    #[test]
    fn promote_ends_a_bake_that_waits_for_haproxys_counters() {
        let t0 = Instant::now();
        let (mut g, seq) = lb_baking_group(t0);
        g.run(ms(t0, 10), Event::LbErrors { seq, result: Err("refused".into()) });
        assert!(g.baking().unwrap().lb_unread, "status shows why the bake waits");
        let a = g.run(ms(t0, 7000), Event::Promote);
        assert!(has_log(&a, Level::Info, "bake of 8501,8502 passed (promoted)"), "{a:?}");
        assert!(g.run(ms(t0, 7010), lb_answer(seq, 50)).is_empty(), "a read's answer after the bake changes nothing");
        assert_eq!(g.phase_name(), "draining");
    }

    #[test]
    fn a_process_on_trial_failing_its_health_checks_reverts_the_bake() {
        let t0 = Instant::now();
        let mut g = live_health(t0);
        let mut c = (*health_cfg()).clone();
        c.timing.bake = Duration::from_secs(6);
        switch_to_bake(&mut g, t0, Arc::new(c));
        assert_eq!(g.phase_name(), "baking");
        let a = health_round(&mut g, ms(t0, 1000), &[8501]);
        assert!(step(&a).is_none());
        let a = health_round(&mut g, ms(t0, 2000), &[8501]);
        assert!(
            has_log(&a, Level::Warn, "port 8501 failed its health check 2 time(s) in a row during the bake"),
            "{a:?}"
        );
        let (_, ports, _) = step(&a).expect("pointing back");
        assert_eq!(ports, vec![8001, 8002]);
        assert!(heal_asked(&a).is_none(), "a bake reverts, never heals");
    }
}
