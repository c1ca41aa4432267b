//! Starting children: the backends of a set, and `run_proc` commands.
//!
//! Every child gets its own process group (so a stop reaches the workers it
//! forks), stdin from /dev/null, no descriptor of rolld's beyond 0, 1 and
//! 2 (std opens everything close-on-exec and resets the signal mask), every
//! signal at its default action, the open-files limit rolld was started
//! with, and no NOTIFY_SOCKET: only rolld speaks to systemd. A backend of a
//! group that listens through rolld also gets its listening socket as
//! descriptor 3, with the variables of systemd's socket activation
//! (sd_listen_fds(3)). rolld has threads, so between fork and exec nothing
//! is allocated: a backend's whole environment is built before the fork,
//! and the child execs itself (`sys::exec_in_child`). Children are never
//! waited on through `Child`: the daemon's reaper is the one owner of
//! waitpid.
//!
//! The stdout and stderr files of a backend that runs as another user
//! (`user:`) are what that user controls: the child opens them itself,
//! after it has taken that user's credentials, so they never give the user
//! more than it has. rolld opens them (as itself) only for a backend that
//! runs as rolld's own user; either way never through a symlink, and never
//! waiting on a FIFO.

use crate::config::{GroupConfig, with_port};
use crate::sys;
use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn output(cfg: &GroupConfig, template: &Option<String>, port: u16) -> Result<Stdio, String> {
    let Some(t) = template else { return Ok(Stdio::inherit()) };
    let path = cfg.directory.join(with_port(t, port));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Never through a symlink, and never waiting on a FIFO: the loop
    // opens it.
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("cannot open {}: not a regular file", path.display()));
    }
    Ok(Stdio::from(f))
}

/// The open-files limit rolld was started with, before it raised its own.
static NOFILE: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Records the open-files limit children are to get back.
pub fn set_child_nofile(lim: libc::rlimit) {
    let _ = NOFILE.set(lim);
}

/// The descriptor a backend finds its listening socket on.
pub const LISTEN_FD: RawFd = 3;

/// `{numproc}` replaced by the port and, for a backend that is handed a
/// listening socket, `{fd}` by the descriptor it finds it on.
pub fn with_port_fd(s: &str, port: u16, listening: bool) -> String {
    let s = with_port(s, port);
    if listening { s.replace("{fd}", &LISTEN_FD.to_string()) } else { s }
}

/// Starts the backend for `port`; its pid, which is also its process group.
/// With `socket`, the backend gets that listening socket as descriptor 3
/// and is told so as systemd tells a service (`LISTEN_FDS=1`,
/// `LISTEN_FDNAMES` the group's name, `LISTEN_PID` its own pid).
pub fn spawn(cfg: &GroupConfig, port: u16, socket: Option<BorrowedFd<'_>>) -> Result<i32, String> {
    let listening = socket.is_some();
    let argv: Vec<String> = cfg.argv.iter().map(|a| with_port_fd(a, port, listening)).collect();
    let Some(prog) = argv.first() else { return Err("no command".into()) };
    if let Some(s) = socket
        && s.as_raw_fd() <= 2
    {
        return Err(format!("{prog}: the listening socket is descriptor {}, one of 0, 1 and 2", s.as_raw_fd()));
    }
    let mut cmd = Command::new(prog);
    cmd.current_dir(&cfg.directory).stdin(Stdio::null()).process_group(0);
    let mut env = inherited_env();
    let (mut dirs, mut outputs) = (Vec::new(), Vec::new());
    match &cfg.credentials {
        Some(c) => {
            if let Some((user, home)) = &c.user {
                for (k, v) in [("USER", user), ("LOGNAME", user), ("HOME", home)] {
                    env.insert(k.into(), v.into());
                }
            }
            sys::set_credentials(&mut cmd, c.uid, c.gid, c.groups.clone());
            for (template, fd) in [(&cfg.stdout, 1), (&cfg.stderr, 2)] {
                let Some(t) = template else { continue };
                let path = cfg.directory.join(with_port(t, port));
                missing_parents(&path, &mut dirs);
                outputs.push((cstring(&path)?, fd));
            }
            if cfg.stdout.is_some() {
                cmd.stdout(Stdio::null());
            }
            if cfg.stderr.is_some() {
                cmd.stderr(Stdio::null());
            }
        }
        None => {
            cmd.stdout(output(cfg, &cfg.stdout, port)?).stderr(output(cfg, &cfg.stderr, port)?);
        }
    }
    let opened: Vec<String> = outputs.iter().map(|(p, _)| p.to_string_lossy().into_owned()).collect();
    sys::child_setup(&mut cmd, NOFILE.get().copied(), dirs, outputs);
    for (k, v) in &cfg.env {
        env.insert(k.into(), with_port_fd(v, port, listening).into());
    }
    if listening {
        env.insert("LISTEN_FDS".into(), "1".into());
        env.insert("LISTEN_FDNAMES".into(), cfg.name.clone().into());
    }
    let nul = |what: String| format!("{prog}: a NUL byte in {what}");
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| nul("its arguments".into())))
        .collect::<Result<_, _>>()?;
    let c_env: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let entry = [k.as_bytes(), b"=", v.as_bytes()].concat();
            CString::new(entry).map_err(|_| nul(format!("the variable {}", k.to_string_lossy())))
        })
        .collect::<Result<_, _>>()?;
    sys::exec_in_child(&mut cmd, c_argv, c_env, listening.then_some("LISTEN_PID"), socket.map(|s| s.as_raw_fd()));
    let child = cmd.spawn().map_err(|e| match (&cfg.credentials, opened.is_empty()) {
        (Some(c), false) => format!("{}: {e} (as uid {}, before exec, opening {})", prog, c.uid, opened.join(", ")),
        _ => format!("{prog}: {e}"),
    })?;
    Ok(child.id() as i32)
}

/// rolld's own environment, for a backend's to start from: without
/// NOTIFY_SOCKET (only rolld speaks to systemd) and without the LISTEN_*
/// variables that describe rolld's own descriptors, not the backend's.
fn inherited_env() -> BTreeMap<OsString, OsString> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.as_bytes();
            k != b"NOTIFY_SOCKET" && !k.starts_with(b"LISTEN_")
        })
        .collect()
}

/// The ancestors of `path` that do not exist yet, outermost first, added
/// to `dirs` (once each).
fn missing_parents(path: &Path, dirs: &mut Vec<CString>) {
    let mut missing: Vec<&Path> =
        path.ancestors().skip(1).take_while(|d| std::fs::symlink_metadata(d).is_err()).collect();
    missing.reverse();
    for d in missing {
        if let Ok(c) = cstring(d)
            && !dirs.contains(&c)
        {
            dirs.push(c);
        }
    }
}

fn cstring(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: a NUL byte in the path", p.display()))
}

/// The last `n` lines of the backend's stderr file, when it has one: at
/// most its last 4 KiB, read only from a regular file (not through a
/// symlink, never waiting) that belongs to the backend's user when it runs
/// as another one, so that nothing the user could not read reaches the log
/// or a client.
pub fn stderr_tail(cfg: &GroupConfig, port: u16, n: usize) -> Option<(PathBuf, Vec<String>)> {
    let path = cfg.directory.join(with_port(cfg.stderr.as_ref()?, port));
    let lines = tail(&path, n, cfg.credentials.as_ref().map(|c| c.uid))?;
    Some((path, lines))
}

fn tail(path: &Path, n: usize, owner: Option<u32>) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || owner.is_some_and(|uid| meta.uid() != uid) {
        return None;
    }
    f.seek(SeekFrom::Start(meta.len().saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    (&mut f).take(4096).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    Some(lines[lines.len().saturating_sub(n)..].to_vec())
}

/// Starts `command` through `/bin/sh -c` in `dir`, in its own process
/// group, with `env` added and its stdout and stderr on `output`; its pid.
/// It is reaped by the daemon's reaper like any child.
pub fn spawn_shell(command: &str, dir: &Path, env: &[(&str, String)], output: OwnedFd) -> Result<i32, String> {
    let err = output.try_clone().map_err(|e| format!("dup: {e}"))?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(err))
        .env_remove("NOTIFY_SOCKET")
        .process_group(0);
    sys::child_setup(&mut cmd, NOFILE.get().copied(), Vec::new(), Vec::new());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    Ok(child.id() as i32)
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
