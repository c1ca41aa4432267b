//! Starting children: the backends of a set, and `run_proc` commands.
//!
//! Every child gets its own process group (so a stop reaches the workers it
//! forks), stdin from /dev/null, and no descriptor of rolld's beyond 0, 1
//! and 2: std opens everything close-on-exec and resets the signal mask and
//! SIGPIPE before exec. Children are never waited on through `Child`: the
//! daemon's reaper is the one owner of waitpid.

use crate::config::{GroupConfig, with_port};
use crate::sys;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn output(cfg: &GroupConfig, template: &Option<String>, port: u16) -> Result<Stdio, String> {
    let Some(t) = template else { return Ok(Stdio::inherit()) };
    let path = cfg.directory.join(with_port(t, port));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(Stdio::from(f))
}

/// Starts the backend for `port`; its pid, which is also its process group.
pub fn spawn(cfg: &GroupConfig, port: u16) -> Result<i32, String> {
    let argv: Vec<String> = cfg.argv.iter().map(|a| with_port(a, port)).collect();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&cfg.directory)
        .stdin(Stdio::null())
        .stdout(output(cfg, &cfg.stdout, port)?)
        .stderr(output(cfg, &cfg.stderr, port)?)
        .process_group(0);
    if let Some(c) = &cfg.credentials {
        if let Some((user, home)) = &c.user {
            cmd.env("USER", user).env("LOGNAME", user).env("HOME", home);
        }
        sys::set_credentials(&mut cmd, c.uid, c.gid, c.groups.clone());
    }
    for (k, v) in &cfg.env {
        cmd.env(k, with_port(v, port));
    }
    let child = cmd.spawn().map_err(|e| format!("{}: {e}", argv[0]))?;
    Ok(child.id() as i32)
}

/// The last `n` lines of the backend's stderr file, when it has one.
pub fn stderr_tail(cfg: &GroupConfig, port: u16, n: usize) -> Option<(PathBuf, Vec<String>)> {
    let path = cfg.directory.join(with_port(cfg.stderr.as_ref()?, port));
    let lines = tail(&path, n)?;
    Some((path, lines))
}

fn tail(path: &Path, n: usize) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    Some(lines[lines.len().saturating_sub(n)..].to_vec())
}

/// Runs `command` through `/bin/sh -c` in `dir`, with `env` added, and
/// waits for it up to `timeout`. On timeout its process group is killed.
pub fn run_shell(command: &str, dir: &Path, env: &[(&str, String)], timeout: Duration) -> Result<(), String> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).current_dir(dir).stdin(Stdio::null()).process_group(0);
    // Its output joins rolld's log.
    let err = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| format!("dup stderr: {e}"))?;
    cmd.stdout(Stdio::from(err));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let pid = child.id() as i32;
    let deadline = Instant::now() + timeout;
    match sys::wait_pid_until(pid, deadline).map_err(|e| format!("waiting for pid {pid}: {e}"))? {
        Some(sys::ExitStatus::Code(0)) => Ok(()),
        Some(status) => Err(format!("`{command}` failed ({status})")),
        None => {
            let _ = sys::kill_group(pid, libc::SIGKILL);
            let _ = sys::wait_pid_until(pid, Instant::now() + Duration::from_secs(5));
            Err(format!("`{command}` did not finish within {}s; killed", timeout.as_secs_f64()))
        }
    }
}
