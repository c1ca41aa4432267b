//! The loop: sleeps in poll(2) on the signal pipe and the control socket
//! until the nearest group deadline (forever when idle), turns signals,
//! requests, child exits and deadlines into events for the groups, and
//! carries out the actions they return.

use crate::config::{self, Config, GroupConfig};
use crate::control::{self, Request};
use crate::group::{Action, Event, Group, Level, Outcome, fmt_duration, fmt_ports};
use crate::notify::Notifier;
use crate::signals::Signals;
use crate::state::{self, Entry};
use crate::{actions, log, process, smoke, sys, tcp};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Instant, SystemTime};

const ROLLD: &str = "rolld";

/// A group, the config it runs with (from the last valid read), and how
/// its last rollout ended.
struct Slot {
    group: Group,
    cfg: Rc<GroupConfig>,
    last: Option<(SystemTime, Outcome, String)>,
}

/// The rollouts begun by one reload (or the first start), one per group.
struct Round {
    first: bool,
    failed: bool,
}

struct Daemon {
    path: PathBuf,
    slots: Vec<Slot>,
    reload_pending: bool,
    exiting: bool,
    exit_code: u8,
    round: Option<Round>,
    /// Clients waiting for the next round to begin, and those of the
    /// round under way.
    waiting: Vec<UnixStream>,
    current: Vec<UnixStream>,
    notifier: Notifier,
    /// Processes taken over from a predecessor, watched by pidfd.
    watched: Vec<(i32, OwnedFd)>,
    state_path: PathBuf,
    /// The state file's text as last written, and start times by pid.
    state_text: String,
    starts: HashMap<i32, u64>,
}

/// Runs the daemon for the config at `path`; returns the exit code.
pub fn run(path: &Path, run_dir: Option<&Path>) -> u8 {
    if let Err(e) = sys::cloexec_from_3() {
        log::log(Level::Warn, ROLLD, None, &format!("cannot mark inherited descriptors close-on-exec: {e}"));
    }
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
    let socket = match control::run_dir(run_dir) {
        Ok(dir) => control::socket_path(&dir, &cfg.path),
        Err(e) => {
            log::error(ROLLD, &format!("control socket: {e}; nothing started"));
            return 1;
        }
    };
    let server = match control::Server::bind(&socket) {
        Ok(s) => s,
        Err(e) => {
            log::error(ROLLD, &format!("control socket: {e}; nothing started"));
            return 1;
        }
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error(ROLLD, &format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    if std::process::id() != 1
        && let Err(e) = sys::set_child_subreaper()
    {
        log::log(Level::Warn, ROLLD, None, &format!("cannot become a child subreaper: {e}"));
    }
    log::info(ROLLD, &format!("pid {} running {}", std::process::id(), cfg.path.display()));
    let mut d = Daemon {
        path: cfg.path.clone(),
        slots: Vec::new(),
        reload_pending: false,
        exiting: false,
        exit_code: 0,
        round: None,
        waiting: Vec::new(),
        current: Vec::new(),
        notifier: Notifier::from_env(),
        watched: Vec::new(),
        state_path: state::path_for(&socket),
        state_text: String::new(),
        starts: HashMap::new(),
    };
    d.take_over(&cfg);
    d.begin_round(cfg, true);
    loop {
        d.end_round_if_done();
        // A reload asked for during the round that just ended starts now,
        // before the loop sleeps.
        if d.reload_pending && !d.exiting && d.round.is_none() {
            d.reload_pending = false;
            d.reload();
            continue;
        }
        d.save_state();
        if d.exiting && d.slots.iter().all(|s| s.group.is_gone()) {
            break;
        }
        let timeout = d.next_deadline().map(|t| t.saturating_duration_since(Instant::now()));
        let mut fds = vec![signals.fd(), server.fd()];
        fds.extend(d.watched.iter().map(|(_, fd)| fd.as_fd()));
        let ready = match sys::poll_readable(&fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                // Look at the socket (non-blocking); take no pidfd for ended.
                log::error(ROLLD, &format!("poll: {e}"));
                (0..fds.len()).map(|i| i == 1).collect()
            }
        };
        drop(fds);
        let sigs = signals.take();
        d.reap();
        d.reap_watched(&ready[2..]);
        for sig in sigs {
            match sig {
                libc::SIGTERM | libc::SIGINT if !d.exiting => {
                    let name = if sig == libc::SIGTERM { "SIGTERM" } else { "SIGINT" };
                    log::info(ROLLD, &format!("{name}: stopping every set"));
                    d.shutdown();
                }
                libc::SIGHUP => d.request_reload("SIGHUP"),
                _ => {}
            }
        }
        if ready[1] {
            for (stream, req) in server.accept() {
                d.serve(stream, req);
            }
        }
        d.tick();
    }
    // Orphans handed to rolld (as PID 1 or subreaper) are reaped too.
    while let Ok(Some(_)) = sys::reap_any() {}
    if let Err(e) = std::fs::remove_file(&d.state_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::error(ROLLD, &format!("{}: {e}", d.state_path.display()));
    }
    log::info(ROLLD, &format!("rolld exiting ({})", d.exit_code));
    d.exit_code
}

impl Daemon {
    /// Takes over the processes a killed predecessor left running: its live
    /// sets become the live sets of this rolld (to be rolled over by the
    /// first round), anything else it ran is stopped. A recorded pid whose
    /// start time or process group differs is someone else's and is left
    /// alone.
    fn take_over(&mut self, cfg: &Config) {
        let entries = match state::read(&self.state_path) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                log::log(Level::Warn, ROLLD, None, &format!("state file: {e}"));
                return;
            }
        };
        let mut live: BTreeMap<String, (usize, Vec<(u16, i32)>)> = BTreeMap::new();
        let mut stale = Vec::new();
        for e in entries {
            if state::identity(e.pid) != Some((e.start, e.pid)) {
                continue;
            }
            if e.live && cfg.groups.iter().any(|g| g.name == e.group) {
                live.entry(e.group.clone()).or_insert((e.workset, Vec::new())).1.push((e.port, e.pid));
            } else {
                stale.push(e);
            }
        }
        self.stop_stale(cfg, &stale);
        for (name, (index, procs)) in live {
            let Some(gc) = cfg.groups.iter().find(|g| g.name == name) else { continue };
            let gc = Rc::new(gc.clone());
            let mut group = Group::new(&name);
            group.adopt(gc.clone(), index, &procs, Instant::now());
            for &(port, pid) in &procs {
                match sys::pidfd_open(pid) {
                    Ok(fd) => self.watched.push((pid, fd)),
                    Err(e) => log::log(Level::Warn, &name, Some(port), &format!("pidfd of pid {pid}: {e}")),
                }
            }
            let ports: Vec<u16> = procs.iter().map(|p| p.0).collect();
            let msg = format!("took over the live set {} of a previous rolld; rolling it over", fmt_ports(&ports));
            log::log(Level::Warn, &name, None, &msg);
            self.slots.push(Slot { group, cfg: gc, last: None });
        }
    }

    /// Stops processes of a predecessor that were not serving: stop signal,
    /// then SIGKILL after the stop timeout, waiting on pidfds.
    fn stop_stale(&self, cfg: &Config, stale: &[Entry]) {
        let mut waiting = Vec::new();
        let mut timeout = std::time::Duration::ZERO;
        for e in stale {
            let gc = cfg.groups.iter().find(|g| g.name == e.group);
            let sig = gc.map_or(libc::SIGTERM, |g| g.stop_signal);
            timeout = timeout.max(gc.map_or(std::time::Duration::from_secs(10), |g| g.timing.stop_timeout));
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

    /// Feeds the exits of taken-over processes whose pidfds are readable.
    fn reap_watched(&mut self, ready: &[bool]) {
        let mut i = 0;
        let mut gone = Vec::new();
        self.watched.retain(|(pid, _)| {
            let keep = !ready.get(i).copied().unwrap_or(false);
            i += 1;
            if !keep {
                gone.push(*pid);
            }
            keep
        });
        for pid in gone {
            if let Some(i) = self.slots.iter().position(|s| s.group.owns(pid)) {
                self.feed(i, Event::Exited { pid, status: sys::ExitStatus::Unknown });
            }
        }
    }

    /// Records the processes of every set in the state file, when they
    /// have changed since the last write.
    fn save_state(&mut self) {
        let mut entries = Vec::new();
        for s in &self.slots {
            let g = &s.group;
            let sets = [(g.live.as_ref(), true), (g.new.as_ref(), false), (g.retiring.as_ref(), false)];
            for (set, live) in sets {
                let Some(set) = set else { continue };
                for p in &set.procs {
                    let Some(pid) = p.pid else { continue };
                    let start = *self.starts.entry(pid).or_insert_with(|| state::identity(pid).map_or(0, |i| i.0));
                    entries.push(Entry { group: g.name.clone(), live, workset: set.index, port: p.port, pid, start });
                }
            }
        }
        self.starts.retain(|pid, _| entries.iter().any(|e| e.pid == *pid));
        let text = state::format(&entries);
        if text != self.state_text {
            if let Err(e) = state::write(&self.state_path, &text) {
                log::error(ROLLD, &format!("state file: {e}"));
            }
            self.state_text = text;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.group.next_deadline()).min()
    }

    fn request_reload(&mut self, from: &str) {
        if self.exiting {
            return;
        }
        if self.round.is_none() {
            log::info(ROLLD, &format!("{from}: reloading the config"));
        } else if !self.reload_pending {
            log::info(ROLLD, &format!("{from} during a rollout: another rollout will follow this one"));
        }
        self.reload_pending = true;
    }

    fn serve(&mut self, mut stream: UnixStream, req: Request) {
        match req {
            Request::Reload if self.exiting => {
                let _ = stream.write_all(b"error rolld is stopping\n");
            }
            Request::Reload => {
                if stream.write_all(b"queued\n").is_ok() {
                    self.waiting.push(stream);
                }
                self.request_reload("reload request");
            }
            Request::Status { json } => {
                let text = if json { self.status_json() } else { self.status_text() };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
                let _ = stream.write_all(text.as_bytes());
            }
        }
    }

    /// Reads the config again; starts a round if it is valid.
    fn reload(&mut self) {
        self.notifier.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", sys::monotonic_usec()));
        match config::load(&self.path) {
            Ok(cfg) => self.begin_round(cfg, false),
            Err(errs) => {
                self.current.append(&mut self.waiting);
                for e in &errs {
                    log::error(ROLLD, e);
                    control::broadcast(&mut self.current, &format!("log {e}"));
                }
                let msg = format!("{} problem(s) in the config: nothing changed", errs.len());
                log::error(ROLLD, &msg);
                control::broadcast(&mut self.current, &format!("log {msg}"));
                control::broadcast(&mut self.current, "end invalid");
                self.current.clear();
                self.notify_ready();
            }
        }
    }

    /// Starts the groups of a valid config: a first start for a new group,
    /// a rollout for a running one, a stop for one that is gone.
    fn begin_round(&mut self, cfg: Config, first: bool) {
        self.round = Some(Round { first, failed: false });
        self.current.append(&mut self.waiting);
        for i in 0..self.slots.len() {
            if !cfg.groups.iter().any(|c| c.name == self.slots[i].group.name) {
                log::info(&self.slots[i].group.name, "no longer in the config: stopping it");
                self.feed(i, Event::Terminate);
            }
        }
        for gc in cfg.groups {
            let gc = Rc::new(gc);
            let i = match self.slots.iter().position(|s| s.group.name == gc.name) {
                Some(i) => {
                    self.slots[i].cfg = gc.clone();
                    i
                }
                None => {
                    self.slots.push(Slot { group: Group::new(&gc.name), cfg: gc.clone(), last: None });
                    self.slots.len() - 1
                }
            };
            let (first, avoid) = match &self.slots[i].group.live {
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

    /// Once every group of the round is idle again, tells its clients and
    /// systemd how it went.
    fn end_round_if_done(&mut self) {
        let busy = self.slots.iter().any(|s| !s.group.is_idle() && !s.group.is_gone());
        if busy || self.exiting {
            return;
        }
        let Some(round) = self.round.take() else { return };
        let end = if round.failed { "end rolled-back" } else { "end ok" };
        control::broadcast(&mut self.current, end);
        self.current.clear();
        if !round.first || !round.failed {
            self.notify_ready();
        }
    }

    fn notify_ready(&self) {
        let live: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| s.group.live.as_ref().map(|l| format!("{} on {}", s.group.name, fmt_ports(&l.ports()))))
            .collect();
        self.notifier.send(&format!("READY=1\nSTATUS=live: {}", live.join("; ")));
    }

    fn shutdown(&mut self) {
        self.exiting = true;
        self.reload_pending = false;
        self.notifier.send("STOPPING=1");
        self.current.append(&mut self.waiting);
        control::broadcast(&mut self.current, "log rolld is stopping");
        control::broadcast(&mut self.current, "end stopped");
        self.current.clear();
        for i in 0..self.slots.len() {
            self.feed(i, Event::Terminate);
        }
    }

    fn reap(&mut self) {
        loop {
            match sys::reap_any() {
                Ok(Some((pid, status))) => {
                    if let Some(i) = self.slots.iter().position(|s| s.group.owns(pid)) {
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
        for i in 0..self.slots.len() {
            if self.slots[i].group.next_deadline().is_some_and(|t| t <= now) {
                self.feed(i, Event::Tick);
            }
        }
        // A group removed from the config is dropped once it has stopped.
        if !self.exiting {
            self.slots.retain(|s| !s.group.is_gone());
        }
    }

    /// Gives `ev` to group `i` and carries out what it asks, feeding each
    /// result back, until it asks for nothing more.
    fn feed(&mut self, i: usize, ev: Event) {
        let mut queue: VecDeque<Action> = self.slots[i].group.handle(Instant::now(), ev).into();
        while let Some(action) = queue.pop_front() {
            if let Some(ev) = self.perform(i, action) {
                queue.extend(self.slots[i].group.handle(Instant::now(), ev));
            }
        }
    }

    /// Logs a line for group `i`, and passes it to the clients waiting on
    /// the round.
    fn say(&mut self, i: usize, level: Level, port: Option<u16>, msg: &str) {
        let name = &self.slots[i].group.name;
        log::log(level, name, port, msg);
        let who = port.map_or(name.clone(), |p| format!("{name}:{p}"));
        control::broadcast(&mut self.current, &format!("log {who} {msg}"));
    }

    fn perform(&mut self, i: usize, action: Action) -> Option<Event> {
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
                Some(Event::Reverted(actions::run_all(&cfg, &ports, &old_ports)))
            }
            Action::Count { ports } => Some(Event::Connections(tcp::connections(&ports))),
            // A member killed after its leader is a zombie child of rolld
            // (the subreaper) until the loop reaps it; the next look, 20 ms
            // later, no longer sees it.
            Action::CheckGroups { pgids } => {
                Some(Event::GroupsAlive(pgids.into_iter().filter(|&p| state::group_alive(p)).collect()))
            }
            Action::Signal { pgid, sig } => {
                if let Err(e) = sys::kill_group(pgid, sig) {
                    let msg = format!("cannot send signal {sig} to process group {pgid}: {e}");
                    self.say(i, Level::Error, None, &msg);
                }
                None
            }
            Action::Log { level, port, msg } => {
                self.say(i, level, port, &msg);
                None
            }
            Action::Phase { name, took } => {
                let line = format!("phase {} {name} {}", self.slots[i].group.name, fmt_duration(took));
                log::info(&self.slots[i].group.name, &format!("{name} done in {}", fmt_duration(took)));
                control::broadcast(&mut self.current, &line);
                None
            }
            Action::Done { outcome, summary } => {
                self.done(i, outcome, summary);
                None
            }
        }
    }

    fn done(&mut self, i: usize, outcome: Outcome, summary: String) {
        let (level, port, word) = match &outcome {
            Outcome::Ok => (Level::Info, None, "ok"),
            Outcome::RolledBack { port, .. } => (Level::Warn, *port, "rolled-back"),
            Outcome::StartFailed { port, .. } => (Level::Error, *port, "start-failed"),
        };
        log::log(level, &self.slots[i].group.name, port, &summary);
        let name = self.slots[i].group.name.clone();
        control::broadcast(&mut self.current, &format!("done {name} {word} {summary}"));
        if let Some((path, lines)) = port.and_then(|p| process::stderr_tail(&self.slots[i].cfg, p, 5))
            && !lines.is_empty()
        {
            self.say(i, level, port, &format!("last lines of {}:", path.display()));
            for l in lines {
                self.say(i, level, port, &format!("  | {l}"));
            }
        }
        if let (Some(r), false) = (self.round.as_mut(), outcome == Outcome::Ok) {
            r.failed = true;
        }
        if matches!(outcome, Outcome::StartFailed { .. }) && !self.exiting {
            self.exit_code = 1;
            self.shutdown();
        }
        self.slots[i].last = Some((SystemTime::now(), outcome, summary));
    }

    fn status_text(&self) -> String {
        let mut out = format!("rolld pid {}  config {}\n", std::process::id(), self.path.display());
        out.push_str(&format!(
            "{:<16} {:<13} {:<7} {:>5} {:>8} {:>9} {:>8}\n",
            "GROUP", "PHASE", "WORKSET", "PORT", "PID", "UPTIME", "RESTARTS"
        ));
        let now = Instant::now();
        for s in &self.slots {
            let g = &s.group;
            let Some(live) = &g.live else {
                out.push_str(&format!("{:<16} {:<13} -\n", g.name, g.phase_name()));
                continue;
            };
            for p in &live.procs {
                let pid = p.pid.map_or("-".to_string(), |p| p.to_string());
                let up =
                    p.pid.map_or("-".to_string(), |_| fmt_uptime(now.saturating_duration_since(p.started).as_secs()));
                out.push_str(&format!(
                    "{:<16} {:<13} {:<7} {:>5} {:>8} {:>9} {:>8}\n",
                    g.name,
                    g.phase_name(),
                    live.index,
                    p.port,
                    pid,
                    up,
                    p.restarts
                ));
            }
            if let Some(new) = &g.new {
                out.push_str(&format!("{:<16} rollout to workset {} on {}\n", "", new.index, fmt_ports(&new.ports())));
            }
            if let Some((at, _, summary)) = &s.last {
                out.push_str(&format!("{:<16} last: {} {summary}\n", "", log::timestamp(*at)));
            }
        }
        out
    }

    /// The JSON status; its schema is documented in the README.
    fn status_json(&self) -> String {
        use control::json_str;
        let now = Instant::now();
        let ports = |p: &[u16]| format!("[{}]", fmt_ports(p));
        let groups: Vec<String> = self
            .slots
            .iter()
            .map(|s| {
                let g = &s.group;
                let live = match &g.live {
                    None => "null".to_string(),
                    Some(l) => {
                        let procs: Vec<String> = l
                            .procs
                            .iter()
                            .map(|p| {
                                let up = now.saturating_duration_since(p.started).as_secs_f64();
                                format!(
                                    "{{\"port\":{},\"pid\":{},\"uptime_seconds\":{},\"restarts\":{}}}",
                                    p.port,
                                    p.pid.map_or("null".into(), |v| v.to_string()),
                                    if p.pid.is_some() { format!("{up:.3}") } else { "null".into() },
                                    p.restarts
                                )
                            })
                            .collect();
                        format!(
                            "{{\"workset\":{},\"ports\":{},\"processes\":[{}]}}",
                            l.index,
                            ports(&l.ports()),
                            procs.join(",")
                        )
                    }
                };
                let rollout = match &g.new {
                    Some(n) => format!("{{\"workset\":{},\"ports\":{}}}", n.index, ports(&n.ports())),
                    None => "null".into(),
                };
                let last = match &s.last {
                    None => "null".to_string(),
                    Some((at, outcome, summary)) => {
                        let (word, reason) = match outcome {
                            Outcome::Ok => ("ok", "null".to_string()),
                            Outcome::RolledBack { reason, .. } => ("rolled-back", json_str(reason)),
                            Outcome::StartFailed { reason, .. } => ("start-failed", json_str(reason)),
                        };
                        format!(
                            "{{\"outcome\":\"{word}\",\"at\":{},\"reason\":{reason},\"summary\":{}}}",
                            json_str(&log::timestamp(*at)),
                            json_str(summary)
                        )
                    }
                };
                format!(
                    "{{\"name\":{},\"phase\":\"{}\",\"live\":{live},\"rollout\":{rollout},\"last_rollout\":{last}}}",
                    json_str(&g.name),
                    g.phase_name()
                )
            })
            .collect();
        format!(
            "{{\"version\":1,\"pid\":{},\"config\":{},\"reload_pending\":{},\"groups\":[{}]}}\n",
            std::process::id(),
            json_str(&self.path.display().to_string()),
            self.reload_pending,
            groups.join(",")
        )
    }
}

fn fmt_uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
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
        let msg = format!("workset {index}: {}; trying the next one", held.join(", "));
        log::log(Level::Warn, &cfg.name, Some(busy[0].0), &msg);
        busy_all.extend(held);
    }
    Err(format!("no free workset: {}", busy_all.join(", ")))
}
