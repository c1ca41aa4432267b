//! The state file: which processes rolld runs, so that a rolld started
//! after its predecessor was killed can take them over instead of leaving
//! them orphaned or starting a second set on top of them.
//!
//! It sits beside the control socket (same run directory, same name with
//! `.state`), is written 0600 by rename of a temporary file, and is read
//! only if it is a regular file owned by rolld's user and closed to others.
//! Each process is recorded with its start time (from /proc/PID/stat), so a
//! recycled pid is never mistaken for a backend. The same /proc reading
//! tells whether a process group still has a living member.
//!
//! A `listen:` group also has a line saying where its sockets are in the
//! keeper (see `keeper`): the layout of its pool, the keeper's descriptor
//! of its first socket, and the keeper's pid and start time.

pub use crate::group::Role;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One recorded process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub group: String,
    /// Serving (`live`), draining (`drain`), or starting or stopping
    /// (`other`).
    pub role: Role,
    /// The workset of its set's config that has its port (0 when none
    /// has), for whoever reads the file. A successor never uses it: it
    /// finds each port in its own config, whose worksets may differ.
    pub workset: usize,
    pub port: u16,
    pub pid: i32,
    pub start: u64,
}

/// Where the sockets of one `listen:` group are kept: the group's 2N
/// sockets and its control socket are the keeper's descriptors `fd` to
/// `fd + 2N`, in the order of the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub group: String,
    pub addr: std::net::SocketAddr,
    /// N: the slots of a bank.
    pub procs: usize,
    pub check_from: u16,
    pub fd: i32,
    /// The keeper.
    pub pid: i32,
    pub start: u64,
}

/// What a state file records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub procs: Vec<Entry>,
    pub sockets: Vec<Held>,
}

pub fn path_for(socket: &Path) -> PathBuf {
    socket.with_extension("state")
}

pub fn format(state: &State) -> String {
    let mut out = String::from("rolld-state 1\n");
    for h in &state.sockets {
        let Held { group, addr, procs, check_from, fd, pid, start } = h;
        out.push_str(&format!("{group} sockets {addr} {procs} {check_from} {fd} {pid} {start}\n"));
    }
    for e in &state.procs {
        let role = match e.role {
            Role::Live => "live",
            Role::Drain => "drain",
            Role::Other => "other",
        };
        out.push_str(&format!("{} {role} {} {} {} {}\n", e.group, e.workset, e.port, e.pid, e.start));
    }
    out
}

/// Parses a state file; lines that do not parse are errors, not skipped.
pub fn parse(text: &str) -> Result<State, String> {
    let mut lines = text.lines();
    if lines.next() != Some("rolld-state 1") {
        return Err("not a rolld state file (version 1)".into());
    }
    let mut state = State::default();
    for (i, l) in lines.enumerate() {
        let f: Vec<&str> = l.split(' ').collect();
        let bad = || format!("line {}: cannot parse {l:?}", i + 2);
        match f[..] {
            [group, "sockets", addr, procs, check_from, fd, pid, start] => state.sockets.push(Held {
                group: group.to_string(),
                addr: addr.parse().map_err(|_| bad())?,
                procs: procs.parse().ok().filter(|n| (1..=crate::pool::MAX_SLOTS).contains(n)).ok_or_else(bad)?,
                check_from: check_from.parse().map_err(|_| bad())?,
                fd: fd.parse().ok().filter(|fd| *fd >= 3).ok_or_else(bad)?,
                pid: pid.parse().ok().filter(|p| *p > 1).ok_or_else(bad)?,
                start: start.parse().map_err(|_| bad())?,
            }),
            [group, role @ ("live" | "drain" | "other"), workset, port, pid, start] => state.procs.push(Entry {
                group: group.to_string(),
                role: match role {
                    "live" => Role::Live,
                    "drain" => Role::Drain,
                    _ => Role::Other,
                },
                workset: workset.parse().map_err(|_| bad())?,
                port: port.parse().map_err(|_| bad())?,
                pid: pid.parse().ok().filter(|p| *p > 1).ok_or_else(bad)?,
                start: start.parse().map_err(|_| bad())?,
            }),
            _ => return Err(bad()),
        }
    }
    Ok(state)
}

/// Keeps the state file in step with the groups: rewritten only when
/// what it records has changed.
pub struct Recorder {
    pub path: PathBuf,
    text: String,
    /// Start times by pid, read once per process.
    starts: std::collections::HashMap<i32, u64>,
}

impl Recorder {
    pub fn new(path: PathBuf) -> Recorder {
        Recorder { path, text: String::new(), starts: Default::default() }
    }

    /// Records the processes of every set of `groups`, and where the
    /// keeper holds the sockets of `listen:` groups.
    pub fn save<'a>(
        &mut self,
        groups: impl Iterator<Item = &'a crate::group::Group>,
        sockets: Vec<Held>,
    ) -> Result<(), String> {
        let mut entries = Vec::new();
        for g in groups {
            for (set, role) in g.sets() {
                for p in &set.procs {
                    let Some(pid) = p.pid else { continue };
                    let start = *self.starts.entry(pid).or_insert_with(|| identity(pid).map_or(0, |i| i.0));
                    let workset = set.workset_of(p.port).unwrap_or(0);
                    entries.push(Entry { group: g.name.clone(), role, workset, port: p.port, pid, start });
                }
            }
        }
        self.starts.retain(|pid, _| entries.iter().any(|e| e.pid == *pid));
        let text = format(&State { procs: entries, sockets });
        if text == self.text {
            return Ok(());
        }
        self.text = text;
        write(&self.path, &self.text)
    }

    pub fn remove(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", self.path.display())),
            _ => Ok(()),
        }
    }
}

/// Start time (clock ticks since boot) and process group of `pid`, from
/// /proc; `None` if there is no such process, or only its zombie.
pub fn identity(pid: i32) -> Option<(u64, i32)> {
    let stat = read_stat(Path::new(&format!("/proc/{pid}/stat")))?;
    parse_stat(&stat).filter(|s| !s.zombie).map(|s| (s.start, s.pgrp))
}

/// A /proc/PID/stat, whatever bytes the process put in its name.
fn read_stat(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    pub zombie: bool,
    pub pgrp: i32,
    pub start: u64,
}

/// The fields rolld needs from /proc/PID/stat. They are counted after the
/// command name, which may itself hold spaces and parens.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state): pgrp is field 5, starttime field 22.
    Some(Stat {
        zombie: matches!(f.first(), Some(&"Z" | &"X")),
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Whether the process group `pgid` has a member that is not a zombie. A
/// zombie is dead: only its parent's reaping is missing, and the parent of
/// a taken-over process is not rolld.
pub fn group_alive(pgid: i32) -> bool {
    if !crate::sys::group_alive(pgid) {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return true };
    procs.flatten().any(|p| {
        let stat = read_stat(&p.path().join("stat")).unwrap_or_default();
        parse_stat(&stat).is_some_and(|s| !s.zombie && s.pgrp == pgid)
    })
}

/// Writes `text` to `path` atomically, 0600, never through a symlink.
pub fn write(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("state.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the state file, if there is one that can be trusted.
pub fn read(path: &Path) -> Result<Option<State>, String> {
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let meta = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.uid() != crate::sys::euid() || meta.mode() & 0o077 != 0 {
        return Err(format!("{}: not a private regular file of uid {}; ignored", path.display(), crate::sys::euid()));
    }
    let text = std::io::read_to_string(f).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = vec![
            Entry { group: "web".into(), role: Role::Live, workset: 1, port: 8501, pid: 1234, start: 99 },
            Entry { group: "web".into(), role: Role::Drain, workset: 1, port: 8001, pid: 1240, start: 100 },
        ];
        let held = vec![
            Held {
                group: "web".into(),
                addr: "[::]:8080".parse().unwrap(),
                procs: 4,
                check_from: 32760,
                fd: 3,
                pid: 77,
                start: 5,
            },
            Held {
                group: "api".into(),
                addr: "127.0.0.1:9000".parse().unwrap(),
                procs: 1,
                check_from: 20000,
                fd: 12,
                pid: 77,
                start: 5,
            },
        ];
        let state = State { procs: e, sockets: held };
        assert_eq!(parse(&format(&state)).unwrap(), state);
        assert!(parse("rolld-state 1\nweb live 0 80 1 5\n").is_err(), "pid 1 is never adopted");
        for bad in [
            "web sockets 0.0.0.0:80 0 32760 3 77 5",
            "web sockets 0.0.0.0:80 129 32760 3 77 5",
            "web sockets 0.0.0.0:80 4 32760 2 77 5",
            "web sockets 0.0.0.0:80 4 32760 3 1 5",
            "web sockets 0.0.0.0 4 32760 3 77 5",
            "web sockets 0.0.0.0:80 4 32760 3 77",
            "web sockets 0.0.0.0:80 4 70000 3 77 5",
        ] {
            assert!(parse(&format!("rolld-state 1\n{bad}\n")).is_err(), "{bad}");
        }
        assert!(parse("something else\n").is_err());
        assert!(parse("rolld-state 1\nweb live x 80 100 5\n").is_err());
    }

    #[test]
    fn reads_stat_with_odd_command_names() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1 1 1";
        assert_eq!(parse_stat(stat), Some(Stat { zombie: false, pgrp: 4242, start: 777 }));
        let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1 1 1";
        assert!(parse_stat(zombie).unwrap().zombie);
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        let me = identity(std::process::id() as i32).unwrap();
        assert!(me.0 > 0);
    }

    #[test]
    fn refuses_open_or_linked_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rolld-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.state");
        assert_eq!(read(&p).unwrap(), None);
        write(&p, "rolld-state 1\n").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(read(&p).unwrap(), Some(State::default()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&p).is_err());
        let link = dir.join("l.state");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read(&link).is_err(), "symlinks are not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A process names itself with bytes that are not UTF-8 (its user may):
    /// it is still seen, and its group alive.
    #[test]
    fn a_process_named_in_invalid_utf8_is_seen() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", r#"printf '\377\376(' > /proc/$$/comm; read x"#])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read(format!("/proc/{pid}/comm")).unwrap() != b"\xff\xfe(\n" {
            assert!(std::time::Instant::now() < deadline, "the shell did not rename itself");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (id, alive) = (identity(pid), group_alive(pid));
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(id.is_some_and(|(_, pgrp)| pgrp == pid), "{id:?}");
        assert!(alive, "its group is alive");
    }

    #[test]
    fn a_group_of_zombies_is_not_alive() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep").arg("0.2").process_group(0).spawn().unwrap();
        let pid = child.id() as i32;
        assert!(group_alive(pid));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while identity(pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "sleep 0.2 did not end");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(crate::sys::group_alive(pid), "the unreaped zombie still holds the group");
        assert!(!group_alive(pid), "but nothing in it is alive");
        child.wait().unwrap();
    }
}
