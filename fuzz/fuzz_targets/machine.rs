//! The group machine (`group::Group`) and the planner (`plan`) under
//! arbitrary sequences of events and config changes: worksets added,
//! removed, resized and reordered, `surge` and after_start changed, the
//! group removed and added again, rolld stopped, and its processes taken
//! over by a successor; and, one run in four, a `listen:` group (its two
//! banks, its route step, a restarted live process probed before it
//! serves).
//!
//! The harness plays the daemon and the host. It plans each rollout with
//! the planner functions the daemon uses, answers each action as the
//! daemon does (a spawn, a run_proc and a look at process groups at once;
//! checks, renders, counts and exits later, in an order the input picks),
//! and models each process: spawned, signalled, ended, reaped. After every
//! step it asserts, besides "no panic":
//! - the group never runs more processes than its live set plus the
//!   rollout's batch: N + K for a rollout by `surge` K of N slots;
//! - every process the harness runs is in a set of the group (none is
//!   orphaned); once idle, exactly the live set runs; once gone, nothing;
//! - no process is spawned on a port a process of the group still holds,
//!   and no process group is signalled after its leader was reaped;
//! - the LB's ports (those of the last after_start the group saw succeed)
//!   are the live set's, whenever after_start is not under way.
//!
//! The input runs out, and the harness lets the group settle with every
//! answer the good one, then stops it: every process spawned ends up live,
//! then stopped.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rolld::config::{Action as Step, Check, GroupConfig, Haproxy, Health, Listen, Timing};
use rolld::group::{Action, Event, Group, Role, Set};
use rolld::plan;
use rolld::sys::ExitStatus;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPS: usize = 300;

/// One byte of input; 0 once it has run out, and 0 always picks the
/// plain path (no failure, the first choice).
fn byte(u: &mut Unstructured) -> u8 {
    u.arbitrary().unwrap_or(0)
}

/// Heads or tails; tails once the input has run out.
fn coin(u: &mut Unstructured) -> bool {
    byte(u) >= 128
}

/// A failure, one time in eight.
fn fails(u: &mut Unstructured) -> bool {
    byte(u) >= 224
}

/// A config as reloads change it. Workset `id`'s slot s is port
/// 10000 + 10 * id + s, so a port means the same in every config.
#[derive(Clone, Debug)]
struct Shape {
    /// (id, size) of each workset, in order.
    sets: Vec<(u16, usize)>,
    next_id: u16,
    surge: Option<usize>,
    /// after_start: true for a run_proc, false for a replace_file.
    steps: Vec<bool>,
    drain_signal: bool,
    /// A `listen:` group of this many processes: its worksets are its two
    /// banks of check ports and its after_start the one `Route` step, for
    /// the whole run (the daemon refuses to change them).
    listen: Option<usize>,
}

impl Shape {
    fn new(u: &mut Unstructured) -> Shape {
        let n = 1 + byte(u) as usize % 4;
        let size = 1 + byte(u) as usize % 5;
        let mut s = Shape {
            sets: (0..n as u16).map(|id| (id, size)).collect(),
            next_id: n as u16,
            surge: None,
            steps: vec![true],
            drain_signal: false,
            listen: None,
        };
        if byte(u) >= 192 {
            s.sets = vec![(0, size), (1, size)];
            s.next_id = 2;
            s.steps = Vec::new();
            s.listen = Some(size);
        }
        s.change(u);
        s
    }

    /// One to three changes, as a reload brings them.
    fn change(&mut self, u: &mut Unstructured) {
        for _ in 0..=byte(u) % 3 {
            let size = 1 + byte(u) as usize % 5;
            if let Some(procs) = self.listen {
                match byte(u) % 2 {
                    0 => self.surge = (size < procs).then_some(size),
                    _ => self.drain_signal = coin(u),
                }
                continue;
            }
            let i = byte(u) as usize % self.sets.len();
            match byte(u) % 7 {
                0 => {
                    let same = self.sets[0].1;
                    self.sets.insert(i, (self.next_id, if coin(u) { size } else { same }));
                    self.next_id += 1;
                }
                1 if self.sets.len() > 1 => {
                    self.sets.remove(i);
                }
                2 => self.sets[i].1 = size,
                3 => {
                    let same = self.sets[i].1;
                    self.sets.iter_mut().for_each(|s| s.1 = same);
                }
                4 => self.surge = (size < 5).then_some(size),
                5 => self.sets.swap(0, i),
                _ => {
                    self.steps = (0..byte(u) % 3).map(|_| !coin(u)).collect();
                    self.drain_signal = coin(u);
                }
            }
        }
    }

    fn config(&self) -> Arc<GroupConfig> {
        let s = Duration::from_secs;
        Arc::new(GroupConfig {
            name: "web".into(),
            base: PathBuf::from("/"),
            argv: vec!["app".into()],
            directory: PathBuf::from("/"),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            worksets: match self.listen {
                Some(n) => (0..2).map(|bank| (0..n as u16).map(|s| 10_000 + bank * n as u16 + s).collect()).collect(),
                None => self
                    .sets
                    .iter()
                    .map(|&(id, n)| (0..n as u16).map(|slot| 10_000 + 10 * id + slot).collect())
                    .collect(),
            },
            checks: vec![Check::Tcp { host: Default::default(), timeout: s(1) }],
            actions: match self.listen {
                Some(_) => vec![Step::Route],
                None => self
                    .steps
                    .iter()
                    .map(|&run| match run {
                        true => Step::RunProc { command: "reload-lb".into() },
                        false => Step::ReplaceFile { template: "lb.templ".into(), output: "lb.conf".into() },
                    })
                    .collect(),
            },
            timing: Timing {
                start_timeout: s(5),
                drain_timeout: s(10),
                drain_quiet: s(1),
                stop_timeout: s(3),
                action_timeout: s(2),
                drain_report: s(4),
                // Drawn from what the input chose already, so that the
                // inputs of the corpus keep their paths.
                bake: if self.steps.len() == 2 || (self.listen.is_some() && self.drain_signal) {
                    s(2)
                } else {
                    Duration::ZERO
                },
            },
            stop_signal: libc::SIGTERM,
            drain_signal: self.drain_signal.then_some(libc::SIGUSR1),
            surge: self.surge,
            credentials: None,
            listen: self.listen.map(|procs| Listen { addr: ([127, 0, 0, 1], 8080).into(), procs, check_from: 10_000 }),
            // An HAProxy whose error counters may revert a bake, drawn
            // likewise from what the input chose already.
            haproxy: (self.listen.is_none() && self.steps == [true, true]).then(|| Haproxy {
                socket: PathBuf::from("/run/haproxy.sock"),
                backend: "app".into(),
                state_file: None,
                revert_errors: 3,
            }),
            health: self.drain_signal.then_some(Health { every: s(1), failures: 2 }),
        })
    }
}

/// A process that runs on the host, until the harness feeds its reaping.
struct Proc {
    /// A backend's port; `None` for the process of an after_start step,
    /// whose seq is `step`.
    port: Option<u16>,
    step: u64,
    ignores_term: bool,
    /// Ended; its reaping is on its way.
    ended: bool,
}

/// An answer the daemon gets later, from a worker or the reaper.
#[derive(Debug)]
enum Later {
    Check { seq: u64, port: u16 },
    Render { seq: u64 },
    Count { seq: u64, ports: Vec<u16> },
    Exit { pid: i32, status: ExitStatus },
    Health { port: u16, pid: i32 },
    LbErrors { seq: u64 },
}

struct Host {
    now: Instant,
    next_pid: i32,
    /// Processes not reaped yet.
    procs: BTreeMap<i32, Proc>,
    /// The process whose reaping the group is hearing of: its group's
    /// stragglers are killed at that moment, and never after.
    reaping: Option<i32>,
    later: Vec<Later>,
    /// The after_start step the group waits for: its seq, its ports, and
    /// whether it is the last of its job.
    step: Option<(u64, Vec<u16>, bool)>,
    /// Where the LB points; `None`: unknown (a step failed or was killed).
    lb: Option<Vec<u16>>,
    /// The most processes the group may run now.
    bound: usize,
    /// Ports that something else holds.
    busy: Vec<u16>,
    /// The input has run out: every answer is the good one.
    settling: bool,
}

impl Host {
    fn backends(&self) -> impl Iterator<Item = (i32, u16)> + '_ {
        self.procs.iter().filter_map(|(&pid, p)| Some((pid, p.port?)))
    }

    fn run(&mut self, port: Option<u16>, step: u64, u: &mut Unstructured) -> i32 {
        self.next_pid += 1;
        let ignores_term = port.is_some() && byte(u) % 4 == 3;
        self.procs.insert(self.next_pid, Proc { port, step, ignores_term, ended: false });
        self.next_pid
    }

    /// Process `pid` ends; its reaping comes later.
    fn end(&mut self, pid: i32, status: ExitStatus) {
        if let Some(p) = self.procs.get_mut(&pid).filter(|p| !p.ended) {
            p.ended = true;
            self.later.push(Later::Exit { pid, status });
        }
    }

    /// Gives `ev` to the group and carries out what it asks, as the
    /// daemon's `feed` does.
    fn feed(&mut self, g: &mut Group, ev: Event, u: &mut Unstructured) {
        let mut queue: VecDeque<Action> = g.handle(self.now, ev).into();
        while let Some(a) = queue.pop_front() {
            let live = g.live.as_ref().map(Set::ports).unwrap_or_default();
            if let Some(ev) = self.perform(a, &live, u) {
                queue.extend(g.handle(self.now, ev));
            }
        }
        self.check(g);
    }

    /// Answers action `a` of the group whose live ports are `live`.
    fn perform(&mut self, a: Action, live: &[u16], u: &mut Unstructured) -> Option<Event> {
        let settling = self.settling;
        let bad = |u: &mut Unstructured| !settling && fails(u);
        match a {
            Action::Spawn { ports, .. } => {
                let mut results = Vec::new();
                for port in ports {
                    if let Some((pid, _)) = self.backends().find(|b| b.1 == port) {
                        panic!("spawn on {port}, which pid {pid} still holds");
                    }
                    let result = if bad(u) { Err("cannot spawn".into()) } else { Ok(self.run(Some(port), 0, u)) };
                    results.push((port, result));
                }
                let n = self.backends().count();
                assert!(n <= self.bound, "{n} processes run, more than {}", self.bound);
                Some(Event::Spawned(results))
            }
            Action::Smoke { seq, ports, .. } => {
                self.later.extend(ports.into_iter().map(|port| Later::Check { seq, port }));
                None
            }
            Action::RunStep { cfg, seq, step, ports, .. } => {
                self.step = Some((seq, ports, step + 1 == cfg.actions.len()));
                match cfg.actions.get(step) {
                    Some(Step::RunProc { .. }) if bad(u) => {
                        Some(Event::StepDone { seq, result: Err("cannot run".into()) })
                    }
                    Some(Step::RunProc { .. }) => Some(Event::StepRunning { seq, pid: self.run(None, seq, u) }),
                    Some(Step::ReplaceFile { .. }) => {
                        self.later.push(Later::Render { seq });
                        None
                    }
                    Some(Step::Route | Step::Haproxy) | None => Some(Event::StepDone { seq, result: Ok(()) }),
                }
            }
            Action::Count { seq, ports } => {
                self.later.push(Later::Count { seq, ports });
                None
            }
            Action::CheckGroups { pgids } => {
                let alive = pgids.into_iter().filter(|_| !settling && coin(u)).collect();
                Some(Event::GroupsAlive(alive))
            }
            Action::Signal { pgid, sig } if self.reaping == Some(pgid) => {
                assert_eq!(sig, libc::SIGKILL, "only the stragglers of a group reaped are signalled, with SIGKILL");
                None
            }
            Action::Signal { pgid, sig } => {
                let Some(p) = self.procs.get(&pgid) else {
                    panic!("signal {sig} to process group {pgid}, whose leader was reaped or never ran");
                };
                let ignores_term = p.ignores_term;
                if p.port.is_none() {
                    // A step killed half-way may have pointed the LB anywhere.
                    self.lb = None;
                }
                if sig == libc::SIGKILL || (sig == libc::SIGTERM && !ignores_term) {
                    self.end(pgid, ExitStatus::Signal(sig));
                }
                None
            }
            // A restarted process of a listen: group, checked before it is
            // routed to.
            Action::Probe { port, pid, .. } => {
                let result = if bad(u) { Err("check failed".into()) } else { Ok(()) };
                Some(Event::Probed { port, pid, result })
            }
            Action::Health { port, pid, .. } => {
                self.later.push(Later::Health { port, pid });
                None
            }
            // A heal: a rollout of one slot, from an idle group.
            Action::Heal { cfg, slot, port } => {
                self.bound = self.bound.max(live.len() + 1);
                let busy = |p: u16| self.busy.contains(&p);
                let target = plan::next_port(&cfg, live, slot, busy)
                    .map(|port| plan::Target { slot, port })
                    .ok_or_else(|| "no free port".to_string());
                Some(Event::HealPlan { port, target })
            }
            Action::LbErrors { seq, .. } => {
                self.later.push(Later::LbErrors { seq });
                None
            }
            Action::Log { .. } | Action::Phase { .. } | Action::Done { .. } | Action::Cut { .. } => None,
        }
    }

    /// The result of after_start step `seq`, if `g` waits for it: a step
    /// given up (past action_timeout) is not. (Yet a render given up goes
    /// on in its worker and writes its file late: the pure machine cannot
    /// tell.)
    fn step_ended(&mut self, g: &Group, seq: u64, ok: bool) {
        if !matches!(g.phase_name(), "switching" | "reverting") {
            self.step = None;
        }
        match self.step.take() {
            Some((s, ports, last)) if s == seq => match ok {
                true if last => self.lb = Some(ports),
                true => {}
                false => self.lb = None,
            },
            other => self.step = other,
        }
    }

    /// Delivers answer `i` of those on their way.
    fn deliver(&mut self, g: &mut Group, i: usize, u: &mut Unstructured) {
        let bad = !self.settling && fails(u);
        let ev = match self.later.remove(i) {
            Later::Check { seq, port } => {
                Event::Checked { seq, port, result: if bad { Err("refused".into()) } else { Ok(()) } }
            }
            Later::Render { seq } => {
                self.step_ended(g, seq, !bad);
                Event::StepDone { seq, result: if bad { Err("cannot render".into()) } else { Ok(()) } }
            }
            Later::Count { seq, ports } => {
                let n = |u: &mut Unstructured| if self.settling { 0 } else { byte(u) as usize % 4 / 3 };
                let counts =
                    if bad { Err("cannot count".into()) } else { Ok(ports.iter().map(|&p| (p, n(u))).collect()) };
                Event::Connections { seq, counts }
            }
            Later::Health { port, pid } => {
                Event::HealthChecked { port, pid, result: if bad { Err("timed out".into()) } else { Ok(()) } }
            }
            Later::LbErrors { seq } => {
                let n = if self.settling { 0 } else { byte(u) as u64 % 4 };
                let result = if bad { Err("no answer".into()) } else { Ok((n, format!("5xx {n}"))) };
                Event::LbErrors { seq, result }
            }
            Later::Exit { pid, status } => {
                let Some(p) = self.procs.get(&pid) else { return };
                let (port, step) = (p.port, p.step);
                let ev = match port {
                    Some(_) => Event::Exited { pid, status },
                    None => {
                        self.step_ended(g, step, status == ExitStatus::Code(0));
                        Event::ActionExited { pid, status, output: String::new() }
                    }
                };
                self.procs.remove(&pid);
                self.reaping = Some(pid);
                self.feed(g, ev, u);
                self.reaping = None;
                return;
            }
        };
        self.feed(g, ev, u);
    }

    /// A reload, as the daemon's `begin_round` does it for a group that
    /// stays in the config: a rollout planned by `plan`, once idle.
    fn reload(&mut self, g: &mut Group, shape: &Shape, u: &mut Unstructured) {
        if g.is_gone() {
            // Removed, or rolld stopped: added again, or a new rolld.
            self.forget();
            *g = Group::new("web");
            self.lb = None;
        }
        if !g.is_idle() {
            return;
        }
        let cfg = shape.config();
        let all: Vec<u16> = cfg.worksets.iter().flatten().copied().collect();
        self.busy = (0..byte(u) % 3).map(|_| all[byte(u) as usize % all.len()]).collect();
        let live = g.live.as_ref().map(Set::ports).unwrap_or_default();
        let busy = |p: u16| self.busy.contains(&p);
        let ev = if plan::by_slots(&cfg, &live) {
            match plan::next_slots(&cfg, &live, busy) {
                Ok(plan) => Event::StartPlan { cfg, plan },
                Err(reason) => Event::StartRefused(reason),
            }
        } else {
            let free = |w: &usize| cfg.worksets.get(*w).is_some_and(|ports| !ports.iter().any(|&p| busy(p)));
            match plan::workset_order(&cfg, &live).into_iter().find(free) {
                Some(index) => Event::Start { cfg, index },
                None => Event::StartRefused("no free workset".into()),
            }
        };
        self.start(g, ev, u);
    }

    /// Feeds a start; when it begins a rollout, the bound is the live set
    /// and the batch: N + K by `surge`, else both sets whole.
    fn start(&mut self, g: &mut Group, ev: Event, u: &mut Unstructured) {
        let live = g.live.as_ref().map_or(0, |l| l.procs.len());
        let (cfg, n) = match &ev {
            Event::Start { cfg, index } => (cfg, cfg.worksets.get(*index).map_or(0, Vec::len)),
            Event::StartPlan { cfg, plan } => (cfg, plan.len()),
            _ => return self.feed(g, ev, u),
        };
        if g.is_idle() {
            let batch = match cfg.surge {
                Some(k) if live == n => k.min(n),
                _ => n,
            };
            self.bound = live + batch;
            if cfg.actions.is_empty() {
                self.lb = None;
            }
        }
        self.feed(g, ev, u);
    }

    /// A new `Group` stands for the old one, as after a removal or a
    /// restart of rolld: the answers on their way to the old one are lost
    /// (the daemon drops what comes for a group it no longer has), and the
    /// steps it ran are nobody's.
    fn forget(&mut self) {
        self.later.clear();
        self.step = None;
        self.procs.retain(|_, p| p.port.is_some());
    }

    /// rolld is SIGKILLed and another takes over what the state file
    /// records, as `takeover` does: the live set is adopted, a draining
    /// set drains on, the others are stopped. A process that had ended is
    /// reaped by someone else, never seen by the successor.
    fn take_over(&mut self, g: &mut Group, shape: &Shape) {
        let (mut live, mut draining) = (Vec::new(), Vec::new());
        for (set, role) in g.sets() {
            for p in &set.procs {
                let Some(pid) = p.pid else { continue };
                match role {
                    _ if self.procs.get(&pid).is_none_or(|p| p.ended) => {}
                    Role::Live => live.push((p.port, pid)),
                    Role::Drain => draining.push((p.port, pid)),
                    Role::Other => {}
                }
            }
        }
        if matches!(g.phase_name(), "switching" | "reverting") {
            self.lb = None;
        }
        let kept: Vec<i32> = live.iter().chain(&draining).map(|p| p.1).collect();
        self.procs.retain(|pid, _| kept.contains(pid));
        self.forget();
        let cfg = shape.config();
        *g = Group::new("web");
        if !live.is_empty() {
            g.adopt(cfg.clone(), &live, self.now);
        }
        if !draining.is_empty() {
            g.adopt_draining(cfg, &draining, self.now);
        }
        if self.lb.as_ref() != g.live.as_ref().map(Set::ports).as_ref() {
            self.lb = None;
        }
        self.bound = live.len() + draining.len();
        self.check(g);
    }

    fn check(&mut self, g: &Group) {
        let running: BTreeSet<i32> = self.backends().map(|b| b.0).collect();
        assert!(running.len() <= self.bound, "{} processes run, more than {}", running.len(), self.bound);
        let sets = g.sets();
        for &pid in &running {
            assert!(
                sets.iter().any(|(s, _)| s.procs.iter().any(|p| p.pid == Some(pid))),
                "pid {pid} is in no set of the group ({}): orphaned",
                g.phase_name()
            );
        }
        if g.is_gone() {
            assert!(running.is_empty(), "gone, but {running:?} run");
        }
        let live = g.live.as_ref();
        if g.is_idle() {
            let pids: BTreeSet<i32> = live.iter().flat_map(|l| l.procs.iter().filter_map(|p| p.pid)).collect();
            assert_eq!(running, pids, "idle: exactly the live set runs");
            self.bound = live.map_or(0, |l| l.procs.len());
        }
        if let (Some(live), Some(lb)) = (live, &self.lb)
            && !matches!(g.phase_name(), "switching" | "reverting")
        {
            assert_eq!(lb, &live.ports(), "the LB points at the live set ({})", g.phase_name());
        }
    }

    /// Every answer the good one, every deadline met, until the group
    /// rests: idle or gone.
    fn settle(&mut self, g: &mut Group, u: &mut Unstructured) {
        self.settling = true;
        for _ in 0..100_000 {
            if !self.later.is_empty() {
                self.deliver(g, 0, u);
            } else if let Some(pid) = self.procs.iter().find(|p| p.1.port.is_none() && !p.1.ended).map(|p| *p.0) {
                self.end(pid, ExitStatus::Code(0));
            } else if g.is_idle() && g.live.as_ref().is_none_or(|l| l.procs.iter().all(|p| p.pid.is_some())) {
                // Every process runs: what is left are health checks,
                // which come back forever.
                return;
            } else if let Some(t) = g.next_deadline() {
                self.now = self.now.max(t);
                self.feed(g, Event::Tick, u);
            } else {
                assert!(g.is_idle() || g.is_gone(), "stuck {} with nothing to wait for", g.phase_name());
                return;
            }
        }
        panic!("the group does not settle ({})", g.phase_name());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut shape = Shape::new(&mut u);
    let mut h = Host {
        now: Instant::now(),
        next_pid: 100,
        procs: BTreeMap::new(),
        reaping: None,
        later: Vec::new(),
        step: None,
        lb: None,
        bound: 0,
        busy: Vec::new(),
        settling: false,
    };
    let mut g = Group::new("web");
    h.reload(&mut g, &shape, &mut u);
    for _ in 0..OPS {
        if u.is_empty() {
            break;
        }
        match byte(&mut u) % 12 {
            0..=2 if !h.later.is_empty() => {
                let i = byte(&mut u) as usize % h.later.len();
                h.deliver(&mut g, i, &mut u);
            }
            0..=4 => {
                // Time passes: to the group's next deadline, or a while.
                let step = Duration::from_millis(10 * u64::from(byte(&mut u)));
                let due = g.next_deadline().filter(|_| step.is_zero());
                h.now = due.unwrap_or(h.now + step).max(h.now);
                if g.next_deadline().is_some_and(|t| t <= h.now) {
                    h.feed(&mut g, Event::Tick, &mut u);
                }
            }
            5 => {
                // A backend crashes, or a step ends by itself.
                let pids: Vec<(i32, bool)> =
                    h.procs.iter().filter(|p| !p.1.ended).map(|(&pid, p)| (pid, p.port.is_some())).collect();
                if let Some(&(pid, backend)) = pids.get(byte(&mut u) as usize % pids.len().max(1)) {
                    let code = if backend || fails(&mut u) { 1 } else { 0 };
                    h.end(pid, ExitStatus::Code(code));
                }
            }
            6 | 7 => {
                shape.change(&mut u);
                h.reload(&mut g, &shape, &mut u);
            }
            8 if g.is_idle() => h.feed(&mut g, Event::Retire, &mut u),
            8 => h.feed(&mut g, Event::Terminate, &mut u),
            9 => {
                shape.change(&mut u);
                h.take_over(&mut g, &shape);
            }
            10 => {
                // A start of any workset, in any phase, even onto live ports.
                let index = byte(&mut u) as usize % 6;
                h.start(&mut g, Event::Start { cfg: shape.config(), index }, &mut u);
            }
            _ => {
                // An exit no set has: ignored. During a bake, `rolld
                // promote` or `rolld revert` too (by the pids spawned so far).
                h.feed(&mut g, Event::Exited { pid: 99, status: ExitStatus::Code(0) }, &mut u);
                if g.phase_name() == "baking" {
                    let ev = if h.next_pid % 2 == 0 { Event::Promote } else { Event::Revert };
                    h.feed(&mut g, ev, &mut u);
                }
            }
        }
        h.check(&g);
    }
    h.settle(&mut g, &mut u);
    h.feed(&mut g, Event::Terminate, &mut u);
    h.settle(&mut g, &mut u);
    assert!(g.is_gone(), "stopped, yet {}", g.phase_name());
    assert!(h.procs.is_empty(), "after the stop, {:?} run", h.procs.keys().collect::<Vec<_>>());
});
