//! The YAML config: parsing, defaults and validation.
//!
//! The file is walked key by key rather than deserialized in one go, so
//! that a single read reports every problem at once, each naming the file
//! and the key (`app-servers.smoke_test[0]`), and YAML syntax errors their
//! line. Nothing here starts a process or opens a socket; it only reads
//! files and checks that paths exist.

use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A whole config file: groups in file order.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub groups: Vec<GroupConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupConfig {
    pub name: String,
    /// The config file's directory: the base of relative action paths.
    pub base: PathBuf,
    /// Program and arguments, `{numproc}` still in place; a relative program
    /// path is already resolved against `directory`.
    pub argv: Vec<String>,
    pub directory: PathBuf,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub env: Vec<(String, String)>,
    pub worksets: Vec<Vec<u16>>,
    pub checks: Vec<Check>,
    pub actions: Vec<Action>,
    pub timing: Timing,
    pub stop_signal: i32,
    /// Sent to a retiring set as its drain begins: "let go of your clients".
    pub drain_signal: Option<i32>,
    /// Roll this many slots at a time (`surge`); `None`: all at once.
    pub surge: Option<usize>,
    /// Who the children run as, from `user:` and `group:`.
    pub credentials: Option<Credentials>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Set when `user:` is: the name and home for USER, LOGNAME and HOME.
    pub user: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub start_timeout: Duration,
    pub drain_timeout: Duration,
    pub drain_quiet: Duration,
    pub stop_timeout: Duration,
    pub action_timeout: Duration,
    /// How often a drain logs its progress; zero: never.
    pub drain_report: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            start_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(300),
            drain_quiet: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(30),
            drain_report: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    Http {
        host: Host,
        path: String,
        status: u16,
        /// Request headers as written, each replacing rolld's own of the
        /// same name (compared without case).
        headers: Vec<(String, String)>,
        /// Bytes the response body must contain.
        body: Option<String>,
        timeout: Duration,
    },
    Tcp {
        host: Host,
        timeout: Duration,
    },
}

/// Where a check connects: `host:` of the long form.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Host {
    /// `localhost`, the default: the loopback of both families, ::1 and
    /// 127.0.0.1, whatever /etc/hosts says (RFC 6761), never the resolver.
    #[default]
    Localhost,
    /// An address literal: that address alone.
    Ip(IpAddr),
    /// Any other name: resolved when the check runs.
    Name(String),
}

impl std::fmt::Display for Host {
    /// As in a URL: `localhost`, `127.0.0.1`, `[::1]`, `app.internal`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Localhost => f.write_str("localhost"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    ReplaceFile { template: PathBuf, output: PathBuf },
    RunProc { command: String },
}

const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads and validates `path`. On failure, every problem found, one line
/// each, already prefixed with the file name.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    if meta.is_dir() {
        return Err(vec![format!("{shown}: is a directory, not a config file")]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    // Symlinks stay in the path and in its base: after a `current ->
    // releases/r2` flip, a re-read and relative paths reach r2.
    let abs = absolute(path).map_err(|e| vec![format!("{shown}: cannot make the path absolute: {e}")])?;
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    parse(&text, &shown, &base).map(|groups| Config { path: abs, groups })
}

/// A config's path as rolld keeps it and names its socket after: joined to
/// the working directory, `.` and repeated slashes dropped, symlinks not
/// resolved. A `..` is folded into the component before it only where that
/// component is a real directory at the time (the kernel then resolves the
/// two to the same place); after a symlink, or a name that cannot be looked
/// at, it stays as given, since `current/..` is the parent of the release
/// `current` points to, which lexical folding would get wrong.
pub fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in std::path::absolute(path)?.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::RootDir) => {}
                Some(Component::Normal(_)) if std::fs::symlink_metadata(&out).is_ok_and(|m| m.is_dir()) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod absolute_tests {
    use super::absolute;
    use std::path::{Path, PathBuf};

    #[test]
    fn relative_paths_join_the_cwd_and_dots_go() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("current/rolld.yml")).unwrap(), cwd.join("current/rolld.yml"));
        assert_eq!(absolute(Path::new("./current//./rolld.yml")).unwrap(), cwd.join("current/rolld.yml"));
        assert_eq!(absolute(Path::new("/srv/app/rolld.yml")).unwrap(), Path::new("/srv/app/rolld.yml"));
        assert_eq!(absolute(Path::new("/../srv/rolld.yml")).unwrap(), Path::new("/srv/rolld.yml"));
    }

    #[test]
    fn symlinks_stay_and_dotdot_folds_only_over_a_real_directory() {
        let t = std::env::temp_dir().join(format!("rolld-absolute-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("releases/r1")).unwrap();
        std::fs::create_dir_all(t.join("app")).unwrap();
        std::os::unix::fs::symlink("releases/r1", t.join("current")).unwrap();
        let link = t.join("current/rolld.yml");
        assert_eq!(absolute(&link).unwrap(), link, "the symlink is not resolved");
        assert_eq!(absolute(&t.join("app/../current/rolld.yml")).unwrap(), link, "app is a directory");
        // current/.. is releases/, not the directory holding current.
        let through: PathBuf = t.join("current/../r1/rolld.yml");
        assert_eq!(absolute(&through).unwrap(), through);
        assert_eq!(absolute(&t.join("gone/../x.yml")).unwrap(), t.join("gone/../x.yml"), "unknown: kept");
        std::fs::remove_dir_all(&t).unwrap();
    }
}

/// Parses config text. `file` names it in messages; `base` is the directory
/// relative paths start from.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Vec<GroupConfig>, Vec<String>> {
    let mut cx = Cx { file, errs: Vec::new() };
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            return Err(vec![format!("{file}{at}: invalid YAML: {e}")]);
        }
    };
    let top = match doc {
        Value::Mapping(m) if !m.is_empty() => m,
        Value::Null => return Err(vec![format!("{file}: no group defined (the file is empty)")]),
        Value::Mapping(_) => return Err(vec![format!("{file}: no group defined")]),
        _ => return Err(vec![format!("{file}: the top level must map group names to groups")]),
    };
    let mut groups = Vec::new();
    let mut all_worksets = Vec::new();
    for (k, v) in &top {
        let Some(name) = k.as_str() else {
            cx.err("", format!("group name {} is not a string", show(k)));
            continue;
        };
        if let Err(why) = valid_group_name(name) {
            cx.err("", format!("group name {}: {why}", show(k)));
            continue;
        }
        let (g, worksets) = group(&mut cx, name, v, base);
        all_worksets.push((name.to_string(), worksets));
        groups.extend(g);
    }
    let mut seen: HashMap<u16, String> = HashMap::new();
    for (name, worksets) in &all_worksets {
        for (i, ws) in worksets.iter().enumerate() {
            for &p in ws {
                let here = format!("{name}.workset[{i}]");
                if let Some(first) = seen.insert(p, here.clone()) {
                    cx.err(&here, format!("port {p} is already used by {first}"));
                }
            }
        }
    }
    if cx.errs.is_empty() { Ok(groups) } else { Err(cx.errs) }
}

struct Cx<'a> {
    file: &'a str,
    errs: Vec<String>,
}

impl Cx<'_> {
    fn err(&mut self, key: &str, msg: impl std::fmt::Display) {
        if key.is_empty() {
            self.errs.push(format!("{}: {msg}", self.file));
        } else {
            self.errs.push(format!("{}: {key}: {msg}", self.file));
        }
    }
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

/// What a config allows but is probably not meant: a group with no smoke
/// test (its set goes live as soon as it is spawned), and ports inside the
/// kernel's ephemeral range `ephemeral` (an outgoing connection can hold
/// such a port when a set needs it).
pub fn warnings(groups: &[GroupConfig], ephemeral: Option<(u16, u16)>) -> Vec<String> {
    let mut out = Vec::new();
    for g in groups {
        if g.checks.is_empty() {
            out.push(format!("{}: no smoke_test: a new set goes live as soon as it is spawned, ready or not", g.name));
        }
        if let Some((lo, hi)) = ephemeral {
            for (i, w) in g.worksets.iter().enumerate() {
                let inside: Vec<String> = w.iter().filter(|p| (lo..=hi).contains(*p)).map(u16::to_string).collect();
                if !inside.is_empty() {
                    out.push(format!(
                        "{}.workset[{i}]: port(s) {} inside net.ipv4.ip_local_port_range {lo}-{hi}: an outgoing connection can hold one when the set starts",
                        g.name,
                        inside.join(", ")
                    ));
                }
            }
        }
    }
    out
}

/// The kernel's ephemeral port range, from /proc.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let t = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut f = t.split_whitespace().map(|x| x.parse::<u16>());
    Some((f.next()?.ok()?, f.next()?.ok()?))
}

/// Group names appear in logs, the control protocol and the state file:
/// letters, digits, `-`, `_` and `.`, at most 64.
pub fn valid_group_name(name: &str) -> Result<(), String> {
    const RULE: &str = "a group name is 1 to 64 letters, digits, '-', '_' or '.'";
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{RULE} ({} characters)", name.chars().count()));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        Some(c) => Err(format!("{RULE} (not {:?})", c)),
        None => Ok(()),
    }
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

/// A group, when it has no problem, and its worksets in any case (for the
/// check of ports across groups).
fn group(cx: &mut Cx, name: &str, v: &Value, base: &Path) -> (Option<GroupConfig>, Vec<Vec<u16>>) {
    let before = cx.errs.len();
    let Some(m) = map(cx, name, v) else { return (None, Vec::new()) };
    let mut cmd = None;
    let mut cmd_seen = false;
    let mut directory = base.to_path_buf();
    let mut g = GroupConfig {
        name: name.to_string(),
        base: base.to_path_buf(),
        argv: Vec::new(),
        directory: PathBuf::new(),
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
    };
    let mut has_workset = false;
    let (mut user, mut group_name) = (None, None);
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
                    directory = base.join(d);
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
                    if let Some(a) = action(cx, &format!("{k}[{i}]"), a, base) {
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
            "user" => user = scalar(cx, &k, v),
            "group" => group_name = scalar(cx, &k, v),
            "stop_signal" => g.stop_signal = signal(cx, &k, v).unwrap_or(g.stop_signal),
            "drain_signal" => g.drain_signal = signal(cx, &k, v),
            "surge" => match v.as_u64() {
                Some(n) if n >= 1 => g.surge = Some(n as usize),
                _ => cx.err(&k, format!("expected a number of processes, 1 or more, got {}", show(v))),
            },
            _ => cx.err(&k, "unknown key"),
        }
    }
    if !has_workset {
        cx.err(&format!("{name}.workset"), "missing (at least two worksets are needed)");
    }
    // A template must render with what a rollout gives it, not only parse:
    // an undefined variable would otherwise roll back every rollout.
    if let (Some(first), Some(second)) = (g.worksets.first(), g.worksets.get(1)) {
        for (i, a) in g.actions.iter().enumerate() {
            let Action::ReplaceFile { template, .. } = a else { continue };
            let Ok(src) = read_template(template) else { continue };
            if let Err(e) = crate::actions::render_string(&src, name, first, second) {
                let msg =
                    format!("template {} does not render with ports, old_ports and group: {e}", template.display());
                cx.err(&format!("{name}.after_start[{i}]"), msg);
            }
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
    if user.is_some() || group_name.is_some() {
        g.credentials = credentials(cx, name, user.as_deref(), group_name.as_deref());
    }
    match std::fs::metadata(&directory) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => cx.err(&format!("{name}.directory"), format!("{} is not a directory", directory.display())),
        Err(e) => cx.err(&format!("{name}.directory"), format!("{}: {e}", directory.display())),
    }
    g.directory = directory;
    match cmd {
        None if !cmd_seen => {
            cx.err(&format!("{name}.cmd"), "missing (the command to run, with {numproc} for the port)")
        }
        None => {}
        Some(c) => match split_shell(&c) {
            Ok(argv) if argv.is_empty() => cx.err(&format!("{name}.cmd"), "is empty"),
            Ok(mut argv) => {
                if argv[0].contains('/') {
                    let prog = g.directory.join(&argv[0]);
                    if !prog.is_file() {
                        cx.err(&format!("{name}.cmd"), format!("program {} not found", prog.display()));
                    }
                    argv[0] = prog.to_string_lossy().into_owned();
                }
                g.argv = argv;
            }
            Err(e) => cx.err(&format!("{name}.cmd"), e),
        },
    }
    let worksets = g.worksets.clone();
    ((cx.errs.len() == before).then_some(g), worksets)
}

/// Templates are small regular files: a device or a FIFO named by mistake
/// must not hang or exhaust rolld.
pub fn read_template(path: &Path) -> std::io::Result<String> {
    const MAX: u64 = 1 << 20;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX {
        return Err(std::io::Error::other(format!("larger than {MAX} bytes")));
    }
    std::fs::read_to_string(path)
}

/// Resolves `user:` and `group:`. An unknown name is an error, never a
/// silent fallback to running the group as root.
fn credentials(cx: &mut Cx, name: &str, user: Option<&str>, group: Option<&str>) -> Option<Credentials> {
    let euid = crate::sys::euid();
    let u = match user {
        None => None,
        Some(u) => match crate::sys::lookup_user(u) {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                cx.err(&format!("{name}.user"), format!("unknown user {u:?}; refusing to run the group as root"));
                return None;
            }
            Err(e) => {
                cx.err(&format!("{name}.user"), format!("cannot look up user {u:?}: {e}"));
                return None;
            }
        },
    };
    let gid = match group {
        None => u.as_ref().map_or(crate::sys::egid(), |u| u.gid),
        Some(gname) => match crate::sys::lookup_group(gname) {
            Ok(Some(gid)) => gid,
            Ok(None) => {
                cx.err(&format!("{name}.group"), format!("unknown group {gname:?}"));
                return None;
            }
            Err(e) => {
                cx.err(&format!("{name}.group"), format!("cannot look up group {gname:?}: {e}"));
                return None;
            }
        },
    };
    let uid = u.as_ref().map_or(euid, |u| u.uid);
    if euid != 0 && (uid != euid || gid != crate::sys::egid()) {
        let key = if user.is_some() { "user" } else { "group" };
        cx.err(&format!("{name}.{key}"), format!("switching needs rolld to run as root (it runs as uid {euid})"));
        return None;
    }
    if euid != 0 {
        // rolld's own user and group: nothing to switch (and no right to).
        return None;
    }
    let groups = match &u {
        Some(u) => match crate::sys::group_list(&u.name, gid) {
            Ok(g) => g,
            Err(e) => {
                cx.err(&format!("{name}.user"), format!("cannot list the groups of {:?}: {e}", u.name));
                return None;
            }
        },
        None => vec![gid],
    };
    Some(Credentials { uid, gid, groups, user: u.map(|u| (u.name, u.home)) })
}

fn check_template(cx: &mut Cx, key: &str, template: &Path) -> bool {
    let before = cx.errs.len();
    match read_template(template) {
        Ok(src) => {
            let env = minijinja::Environment::new();
            if let Err(e) = env.template_from_str(&src) {
                cx.err(key, format!("template {}: {e}", template.display()));
            }
        }
        Err(e) => cx.err(key, format!("template {}: {e}", template.display())),
    }
    cx.errs.len() == before
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

fn action(cx: &mut Cx, key: &str, v: &Value, base: &Path) -> Option<Action> {
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
            let (template, output) = (base.join(template?), base.join(output?));
            let template_ok = check_template(cx, &format!("{k}[1]"), &template);
            let output_ok = match output.parent() {
                Some(dir) if !dir.is_dir() => {
                    cx.err(&format!("{k}[2]"), format!("output directory {} does not exist", dir.display()));
                    false
                }
                _ => true,
            };
            (ok && template_ok && output_ok).then_some(Action::ReplaceFile { template, output })
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

/// `{numproc}` replaced by the port.
pub fn with_port(s: &str, port: u16) -> String {
    s.replace("{numproc}", &port.to_string())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
