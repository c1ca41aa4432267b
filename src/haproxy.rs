//! HAProxy driven through its Runtime API: the switch of a group with
//! `haproxy:`, its drain's counts, and what HAProxy saw of a rollout.
//!
//! The API is a Unix socket and text lines: one command per connection,
//! its answer read to the end. Replies are parsed by their header's column
//! names, so a later HAProxy's added columns change nothing. Every call
//! here blocks (bounded by `TIMEOUT` per command) and runs on a worker,
//! never on the loop.
//!
//! A server is found by its port (at a loopback address) in the group's
//! backend; its name is HAProxy's own business. The switch sets admin
//! states: `ready` for the set to point at, `drain` for the set that
//! leaves, `maint` for every other server of the group's worksets. A
//! drained set goes to `maint` once HAProxy counts no session (`scur`) and
//! nothing queued (`qcur`) on its servers, which also closes HAProxy's idle
//! connections to them.
//!
//! What rolld wants each server to be is remembered (`Memory`) before it is
//! asked, so that whatever HAProxy missed (a command that failed, an
//! HAProxy reloaded without a state file: its `Pid` changed) is asked
//! again the next time HAProxy answers. A set whose servers HAProxy never
//! acknowledged in `maint` is not called drained while HAProxy cannot be
//! reached: rolld fails closed.

use crate::config::Haproxy;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one command may take, connect to end of reply.
const TIMEOUT: Duration = Duration::from_secs(2);
/// A reply longer than this is refused.
const MAX_REPLY: u64 = 16 << 20;
/// Shown of a reply that is not what was asked for.
const SHOWN: usize = 200;

/// A server's admin state, as rolld sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    fn word(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

/// One server's line of `show servers state`.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub addr: String,
    pub port: Option<u16>,
    /// `srv_admin_state`, HAProxy's bits.
    pub admin: u32,
}

impl Server {
    /// Forced into maintenance (`SRV_ADMF_FMAINT`): by `set server ...
    /// state maint` or `disabled` in the config.
    pub fn in_maint(&self) -> bool {
        self.admin & 0x01 != 0
    }

    /// Its admin state as rolld sets it: forced maintenance, else forced
    /// drain (`SRV_ADMF_FDRAIN`), else ready.
    pub fn state(&self) -> Admin {
        if self.in_maint() {
            Admin::Maint
        } else if self.admin & 0x08 != 0 {
            Admin::Drain
        } else {
            Admin::Ready
        }
    }
}

/// One line of `show stat`: a server's counters, or the backend's own
/// (`svname` BACKEND), whose `algo` is its balance algorithm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stat {
    pub pxname: String,
    pub svname: String,
    /// `addr`, as `127.0.0.1:8001` or `[::1]:8001`.
    pub addr: String,
    pub status: String,
    pub algo: String,
    pub qcur: u64,
    pub scur: u64,
    pub stot: u64,
    pub req_tot: u64,
    pub hrsp_5xx: u64,
    pub econ: u64,
    pub eresp: u64,
    pub wretr: u64,
    pub wredis: u64,
}

/// What `rolld check` and a start need to know of the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    pub algo: String,
    pub servers: Vec<Server>,
}

/// The balance algorithms with which a server in `drain` gets no new
/// request (except the ones persistence sends) and one in `ready` gets its
/// share at once.
pub const ALGORITHMS: &[&str] =
    &["roundrobin", "static-rr", "leastconn", "first", "random", "source", "uri", "url_param", "hdr", "hash"];

/// What a group's HAProxy has been asked, kept between calls (one per
/// group, shared by its workers; one conversation at a time).
#[derive(Debug, Default)]
pub struct Memory(Mutex<Seen>);

#[derive(Debug, Default)]
struct Seen {
    /// The `Pid` of the HAProxy worker last spoken to.
    pid: Option<u32>,
    /// What rolld wants of each port's server.
    wanted: BTreeMap<u16, Admin>,
    /// What HAProxy acknowledged, per port.
    acked: BTreeMap<u16, Admin>,
    /// Some of `wanted` has not been acknowledged.
    owed: bool,
    receipt: Receipt,
}

/// What HAProxy saw of one rollout, from its switch on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Receipt {
    /// The counters of the group's servers when the switch began.
    before: Option<Vec<Stat>>,
    /// The ports pointed at, and the ports left, by the last switch.
    to: Vec<u16>,
    from: Vec<u16>,
    pub switch_took: Option<Duration>,
    switched_at: Option<Instant>,
    /// How long the drain took to reach 0 sessions, once it did.
    pub drain_took: Option<Duration>,
    /// The sessions shut down when drain_timeout cut the drain.
    pub cut: Option<u64>,
    /// The counters when the drain reached 0.
    after: Option<Vec<Stat>>,
    /// HAProxy reloaded under the rollout, and rolld's states were put back.
    pub reapplied: u32,
    /// The errors of the servers on trial at the last read (`errors`), and
    /// those counted before HAProxy was last reloaded (its counters then
    /// start again from 0).
    errors_last: u64,
    errors_carried: u64,
}

/// The deltas of a rollout's counters, as the log and status give them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deltas {
    pub req_old: u64,
    pub req_new: u64,
    pub hrsp_5xx: u64,
    pub econ: u64,
    pub eresp: u64,
    pub wretr: u64,
    pub wredis: u64,
}

impl Receipt {
    /// The counters' deltas from the switch to the end of the drain, once
    /// both are known.
    pub fn deltas(&self) -> Option<Deltas> {
        let (before, after) = (self.before.as_ref()?, self.after.as_ref()?);
        let mut d = Deltas::default();
        for a in after {
            // The backend's own line (no address) sums its servers'.
            let Some(port) = port_of(&a.addr) else { continue };
            let b = before.iter().find(|b| b.addr == a.addr && b.svname == a.svname);
            let delta = |f: fn(&Stat) -> u64| f(a).saturating_sub(b.map_or(0, f));
            let req = delta(|s| s.req_tot);
            if self.to.contains(&port) {
                d.req_new += req;
            } else if self.from.contains(&port) {
                d.req_old += req;
            }
            d.hrsp_5xx += delta(|s| s.hrsp_5xx);
            d.econ += delta(|s| s.econ);
            d.eresp += delta(|s| s.eresp);
            d.wretr += delta(|s| s.wretr);
            d.wredis += delta(|s| s.wredis);
        }
        Some(d)
    }

    /// One line for the rollout's summary, or `None` without a switch.
    pub fn line(&self) -> Option<String> {
        let took = self.switch_took?;
        let mut out = format!("haproxy: switch {}", fmt_us(took));
        match (self.drain_took, self.cut) {
            _ if self.from.is_empty() => {}
            (Some(d), _) => out.push_str(&format!(", drain to 0 sessions {}", crate::group::fmt_duration(d))),
            (None, Some(n)) => out.push_str(&format!(", drain cut at drain_timeout with {n} session(s)")),
            (None, None) => out.push_str(", drain not seen to reach 0"),
        }
        if let Some(d) = self.deltas() {
            out.push_str(&format!(
                ", requests old {} new {}, 5xx {}, econ {}, eresp {}, wretr {}, wredis {}",
                d.req_old, d.req_new, d.hrsp_5xx, d.econ, d.eresp, d.wretr, d.wredis
            ));
        }
        if self.reapplied > 0 {
            out.push_str(&format!(", states put back after {} HAProxy reload(s)", self.reapplied));
        }
        Some(out)
    }
}

fn fmt_us(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    } else {
        crate::group::fmt_duration(d)
    }
}

impl Memory {
    /// The receipt of the rollout that ends, and a new one begun.
    pub fn take_receipt(&self) -> Option<Receipt> {
        let mut seen = self.0.try_lock().ok()?;
        Some(std::mem::take(&mut seen.receipt))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends `cmd` to the Runtime API at `socket` and reads the whole reply.
pub fn ask(socket: &Path, cmd: &str) -> Result<String, String> {
    let started = Instant::now();
    let fail = |e: std::io::Error| format!("HAProxy at {}: `{cmd}`: {e}", socket.display());
    let mut s = UnixStream::connect(socket).map_err(fail)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    s.write_all(format!("{cmd}\n").as_bytes()).map_err(fail)?;
    let mut reply = Vec::new();
    loop {
        let left = TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(fail(std::io::ErrorKind::TimedOut.into()));
        }
        s.set_read_timeout(Some(left)).map_err(fail)?;
        let mut buf = [0u8; 65536];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e)),
        }
        if reply.len() as u64 > MAX_REPLY {
            return Err(format!("HAProxy at {}: `{cmd}`: a reply over {MAX_REPLY} bytes", socket.display()));
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The first line of a reply that is not what was asked for, as HAProxy's
/// error: "Can't find backend.", "No such server.", "Permission denied".
fn refused(reply: &str) -> String {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("an empty reply");
    let mut shown: String = line.chars().take(SHOWN).collect();
    if shown.len() < line.len() {
        shown.push_str("...");
    }
    shown
}

/// Parses `show stat` (CSV, its header `# pxname,svname,...`).
pub fn parse_stat(reply: &str) -> Result<Vec<Stat>, String> {
    let mut lines = reply.lines();
    let header = lines.next().unwrap_or("");
    let Some(names) = header.strip_prefix("# ") else { return Err(refused(reply)) };
    let cols: Vec<&str> = names.split(',').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(addr)) = (at("pxname"), at("svname"), at("addr")) else {
        return Err("`show stat` has no pxname, svname or addr column".into());
    };
    let idx = |name| at(name);
    let nums = [
        idx("qcur"),
        idx("scur"),
        idx("stot"),
        idx("req_tot"),
        idx("hrsp_5xx"),
        idx("econ"),
        idx("eresp"),
        idx("wretr"),
        idx("wredis"),
    ];
    let (status, algo) = (idx("status"), idx("algo"));
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let text = |i: Option<usize>| i.and_then(|i| f.get(i)).unwrap_or(&"").to_string();
        let mut n = [0u64; 9];
        for (slot, i) in n.iter_mut().zip(nums) {
            let v = i.and_then(|i| f.get(i)).copied().unwrap_or("");
            *slot = if v.is_empty() {
                0
            } else {
                v.parse().map_err(|_| format!("`show stat`: {v:?} is not a count ({line:.100})"))?
            };
        }
        out.push(Stat {
            pxname: text(Some(px)),
            svname: text(Some(sv)),
            addr: text(Some(addr)),
            status: text(status),
            algo: text(algo),
            qcur: n[0],
            scur: n[1],
            stot: n[2],
            req_tot: n[3],
            hrsp_5xx: n[4],
            econ: n[5],
            eresp: n[6],
            wretr: n[7],
            wredis: n[8],
        });
    }
    Ok(out)
}

/// Parses `show servers state` (format 1: a version line, a header of
/// column names, a line per server); `backend` filters, when given.
pub fn parse_servers_state(reply: &str, backend: Option<&str>) -> Result<Vec<Server>, String> {
    let mut lines = reply.lines();
    if lines.next().map(str::trim) != Some("1") {
        return Err(refused(reply));
    }
    let Some(names) = lines.next().and_then(|h| h.strip_prefix("# ")) else { return Err(refused(reply)) };
    let cols: Vec<&str> = names.split_whitespace().collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(be), Some(name), Some(addr), Some(port), Some(admin)) =
        (at("be_name"), at("srv_name"), at("srv_addr"), at("srv_port"), at("srv_admin_state"))
    else {
        return Err("`show servers state` lacks be_name, srv_name, srv_addr, srv_port or srv_admin_state".into());
    };
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let get = |i: usize| f.get(i).copied().ok_or_else(|| format!("`show servers state`: short line {line:.100}"));
        if backend.is_some_and(|b| b != get(be).unwrap_or("")) {
            continue;
        }
        let admin =
            get(admin)?.parse().map_err(|_| format!("`show servers state`: bad srv_admin_state ({line:.100})"))?;
        out.push(Server { name: get(name)?.into(), addr: get(addr)?.into(), port: get(port)?.parse().ok(), admin });
    }
    Ok(out)
}

/// The port of `show stat`'s `addr`, when its address is a loopback one.
fn port_of(addr: &str) -> Option<u16> {
    let a: SocketAddr = addr.parse().ok()?;
    a.ip().is_loopback().then_some(a.port())
}

fn server_port(s: &Server) -> Option<u16> {
    let ip: std::net::IpAddr = s.addr.parse().ok()?;
    if ip.is_loopback() { s.port } else { None }
}

/// `show stat` of the backend and its servers. Asked of every backend
/// (`-1`) and filtered here: a frontend of the same name would otherwise
/// be the one answered for.
fn backend_stat(h: &Haproxy) -> Result<Vec<Stat>, String> {
    let all = parse_stat(&ask(&h.socket, "show stat -1 6 -1")?)?;
    Ok(all.into_iter().filter(|s| s.pxname == h.backend).collect())
}

/// Asks what `rolld check` needs: that the socket is at level admin, and
/// the balance algorithm and the servers of the backend.
pub fn describe(h: &Haproxy) -> Result<Backend, String> {
    let level = ask(&h.socket, "show cli level")?;
    if level.trim() != "admin" {
        let shown = refused(&level);
        return Err(format!(
            "the socket {} is at level {shown:?}, not admin: rolld sets servers' states",
            h.socket.display()
        ));
    }
    let be = |e: String| format!("backend {}: {e}", h.backend);
    let servers =
        parse_servers_state(&ask(&h.socket, &format!("show servers state {}", h.backend))?, None).map_err(be)?;
    let stat = backend_stat(h)?;
    let algo = stat.iter().find(|s| s.svname == "BACKEND").map(|s| s.algo.clone()).unwrap_or_default();
    Ok(Backend { algo, servers })
}

/// What is wrong with `b` for a group on `ports`, one message each.
pub fn problems(b: &Backend, backend: &str, ports: &[u16]) -> Vec<String> {
    let mut out = Vec::new();
    let algo = b.algo.split('(').next().unwrap_or("");
    if !ALGORITHMS.contains(&algo) {
        out.push(format!(
            "backend {backend}: balance {:?} is not one rolld knows to leave a draining server alone (known: {})",
            b.algo,
            ALGORITHMS.join(", ")
        ));
    }
    let missing: Vec<String> =
        ports.iter().filter(|p| !b.servers.iter().any(|s| server_port(s) == Some(**p))).map(u16::to_string).collect();
    if !missing.is_empty() {
        out.push(format!(
            "backend {backend} has no server at a loopback address on port(s) {}: it needs one for every port of every workset",
            missing.join(", ")
        ));
    }
    let mut seen = BTreeMap::new();
    for s in &b.servers {
        if let Some(p) = server_port(s).filter(|p| ports.contains(p))
            && let Some(first) = seen.insert(p, s.name.clone())
        {
            out.push(format!("backend {backend}: servers {first} and {} are both on port {p}", s.name));
        }
    }
    out
}

/// A conversation with a group's HAProxy, `seen` held throughout.
struct Talk<'a> {
    h: &'a Haproxy,
    seen: &'a mut Seen,
}

impl Talk<'_> {
    fn servers(&self) -> Result<Vec<Server>, String> {
        parse_servers_state(&ask(&self.h.socket, &format!("show servers state {}", self.h.backend))?, None)
    }

    fn stat(&self) -> Result<Vec<Stat>, String> {
        backend_stat(self.h)
    }

    /// Notices an HAProxy reloaded since the last call (its `Pid`
    /// changed) and asks again what it was asked before, as well as what
    /// it missed. A note for the log when it did.
    fn catch_up(&mut self) -> Result<Option<String>, String> {
        let info = ask(&self.h.socket, "show info")?;
        let pid = info.lines().find_map(|l| l.strip_prefix("Pid: ")).and_then(|p| p.trim().parse::<u32>().ok());
        let Some(pid) = pid else { return Err(format!("HAProxy's `show info`: {}", refused(&info))) };
        let reloaded = self.seen.pid.is_some_and(|p| p != pid);
        self.seen.pid = Some(pid);
        if reloaded {
            self.seen.acked.clear();
            self.seen.owed = true;
            // The new worker counts from 0: what the old one counted is
            // kept, and the rollout's counters start again from nothing.
            let r = &mut self.seen.receipt;
            r.errors_carried += std::mem::take(&mut r.errors_last);
            if r.before.is_some() {
                r.before = Some(Vec::new());
            }
        }
        if !self.seen.owed {
            return Ok(None);
        }
        let servers = self.servers()?;
        for want in [Admin::Ready, Admin::Drain, Admin::Maint] {
            let ports: Vec<u16> = self.seen.wanted.iter().filter(|w| *w.1 == want).map(|w| *w.0).collect();
            self.set(&servers, &ports, want)?;
        }
        self.seen.owed = false;
        if reloaded {
            self.seen.receipt.reapplied += 1;
            return Ok(Some(format!("HAProxy was reloaded (worker pid {pid} now): rolld's server states put back")));
        }
        Ok(None)
    }

    /// Sets the servers of `ports` to `admin`, each found by its port.
    fn set(&mut self, servers: &[Server], ports: &[u16], admin: Admin) -> Result<(), String> {
        for &p in ports {
            self.seen.wanted.insert(p, admin);
            self.seen.owed = true;
        }
        for &p in ports {
            let Some(s) = servers.iter().find(|s| server_port(s) == Some(p)) else {
                return Err(format!("backend {} has no server on port {p}", self.h.backend));
            };
            if !valid_name(&s.name) || !valid_name(&self.h.backend) {
                return Err(format!("server {:?} of backend {:?}: not a name HAProxy accepts", s.name, self.h.backend));
            }
            // Asked only of a server not in that state already, whoever put
            // it where it is.
            if s.state() == admin {
                self.seen.acked.insert(p, admin);
                continue;
            }
            let cmd = format!("set server {}/{} state {}", self.h.backend, s.name, admin.word());
            let reply = ask(&self.h.socket, &cmd)?;
            if !reply.trim().is_empty() {
                return Err(format!("HAProxy refused `{cmd}`: {}", refused(&reply)));
            }
            self.seen.acked.insert(p, admin);
        }
        Ok(())
    }

    /// Writes `show servers state` (every backend) to the state file, if
    /// there is one: an HAProxy reloaded by anyone then keeps the states.
    fn persist(&self) -> Result<(), String> {
        let Some(path) = &self.h.state_file else { return Ok(()) };
        let reply = ask(&self.h.socket, "show servers state")?;
        parse_servers_state(&reply, None)?;
        write_new(path, reply.as_bytes()).map_err(|e| format!("server-state file {}: {e}", path.display()))
    }
}

/// A rollout begins: the counters it starts from, for its receipt.
pub fn begin(h: &Haproxy, mem: &Memory) {
    let mut seen = mem.lock();
    seen.receipt = Receipt::default();
    seen.receipt.before = Talk { h, seen: &mut Seen::default() }.stat().ok();
}

/// Replaces `path` with `bytes`: written to a new file beside it (created,
/// never opened if something is there, a symlink included: the directory
/// may be HAProxy's user's), then renamed over it.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".rolld-{}-{nanos}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A name HAProxy itself accepts for a proxy or a server: letters,
/// digits, `-`, `_`, `.` and `:`. Anything else (a space, a `;`, which
/// separates commands, a newline) is never put in a command.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The switch: the servers of `ready` to `ready` first, then those of
/// `drain` to `drain`, then every other server of `all` (the group's
/// worksets) to `maint`; the state file written. An error when any of it
/// fails: HAProxy's own words.
pub fn switch(h: &Haproxy, mem: &Memory, all: &[u16], ready: &[u16], drain: &[u16]) -> Result<Vec<String>, String> {
    let mut seen = mem.lock();
    let started = Instant::now();
    // What is wanted is written down first: if HAProxy misses any of it,
    // the next call that reaches HAProxy asks it again.
    let rest = all.iter().filter(|p| !ready.contains(p) && !drain.contains(p));
    let wanted = ready.iter().map(|p| (*p, Admin::Ready)).chain(drain.iter().map(|p| (*p, Admin::Drain)));
    // Ports of an earlier config that this one has not are no longer rolld's.
    let mine = |p: &u16| all.contains(p) || ready.contains(p) || drain.contains(p);
    seen.wanted.retain(|p, _| mine(p));
    seen.acked.retain(|p, _| mine(p));
    seen.wanted.extend(wanted.chain(rest.map(|p| (*p, Admin::Maint))));
    seen.owed = true;
    let mut talk = Talk { h, seen: &mut seen };
    if talk.seen.receipt.before.is_none() {
        talk.seen.receipt.before = Some(talk.stat()?);
    }
    let mut notes: Vec<String> = talk.catch_up()?.into_iter().collect();
    let took = started.elapsed();
    let r = &mut talk.seen.receipt;
    (r.to, r.from, r.switch_took, r.switched_at) = (ready.to_vec(), drain.to_vec(), Some(took), Some(Instant::now()));
    notes.push(format!(
        "haproxy: backend {} ready on {}, drain on {} ({})",
        h.backend,
        crate::group::fmt_ports(ready),
        if drain.is_empty() { "none".into() } else { crate::group::fmt_ports(drain) },
        fmt_us(took)
    ));
    if let Err(e) = talk.persist() {
        notes.push(format!("cannot save the server states: {e}"));
    }
    Ok(notes)
}

/// The drain of `ports` cut at drain_timeout: their servers to `maint`,
/// then `shutdown sessions server` for each; the sessions there were.
pub fn cut(h: &Haproxy, mem: &Memory, ports: &[u16]) -> Result<u64, String> {
    let mut seen = mem.lock();
    let mut talk = Talk { h, seen: &mut seen };
    talk.catch_up()?;
    let stat = talk.stat()?;
    let servers = talk.servers()?;
    talk.set(&servers, ports, Admin::Maint)?;
    let mut sessions = 0;
    for &p in ports {
        let Some(s) = servers.iter().find(|s| server_port(s) == Some(p) && valid_name(&s.name)) else { continue };
        sessions += stat.iter().find(|s| port_of(&s.addr) == Some(p)).map_or(0, |s| s.scur + s.qcur);
        let cmd = format!("shutdown sessions server {}/{}", h.backend, s.name);
        let reply = ask(&h.socket, &cmd)?;
        if !reply.trim().is_empty() {
            return Err(format!("HAProxy refused `{cmd}`: {}", refused(&reply)));
        }
    }
    if talk.seen.receipt.from.iter().any(|p| ports.contains(p)) {
        talk.seen.receipt.cut = Some(sessions);
    }
    if let Err(e) = talk.persist() {
        return Err(format!("cannot save the server states: {e}"));
    }
    Ok(sessions)
}

/// What HAProxy counted on the servers of `ports` since the rollout
/// began, as errors of theirs: 5xx responses, connection errors and
/// response errors; their sum and a line for the log. From the first read
/// on when the rollout's own counters were not taken. Across a reload of
/// HAProxy, what the old worker had counted at the last read is added to
/// what the new one counts (a counter that went back for another reason
/// counts from 0). The notes are for the log.
pub fn errors(h: &Haproxy, mem: &Memory, ports: &[u16]) -> (Result<(u64, String), String>, Vec<String>) {
    let mut seen = mem.lock();
    let mut talk = Talk { h, seen: &mut seen };
    let mut notes = Vec::new();
    let read = (|| {
        notes.extend(talk.catch_up()?);
        let stat = talk.stat()?;
        let before = talk.seen.receipt.before.get_or_insert_with(|| stat.clone());
        let mut d = Deltas::default();
        for &p in ports {
            let Some(a) = stat.iter().find(|s| port_of(&s.addr) == Some(p)) else {
                return Err(format!("backend {} has no server on port {p}", h.backend));
            };
            let b = before.iter().find(|b| b.addr == a.addr && b.svname == a.svname);
            let since = |f: fn(&Stat) -> u64| {
                let (now, then) = (f(a), b.map_or(0, f));
                if now < then { now } else { now - then }
            };
            d.hrsp_5xx += since(|s| s.hrsp_5xx);
            d.econ += since(|s| s.econ);
            d.eresp += since(|s| s.eresp);
        }
        let sum = d.hrsp_5xx + d.econ + d.eresp;
        let r = &mut talk.seen.receipt;
        r.errors_last = sum;
        let mut what = format!("5xx {}, econ {}, eresp {}", d.hrsp_5xx, d.econ, d.eresp);
        if r.errors_carried > 0 {
            what.push_str(&format!("; {} counted before HAProxy was reloaded", r.errors_carried));
        }
        Ok((sum + r.errors_carried, what))
    })();
    (read, notes)
}

/// Connections per port, or why they could not be counted.
pub type Counted = Result<Vec<(u16, usize)>, String>;

/// A drain's count: `scur` + `qcur` of the servers of `ports`. At 0, they
/// go to `maint` (and the state file is written), and the connections
/// still on the ports are what is left (none, unless an HAProxy worker
/// that was reloaded away still finishes requests). When
/// HAProxy cannot be asked, the set counts as drained only if HAProxy had
/// acknowledged each of its servers in `maint`.
pub fn count(h: &Haproxy, mem: &Memory, ports: &[u16]) -> (Counted, Vec<String>) {
    let mut seen = mem.lock();
    let mut talk = Talk { h, seen: &mut seen };
    let mut notes = Vec::new();
    let counted = (|| {
        notes.extend(talk.catch_up()?);
        let stat = talk.stat()?;
        let mut counts = Vec::new();
        for &p in ports {
            let Some(s) = stat.iter().find(|s| port_of(&s.addr) == Some(p)) else {
                return Err(format!("backend {} has no server on port {p}", h.backend));
            };
            counts.push((p, (s.scur + s.qcur) as usize));
        }
        if counts.iter().any(|c| c.1 > 0) {
            return Ok(counts);
        }
        let servers = talk.servers()?;
        talk.set(&servers, ports, Admin::Maint)?;
        if let Err(e) = talk.persist() {
            notes.push(format!("cannot save the server states: {e}"));
        }
        // What the kernel sees too: a worker of an HAProxy reloaded by
        // someone still holds its requests, which the new one's counts
        // do not show.
        let held = crate::tcp::connections_per_port(ports)?;
        if held.iter().any(|c| c.1 > 0) {
            return Ok(held);
        }
        let r = &mut talk.seen.receipt;
        if r.after.is_none() && r.from.iter().any(|p| ports.contains(p)) {
            r.drain_took = r.switched_at.map(|t| t.elapsed());
            r.after = Some(stat);
        }
        Ok(counts)
    })();
    let counted = counted.or_else(|e| {
        if ports.iter().all(|p| talk.seen.acked.get(p) == Some(&Admin::Maint)) {
            Ok(ports.iter().map(|&p| (p, 0)).collect())
        } else {
            Err(format!("{e}; the servers of these ports may still get requests"))
        }
    });
    (counted, notes)
}

#[cfg(test)]
#[path = "haproxy_tests.rs"]
mod tests;
