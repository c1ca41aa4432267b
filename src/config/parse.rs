//! The first step of reading a config: the text alone. Every key is read
//! and checked for its shape (types, ranges, names, ports across groups);
//! paths are joined to the config's directory, never looked at; `user:`
//! and `group:` are kept as names. Nothing here touches the system: the
//! same text gives the same result anywhere.

use super::{Action, Check, Cx, GroupConfig, Haproxy, Health, Host, Listen, Timing, valid_group_name};
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many processes in a set of a `listen:` group.
const MAX_PROCS: usize = 128;
/// Without `check_from:`, a `listen:` group's check ports are the ones
/// just below this (Linux's default ephemeral range starts here), group
/// after group in file order.
const CHECK_PORTS_BELOW: u32 = 32768;

/// A group as its text says, before the system is asked anything.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The group, `credentials` still `None`: `resolve` sets them.
    pub cfg: GroupConfig,
    /// `user:` as written: a user's name or uid.
    pub user: Option<String>,
    /// `group:` as written: a Unix group's name or gid.
    pub gid: Option<String>,
    /// The `replace_file`s of `after_start`, for resolve to look at their
    /// files: kept even when the entry has another problem.
    pub renders: Vec<Render>,
}

/// A `replace_file` as written, its paths joined.
#[derive(Clone, Debug, PartialEq)]
pub struct Render {
    /// Where it is in the file: `app.after_start[2]`.
    pub key: String,
    pub template: PathBuf,
    pub output: PathBuf,
}

/// What `parse` makes of a text: every group it could read (those with
/// problems included, so that `resolve` can report theirs too), and every
/// problem, one line each.
#[derive(Debug)]
pub struct Parsed {
    pub drafts: Vec<Draft>,
    pub errors: Vec<String>,
}

/// Parses config text. `file` names it in messages; `base` is the
/// directory relative paths start from.
pub fn parse(text: &str, file: &str, base: &Path) -> Parsed {
    let fail = |msg: String| Parsed { drafts: Vec::new(), errors: vec![msg] };
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            return fail(format!("{file}{at}: invalid YAML: {e}"));
        }
    };
    let top = match doc {
        Value::Mapping(m) if !m.is_empty() => m,
        Value::Null => return fail(format!("{file}: no group defined (the file is empty)")),
        Value::Mapping(_) => return fail(format!("{file}: no group defined")),
        _ => return fail(format!("{file}: the top level must map group names to groups")),
    };
    let mut cx = Cx { file, errs: Vec::new() };
    let mut drafts: Vec<Draft> = Vec::new();
    let mut below = CHECK_PORTS_BELOW;
    for (k, v) in &top {
        let Some(name) = k.as_str() else {
            cx.err("", format!("group name {} is not a string", show(k)));
            continue;
        };
        if let Err(why) = valid_group_name(name) {
            cx.err("", format!("group name {}: {why}", show(k)));
            continue;
        }
        drafts.extend(group(&mut cx, name, v, base, &mut below));
    }
    let mut seen: HashMap<u16, String> = HashMap::new();
    for l in drafts.iter().filter_map(|d| d.cfg.listen.as_ref().map(|l| (l, &d.cfg.name))) {
        let here = format!("{}.listen", l.1);
        if let Some(first) = seen.insert(l.0.addr.port(), here.clone()) {
            cx.err(&here, format!("port {} is already used by {first}", l.0.addr.port()));
        }
    }
    for d in &drafts {
        for (i, ws) in d.cfg.worksets.iter().enumerate() {
            for &p in ws {
                let here = format!("{}.workset[{i}]", d.cfg.name);
                if let Some(first) = seen.insert(p, here.clone()) {
                    cx.err(&here, format!("port {p} is already used by {first}"));
                }
            }
        }
    }
    Parsed { drafts, errors: cx.errs }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b} (a boolean)"),
        Value::Number(n) => format!("{n} (a number)"),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

fn string(cx: &mut Cx, key: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            cx.err(key, format!("expected a string, got {}", show(v)));
            None
        }
    }
}

/// A string, number or boolean, as text (for environment values).
fn scalar(cx: &mut Cx, key: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            cx.err(key, format!("expected a string, got {}", show(v)));
            None
        }
    }
}

fn seconds(cx: &mut Cx, key: &str, v: &Value, allow_zero: bool) -> Option<Duration> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && (s > 0.0 || (allow_zero && s == 0.0)) && s < 1e9 => {
            Some(Duration::from_secs_f64(s))
        }
        _ => {
            let want = if allow_zero { "zero or more" } else { "more than zero" };
            cx.err(key, format!("expected a number of seconds, {want}, got {}", show(v)));
            None
        }
    }
}

fn seq<'v>(cx: &mut Cx, key: &str, v: &'v Value) -> Option<&'v Vec<Value>> {
    match v {
        Value::Sequence(s) => Some(s),
        _ => {
            cx.err(key, format!("expected a list, got {}", show(v)));
            None
        }
    }
}

fn map<'v>(cx: &mut Cx, key: &str, v: &'v Value) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        _ => {
            cx.err(key, format!("expected a mapping, got {}", show(v)));
            None
        }
    }
}

/// The entries of a mapping with their keys as strings; a non-string key is
/// reported and skipped.
fn entries<'v>(cx: &mut Cx, key: &str, m: &'v Mapping) -> Vec<(String, &'v Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match k.as_str() {
            Some(s) => out.push((s.to_string(), v)),
            None => cx.err(key, format!("key {} is not a string", show(k))),
        }
    }
    out
}

/// A signal by name or number, for a process that must survive it: not
/// KILL or STOP.
fn signal(cx: &mut Cx, key: &str, v: &Value) -> Option<i32> {
    let text = scalar(cx, key, v)?;
    match crate::sys::signal_number(&text) {
        Some(n) if n != libc::SIGKILL && n != libc::SIGSTOP => Some(n),
        _ => {
            cx.err(key, format!("unknown or unusable signal {}", show(v)));
            None
        }
    }
}

/// A one-key mapping such as `- run_proc: CMD`.
fn single<'v>(cx: &mut Cx, key: &str, v: &'v Value) -> Option<(String, &'v Value)> {
    let m = map(cx, key, v)?;
    let mut e = entries(cx, key, m);
    if e.len() != 1 {
        cx.err(key, format!("expected exactly one key, got {}", e.len()));
        return None;
    }
    e.pop()
}

/// The word `numprocs`, which stands for the set's ports.
fn numprocs(cx: &mut Cx, key: &str, v: &Value) -> bool {
    if v.as_str() == Some("numprocs") {
        return true;
    }
    cx.err(key, format!("expected the word numprocs (the set's ports), got {}", show(v)));
    false
}

/// `listen:`: a port (on 0.0.0.0), or an address and port
/// (`127.0.0.1:8080`, `[::]:8080`).
fn listen_addr(cx: &mut Cx, key: &str, v: &Value) -> Option<SocketAddr> {
    let addr = match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()).map(|p| (Ipv4Addr::UNSPECIFIED, p).into()),
        Value::String(s) => {
            s.parse::<SocketAddr>().ok().or_else(|| s.parse::<u16>().ok().map(|p| (Ipv4Addr::UNSPECIFIED, p).into()))
        }
        _ => None,
    };
    match addr {
        Some(a) if a.port() != 0 => Some(a),
        _ => {
            let want = "expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080')";
            cx.err(key, format!("{want}, got {}", show(v)));
            None
        }
    }
}

/// `rel` joined to `dir`, with the `.` components and repeated slashes
/// dropped (`..` stays: it means what the file system makes of it).
fn join(dir: &Path, rel: &str) -> PathBuf {
    dir.join(rel).components().collect()
}

/// A group as far as it could be read; `None` if it is not a mapping.
/// `below`: where the default check ports of the next `listen:` group end.
fn group(cx: &mut Cx, name: &str, v: &Value, base: &Path, below: &mut u32) -> Option<Draft> {
    let m = map(cx, name, v)?;
    let mut cmd = None;
    let mut cmd_seen = false;
    let mut g = GroupConfig {
        name: name.to_string(),
        base: base.to_path_buf(),
        argv: Vec::new(),
        directory: base.to_path_buf(),
        stdout: None,
        stderr: None,
        env: Vec::new(),
        worksets: Vec::new(),
        checks: Vec::new(),
        actions: Vec::new(),
        timing: Timing::default(),
        stop_signal: libc::SIGTERM,
        drain_signal: None,
        surge: None,
        credentials: None,
        listen: None,
        haproxy: None,
        health: None,
    };
    let mut has_workset = false;
    let (mut listen, mut procs, mut check_from) = (None, None, None);
    let (mut user, mut gid) = (None, None);
    let mut renders = Vec::new();
    for (key, v) in entries(cx, name, m) {
        let k = format!("{name}.{key}");
        let t = &mut g.timing;
        match key.as_str() {
            "cmd" => {
                cmd_seen = true;
                cmd = string(cx, &k, v);
            }
            "directory" => {
                if let Some(d) = string(cx, &k, v) {
                    g.directory = join(base, &d);
                }
            }
            "stdout" => g.stdout = string(cx, &k, v),
            "stderr" => g.stderr = string(cx, &k, v),
            "env" => {
                if let Some(m) = map(cx, &k, v) {
                    for (ek, ev) in entries(cx, &k, m) {
                        if let Some(val) = scalar(cx, &format!("{k}.{ek}"), ev) {
                            g.env.push((ek, val));
                        }
                    }
                }
            }
            "workset" => {
                has_workset = true;
                g.worksets = worksets(cx, &k, v);
            }
            "smoke_test" => {
                for (i, c) in seq(cx, &k, v).into_iter().flatten().enumerate() {
                    if let Some(c) = check(cx, &format!("{k}[{i}]"), c) {
                        g.checks.push(c);
                    }
                }
            }
            "after_start" => {
                for (i, a) in seq(cx, &k, v).into_iter().flatten().enumerate() {
                    if let Some(a) = action(cx, &format!("{k}[{i}]"), a, base, &mut renders) {
                        g.actions.push(a);
                    }
                }
            }
            "start_timeout" => t.start_timeout = seconds(cx, &k, v, false).unwrap_or(t.start_timeout),
            "drain_timeout" => t.drain_timeout = seconds(cx, &k, v, false).unwrap_or(t.drain_timeout),
            "drain_quiet" => t.drain_quiet = seconds(cx, &k, v, true).unwrap_or(t.drain_quiet),
            "stop_timeout" => t.stop_timeout = seconds(cx, &k, v, false).unwrap_or(t.stop_timeout),
            "action_timeout" => t.action_timeout = seconds(cx, &k, v, false).unwrap_or(t.action_timeout),
            "drain_report" => t.drain_report = seconds(cx, &k, v, true).unwrap_or(t.drain_report),
            "bake" => t.bake = seconds(cx, &k, v, true).unwrap_or(t.bake),
            "health" => g.health = health(cx, &k, v),
            "user" => user = scalar(cx, &k, v),
            "group" => gid = scalar(cx, &k, v),
            "stop_signal" => g.stop_signal = signal(cx, &k, v).unwrap_or(g.stop_signal),
            "drain_signal" => g.drain_signal = signal(cx, &k, v),
            "surge" => match v.as_u64() {
                Some(n) if n >= 1 => g.surge = Some(n as usize),
                _ => cx.err(&k, format!("expected a number of processes, 1 or more, got {}", show(v))),
            },
            "listen" => listen = listen_addr(cx, &k, v),
            "haproxy" => g.haproxy = haproxy(cx, &k, v, base),
            "procs" => match v.as_u64() {
                Some(n) if (1..=MAX_PROCS as u64).contains(&n) => procs = Some(n as usize),
                _ => cx.err(&k, format!("expected a number of processes, 1 to {MAX_PROCS}, got {}", show(v))),
            },
            "check_from" => match v.as_u64() {
                Some(n) if (1..=65535).contains(&n) => check_from = Some(n as u16),
                _ => cx.err(&k, format!("expected a port, 1 to 65535, got {}", show(v))),
            },
            _ => cx.err(&k, "unknown key"),
        }
    }
    let keyed = |key: &str| m.contains_key(Value::from(key));
    if g.health.is_some() && g.checks.is_empty() && !keyed("smoke_test") {
        cx.err(&format!("{name}.health"), "runs the group's smoke_test checks: this group has none");
    }
    match (listen, procs) {
        (Some(addr), Some(n)) => {
            let from = match check_from {
                Some(p) => u32::from(p),
                None => below.saturating_sub(2 * n as u32),
            };
            *below = (*below).min(from);
            if from == 0 || from + 2 * n as u32 - 1 > 65535 {
                let why = format!("the {} check ports from {from} do not fit below 65536", 2 * n);
                cx.err(&format!("{name}.check_from"), why);
            } else {
                let l = Listen { addr, procs: n, check_from: from as u16 };
                let bank = |b: u16| (0..n as u16).map(|s| l.check_from + b * n as u16 + s).collect::<Vec<u16>>();
                g.worksets = vec![bank(0), bank(1)];
                g.actions.insert(0, Action::Route);
                g.listen = Some(l);
            }
            if has_workset {
                let why = "listen: and workset: exclude each other (with listen:, rolld holds the port and gives each process a socket of it)";
                cx.err(&format!("{name}.workset"), why);
            }
        }
        (Some(_), None) if !keyed("procs") => {
            cx.err(&format!("{name}.procs"), "missing (how many processes serve the listen: port)")
        }
        (Some(_), None) => {}
        (None, _) if !keyed("listen") => {
            for key in ["procs", "check_from"].into_iter().filter(|k| keyed(k)) {
                cx.err(&format!("{name}.{key}"), "only with listen: (a port rolld holds itself)");
            }
            if !has_workset {
                cx.err(&format!("{name}.workset"), "missing (at least two worksets are needed, or listen: and procs:)");
            }
        }
        (None, _) => {}
    }
    if keyed("haproxy") && keyed("listen") {
        let why = "haproxy: and listen: exclude each other (with listen:, rolld holds the port: no load balancer is in front)";
        cx.err(&format!("{name}.haproxy"), why);
    }
    if g.haproxy.is_some() {
        g.actions.insert(0, Action::Haproxy);
        // HAProxy's own counts say when a set is drained: no quiet
        // period is needed unless one is asked for.
        if !keyed("drain_quiet") {
            g.timing.drain_quiet = Duration::ZERO;
        }
    }
    if g.listen.is_none() && !keyed("listen") {
        let fd_in = |s: &str| s.contains("{fd}");
        let cmd_has = cmd.as_deref().is_some_and(fd_in);
        for key in cmd_has.then_some("cmd").into_iter().chain(g.env.iter().filter(|e| fd_in(&e.1)).map(|_| "env")) {
            cx.err(
                &format!("{name}.{key}"),
                "{fd} is the socket of a listen: group's process; this group has no listen:",
            );
        }
    }
    if let (Some(k), Some(first)) = (g.surge, g.worksets.first()) {
        let n = first.len();
        if g.worksets.iter().any(|w| w.len() != n) {
            let sizes: Vec<String> = g.worksets.iter().map(|w| w.len().to_string()).collect();
            let msg = format!(
                "with surge, every workset must have the same number of ports (slot i is the i-th port of each), got sizes {}",
                sizes.join(", ")
            );
            cx.err(&format!("{name}.workset"), msg);
        } else if k > n {
            cx.err(&format!("{name}.surge"), format!("{k} is more than the {n} processes of a workset"));
        }
    }
    match cmd {
        None if !cmd_seen => {
            cx.err(&format!("{name}.cmd"), "missing (the command to run, with {numproc} for the port)")
        }
        None => {}
        Some(c) => match split_shell(&c) {
            Ok(argv) if argv.is_empty() => cx.err(&format!("{name}.cmd"), "is empty"),
            Ok(mut argv) => {
                // A program named with a slash is relative to the working
                // directory; one without is looked up in PATH when spawned.
                if argv[0].contains('/') {
                    argv[0] = join(&g.directory, &argv[0]).to_string_lossy().into_owned();
                }
                g.argv = argv;
            }
            Err(e) => cx.err(&format!("{name}.cmd"), e),
        },
    }
    Some(Draft { cfg: g, user, gid, renders })
}

/// `haproxy: {socket, backend, state_file, revert_errors}`, its paths
/// joined to `base`.
fn haproxy(cx: &mut Cx, key: &str, v: &Value, base: &Path) -> Option<Haproxy> {
    let m = map(cx, key, v)?;
    let (mut socket, mut backend, mut state_file) = (None, None, None);
    let mut revert_errors = super::DEFAULT_REVERT_ERRORS;
    let mut ok = true;
    for (k, v) in entries(cx, key, m) {
        let kk = format!("{key}.{k}");
        match k.as_str() {
            "socket" => socket = string(cx, &kk, v).map(|s| join(base, &s)),
            "backend" => match string(cx, &kk, v) {
                Some(b) if crate::haproxy::valid_name(&b) => backend = Some(b),
                Some(b) => cx.err(&kk, format!("{b:?} is not a backend name (letters, digits, '-', '_', '.' and ':')")),
                None => {}
            },
            "state_file" => state_file = string(cx, &kk, v).map(|s| join(base, &s)),
            "revert_errors" => match v.as_u64() {
                Some(n) if n <= 1_000_000_000 => revert_errors = n,
                _ => {
                    cx.err(&kk, format!("expected a number of errors, 0 (never) to 1000000000, got {}", show(v)));
                    ok = false;
                }
            },
            _ => {
                cx.err(&kk, "unknown key (known: socket, backend, state_file, revert_errors)");
                ok = false;
            }
        }
    }
    for (what, missing) in [("socket", socket.is_none()), ("backend", backend.is_none())] {
        if missing && !m.contains_key(Value::from(what)) {
            let why =
                if what == "socket" { "HAProxy's stats socket, level admin" } else { "the backend rolld switches" };
            cx.err(&format!("{key}.{what}"), format!("missing ({why})"));
        }
    }
    match (socket, backend) {
        (Some(socket), Some(backend)) if ok => Some(Haproxy { socket, backend, state_file, revert_errors }),
        _ => None,
    }
}

/// `health: {every: SECS, failures: N}`.
fn health(cx: &mut Cx, key: &str, v: &Value) -> Option<Health> {
    let m = map(cx, key, v)?;
    let (mut every, mut failures) = (None, None);
    for (hk, hv) in entries(cx, key, m) {
        let k = format!("{key}.{hk}");
        match hk.as_str() {
            "every" => every = seconds(cx, &k, hv, false),
            "failures" => match hv.as_u64() {
                Some(n @ 1..=1000) => failures = Some(n as u32),
                _ => cx.err(&k, format!("expected a number of checks in a row, 1 to 1000, got {}", show(hv))),
            },
            _ => cx.err(&k, "unknown key (every, failures)"),
        }
    }
    let keyed = |k: &str| m.contains_key(Value::from(k));
    for k in ["every", "failures"].into_iter().filter(|k| !keyed(k)) {
        cx.err(&format!("{key}.{k}"), "missing");
    }
    Some(Health { every: every?, failures: failures? })
}

fn worksets(cx: &mut Cx, key: &str, v: &Value) -> Vec<Vec<u16>> {
    let mut out = Vec::new();
    for (i, w) in seq(cx, key, v).into_iter().flatten().enumerate() {
        let k = format!("{key}[{i}]");
        let Some((name, ports)) = single(cx, &k, w) else { continue };
        if name != "numprocs" {
            cx.err(&k, format!("expected `numprocs: [ports]`, got key {name:?}"));
            continue;
        }
        let mut set = Vec::new();
        let listed = seq(cx, &format!("{k}.numprocs"), ports);
        if listed.is_some_and(|l| l.is_empty()) {
            cx.err(&k, "a workset needs at least one port");
        }
        for p in listed.into_iter().flatten() {
            match p.as_u64() {
                Some(n @ 1..=65535) => {
                    if set.contains(&(n as u16)) {
                        cx.err(&k, format!("port {n} appears twice"));
                    } else {
                        set.push(n as u16)
                    }
                }
                _ => cx.err(&k, format!("port {} is not in 1..65535", show(p))),
            }
        }
        out.push(set);
    }
    if out.len() < 2 && matches!(v, Value::Sequence(_)) {
        cx.err(key, "at least two worksets are needed (one serves while the next starts)");
    }
    out
}

fn check(cx: &mut Cx, key: &str, v: &Value) -> Option<Check> {
    let (name, arg) = single(cx, key, v)?;
    let k = format!("{key}.{name}");
    let http = match name.as_str() {
        "check_all_http_ports" => true,
        "check_all_tcp_ports" => false,
        _ => {
            cx.err(key, format!("unknown check {name:?} (known: check_all_http_ports, check_all_tcp_ports)"));
            return None;
        }
    };
    let mut host = Host::Localhost;
    let mut path = "/".to_string();
    let mut status = 200u16;
    let mut headers = Vec::new();
    let mut body = None;
    let mut timeout = DEFAULT_CHECK_TIMEOUT;
    if let Value::Mapping(m) = arg {
        let before = cx.errs.len();
        let mut has_ports = false;
        for (ok, ov) in entries(cx, &k, m) {
            let kk = format!("{k}.{ok}");
            match ok.as_str() {
                "ports" => {
                    has_ports = true;
                    numprocs(cx, &kk, ov);
                }
                "timeout" => timeout = seconds(cx, &kk, ov, false).unwrap_or(timeout),
                "host" => host = check_host(cx, &kk, ov).unwrap_or(host),
                "path" if http => match string(cx, &kk, ov) {
                    Some(p) if p.starts_with('/') => path = p,
                    Some(p) => cx.err(&kk, format!("must start with /, got {p:?}")),
                    None => {}
                },
                "status" if http => match ov.as_u64() {
                    Some(s @ 100..=599) => status = s as u16,
                    _ => cx.err(&kk, format!("expected an HTTP status, got {}", show(ov))),
                },
                "headers" if http => headers = check_headers(cx, &kk, ov),
                "body" if http => match string(cx, &kk, ov) {
                    Some(b) if b.is_empty() => cx.err(&kk, "is empty (it would match any body)"),
                    Some(b) => body = Some(b),
                    None => {}
                },
                _ => cx.err(&kk, "unknown key"),
            }
        }
        if !has_ports {
            cx.err(&k, "missing `ports: numprocs`");
        }
        if cx.errs.len() != before {
            return None;
        }
    } else if !numprocs(cx, &k, arg) {
        return None;
    }
    Some(if http { Check::Http { host, path, status, headers, body, timeout } } else { Check::Tcp { host, timeout } })
}

/// `host:` of a check: `localhost`, an IP literal (`::1` or `[::1]`), or a
/// name to resolve. No port: the port is the set's.
fn check_host(cx: &mut Cx, key: &str, v: &Value) -> Option<Host> {
    let s = string(cx, key, v)?;
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => Some(Host::Ip(IpAddr::V6(ip))),
            Err(_) => {
                cx.err(key, format!("expected an IPv6 address between the brackets, got {s:?}"));
                None
            }
        };
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let name = s.strip_suffix('.').unwrap_or(&s);
    if name.eq_ignore_ascii_case("localhost") {
        return Some(Host::Localhost);
    }
    if is_host_name(name) {
        return Some(Host::Name(s));
    }
    let why = if s.contains("://") || s.contains('/') {
        "a host only, with no scheme or path"
    } else if s.contains(':') {
        "a host with no port (the port is the set's)"
    } else {
        "an IP address or a host name"
    };
    cx.err(key, format!("expected {why}, got {s:?}"));
    None
}

/// A DNS name: labels of letters, digits, `-` and `_`, at most 63 bytes
/// each and 253 in all, the last one not all digits (that would be read as
/// a number by the resolver, not looked up).
fn is_host_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&name.len())
        && name.split('.').all(label_ok)
        && !name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Headers rolld owns whatever the config says: it sends a bodiless GET
/// on a connection of its own that it closes (a connection kept open would
/// hold the drain of that port).
const FIXED_HEADERS: [&str; 3] = ["connection", "content-length", "transfer-encoding"];

/// `headers:` of an HTTP check: a mapping of names to string values, each
/// name a token (RFC 9110) given once whatever its case, each value
/// printable ASCII (no line break, no control character).
fn check_headers(cx: &mut Cx, key: &str, v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(m) = map(cx, key, v) else { return out };
    for (name, hv) in entries(cx, key, m) {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_tchar) {
            cx.err(key, format!("header name {name:?} is not a token (letters, digits and !#$%&'*+-.^_`|~)"));
            continue;
        }
        let hk = format!("{key}.{name}");
        let Some(value) = string(cx, &hk, hv) else { continue };
        if FIXED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            cx.err(&hk, "cannot be set: rolld sends a GET with no body and `Connection: close`");
        } else if value.contains(['\r', '\n']) {
            cx.err(&hk, format!("the value contains a line break: {value:?}"));
        } else if !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            cx.err(&hk, format!("the value must be printable ASCII, got {value:?}"));
        } else if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            cx.err(&hk, "given twice (header names do not depend on case)");
        } else {
            out.push((name, value));
        }
    }
    out
}

fn action(cx: &mut Cx, key: &str, v: &Value, base: &Path, renders: &mut Vec<Render>) -> Option<Action> {
    let (name, arg) = single(cx, key, v)?;
    let k = format!("{key}.{name}");
    match name.as_str() {
        "replace_file" => {
            let args = seq(cx, &k, arg)?;
            if args.len() != 3 {
                cx.err(&k, "expected [numprocs, TEMPLATE, OUTPUT]");
                return None;
            }
            let ok = numprocs(cx, &format!("{k}[0]"), &args[0]);
            let template = string(cx, &format!("{k}[1]"), &args[1]);
            let output = string(cx, &format!("{k}[2]"), &args[2]);
            let (template, output) = (join(base, &template?), join(base, &output?));
            renders.push(Render { key: key.to_string(), template: template.clone(), output: output.clone() });
            ok.then_some(Action::ReplaceFile { template, output })
        }
        "run_proc" => {
            let command = string(cx, &k, arg)?;
            if command.trim().is_empty() {
                cx.err(&k, "empty command");
                return None;
            }
            Some(Action::RunProc { command })
        }
        _ => {
            cx.err(key, format!("unknown action {name:?} (known: replace_file, run_proc)"));
            None
        }
    }
}

/// Splits a command line as a POSIX shell would split words, without any
/// expansion: single quotes, double quotes (with \\ \" \$ \` escapes) and
/// backslashes.
pub fn split_shell(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    cur.push(c);
                }
                None => return Err("trailing backslash".into()),
            },
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
