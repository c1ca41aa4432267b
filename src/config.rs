//! The YAML config, read in two steps.
//!
//! - `parse` (config/parse.rs) is a pure function of the text: it walks the
//!   YAML key by key rather than deserializing it in one go, so that one
//!   read reports every problem at once, each naming the file and the key
//!   (`app-servers.smoke_test[0]`), and YAML syntax errors their line. It
//!   joins paths to the config's directory but looks at none of them.
//! - `resolve` (config/resolve.rs) asks the system about what the text
//!   names: that directories and programs exist, that templates read,
//!   parse and render, that output directories exist, and who `user:` and
//!   `group:` are. It asks through the `System` trait, so its tests need no
//!   files and no users.
//!
//! `load` does both for a file. Nothing here starts a process or opens a
//! socket.

mod parse;
mod resolve;
#[cfg(test)]
mod testing;

pub use parse::{Draft, Parsed, Render, parse, split_shell};
pub use resolve::{Kind, Live, System, read_template, resolve};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every key a group of the config accepts, as a dotted path from the
/// group (`haproxy.socket`); the keys of a check or an action follow their
/// name (`smoke_test.check_all_http_ports.path`). `env:` and a check's
/// `headers:` take names of the user's choosing, not listed. The docs and
/// the man pages are tested against this list, and this list against the
/// parser.
pub const KEYS: &[&str] = &[
    "cmd",
    "directory",
    "stdout",
    "stderr",
    "env",
    "user",
    "group",
    "workset",
    "workset.numprocs",
    "listen",
    "procs",
    "check_from",
    "smoke_test",
    "smoke_test.check_all_http_ports",
    "smoke_test.check_all_http_ports.ports",
    "smoke_test.check_all_http_ports.host",
    "smoke_test.check_all_http_ports.path",
    "smoke_test.check_all_http_ports.status",
    "smoke_test.check_all_http_ports.headers",
    "smoke_test.check_all_http_ports.body",
    "smoke_test.check_all_http_ports.timeout",
    "smoke_test.check_all_tcp_ports",
    "smoke_test.check_all_tcp_ports.ports",
    "smoke_test.check_all_tcp_ports.host",
    "smoke_test.check_all_tcp_ports.timeout",
    "after_start",
    "after_start.replace_file",
    "after_start.run_proc",
    "haproxy",
    "haproxy.socket",
    "haproxy.backend",
    "haproxy.state_file",
    "haproxy.revert_errors",
    "start_timeout",
    "action_timeout",
    "drain_timeout",
    "drain_quiet",
    "drain_report",
    "drain_signal",
    "stop_signal",
    "stop_timeout",
    "surge",
    "bake",
    "health",
    "health.every",
    "health.failures",
];

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
    /// `listen:`: rolld holds the public port itself (see `pool`).
    pub listen: Option<Listen>,
    /// `haproxy:`: the switch goes through HAProxy's Runtime API.
    pub haproxy: Option<Haproxy>,
    /// `health:`: the smoke_test checks run on the live set too.
    pub health: Option<Health>,
}

/// `haproxy:`: the backend whose servers, one per port of every workset,
/// rolld turns on and off through the Runtime API at `socket`.
#[derive(Clone, Debug, PartialEq)]
pub struct Haproxy {
    pub socket: PathBuf,
    pub backend: String,
    /// HAProxy's server-state-file, written after every change.
    pub state_file: Option<PathBuf>,
    /// During a bake, the errors HAProxy counts on the new servers (5xx
    /// responses, connection and response errors) that revert it; 0: none.
    pub revert_errors: u64,
}

/// `haproxy.revert_errors` when the config does not say.
pub const DEFAULT_REVERT_ERRORS: u64 = 5;

/// `health: {every: SECS, failures: N}`: the live processes are checked
/// every `every`; one that fails `failures` checks in a row is replaced
/// on its slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    pub every: Duration,
    pub failures: u32,
}

/// A group that holds its public port (`listen:`, `procs:`): two banks of
/// `procs` sockets on `addr`, each process given one. The group's
/// "ports" are then names of sockets: socket i is `check_from + i`, the
/// loopback source port rolld's checks of it come from; its worksets are
/// the two banks, `[check_from, +procs)` and `[check_from + procs, +procs)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub addr: std::net::SocketAddr,
    pub procs: usize,
    pub check_from: u16,
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
    /// How long the retiring set is kept, drained but running, after a
    /// switch, for a revert; zero: stopped once drained.
    pub bake: Duration,
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
            bake: Duration::ZERO,
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
    ReplaceFile {
        template: PathBuf,
        output: PathBuf,
    },
    RunProc {
        command: String,
    },
    /// A `listen:` group's switch: new connections to the sockets of the
    /// set's ports, and to no other. The first step of such a group.
    Route,
    /// A `haproxy:` group's switch: the servers of the set's ports
    /// `ready`, the old ones `drain`, the others `maint`. The first step
    /// of such a group.
    Haproxy,
}

/// Reads, parses and resolves `path`. On failure, every problem found, one
/// line each, already prefixed with the file name.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    if meta.is_dir() {
        return Err(vec![format!("{shown}: is a directory, not a config file")]);
    }
    let text = read_regular(path, MAX_CONFIG).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    // Symlinks stay in the path and in its base: after a `current ->
    // releases/r2` flip, a re-read and relative paths reach r2.
    let abs = absolute(path).map_err(|e| vec![format!("{shown}: cannot make the path absolute: {e}")])?;
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let Parsed { drafts, mut errors } = parse(&text, &shown, &base);
    // Every group read is resolved, with problems or not: one read reports
    // what the system says as well as what the text says.
    match resolve(drafts, &shown, &Live) {
        Ok(groups) if errors.is_empty() => Ok(Config { path: abs, groups }),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// A config file larger than this is refused.
const MAX_CONFIG: u64 = 16 << 20;

/// The text of the regular file `path` (symlinks followed), at most `max`
/// bytes. Only a regular file is ever opened: a device's open has effects
/// (a watchdog arms, a tape rewinds, a terminal becomes rolld's) and a
/// FIFO's can wait for ever. So the path is first taken with `O_PATH`,
/// which opens nothing, and its type checked; then that very file is
/// opened through /proc/self/fd, so a path swapped in between opens
/// nothing else. Without /proc the path is opened a second time,
/// non-blocking, and must still be the same file: a device swapped in
/// between the two opens would then be opened (and refused after).
fn read_regular(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| Err(std::io::Error::other(why));
    let handle = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path)?;
    let meta = handle.metadata()?;
    if !meta.is_file() {
        return refuse("not a regular file".into());
    }
    if meta.len() > max {
        return refuse(format!("larger than {max} bytes"));
    }
    let open =
        |p: &Path| std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(p);
    let f = match open(Path::new(&format!("/proc/self/fd/{}", handle.as_raw_fd()))) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = open(path)?;
            let now = f.metadata()?;
            if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
                return refuse("replaced while it was opened".into());
            }
            f
        }
        other => other?,
    };
    let mut text = String::new();
    f.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return refuse(format!("larger than {max} bytes"));
    }
    Ok(text)
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
mod keys_tests {
    use super::KEYS;
    use serde_yaml::Value;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Groups that use every key the parser accepts, and parse clean.
    const EVERY_KEY: &str = "
a:
  cmd: ./app --port {numproc}
  directory: /srv/a
  stdout: out.log
  stderr: err.log
  env: {MODE: prod}
  user: www
  group: www
  workset:
    - numprocs: [8001, 8002]
    - numprocs: [8003, 8004]
  smoke_test:
    - check_all_http_ports:
        ports: numprocs
        host: localhost
        path: /health
        status: 200
        headers: {Host: a.example}
        body: ok
        timeout: 2
    - check_all_tcp_ports: {ports: numprocs, host: 127.0.0.1, timeout: 1}
  after_start:
    - replace_file: [numprocs, lb.j2, lb.conf]
    - run_proc: nginx -s reload
  haproxy: {socket: h.sock, backend: app, state_file: h.state, revert_errors: 3}
  start_timeout: 10
  action_timeout: 10
  drain_timeout: 30
  drain_quiet: 1
  drain_report: 5
  drain_signal: SIGUSR1
  stop_signal: SIGTERM
  stop_timeout: 10
  surge: 1
  bake: 60
  health: {every: 5, failures: 3}
b:
  cmd: ./app --fd {fd}
  listen: 9000
  procs: 2
  check_from: 20000
";

    /// Dotted paths of the keys of `v`, below `at`; sequences add nothing
    /// to the path, and the names under `env` and `headers` are the user's.
    fn walk(v: &Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default();
                    let path = if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
                    if !path.ends_with(".env") && !path.ends_with(".headers") && path != "env" {
                        walk(v, &path, out);
                    }
                    out.insert(path);
                }
            }
            Value::Sequence(s) => s.iter().for_each(|v| walk(v, at, out)),
            _ => {}
        }
    }

    #[test]
    fn every_listed_key_is_accepted_and_every_accepted_key_listed() {
        let p = super::parse(EVERY_KEY, "every.yml", Path::new("/srv"));
        assert_eq!(p.errors, Vec::<String>::new());
        let doc: Value = serde_yaml::from_str(EVERY_KEY).unwrap();
        let mut used = BTreeSet::new();
        for group in doc.as_mapping().unwrap().values() {
            walk(group, "", &mut used);
        }
        let listed: BTreeSet<String> = KEYS.iter().map(|k| k.to_string()).collect();
        assert_eq!(used, listed, "the keys used above are the keys listed in KEYS");
    }

    /// A key the parser matches on is listed: a new key cannot be added to
    /// the parser alone.
    #[test]
    fn every_key_the_parser_names_is_listed() {
        let source = include_str!("config/parse.rs");
        let leaves: BTreeSet<&str> = KEYS.iter().map(|k| k.rsplit('.').next().unwrap_or(k)).collect();
        let mut named = BTreeSet::new();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix('"') else { continue };
            let Some((word, after)) = rest.split_once('"') else { continue };
            if after.trim_start().starts_with("=>") || after.trim_start().starts_with("if ") {
                named.insert(word);
            }
        }
        assert!(named.len() > 30, "the parser's match arms were found: {named:?}");
        let unlisted: Vec<&&str> = named.iter().filter(|w| !leaves.contains(*w)).collect();
        assert!(unlisted.is_empty(), "keys the parser accepts but KEYS does not list: {unlisted:?}");
    }
}

#[cfg(test)]
mod read_tests {
    use super::read_regular;
    use std::time::{Duration, Instant};

    #[test]
    fn only_small_regular_files_are_read_and_nothing_blocks() {
        let t = std::env::temp_dir().join(format!("rolld-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("small"), "abc").unwrap();
        std::os::unix::fs::symlink("small", t.join("link")).unwrap();
        std::fs::write(t.join("big"), vec![b'x'; 11]).unwrap();
        let made = std::process::Command::new("mkfifo").arg(t.join("fifo")).status().unwrap();
        assert!(made.success());
        let started = Instant::now();
        assert_eq!(read_regular(&t.join("small"), 10).unwrap(), "abc");
        assert_eq!(read_regular(&t.join("link"), 10).unwrap(), "abc", "a symlink to a regular file is read");
        let err = |p: &str| read_regular(std::path::Path::new(p), 10).unwrap_err().to_string();
        assert_eq!(err(t.join("big").to_str().unwrap()), "larger than 10 bytes");
        assert_eq!(err(t.join("fifo").to_str().unwrap()), "not a regular file", "a FIFO with no writer");
        assert_eq!(err("/dev/zero"), "not a regular file");
        assert!(err(t.join("gone").to_str().unwrap()).contains("No such file"));
        assert!(started.elapsed() < Duration::from_secs(2), "nothing waited: {:?}", started.elapsed());
        std::fs::remove_dir_all(&t).unwrap();
    }

    /// A writer waits in open(2) until a reader opens the FIFO: it still
    /// waits after read_regular refused the FIFO, which was never opened.
    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let t = std::env::temp_dir().join(format!("rolld-read-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        let fifo = t.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let opened = std::fs::OpenOptions::new().write(true).open(&fifo);
                tx.send(opened.is_ok()).unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(read_regular(&fifo, 10).unwrap_err().to_string(), "not a regular file");
        let early = rx.recv_timeout(Duration::from_millis(300));
        // Let the writer go before asserting, so the test ends either way.
        let _reader = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo)
        };
        writer.join().unwrap();
        assert!(early.is_err(), "read_regular opened the FIFO: its writer's open returned");
        std::fs::remove_dir_all(&t).unwrap();
    }
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

/// Where messages gather, each prefixed with the file and a key.
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
        if let (Some((lo, hi)), Some(l)) = (ephemeral, &g.listen) {
            let last = u32::from(l.check_from) + 2 * l.procs as u32 - 1;
            if u32::from(l.check_from) <= u32::from(hi) && last >= u32::from(lo) {
                out.push(format!(
                    "{}.check_from: ports {}-{last} overlap net.ipv4.ip_local_port_range {lo}-{hi}: a connection from this host to {} out of one of them would be taken for a check",
                    g.name, l.check_from, l.addr
                ));
            }
        } else if let Some((lo, hi)) = ephemeral {
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

/// `{numproc}` replaced by the port.
pub fn with_port(s: &str, port: u16) -> String {
    s.replace("{numproc}", &port.to_string())
}

#[cfg(test)]
#[path = "config/load_tests.rs"]
mod tests;
