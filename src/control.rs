//! The control socket: how `rolld reload` and `rolld status` find and talk
//! to the daemon running a config.
//!
//! The socket lives in a run directory, `--run-dir DIR` or by default
//! `/tmp/rolld-<uid>`, created 0700 and checked before use: a real directory
//! (not a symlink), owned by rolld's user, closed to others. Its name is a
//! hash of the config's canonical path, so two daemons of two configs never
//! meet, and a client given the same config finds the same socket. A socket
//! left by a crashed daemon refuses connections: it is detected as stale and
//! replaced, never trusted. Only the same user (or root) is served.
//!
//! The protocol is lines of text. The client sends one request line:
//! `reload`, `status` or `status json`. For `reload` the daemon answers
//! `queued`, then, for the rollout that covers the request, `phase GROUP
//! NAME DURATION`, `log LINE` and `done GROUP OUTCOME SUMMARY` lines, and
//! last `end ok|rolled-back|invalid|stopped`.

use crate::sys;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The run directory, created if needed and checked.
pub fn run_dir(chosen: Option<&Path>) -> Result<PathBuf, String> {
    let dir = match chosen {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from(format!("/tmp/rolld-{}", sys::euid())),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("run directory {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("run directory {}: {e}", dir.display()))?;
    let shown = dir.display();
    if !meta.file_type().is_dir() {
        return Err(format!("run directory {shown} is not a directory (a symlink is refused)"));
    }
    if meta.uid() != sys::euid() {
        return Err(format!("run directory {shown} belongs to uid {}, not to uid {}", meta.uid(), sys::euid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("run directory {shown} is writable by others (mode {:o})", meta.mode() & 0o777));
    }
    Ok(dir)
}

/// FNV-1a, 64 bits: a stable name for a config path.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The socket of the daemon running `config` (a canonical path).
pub fn socket_path(run_dir: &Path, config: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    run_dir.join(format!("{:016x}.sock", fnv(config.as_os_str().as_bytes())))
}

#[derive(Debug, PartialEq)]
pub enum Request {
    Reload,
    Status { json: bool },
}

#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds the socket at `path`, replacing a stale one; refuses when a
    /// live daemon already answers there.
    pub fn bind(path: &Path) -> Result<Server, String> {
        if std::fs::symlink_metadata(path).is_ok() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("another rolld already runs this config (control socket {})", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Server { listener, path: path.to_path_buf() })
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_differ_by_config_and_are_stable() {
        let d = Path::new("/run");
        let a = socket_path(d, Path::new("/srv/a/rolld.yml"));
        assert_eq!(a, socket_path(d, Path::new("/srv/a/rolld.yml")));
        assert_ne!(a, socket_path(d, Path::new("/srv/b/rolld.yml")));
        assert!(a.to_str().unwrap().ends_with(".sock"));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn run_dir_refuses_symlinks_and_open_modes() {
        let base = std::env::temp_dir().join(format!("rolld-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let good = base.join("run");
        assert_eq!(run_dir(Some(&good)).unwrap(), good);
        assert_eq!(std::fs::metadata(&good).unwrap().mode() & 0o777, 0o700);
        let link = base.join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(run_dir(Some(&link)).unwrap_err().contains("symlink"));
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(run_dir(Some(&open)).unwrap_err().contains("writable by others"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn stale_socket_is_replaced_and_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("rolld-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves a stale file
        let server = Server::bind(&path).expect("stale socket replaced");
        assert!(Server::bind(&path).unwrap_err().contains("another rolld"));
        let c = UnixStream::connect(&path).expect("the new socket answers");
        assert!(server.listener().accept().is_ok());
        drop((c, server));
        assert!(!path.exists(), "removed on drop");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
