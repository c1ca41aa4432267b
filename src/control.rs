//! The control socket: how `rolld reload` and `rolld status` find and talk
//! to the daemon running a config.
//!
//! The socket lives in a run directory, `--run-dir DIR` or by default the
//! one `default_run_dir` picks (daemon and clients pick it the same way),
//! created 0700 and checked before use: a real directory (not a symlink),
//! owned by rolld's user, closed to others. Its name is a hash of the
//! config's path as given, made absolute (`config::absolute`), so two
//! daemons of two configs never meet, and a client given the same config
//! finds the same socket, through a `current` symlink too. Beside it, a lock
//! file held for the daemon's life makes "one daemon per config" atomic; a
//! socket left by a crashed daemon is then known to be stale and replaced,
//! never trusted. Only the same user (or root) is served.
//!
//! The protocol is lines of text. The client sends one request line:
//! `reload`, `status`, `status json`, `promote` or `revert`. For `reload` the daemon answers
//! `queued`, then, for the rollout that covers the request, `phase GROUP
//! NAME DURATION`, `log LINE` and `done GROUP OUTCOME SUMMARY` lines, and
//! last `end ok|rolled-back|invalid|stopped`. `promote` and `revert` are
//! answered `ok GROUP ...` for each group whose bake they end, or `none
//! ...` when no group bakes. Every line is escaped where
//! it is written (`session`): text from outside comes only after the fixed
//! words, and never holds a newline, so an `end` line is always rolld's.

use crate::sys;
use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The run directory when none is given: `/run/rolld` for root;
/// `$XDG_RUNTIME_DIR/rolld` for another user who has one (an absolute
/// path, as the XDG spec requires; a relative one is ignored); else
/// `/tmp/rolld-UID`, which any local user could create first, so it is the
/// last resort. Root ignores XDG_RUNTIME_DIR: `sudo -E` or `su` can carry a
/// user's into root's environment.
pub fn default_run_dir(euid: u32, xdg_runtime_dir: Option<&OsStr>) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/run/rolld");
    }
    match xdg_runtime_dir.map(Path::new) {
        Some(x) if x.is_absolute() => x.join("rolld"),
        _ => PathBuf::from(format!("/tmp/rolld-{euid}")),
    }
}

/// The run directory, created if needed and checked.
pub fn run_dir(chosen: Option<&Path>) -> Result<PathBuf, String> {
    let dir = match chosen {
        Some(d) => d.to_path_buf(),
        None => default_run_dir(sys::euid(), std::env::var_os("XDG_RUNTIME_DIR").as_deref()),
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

/// The socket of the daemon running `config` (as `config::absolute` gives
/// it).
pub fn socket_path(run_dir: &Path, config: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    run_dir.join(format!("{:016x}.sock", fnv(config.as_os_str().as_bytes())))
}

#[derive(Debug, PartialEq)]
pub enum Request {
    Reload,
    Status {
        json: bool,
    },
    /// `promote` (`revert: false`) or `revert`: ends the bakes under way.
    EndBake {
        revert: bool,
    },
}

/// The lock file beside a socket: `<hash>.lock`.
pub fn lock_path(socket: &Path) -> PathBuf {
    socket.with_extension("lock")
}

#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    /// Holds the flock for as long as the daemon runs; the kernel lets it
    /// go when the daemon dies, however it dies.
    _lock: File,
}

impl Server {
    /// Takes the lock of the socket at `path`, then binds the socket,
    /// replacing a stale one. Refuses when another daemon holds the lock
    /// or (a daemon of an older rolld, which took no lock) answers on the
    /// socket. The caller names the config.
    pub fn bind(path: &Path) -> Result<Server, String> {
        let lock = take_lock(&lock_path(path))?;
        // With the lock held, a socket that is there was left by a daemon
        // that died: no other can be binding it now.
        if std::fs::symlink_metadata(path).is_ok() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("another rolld already runs this config (it answers on {})", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Server { listener, path: path.to_path_buf(), _lock: lock })
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

/// Opens (creating it 0600, never through a symlink; std adds O_CLOEXEC,
/// so no child inherits it) and flocks the lock file at `path`, and writes
/// the daemon's pid in it for the next one's message. The file is never
/// removed: a daemon unlinking it while another has it open would let a
/// third lock a new file, and two would run.
fn take_lock(path: &Path) -> Result<File, String> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("lock file {shown}: cannot open it: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("lock file {shown}: {e}"))?;
    if !meta.file_type().is_file() || meta.uid() != sys::euid() {
        return Err(format!("lock file {shown}: not a regular file of uid {}", sys::euid()));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = (&mut file).take(32).read_to_string(&mut pid);
            let pid = pid.trim();
            let by = if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                String::new()
            } else {
                format!("pid {pid}, ")
            };
            return Err(format!("another rolld already runs this config ({by}holding {shown})"));
        }
        Err(TryLockError::Error(e)) => return Err(format!("lock file {shown}: cannot lock it: {e}")),
    }
    let pid = format!("{}\n", std::process::id());
    let written = file.set_len(0).and_then(|()| (&file).write_all(pid.as_bytes()));
    if let Err(e) = written {
        return Err(format!("lock file {shown}: cannot write the pid: {e}"));
    }
    Ok(file)
}

impl Drop for Server {
    fn drop(&mut self) {
        // The socket goes first, then the lock (dropped after this body):
        // a next daemon never finds this one's socket while it may lock.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A JSON string literal: `"` and `\` escaped, and every character that
/// `log::is_unsafe` names, so that the literal holds none.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => push_json_char(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// JSON text with every character that `log::is_unsafe` names escaped as
/// in a string, the only place where valid JSON may hold one: valid JSON
/// stays valid and means the same, and holds none of them.
pub fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_json_char(&mut out, c);
    }
    out
}

fn push_json_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // All of them are in the BMP: four hex digits hold each.
        c if crate::log::is_unsafe(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
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
        assert_eq!(json_str("\u{7f}\u{9b}\u{202e}\0 \u{fffd}"), "\"\\u007f\\u009b\\u202e\\u0000 \u{fffd}\"");
        for (raw, _) in crate::log::HOSTILE {
            let lit = json_str(raw);
            assert!(!lit.chars().any(crate::log::is_unsafe), "{lit:?}");
            // YAML reads JSON: the literal means the text it was made of.
            assert_eq!(serde_yaml::from_str::<String>(&lit).unwrap(), *raw, "{lit}");
            assert_eq!(json_escape(&lit), lit, "nothing left to escape");
        }
        // An older daemon's JSON, with DEL and a C1 character raw in a string.
        let old = "{\"name\":\"a\u{7f}b\u{9b}c\"}";
        assert_eq!(json_escape(old), r#"{"name":"a\u007fb\u009bc"}"#);
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
    fn default_run_dir_by_user_and_xdg_runtime_dir() {
        let xdg = Some(OsStr::new("/run/user/1000"));
        assert_eq!(default_run_dir(0, xdg), Path::new("/run/rolld"), "root ignores XDG_RUNTIME_DIR");
        assert_eq!(default_run_dir(0, None), Path::new("/run/rolld"));
        assert_eq!(default_run_dir(1000, xdg), Path::new("/run/user/1000/rolld"));
        assert_eq!(default_run_dir(1000, None), Path::new("/tmp/rolld-1000"));
        assert_eq!(default_run_dir(1000, Some(OsStr::new(""))), Path::new("/tmp/rolld-1000"), "empty");
        assert_eq!(default_run_dir(1000, Some(OsStr::new("run/x"))), Path::new("/tmp/rolld-1000"), "relative");
    }

    #[test]
    fn the_lock_excludes_a_second_server_until_the_first_is_gone() {
        let dir = std::env::temp_dir().join(format!("rolld-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("y.sock");
        let first = Server::bind(&path).expect("first");
        let lock = lock_path(&path);
        assert_eq!(lock, dir.join("y.lock"));
        assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), format!("{}\n", std::process::id()));
        // The socket file gone (as if removed by hand): the lock still refuses.
        std::fs::remove_file(&path).unwrap();
        let e = Server::bind(&path).unwrap_err();
        assert!(e.contains("another rolld already runs this config"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("y.lock"), "{e}");
        drop(first);
        assert!(lock.exists(), "the lock file stays");
        drop(Server::bind(&path).expect("free again once the first is gone"));
        // A symlink in the lock file's place is never followed.
        std::fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &lock).unwrap();
        let e = Server::bind(&path).unwrap_err();
        assert!(e.contains("lock file") && e.contains("y.lock"), "{e}");
        assert!(!dir.join("elsewhere").exists());
        std::fs::remove_dir_all(&dir).unwrap();
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
