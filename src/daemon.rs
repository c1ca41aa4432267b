//! The loop: sleeps in poll(2) until something happens or the nearest
//! deadline (forever when idle), turns signals, requests, child exits,
//! results of work done beside it and deadlines into events for the
//! groups, and carries out the actions they return.
//!
//! It never waits for anything else. What can take time runs beside it
//! (`work`: worker threads for checks, renders and counts; child processes
//! for run_proc) and comes back as an event; control clients are served
//! without blocking (`session`). So SIGTERM, `rolld status` and every other
//! group stay live whatever one group is doing.

use crate::config::{self, Action as Step, Config, GroupConfig};
use crate::control::{self, Request};
use crate::group::Set;
use crate::group::{Action, Event, Group, Level, Outcome, Tally, fmt_duration, fmt_ports};
use crate::keeper::{self, Keeper};
use crate::notify::Notifier;
use crate::output::Turn;
use crate::pool::Pool;
use crate::session::{ClientId, Sessions};
use crate::signals::Signals;
use crate::state::{self, Recorder};
use crate::status::{self, Last, Snapshot, View};
use crate::takeover::{Watch, Watched};
use crate::work::{Done, Owner, Work};
use crate::{actions, haproxy, log, plan, process, smoke, sys, takeover, tcp};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const ROLLD: &str = "rolld";
/// `reload` clients that may wait on rounds at once.
const MAX_FOLLOWERS: usize = 64;
/// A read of the config again (on SIGHUP or `rolld reload`) is given up
/// after this long: the reload fails and the next one may start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads given up that may still hold a worker each; past this many, a
/// reload is refused until one returns.
const MAX_STUCK_LOADS: usize = 4;
/// A keeper of the sockets that ends sooner than this after its start is
/// not started again until the next round.
const KEEPER_MIN_LIFE: Duration = Duration::from_secs(1);

/// A group, the config it runs with (from the last valid read), and how
/// its last rollout ended. `id` tags the work done for it.
struct Slot {
    id: Owner,
    group: Group,
    cfg: Arc<GroupConfig>,
    last: Option<Last>,
    /// Which of its after_start steps may write its output now.
    turn: Turn,
    /// A `listen:` group's sockets, and the ones new connections go to.
    pool: Option<Arc<Pool>>,
    routed: Vec<usize>,
    /// What a `haproxy:` group's HAProxy has been asked.
    lb: Arc<haproxy::Memory>,
}

/// The rollouts begun by one reload (or the first start), one per group.
struct Round {
    first: bool,
    failed: bool,
}

struct Daemon {
    path: PathBuf,
    slots: Vec<Slot>,
    next_id: Owner,
    reload_pending: bool,
    /// The config is being read again, beside the loop: that read's
    /// number, and when it is given up.
    loading: Option<(u64, Instant)>,
    /// Reads of the config started so far.
    loads: u64,
    /// Reads given up that have not returned (each holds a worker).
    stuck_loads: usize,
    exiting: bool,
    exit_code: u8,
    round: Option<Round>,
    /// Clients waiting for the next round to begin, and those following
    /// the round under way.
    waiting: Vec<ClientId>,
    current: Vec<ClientId>,
    sessions: Sessions,
    work: Work,
    notifier: Notifier,
    /// Processes taken over from a predecessor, watched by pidfd (or
    /// through /proc, every `takeover::POLL_INTERVAL`, without one).
    watched: Vec<Watched>,
    next_poll: Option<Instant>,
    state: Recorder,
    /// The keeper of the `listen:` groups' sockets (see `keeper`); the
    /// keepers of a predecessor, killed once it holds what they held.
    keeper: Option<Keeper>,
    old_keepers: Vec<Keeper>,
    previous_keepers: Vec<keeper::Previous>,
    /// A keeper ended within `KEEPER_MIN_LIFE` of its start: none is
    /// started again until the next round.
    keeper_given_up: bool,
}

/// Runs the daemon for the config at `path`; returns the exit code.
pub fn run(path: &Path, run_dir: Option<&Path>) -> u8 {
    // Before anything is opened: a closed 0, 1 or 2 must not become the
    // control socket or a log file.
    sys::one_malloc_arena();
    let std_fds = sys::ensure_std_fds();
    if let Err(e) = std_fds {
        log::log(Level::Warn, ROLLD, None, &format!("cannot open /dev/null on a closed descriptor 0-2: {e}"));
    }
    match sys::raise_nofile() {
        Ok(before) => process::set_child_nofile(before),
        Err(e) => log::log(Level::Warn, ROLLD, None, &format!("cannot raise the open-files limit: {e}")),
    }
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
            log::error(ROLLD, &format!("{}: control socket: {e}; nothing started", cfg.path.display()));
            return 1;
        }
    };
    let server = match control::Server::bind(&socket) {
        Ok(s) => s,
        Err(e) => {
            log::error(ROLLD, &format!("{}: {e}; nothing started", cfg.path.display()));
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
    let work = match Work::new() {
        Ok(w) => w,
        Err(e) => {
            log::error(ROLLD, &format!("cannot set up the worker pipe: {e}"));
            return 1;
        }
    };
    if std::process::id() != 1
        && let Err(e) = sys::set_child_subreaper()
    {
        log::log(Level::Warn, ROLLD, None, &format!("cannot become a child subreaper: {e}"));
    }
    log::info(ROLLD, &format!("pid {} running {}", std::process::id(), cfg.path.display()));
    let state_path = state::path_for(&socket);
    let taken = takeover::take_over(&state_path, &cfg);
    let mut d = Daemon {
        path: cfg.path.clone(),
        slots: Vec::new(),
        next_id: 0,
        reload_pending: false,
        loading: None,
        loads: 0,
        stuck_loads: 0,
        exiting: false,
        exit_code: 0,
        round: None,
        waiting: Vec::new(),
        current: Vec::new(),
        sessions: Sessions::default(),
        work,
        notifier: Notifier::from_env(),
        watched: taken.watched,
        next_poll: Some(Instant::now()),
        state: Recorder::new(state_path),
        keeper: None,
        old_keepers: Vec::new(),
        previous_keepers: taken.keepers,
        keeper_given_up: false,
    };
    for group in taken.groups {
        let Some(gc) = cfg.groups.iter().find(|g| g.name == group.name) else { continue };
        d.add_slot(group, Arc::new(gc.clone()));
    }
    for (name, pool) in taken.pools {
        d.adopt_pool(&cfg, name, pool);
    }
    let known: Vec<i32> = d.previous_keepers.iter().map(|k| k.pid).collect();
    for pid in keeper::kill_strays(&d.state.path, &known) {
        let msg = format!("killed pid {pid}, a keeper of the sockets that a previous rolld started and never recorded");
        log::log(Level::Warn, ROLLD, None, &msg);
    }
    d.begin_round(cfg, true);
    loop {
        d.end_round_if_done();
        // A reload asked for during the round that just ended starts now,
        // before the loop sleeps.
        if d.reload_pending && !d.exiting && d.round.is_none() && d.loading.is_none() {
            d.reload_pending = false;
            d.reload();
            continue;
        }
        d.sync_keeper();
        let _ = d.save_state();
        if d.exiting && d.slots.iter().all(|s| s.group.is_gone()) {
            break;
        }
        d.wait_and_dispatch(&mut signals, &server);
    }
    for k in d.keeper.take().into_iter().chain(d.old_keepers.drain(..)) {
        match k.kill() {
            Ok(()) => sys::reap(k.pid),
            Err(e) => log::error(ROLLD, &format!("cannot stop the keeper of the sockets, pid {}: {e}", k.pid)),
        }
    }
    d.kill_previous_keepers();
    // Orphans handed to rolld (as PID 1 or subreaper) are reaped too.
    while let Ok(Some(_)) = sys::reap_any() {}
    if let Err(e) = d.state.remove() {
        log::error(ROLLD, &format!("state file: {e}"));
    }
    log::info(ROLLD, &format!("rolld exiting ({})", d.exit_code));
    d.exit_code
}

impl Daemon {
    /// Records the groups' processes, and every keeper that runs: this
    /// rolld's, those it is replacing, and its predecessor's.
    fn save_state(&mut self) -> Result<(), ()> {
        let mut held = self.keeper.as_ref().map(Keeper::held).unwrap_or_default();
        held.extend(self.old_keepers.iter().flat_map(Keeper::held));
        held.extend(self.previous_keepers.iter().flat_map(|k| k.held.iter().cloned()));
        self.state.save(self.slots.iter().map(|s| &s.group), held).map_err(|e| {
            log::error(ROLLD, &format!("state file: {e}"));
        })
    }

    /// Gives group `name` the sockets taken back from a predecessor's
    /// keeper, routed to its live set (else the set it drains, else its
    /// first bank) until its first round.
    fn adopt_pool(&mut self, cfg: &Config, name: String, pool: Pool) {
        let i = match self.slots.iter().position(|s| s.group.name == name) {
            Some(i) => i,
            None => {
                let Some(gc) = cfg.groups.iter().find(|g| g.name == name) else { return };
                self.add_slot(Group::new(&name), Arc::new(gc.clone()))
            }
        };
        let slot = &mut self.slots[i];
        let g = &slot.group;
        let set = g.live.as_ref().or(g.sets().into_iter().find(|(_, r)| *r == state::Role::Drain).map(|(s, _)| s));
        let mut routed: Vec<usize> =
            set.map(|s| s.procs.iter().filter_map(|p| pool.index(p.port)).collect()).unwrap_or_default();
        if routed.is_empty() {
            routed = (0..pool.slots()).collect();
        }
        slot.routed = routed;
        slot.pool = Some(Arc::new(pool));
    }

    /// Keeps the keeper holding exactly the pools of the groups: a new
    /// keeper is started whenever they change (a group with `listen:` is
    /// added or dropped). The keepers before it (this rolld's, or its
    /// predecessor's) are killed only once the state file names the new
    /// one, so that a SIGKILL at any point leaves a keeper it names.
    fn sync_keeper(&mut self) {
        let pools: Vec<(String, Arc<Pool>)> =
            self.slots.iter().filter_map(|s| Some((s.group.name.clone(), s.pool.clone()?))).collect();
        let kept = match &self.keeper {
            Some(k) => k.keeps(&pools),
            None => pools.is_empty(),
        };
        if !kept && !self.keeper_given_up {
            self.replace_keeper(pools.clone());
        }
        let covered = match &self.keeper {
            Some(k) => k.covers(&pools),
            None => pools.is_empty(),
        };
        if self.old_keepers.is_empty() && (self.previous_keepers.is_empty() || !covered) {
            return;
        }
        if self.save_state().is_err() {
            return;
        }
        for k in self.old_keepers.drain(..) {
            if let Err(e) = k.kill() {
                log::error(ROLLD, &format!("cannot stop the previous keeper of the sockets, pid {}: {e}", k.pid));
            }
        }
        if covered {
            self.kill_previous_keepers();
        }
        let _ = self.save_state();
    }

    /// Starts a keeper of `pools` in place of the one running, if any (or
    /// retires it, when no group has `listen:` any more).
    fn replace_keeper(&mut self, pools: Vec<(String, Arc<Pool>)>) {
        if pools.is_empty() {
            self.old_keepers.extend(self.keeper.take());
            return;
        }
        let names: Vec<String> = pools.iter().map(|p| p.0.clone()).collect();
        let names = names.join(", ");
        let failed = match keeper::takeback_blocked() {
            Some(why) => why,
            None => match Keeper::spawn(pools.clone(), &self.state.path) {
                Ok(k) => {
                    let msg = format!(
                        "pid {} keeps the sockets of {names} too: should rolld be killed, they stay as they are for \
                         the next rolld",
                        k.pid
                    );
                    log::info(ROLLD, &msg);
                    self.old_keepers.extend(self.keeper.replace(k));
                    return;
                }
                Err(e) => format!("cannot start it: {e}"),
            },
        };
        let msg = format!(
            "no keeper of the sockets of {names}: {failed}; should rolld be killed, a successor could not take them \
             back (until the next reload)"
        );
        log::log(Level::Warn, ROLLD, None, &msg);
        self.keeper_given_up = true;
        // A keeper that holds a pool no longer wanted would keep its port
        // listening with nobody to serve it.
        if self.keeper.as_ref().is_some_and(|k| !k.within(&pools)) {
            self.old_keepers.extend(self.keeper.take());
        }
    }

    fn kill_previous_keepers(&mut self) {
        for k in self.previous_keepers.drain(..) {
            if let Err(e) = k.kill() {
                let msg = format!("cannot stop the keeper of the sockets of a previous rolld, pid {}: {e}", k.pid);
                log::error(ROLLD, &msg);
            }
        }
    }

    fn add_slot(&mut self, group: Group, cfg: Arc<GroupConfig>) -> usize {
        self.next_id += 1;
        self.slots.push(Slot {
            id: self.next_id,
            group,
            cfg,
            last: None,
            turn: Turn::default(),
            pool: None,
            routed: Vec::new(),
            lb: Arc::default(),
        });
        self.slots.len() - 1
    }

    /// One turn of the loop: the one wait, in poll(2), then every event
    /// that woke it.
    fn wait_and_dispatch(&mut self, signals: &mut Signals, server: &control::Server) {
        let polls = self.watched.iter().any(|w| matches!(w.1, Watch::Poll(_)));
        let deadline = self
            .slots
            .iter()
            .filter_map(|s| s.group.next_deadline())
            .chain(self.sessions.next_deadline())
            .chain(self.loading.map(|(_, deadline)| deadline))
            .chain(self.next_poll.filter(|_| polls))
            .min();
        let timeout = deadline.map(|t| t.saturating_duration_since(Instant::now()));
        let listen = if self.sessions.accepting(Instant::now()) { libc::POLLIN } else { 0 };
        let mut fds: Vec<(BorrowedFd<'_>, i16)> =
            vec![(signals.fd(), libc::POLLIN), (server.fd(), listen), (self.work.fd(), libc::POLLIN)];
        let watched_at = fds.len();
        let watched_pids: Vec<i32> =
            self.watched.iter().filter(|w| matches!(w.1, Watch::Pidfd(_))).map(|w| w.0).collect();
        fds.extend(self.watched.iter().filter_map(|w| match &w.1 {
            Watch::Pidfd(fd) => Some((fd.as_fd(), libc::POLLIN)),
            Watch::Poll(_) => None,
        }));
        let steps_at = fds.len();
        let steps = self.work.step_fds();
        let step_pids: Vec<i32> = steps.iter().map(|(pid, _)| *pid).collect();
        fds.extend(steps.into_iter().map(|(_, fd)| (fd, libc::POLLIN)));
        let sessions_at = fds.len();
        let clients = self.sessions.fds();
        let client_ids: Vec<ClientId> = clients.iter().map(|c| c.0).collect();
        fds.extend(clients.into_iter().map(|(_, fd, ev)| (fd, ev)));
        let revents = match sys::poll(&fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                log::error(ROLLD, &format!("poll: {e}"));
                vec![0; fds.len()]
            }
        };
        drop(fds);
        let now = Instant::now();
        let sigs = signals.take();
        for (pid, rev) in step_pids.iter().zip(&revents[steps_at..sessions_at]) {
            if *rev != 0 {
                self.work.read_step(*pid);
            }
        }
        self.reap();
        let mut gone: Vec<i32> = watched_pids
            .iter()
            .zip(&revents[watched_at..steps_at])
            .filter(|(_, r)| **r != 0)
            .map(|(p, _)| *p)
            .collect();
        if polls && self.next_poll.is_none_or(|t| t <= now) {
            self.next_poll = Some(now + takeover::POLL_INTERVAL);
            gone.extend(self.watched.iter().filter_map(|(pid, w)| match w {
                Watch::Poll(start) if takeover::ended(*pid, *start) => Some(*pid),
                _ => None,
            }));
        }
        self.reap_watched(&gone);
        for done in self.work.take() {
            match done {
                Done::Group(owner, ev) => {
                    if let Some(i) = self.slots.iter().position(|s| s.id == owner) {
                        self.feed(i, ev);
                    }
                }
                Done::Config(n, cfg) => self.loaded(n, cfg),
            }
        }
        for sig in sigs {
            match sig {
                libc::SIGTERM | libc::SIGINT if !self.exiting => {
                    let name = if sig == libc::SIGTERM { "SIGTERM" } else { "SIGINT" };
                    log::info(ROLLD, &format!("{name}: stopping every set"));
                    self.shutdown();
                }
                libc::SIGHUP => self.request_reload("SIGHUP"),
                _ => {}
            }
        }
        // By client id: a broadcast, a reap or a signal above may have
        // removed clients since the poll.
        let polled: Vec<(ClientId, i16)> = client_ids.into_iter().zip(revents[sessions_at..].iter().copied()).collect();
        for (id, req) in self.sessions.serve(&polled, now) {
            self.serve(id, req);
        }
        if revents[1] & libc::POLLIN != 0 {
            self.sessions.accept(server.listener(), now);
        }
        self.sessions.expire(now);
        self.load_expired(now);
        self.tick();
    }

    /// Feeds the exits of taken-over processes seen to end. Each one's
    /// watch goes only after: the SIGKILL of what is left of its group is
    /// sent through it.
    fn reap_watched(&mut self, gone: &[i32]) {
        for &pid in gone {
            if let Some(i) = self.slots.iter().position(|s| s.group.owns(pid)) {
                self.feed(i, Event::Exited { pid, status: sys::ExitStatus::Unknown });
            }
        }
        self.watched.retain(|(pid, _)| !gone.contains(pid));
    }

    fn request_reload(&mut self, from: &str) {
        if self.exiting {
            return;
        }
        if self.round.is_none() && self.loading.is_none() {
            log::info(ROLLD, &format!("{from}: reloading the config"));
        } else if !self.reload_pending {
            let during = if self.loading.is_some() { "while the config is read" } else { "during a rollout" };
            log::info(ROLLD, &format!("{from} {during}: another rollout will follow this one"));
        }
        self.reload_pending = true;
    }

    fn serve(&mut self, id: ClientId, req: Request) {
        let now = Instant::now();
        match req {
            Request::Reload if self.exiting => {
                self.sessions.send(id, "error rolld is stopping");
                self.sessions.close(id, now);
            }
            Request::Reload if self.waiting.len() + self.current.len() >= MAX_FOLLOWERS => {
                let msg = format!("error {MAX_FOLLOWERS} reload clients are already waiting; try again later");
                log::log(
                    Level::Warn,
                    ROLLD,
                    None,
                    &format!("reload request refused: {MAX_FOLLOWERS} clients already wait"),
                );
                self.sessions.send(id, &msg);
                self.sessions.close(id, now);
            }
            Request::Reload => {
                self.sessions.follow(id);
                self.sessions.send(id, "queued");
                self.waiting.push(id);
                self.request_reload("reload request");
            }
            Request::EndBake { revert } => {
                let (ev, cmd, word) = if revert {
                    (Event::Revert, "revert", "reverted")
                } else {
                    (Event::Promote, "promote", "promoted")
                };
                let mut ended = Vec::new();
                for i in 0..self.slots.len() {
                    if let Some(b) = self.slots[i].group.baking() {
                        ended.push(format!("ok {}: bake of {} {word}", self.slots[i].group.name, fmt_ports(&b.ports)));
                        let msg = format!("rolld {cmd}: ending the bake of {}", fmt_ports(&b.ports));
                        self.say(i, Level::Info, None, &msg);
                        self.feed(i, ev.clone());
                    }
                }
                if ended.is_empty() {
                    self.sessions.send(id, "none no group is baking a release");
                }
                for line in ended {
                    self.sessions.send(id, &line);
                }
                self.sessions.close(id, now);
            }
            Request::Status { json } => {
                let snap = Snapshot {
                    pid: std::process::id(),
                    config: &self.path,
                    // A reload whose config is still being read has not
                    // begun either.
                    reload_pending: self.reload_pending || self.loading.is_some(),
                    now,
                    groups: self.slots.iter().map(|s| View { group: &s.group, last: s.last.as_ref() }).collect(),
                };
                if json {
                    self.sessions.send(id, &status::json(&snap));
                } else {
                    for line in status::text(&snap) {
                        self.sessions.send(id, &line);
                    }
                }
                self.sessions.close(id, now);
            }
        }
    }

    /// Sends `line` to the clients following the round.
    fn broadcast(&mut self, line: &str) {
        for &id in &self.current {
            self.sessions.send(id, line);
        }
        let sessions = &self.sessions;
        self.current.retain(|id| sessions.is_open(*id));
    }

    /// Tells the round's clients how it ended, and lets them go.
    fn end_clients(&mut self, end: &str) {
        self.broadcast(end);
        let now = Instant::now();
        for id in std::mem::take(&mut self.current) {
            self.sessions.close(id, now);
        }
    }

    /// Reads the config again, on a worker: a config file, a template or a
    /// user lookup that takes time does not hold the loop. The clients
    /// waiting so far follow this reload; those who come while it is read
    /// wait for the next one, which reads their change.
    fn reload(&mut self) {
        self.notifier.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", sys::monotonic_usec()));
        self.current.append(&mut self.waiting);
        if self.stuck_loads >= MAX_STUCK_LOADS {
            let why = format!(
                "{MAX_STUCK_LOADS} reads of the config given up have still not returned: \
                 no reload until one does"
            );
            return self.reload_failed(&why);
        }
        self.loads += 1;
        self.loading = Some((self.loads, Instant::now() + LOAD_TIMEOUT));
        self.work.load(self.loads, self.path.clone());
    }

    /// The config read by `reload` number `n`: a round starts if it is
    /// valid. A read given up has its answer dropped.
    fn loaded(&mut self, n: u64, cfg: Result<Config, Vec<String>>) {
        if self.exiting {
            return;
        }
        if self.loading.is_none_or(|(current, _)| current != n) {
            self.stuck_loads = self.stuck_loads.saturating_sub(1);
            log::info(ROLLD, "a read of the config given up has returned; its result is dropped");
            return;
        }
        self.loading = None;
        match cfg {
            Ok(cfg) => self.begin_round(cfg, false),
            Err(errs) => {
                for e in &errs {
                    log::error(ROLLD, e);
                    self.broadcast(&format!("log {e}"));
                }
                self.reload_failed(&format!("{} problem(s) in the config", errs.len()));
            }
        }
    }

    /// Gives up a read of the config that has taken `LOAD_TIMEOUT`.
    fn load_expired(&mut self, now: Instant) {
        if self.loading.is_some_and(|(_, deadline)| deadline <= now) {
            self.loading = None;
            self.stuck_loads += 1;
            let why = format!(
                "reading the config took more than {}s (a file or a user lookup that does not answer?)",
                LOAD_TIMEOUT.as_secs()
            );
            self.reload_failed(&why);
        }
    }

    /// Ends a reload that starts no round: nothing changed.
    fn reload_failed(&mut self, why: &str) {
        let msg = format!("{why}: nothing changed");
        log::error(ROLLD, &msg);
        self.broadcast(&format!("log {msg}"));
        self.end_clients("end invalid");
        self.notify_ready();
    }

    /// Starts the groups of a valid config: a first start for a new group,
    /// a rollout for a running one, a drain and stop for one that is gone.
    fn begin_round(&mut self, cfg: Config, first: bool) {
        self.round = Some(Round { first, failed: false });
        self.keeper_given_up = false;
        for w in config::warnings(&cfg.groups, config::ephemeral_range()) {
            log::log(Level::Warn, ROLLD, None, &w);
            self.broadcast(&format!("log warning: {w}"));
        }
        for i in 0..self.slots.len() {
            if !cfg.groups.iter().any(|c| c.name == self.slots[i].group.name) {
                self.feed(i, Event::Retire);
            }
        }
        for gc in cfg.groups {
            let gc = Arc::new(gc);
            let i = match self.slots.iter().position(|s| s.group.name == gc.name) {
                Some(i) => {
                    self.slots[i].cfg = gc.clone();
                    i
                }
                None => self.add_slot(Group::new(&gc.name), gc.clone()),
            };
            if let Err(reason) = self.open_pool(i, &gc) {
                if self.slots[i].group.is_idle() {
                    self.feed(i, Event::StartRefused(reason));
                } else {
                    log::log(Level::Warn, &gc.name, None, &reason);
                }
                continue;
            }
            if !self.slots[i].group.is_idle() {
                // A set taken over while it drained, or a heal: it ends
                // first, and the rollout follows as another round, which the
                // clients of this one wait for.
                let msg =
                    "busy (draining the set of a previous rolld, or healing a slot); this group rolls once that ends";
                log::log(Level::Info, &gc.name, None, msg);
                self.reload_pending = true;
                self.waiting.append(&mut self.current);
                continue;
            }
            // The live set, by its ports: `plan` finds them in `gc`.
            let live = self.slots[i].group.live.as_ref().map(Set::ports).unwrap_or_default();
            let ev = if plan::by_slots(&gc, &live) {
                let busy = busy_ports_of(&gc, &live);
                match plan::next_slots(&gc, &live, |p| busy.contains(&p)) {
                    Ok(plan) => Event::StartPlan { cfg: gc, plan },
                    Err(reason) => Event::StartRefused(reason),
                }
            } else {
                match choose_workset(&gc, &live) {
                    Ok(index) => Event::Start { cfg: gc, index },
                    Err(reason) => Event::StartRefused(reason),
                }
            };
            self.feed(i, ev);
        }
    }

    /// The sockets of group `i` when its config has `listen:`: opened the
    /// first time, new connections queued for its first bank until its
    /// first set is live; kept for the group's life, never resized. Each
    /// later round puts them right first, before its checks: a process may
    /// have cleared SO_REUSEPORT on its socket, or detached the program
    /// (see `pool`), and then checks and new connections reach any socket.
    fn open_pool(&mut self, i: usize, gc: &GroupConfig) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let Some(l) = &gc.listen else { return Ok(()) };
        if let Some(pool) = &slot.pool {
            if (pool.addr(), pool.slots(), pool.check_from()) == (l.addr, l.procs, l.check_from) {
                return pool
                    .check()
                    .and_then(|()| pool.route(&slot.routed))
                    .map_err(|e| format!("route to sockets {:?}: {e}", slot.routed));
            }
            return Err(format!(
                "listen: {}, procs: {} and check_from: {} cannot change while the group runs on {} with {} \
                 from {}: rolld holds those sockets for its life; restart it to change them",
                l.addr,
                l.procs,
                l.check_from,
                pool.addr(),
                pool.slots(),
                pool.check_from()
            ));
        }
        let first: Vec<usize> = (0..l.procs).collect();
        match Pool::open(l.addr, l.procs, l.check_from, &first) {
            Ok(pool) => {
                log::info(&gc.name, &format!("holding {} in {} sockets", l.addr, 2 * l.procs + 1));
                slot.pool = Some(Arc::new(pool));
                slot.routed = first;
                Ok(())
            }
            Err(e) if slot.group.live.is_some() => Err(format!(
                "{e}: the processes a previous rolld left hold the sockets of {}, and rolld cannot take them over: \
                 they keep serving; stop them, and reload, to start the group anew",
                l.addr
            )),
            Err(e) => Err(format!("cannot hold {}: {e}", l.addr)),
        }
    }

    /// Once every group of the round has ended, tells its clients and
    /// systemd how it went.
    fn end_round_if_done(&mut self) {
        let busy = self.slots.iter().any(|s| !s.group.is_idle() && !s.group.is_gone());
        if busy || self.exiting {
            return;
        }
        let Some(round) = self.round.take() else { return };
        self.end_clients(if round.failed { "end rolled-back" } else { "end ok" });
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
        // A read of the config under way is no longer waited for.
        self.loading = None;
        self.notifier.send("STOPPING=1");
        self.current.append(&mut self.waiting);
        self.broadcast("log rolld is stopping");
        self.end_clients("end stopped");
        for i in 0..self.slots.len() {
            self.feed(i, Event::Terminate);
        }
    }

    fn reap(&mut self) {
        loop {
            match sys::reap_any() {
                Ok(Some((pid, status))) => {
                    if self.keeper.as_ref().is_some_and(|k| k.pid == pid) {
                        self.keeper_ended(status);
                        continue;
                    }
                    let ev = if self.work.is_step(pid) {
                        Event::ActionExited { pid, status, output: self.work.end_step(pid) }
                    } else {
                        Event::Exited { pid, status }
                    };
                    if let Some(i) = self.slots.iter().position(|s| s.group.owns(pid)) {
                        self.feed(i, ev);
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

    /// The keeper ended though rolld did not stop it: another is started
    /// at once (the loop's next turn), unless this one lived less than
    /// `KEEPER_MIN_LIFE`; then none until the next round.
    fn keeper_ended(&mut self, status: sys::ExitStatus) {
        let Some(k) = self.keeper.take() else { return };
        let brief = k.since.elapsed() < KEEPER_MIN_LIFE;
        self.keeper_given_up |= brief;
        let next = if brief { "none is started again until the next reload" } else { "starting another" };
        log::log(
            Level::Warn,
            ROLLD,
            None,
            &format!("the keeper of the sockets, pid {}, ended ({status}); {next}", k.pid),
        );
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
        let mut queue: VecDeque<Action> = self.handle(i, ev).into();
        while let Some(action) = queue.pop_front() {
            if let Some(ev) = self.perform(i, action) {
                queue.extend(self.handle(i, ev));
            }
        }
    }

    /// Gives `ev` to group `i`. A step it no longer waits for loses its
    /// turn before anything else happens: a render given up never writes.
    fn handle(&mut self, i: usize, ev: Event) -> Vec<Action> {
        let slot = &mut self.slots[i];
        let actions = slot.group.handle(Instant::now(), ev);
        slot.turn.set(slot.group.step_awaited());
        self.follow_live(i);
        actions
    }

    /// A `listen:` group between switches: new connections go to the live
    /// processes that serve (a crashed one's socket keeps what waits in its
    /// queue for its successor, which gets new connections once it passes
    /// its check); to every live socket when none serves. During a
    /// switch, its route step decides.
    fn follow_live(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let (Some(pool), Some(live), None) = (&slot.pool, &slot.group.live, slot.group.step_awaited()) else {
            return;
        };
        let all: Vec<usize> = live.procs.iter().filter_map(|p| pool.index(p.port)).collect();
        let serving: Vec<usize> =
            live.procs.iter().filter(|p| p.serving()).filter_map(|p| pool.index(p.port)).collect();
        let want = if serving.is_empty() { all } else { serving };
        if want == slot.routed || want.is_empty() {
            return;
        }
        match pool.route(&want) {
            Ok(()) => slot.routed = want,
            Err(e) => {
                let msg = format!("cannot route new connections of {} to sockets {want:?}: {e}", pool.addr());
                log::log(Level::Error, &slot.group.name, None, &msg);
            }
        }
    }

    /// Logs a line for group `i`, and passes it to the clients following
    /// the round.
    fn say(&mut self, i: usize, level: Level, port: Option<u16>, msg: &str) {
        let name = self.slots[i].group.name.clone();
        log::log(level, &name, port, msg);
        let who = port.map_or(name.clone(), |p| format!("{name}:{p}"));
        self.broadcast(&format!("log {who} {msg}"));
    }

    fn perform(&mut self, i: usize, action: Action) -> Option<Event> {
        let owner = self.slots[i].id;
        match action {
            Action::Spawn { cfg, ports } => {
                // The rollout's counters begin with its new processes, never
                // with a crash restart in its middle.
                if let (Some(h), true) = (cfg.haproxy.clone(), self.slots[i].group.spawns_incoming(&ports)) {
                    let lb = self.slots[i].lb.clone();
                    self.work.submit(owner, move || {
                        haproxy::begin(&h, &lb);
                        Event::Tick
                    });
                }
                let pool = self.slots[i].pool.clone();
                let socket = |p: u16| {
                    cfg.listen.as_ref()?;
                    Some(
                        pool.as_ref()
                            .and_then(|pool| pool.socket(pool.index(p)?))
                            .ok_or("no socket of the group for it"),
                    )
                };
                let spawned = ports.into_iter().map(|p| {
                    let started = match socket(p) {
                        None => process::spawn(&cfg, p, None),
                        Some(Ok(fd)) => process::spawn(&cfg, p, Some(fd)),
                        Some(Err(e)) => Err(e.to_string()),
                    };
                    (p, started)
                });
                Some(Event::Spawned(spawned.collect()))
            }
            Action::Smoke { cfg, seq, ports } => {
                for port in ports {
                    self.check(i, cfg.clone(), port, move |result| Event::Checked { seq, port, result });
                }
                None
            }
            Action::Probe { cfg, port, pid } => {
                self.check(i, cfg, port, move |result| Event::Probed { port, pid, result });
                None
            }
            Action::Health { cfg, port, pid } => {
                self.check(i, cfg, port, move |result| Event::HealthChecked { port, pid, result });
                None
            }
            // A rollout asked for goes first: a heal would hold it back.
            Action::Heal { port, .. } if self.reload_pending || self.loading.is_some() || self.round.is_some() => {
                Some(Event::HealPlan { port, target: Err("a rollout is under way or asked for".into()) })
            }
            Action::Heal { cfg, slot, port } => {
                let live = self.slots[i].group.live.as_ref().map(Set::ports).unwrap_or_default();
                let busy = busy_ports_of(&cfg, &live);
                let target = plan::next_port(&cfg, &live, slot, |p| busy.contains(&p))
                    .map(|port| plan::Target { slot, port })
                    .ok_or_else(|| format!("no free port for slot {slot} in another workset"));
                Some(Event::HealPlan { port, target })
            }
            Action::RunStep { cfg, seq, step, ports, old_ports } => match cfg.actions.get(step).cloned() {
                Some(Step::RunProc { command }) => Some(self.run_proc(&cfg, seq, &command, &ports, &old_ports)),
                Some(Step::ReplaceFile { template, output }) => {
                    let commit = self.slots[i].turn.commit(seq);
                    self.work.submit(owner, move || {
                        let as_user = cfg.credentials.as_ref();
                        let result =
                            actions::render(&template, as_user, &output, &commit, &cfg.name, &ports, &old_ports)
                                .map_err(|e| format!("replace_file {}: {e}", output.display()));
                        Event::StepDone { seq, result }
                    });
                    None
                }
                Some(Step::Route) => Some(Event::StepDone { seq, result: self.route(i, &ports) }),
                Some(Step::Haproxy) => {
                    let lb = self.slots[i].lb.clone();
                    self.work.submit(owner, move || {
                        let all: Vec<u16> = cfg.worksets.iter().flatten().copied().collect();
                        let result = match &cfg.haproxy {
                            Some(h) => haproxy::switch(h, &lb, &all, &ports, &old_ports)
                                .map(|notes| notes.iter().for_each(|n| log::info(&cfg.name, n))),
                            None => Err("the group has no haproxy:".into()),
                        };
                        Event::StepDone { seq, result }
                    });
                    None
                }
                None => Some(Event::StepDone { seq, result: Ok(()) }),
            },
            Action::Count { seq, ports } => {
                let slot = &self.slots[i];
                if let Some(h) = slot.cfg.haproxy.clone() {
                    let (lb, name) = (slot.lb.clone(), slot.group.name.clone());
                    self.work.submit(owner, move || {
                        let (counts, notes) = haproxy::count(&h, &lb, &ports);
                        notes.iter().for_each(|n| log::info(&name, n));
                        Event::Connections { seq, counts }
                    });
                    return None;
                }
                let public = slot.pool.as_ref().map(|p| p.addr()).or(slot.cfg.listen.as_ref().map(|l| l.addr));
                match public {
                    Some(public) => {
                        let (pool, groups) = (slot.pool.clone(), self.process_groups(i, &ports));
                        self.work.submit(owner, move || Event::Connections {
                            seq,
                            counts: held(public, pool.as_deref(), &ports, &groups),
                        });
                    }
                    None => self
                        .work
                        .submit(owner, move || Event::Connections { seq, counts: tcp::connections_per_port(&ports) }),
                }
                None
            }
            Action::LbErrors { cfg, seq, ports } => {
                let (lb, name) = (self.slots[i].lb.clone(), self.slots[i].group.name.clone());
                self.work.submit(owner, move || {
                    let (result, notes) = match &cfg.haproxy {
                        Some(h) => haproxy::errors(h, &lb, &ports),
                        None => (Err("the group has no haproxy:".into()), Vec::new()),
                    };
                    notes.iter().for_each(|n| log::info(&name, n));
                    Event::LbErrors { seq, result }
                });
                None
            }
            Action::Cut { ports } => {
                if let Some(h) = self.slots[i].cfg.haproxy.clone() {
                    let (lb, name) = (self.slots[i].lb.clone(), self.slots[i].group.name.clone());
                    self.work.submit(owner, move || {
                        match haproxy::cut(&h, &lb, &ports) {
                            Ok(n) => log::log(
                                Level::Warn,
                                &name,
                                None,
                                &format!("haproxy: {n} session(s) shut down at drain_timeout"),
                            ),
                            Err(e) => log::log(
                                Level::Error,
                                &name,
                                None,
                                &format!("haproxy: cannot shut the sessions down at drain_timeout: {e}"),
                            ),
                        }
                        Event::Tick
                    });
                }
                None
            }
            // A member killed after its leader is a zombie child of rolld
            // (the subreaper) until the loop reaps it; the next look, 20 ms
            // later, no longer sees it.
            Action::CheckGroups { pgids } => {
                Some(Event::GroupsAlive(pgids.into_iter().filter(|&p| state::group_alive(p)).collect()))
            }
            // The group of a process taken over is signalled through its
            // watch: rolld does not reap it, so its number is not known to
            // be its own once it has ended.
            Action::Signal { pgid, sig } => {
                let sent = match self.watched.iter().find(|w| w.0 == pgid) {
                    Some((pid, w)) => takeover::signal_group(*pid, w, sig),
                    None => sys::kill_group(pgid, sig),
                };
                if let Err(e) = sent {
                    let msg = format!("cannot send signal {sig} to process group {pgid}: {e}");
                    self.say(i, Level::Error, None, &msg);
                }
                None
            }
            Action::Log { level, port, msg } => {
                self.say(i, level, port, &msg);
                None
            }
            Action::Phase { name, took, batch } => {
                let group = self.slots[i].group.name.clone();
                let (prefix, suffix) = match batch {
                    Some((b, n)) => (format!("batch {b}/{n}: "), format!(" (batch {b}/{n})")),
                    None => (String::new(), String::new()),
                };
                log::info(&group, &format!("{prefix}{name} done in {}", fmt_duration(took)));
                self.broadcast(&format!("phase {group} {name} {}{suffix}", fmt_duration(took)));
                None
            }
            Action::Done { outcome, summary, tally } => {
                self.done(i, outcome, summary, tally);
                None
            }
        }
    }

    /// Checks the process of `port` of group `i` on a worker; `answer`
    /// makes the event of the result.
    fn check(
        &mut self,
        i: usize,
        cfg: Arc<GroupConfig>,
        port: u16,
        answer: impl FnOnce(Result<(), String>) -> Event + Send + 'static,
    ) {
        let public = self.slots[i].pool.as_ref().map(|p| p.addr());
        self.work.submit(self.slots[i].id, move || {
            answer(match public {
                // A check of a listen: group's process: through the public
                // port, from the check port naming it.
                Some(public) => smoke::check_through(&cfg.checks, public, port),
                None => smoke::check_port(&cfg.checks, port),
            })
        });
    }

    /// Points new connections of group `i`'s public port at the sockets
    /// of `ports` (`listen:`): the switch, one setsockopt. The group's
    /// sockets are checked first, and put right where a process changed
    /// them.
    fn route(&mut self, i: usize, ports: &[u16]) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let Some(pool) = &slot.pool else {
            return Err("the group has no sockets of its own (listen:)".into());
        };
        let want: Vec<usize> = ports.iter().filter_map(|&p| pool.index(p)).collect();
        let started = Instant::now();
        pool.check().and_then(|()| pool.route(&want)).map_err(|e| format!("route to sockets {want:?}: {e}"))?;
        slot.routed = want;
        // The switch is far under a millisecond: microseconds, not fmt_duration.
        let took = format!("{:.3}ms", started.elapsed().as_secs_f64() * 1000.0);
        log::info(
            &slot.group.name,
            &format!("new connections of {} go to {} now (switched in {took})", pool.addr(), fmt_ports(ports)),
        );
        Ok(())
    }

    /// The process group of each of `ports`' processes in group `i`, if it
    /// runs (`None`: nothing of it to count).
    fn process_groups(&self, i: usize, ports: &[u16]) -> Vec<Option<i32>> {
        let sets = self.slots[i].group.sets();
        let pgid =
            |port: u16| sets.iter().flat_map(|(s, _)| s.procs.iter()).find(|p| p.port == port).and_then(|p| p.pgid);
        ports.iter().map(|&p| pgid(p)).collect()
    }

    /// Starts a run_proc step as a child in its own process group, its
    /// output on a socket the loop reads.
    fn run_proc(&mut self, cfg: &GroupConfig, seq: u64, command: &str, ports: &[u16], old: &[u16]) -> Event {
        let words = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        let env = [("ROLLD_GROUP", cfg.name.clone()), ("ROLLD_PORTS", words(ports)), ("ROLLD_OLD_PORTS", words(old))];
        let spawned = Work::output_pair()
            .map_err(|e| format!("cannot make its output socket: {e}"))
            .and_then(|(ours, theirs)| Ok((ours, process::spawn_shell(command, &cfg.base, &env, theirs)?)));
        match spawned {
            Ok((ours, pid)) => {
                self.work.watch_step(pid, &cfg.name, ours);
                Event::StepRunning { seq, pid }
            }
            Err(e) => Event::StepDone { seq, result: Err(format!("run_proc `{command}`: {e}")) },
        }
    }

    fn done(&mut self, i: usize, outcome: Outcome, summary: String, tally: Tally) {
        let receipt = self.slots[i].cfg.haproxy.as_ref().and_then(|_| self.slots[i].lb.take_receipt());
        let more: Vec<String> =
            tally.line().into_iter().chain(receipt.as_ref().and_then(haproxy::Receipt::line)).collect();
        let summary = with_receipt(summary, &more);
        let (level, port, word) = match &outcome {
            Outcome::Ok => (Level::Info, None, "ok"),
            Outcome::RolledBack { port, .. } => (Level::Warn, *port, "rolled-back"),
            Outcome::StartFailed { port, .. } => (Level::Error, *port, "start-failed"),
            Outcome::Partial { port, .. } => (Level::Warn, *port, "partial"),
            Outcome::Reverted { port, .. } => (Level::Warn, *port, "reverted"),
        };
        let name = self.slots[i].group.name.clone();
        log::log(level, &name, port, &summary);
        self.broadcast(&format!("done {name} {word} {summary}"));
        if let Some((path, lines)) = port.and_then(|p| process::stderr_tail(&self.slots[i].cfg, p, 5))
            && !lines.is_empty()
        {
            self.say(i, level, port, &format!("last lines of {}:", path.display()));
            for l in lines {
                self.say(i, level, port, &format!("  | {l}"));
            }
        }
        let first = self.round.as_ref().is_some_and(|r| r.first);
        if let (Some(r), false) = (self.round.as_mut(), outcome == Outcome::Ok) {
            r.failed = true;
        }
        // At start-up a group that cannot start stops everything; a group
        // added by a reload fails alone, and the next reload tries again.
        if matches!(outcome, Outcome::StartFailed { .. }) && !self.exiting {
            if first {
                self.exit_code = 1;
                self.shutdown();
            } else {
                self.say(
                    i,
                    Level::Error,
                    None,
                    "added by this reload but could not start; the other groups are untouched",
                );
            }
        }
        self.slots[i].last = Some(Last { at: SystemTime::now(), outcome, summary, tally, haproxy: receipt });
    }
}

/// The summary line with the receipt's parts before its phases, which stay
/// the line's last parenthesis (`... (spawn 8ms, ..., total 1.4s)`).
fn with_receipt(summary: String, parts: &[String]) -> String {
    if parts.is_empty() {
        return summary;
    }
    let parts = parts.join("; ");
    match summary.rfind(" (").filter(|_| summary.ends_with(')')) {
        Some(i) => format!("{}; {parts}{}", &summary[..i], &summary[i..]),
        None => format!("{summary}; {parts}"),
    }
}

/// What the processes of a `listen:` group on `ports` (in `groups`) still
/// have: the connections waiting in their sockets' queues, and those they
/// hold. Without the `pool` (the processes of a previous rolld, whose
/// sockets this one does not hold), only those they hold: their queues
/// cannot be read, and no new connection is routed to them any more. An
/// error when a count cannot be taken: a drain goes on.
fn held(
    public: SocketAddr,
    pool: Option<&Pool>,
    ports: &[u16],
    groups: &[Option<i32>],
) -> Result<Vec<(u16, usize)>, String> {
    let queued: Vec<usize> = match pool {
        Some(pool) => ports
            .iter()
            .map(|&p| pool.queued(usize::from(p.wrapping_sub(pool.check_from()))).map(|n| n as usize))
            .collect::<std::io::Result<_>>()
            .map_err(|e| format!("accept queues of {public}: {e}"))?,
        None => vec![0; ports.len()],
    };
    let running: Vec<i32> = groups.iter().flatten().copied().collect();
    let mut holding =
        crate::pool::held(public.port(), &running).map_err(|e| format!("connections of {public}: {e}"))?.into_iter();
    let counts = groups.iter().zip(queued).map(|(g, q)| q + g.map_or(0, |_| holding.next().unwrap_or(0)));
    Ok(ports.iter().copied().zip(counts).collect())
}

/// The ports of `cfg`'s worksets, but the live ones (`live`), that
/// something listens on now.
fn busy_ports_of(cfg: &GroupConfig, live: &[u16]) -> Vec<u16> {
    let all: Vec<u16> = cfg.worksets.iter().flatten().copied().filter(|p| !live.contains(p)).collect();
    match busy_ports(cfg, &all) {
        Ok(busy) => {
            for (p, who) in &busy {
                log::log(
                    Level::Warn,
                    &cfg.name,
                    Some(*p),
                    &format!("port {p} is held by {who}; its slot moves elsewhere"),
                );
            }
            busy.into_iter().map(|b| b.0).collect()
        }
        // Cannot tell which are free: none is.
        Err(e) => {
            log::log(Level::Error, &cfg.name, None, &format!("{e}: no port is taken to be free"));
            all
        }
    }
}

/// Which of `ports` something listens on, with who. A `listen:` group's
/// ports name its own sockets: nothing else can hold one.
fn busy_ports(cfg: &GroupConfig, ports: &[u16]) -> Result<Vec<(u16, String)>, String> {
    if cfg.listen.is_some() {
        return Ok(Vec::new());
    }
    tcp::busy_ports(ports)
}

/// The first workset in `plan::workset_order` for the live ports `live`
/// whose ports nothing listens on.
fn choose_workset(cfg: &GroupConfig, live: &[u16]) -> Result<usize, String> {
    let mut busy_all = Vec::new();
    for index in plan::workset_order(cfg, live) {
        let Some(ports) = cfg.worksets.get(index) else { continue };
        let busy = busy_ports(cfg, ports).map_err(|e| format!("cannot tell whether workset {index} is free: {e}"))?;
        if busy.is_empty() {
            return Ok(index);
        }
        let held: Vec<String> = busy.iter().map(|(p, who)| format!("port {p} is held by {who}")).collect();
        let msg = format!("workset {index}: {}; trying the next one", held.join(", "));
        log::log(Level::Warn, &cfg.name, busy.first().map(|b| b.0), &msg);
        busy_all.extend(held);
    }
    if busy_all.is_empty() {
        return Err("no free workset: each one shares a port with the live set".into());
    }
    Err(format!("no free workset: {}", busy_all.join(", ")))
}
