//! Where a rendered file lands, and only there.
//!
//! `replace_file`'s output directory is resolved as the kernel would
//! resolve it (links followed one by one, at most 40), but one name at a
//! time with openat(2) from the directory held before, each name opened
//! without following it. What is checked is what is written into: the
//! temporary file is created in the directory held, and renamed over the
//! output relative to it, so nothing can be swapped in between.
//!
//! A directory on the way that the group's user may write could have had
//! its next name swapped for a link before it was looked up. The user may
//! write a directory it owns, whatever its mode (its owner may chmod it
//! back at will), one whose group or other bits let it, or one that
//! carries an ACL (ACLs are not read: such a directory counts as
//! writable). When there is one, the file is written as that user, so it
//! lands only where that user could put it; otherwise as rolld, so an LB
//! config in a directory of root's is written.
//!
//! A render that its group has given up (past `action_timeout`) must not
//! write after that: it renames only while its `Commit` is its group's
//! step (`Turn`), checked under a lock per output that is held across the
//! rename. A later step's rename of the same output waits for that lock,
//! so it always lands last.

use crate::config::Credentials;
use crate::sys;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// The step of a group that may write now (`0`: none). The loop sets it
/// as the group moves on; a render holds a `Commit` for its own step.
#[derive(Clone, Debug, Default)]
pub struct Turn(Arc<AtomicU64>);

impl Turn {
    pub fn set(&self, step: Option<u64>) {
        self.0.store(step.unwrap_or(0), Ordering::SeqCst);
    }

    /// The right of step `seq` to write, for as long as it has the turn.
    pub fn commit(&self, seq: u64) -> Commit {
        Commit { turn: self.clone(), seq }
    }
}

/// The right of one step to write its output.
#[derive(Clone, Debug)]
pub struct Commit {
    turn: Turn,
    seq: u64,
}

impl Commit {
    /// A right that is never taken back.
    #[cfg(test)]
    pub fn always() -> Commit {
        let turn = Turn::default();
        turn.set(Some(u64::MAX));
        turn.commit(u64::MAX)
    }

    fn valid(&self) -> bool {
        self.turn.0.load(Ordering::SeqCst) == self.seq
    }
}

/// Writes `text` over `output`, atomically: as `user` when it may write a
/// directory on the output's way, else as rolld (see the module's doc).
pub fn write(output: &Path, text: String, user: Option<&Credentials>, commit: &Commit) -> Result<(), String> {
    let name = output.file_name().ok_or("output has no file name")?.to_os_string();
    let dir = output.parent().unwrap_or(Path::new("/")).to_path_buf();
    let shown = |dir: &Path, e: io::Error| format!("{}: {e}", dir.display());
    let Some(c) = user.filter(|c| c.uid != 0) else {
        return install(&hold(&dir).map_err(|e| shown(&dir, e))?, &dir, &name, &text, commit);
    };
    let (writable, why) = match walk(&dir, Some(c)).map_err(|e| shown(&dir, e))? {
        Way::Held(held) => return install(&held, &dir, &name, &text, commit),
        Way::Writable(path, why) => (path, why),
    };
    let commit = commit.clone();
    sys::with_fs_identity(c.uid, c.gid, &c.groups, move || {
        install(&hold(&dir).map_err(|e| shown(&dir, e))?, &dir, &name, &text, &commit)
    })
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| {
        format!("{e} (written as uid {}: it may write {}{why}, on the output's path)", c.uid, writable.display())
    })
}

/// The directory `dir`, resolved and held.
fn hold(dir: &Path) -> io::Result<File> {
    match walk(dir, None)? {
        Way::Held(held) => Ok(held),
        Way::Writable(..) => Err(io::Error::other("a walk without a user found a directory writable")),
    }
}

/// Where the resolution of a directory ended.
enum Way {
    /// The directory itself, held open (`O_PATH`).
    Held(File),
    /// A directory on the way that the user may write, and why.
    Writable(PathBuf, &'static str),
}

/// Resolves `dir` one name at a time, each looked up in the directory held
/// before and opened without following it (`O_PATH`: nothing is opened for
/// real, not even a FIFO); a link's target is resolved the same way. With
/// `user`, stops at the first directory where a name is looked up that
/// the user may write.
fn walk(dir: &Path, user: Option<&Credentials>) -> io::Result<Way> {
    const DIR: i32 = libc::O_PATH | libc::O_DIRECTORY;
    let root = || sys::open_at(None, OsStr::new("/"), DIR, 0);
    let (mut cur, mut path) = if dir.is_absolute() {
        (root()?, PathBuf::from("/"))
    } else {
        (sys::open_at(None, OsStr::new("."), DIR, 0)?, PathBuf::from("."))
    };
    let mut todo: Vec<OsString> = Vec::new();
    let push = |todo: &mut Vec<OsString>, p: &Path| todo.extend(p.components().rev().map(|c| c.as_os_str().into()));
    push(&mut todo, dir);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        match Path::new(&name).components().next() {
            None | Some(Component::CurDir) => {}
            Some(Component::RootDir | Component::Prefix(_)) => (cur, path) = (root()?, PathBuf::from("/")),
            Some(Component::ParentDir) => {
                cur = sys::open_at(Some(cur.as_fd()), OsStr::new(".."), DIR, 0)?;
                path.pop();
            }
            Some(Component::Normal(n)) => {
                let entry = sys::open_at(Some(cur.as_fd()), n, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                let meta = entry.metadata()?;
                if let Some(c) = user
                    && let Some(why) = may_write(&cur, &meta, c)?
                {
                    return Ok(Way::Writable(path, why));
                }
                if meta.file_type().is_symlink() {
                    links += 1;
                    if links > 40 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    push(&mut todo, Path::new(&sys::read_link_fd(entry.as_fd())?));
                } else if meta.is_dir() {
                    cur = entry;
                    path.push(n);
                } else {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
            }
        }
    }
    Ok(Way::Held(cur))
}

/// Whether `c` may replace `entry` in the directory `dir`, and why: it owns
/// `dir` (whatever its mode), its mode lets `c` write it, or it carries an
/// ACL (or whether it does cannot be told). In a sticky directory only its
/// owner and the entry's may.
fn may_write(dir: &File, entry: &std::fs::Metadata, c: &Credentials) -> io::Result<Option<&'static str>> {
    let m = dir.metadata()?;
    if m.uid() == c.uid {
        return Ok(Some(" (it owns it)"));
    }
    if m.mode() & 0o1000 != 0 && entry.uid() != c.uid {
        return Ok(None);
    }
    let bits = if c.groups.contains(&m.gid()) || m.gid() == c.gid { 0o020 } else { 0o002 };
    if m.mode() & bits != 0 {
        return Ok(Some(""));
    }
    match sys::has_access_acl(dir.as_fd()) {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some(" (it carries an ACL)")),
        Err(_) => Ok(Some(" (whether it carries an ACL cannot be read)")),
    }
}

/// `text` into `name` in the directory `dir` (shown as `path`): a
/// temporary file beside it, fsynced, renamed while `commit` holds.
fn install(dir: &File, path: &Path, name: &OsStr, text: &str, commit: &Commit) -> Result<(), String> {
    let (tmp, mut file) = create_temp(dir, path, name)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    written
        .map_err(|e| format!("write {}: {e}", path.join(&tmp).display()))
        .and_then(|()| land(dir, &tmp, name, commit).map_err(|e| format!("{}: {e}", path.join(name).display())))
        .inspect_err(|_| {
            let _ = sys::unlink_at(dir.as_fd(), &tmp);
        })
}

/// Renames `tmp` over `name` in `dir` if `commit` still holds, under the
/// lock of that output.
fn land(dir: &File, tmp: &OsStr, name: &OsStr, commit: &Commit) -> io::Result<()> {
    /// An output: its directory's device and inode, and its name.
    type Key = (u64, u64, OsString);
    static LOCKS: LazyLock<Mutex<HashMap<Key, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);
    let m = dir.metadata()?;
    let lock = {
        let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry((m.dev(), m.ino(), name.to_os_string())).or_default().clone()
    };
    let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
    if !commit.valid() {
        return Err(io::Error::other("the step was given up: the output is left as it was"));
    }
    sys::rename_at(dir.as_fd(), tmp, name)
}

/// A new file `.NAME.rolld-RANDOM` in `dir`: created, never opened if
/// something is already there (a symlink included), so another user with
/// write access to the directory cannot make rolld write elsewhere.
fn create_temp(dir: &File, path: &Path, name: &OsStr) -> Result<(OsString, File), String> {
    use std::hash::{BuildHasher, Hasher};
    create_temp_with(dir, path, name, || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.finish()
    })
}

/// `create_temp`, with the random numbers from `next`.
fn create_temp_with(
    dir: &File,
    path: &Path,
    name: &OsStr,
    mut next: impl FnMut() -> u64,
) -> Result<(OsString, File), String> {
    const NEW: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    for _ in 0..16 {
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".rolld-{:016x}", next()));
        match sys::open_at(Some(dir.as_fd()), &tmp, NEW, 0o644) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("create {}: {e}", path.join(&tmp).display())),
        }
    }
    Err(format!("create a temporary file beside {}: every name tried exists", path.join(name).display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rolld-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<OsString> {
        let mut v: Vec<OsString> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name()).collect();
        v.sort();
        v
    }

    #[test]
    fn temporary_names_are_unpredictable_and_never_reused() {
        let dir = fresh("temp");
        let held = hold(&dir).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let (tmp, _f) = create_temp(&held, &dir, OsStr::new("out.conf")).unwrap();
            let n = tmp.to_str().unwrap().to_string();
            // Not the pid, in either base.
            let pid = std::process::id();
            assert!(n.starts_with(".out.conf.rolld-") && n.len() == ".out.conf.rolld-".len() + 16, "{n}");
            assert!(!n.ends_with(&format!("{pid:016x}")) && !n.ends_with(&format!("{pid:016}")), "{n}");
            assert!(seen.insert(n));
        }
        // A name already taken (here a symlink to a file rolld must not
        // touch) is never opened: the next name is tried.
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        symlink(&victim, dir.join(format!(".out.conf.rolld-{:016x}", 1))).unwrap();
        let mut seq = [1u64, 2].into_iter();
        let (tmp, f) = create_temp_with(&held, &dir, OsStr::new("out.conf"), || seq.next().unwrap()).unwrap();
        drop(f);
        assert_eq!(tmp, OsString::from(format!(".out.conf.rolld-{:016x}", 2)));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The directory is held from the walk to the rename: swapping its
    /// path for a link once it is held changes nothing.
    #[test]
    fn the_file_lands_in_the_directory_walked() {
        let dir = fresh("held");
        std::fs::create_dir_all(dir.join("a/lb")).unwrap();
        std::fs::create_dir(dir.join("elsewhere")).unwrap();
        let held = hold(&dir.join("a/lb")).unwrap();
        std::fs::rename(dir.join("a/lb"), dir.join("a/lb.moved")).unwrap();
        symlink(dir.join("elsewhere"), dir.join("a/lb")).unwrap();
        install(&held, &dir.join("a/lb"), OsStr::new("out.conf"), "x", &Commit::always()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a/lb.moved/out.conf")).unwrap(), "x");
        assert!(names(&dir.join("elsewhere")).is_empty());
        assert_eq!(names(&dir.join("a/lb.moved")), vec![OsString::from("out.conf")], "no temporary file left");
        // Links, `..` and `.` resolve as the kernel resolves them.
        symlink("../a/./lb.moved", dir.join("elsewhere/up")).unwrap();
        write(&dir.join("elsewhere/up/../lb.moved/out.conf"), "y".into(), None, &Commit::always()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a/lb.moved/out.conf")).unwrap(), "y");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A step whose turn has passed leaves the output as it was, and no
    /// temporary file; the step that has the turn writes.
    #[test]
    fn a_step_given_up_never_writes() {
        let dir = fresh("turn");
        let out = dir.join("lb.conf");
        std::fs::write(&out, "old").unwrap();
        let turn = Turn::default();
        turn.set(Some(5));
        let forward = turn.commit(5);
        turn.set(Some(6));
        let e = write(&out, "new".into(), None, &forward).unwrap_err();
        assert!(e.contains("the step was given up"), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
        assert_eq!(names(&dir), vec![OsString::from("lb.conf")]);
        write(&out, "revert".into(), None, &turn.commit(6)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "revert");
        turn.set(None);
        assert!(write(&out, "late".into(), None, &turn.commit(6)).is_err(), "no step has the turn");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "revert");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Where the user could swap a name on the output's way for a link.
    #[test]
    fn directories_a_user_may_write_on_the_output_s_way() {
        assert_eq!(sys::euid(), 0, "this test needs root (it gives directories to another uid)");
        let dir = fresh("way");
        let c = Credentials { uid: 54321, gid: 54321, groups: vec![54321, 54322], user: None };
        for d in ["root/etc", "mine/sub", "shared", "sticky", "locked/lb", "acl/lb"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let chown = |d: &str, u, g| std::os::unix::fs::chown(dir.join(d), u, g).unwrap();
        let chmod = |d: &str, m| std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(m)).unwrap();
        chown("mine", Some(54321), None);
        chown("shared", Some(0), Some(54322));
        chmod("shared", 0o775);
        chmod("sticky", 0o1777);
        std::fs::create_dir(dir.join("sticky/roots")).unwrap();
        std::fs::create_dir(dir.join("sticky/theirs")).unwrap();
        chown("sticky/theirs", Some(54321), None);
        symlink(dir.join("mine/sub"), dir.join("root/via-mine")).unwrap();
        symlink("../root/etc", dir.join("root/etc-again")).unwrap();
        // Its own directory, made 0555: its owner may make it 0755 again.
        chown("locked", Some(54321), None);
        chmod("locked", 0o555);
        let way = |p: &str| match walk(&dir.join(p), Some(&c)).unwrap() {
            Way::Held(_) => None,
            Way::Writable(d, why) => Some((d, why)),
        };
        let mine = Some((dir.join("mine"), " (it owns it)"));
        assert_eq!(way("root/etc"), None, "root's all the way");
        assert_eq!(way("root/etc-again"), None, "a link of root's to root's");
        assert_eq!(way("mine/sub"), mine, "its own directory");
        assert_eq!(way("root/via-mine"), mine, "through a link into its directory");
        assert_eq!(way("shared"), None, "its group may write shared, but the output is the next name");
        std::fs::create_dir(dir.join("shared/d")).unwrap();
        assert_eq!(way("shared/d"), Some((dir.join("shared"), "")), "a group it is in may write shared");
        assert_eq!(way("sticky/roots"), None, "in a sticky directory, root's entry stays root's");
        assert_eq!(way("sticky/theirs"), Some((dir.join("sticky"), "")), "its own entry in a sticky one");
        assert_eq!(way("locked/lb"), Some((dir.join("locked"), " (it owns it)")), "0555, but its own");
        // An ACL, whatever it grants, counts as writable.
        let acl = std::process::Command::new("setfacl").args(["-m", "u:54321:rx"]).arg(dir.join("acl")).status();
        assert!(acl.is_ok_and(|s| s.success()), "setfacl (package acl) is needed");
        assert_eq!(way("acl/lb"), Some((dir.join("acl"), " (it carries an ACL)")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The walk through a directory the user made 0555 after planting a
    /// link in it to a directory of root's: the file is written as the
    /// user, so it is refused, and nothing lands in root's directory.
    #[test]
    fn a_link_in_a_users_read_only_directory_is_written_through_as_the_user() {
        assert_eq!(sys::euid(), 0, "this test needs root (it gives directories to another uid)");
        let dir = fresh("locked");
        let nobody = sys::lookup_user("nobody").unwrap().expect("a user nobody");
        let c = Credentials { uid: nobody.uid, gid: nobody.gid, groups: vec![nobody.gid], user: None };
        std::fs::create_dir_all(dir.join("rootonly")).unwrap();
        std::fs::set_permissions(dir.join("rootonly"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir_all(dir.join("app/lb")).unwrap();
        for d in ["app", "app/lb"] {
            std::os::unix::fs::chown(dir.join(d), Some(c.uid), Some(c.gid)).unwrap();
        }
        write(&dir.join("app/lb/out.conf"), "1".into(), Some(&c), &Commit::always()).unwrap();
        assert_eq!(std::fs::metadata(dir.join("app/lb/out.conf")).unwrap().uid(), c.uid, "written as the user");
        std::fs::rename(dir.join("app/lb"), dir.join("app/lb.old")).unwrap();
        symlink(dir.join("rootonly"), dir.join("app/lb")).unwrap();
        std::fs::set_permissions(dir.join("app"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let e = write(&dir.join("app/lb/out.conf"), "2".into(), Some(&c), &Commit::always()).unwrap_err();
        assert!(e.contains("Permission denied") && e.contains(&format!("written as uid {}", c.uid)), "{e}");
        assert!(names(&dir.join("rootonly")).is_empty(), "nothing in root's directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
