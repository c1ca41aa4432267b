//! The second step of reading a config: what the text names, asked of the
//! system. The working directory must be a directory and a program named
//! with a slash a file; a template must be a small regular file that
//! parses and renders with what a rollout gives it, and its output
//! directory must exist; `user:` and `group:` must name a user and a Unix
//! group, and switching to them needs rolld to be root. Templates are read
//! as the group's user, so rolld, as root, reads nothing for a group that
//! its user could not. All of it goes through `System`: `Live` in rolld, a
//! table in the tests.

use super::{Credentials, Cx, Draft, GroupConfig, Haproxy, Render};
use crate::haproxy::Backend;
use crate::sys::User;
use std::io;
use std::path::Path;

/// What a path is, symlinks followed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    File,
    Dir,
    /// A device, a FIFO, a socket.
    Other,
}

/// What resolving asks of the system.
pub trait System {
    fn kind(&self, path: &Path) -> io::Result<Kind>;
    /// A template's text, read as `as_user` when it is given.
    fn read_template(&self, path: &Path, as_user: Option<&Credentials>) -> io::Result<String>;
    fn lookup_user(&self, name: &str) -> io::Result<Option<User>>;
    /// A Unix group's gid, by name or number.
    fn lookup_gid(&self, name: &str) -> io::Result<Option<u32>>;
    /// The supplementary gids of `user`, `gid` among them.
    fn group_list(&self, user: &str, gid: u32) -> io::Result<Vec<u32>>;
    /// rolld's own effective uid and gid.
    fn ids(&self) -> (u32, u32);
    /// What HAProxy says of the backend of `haproxy:`.
    fn haproxy(&self, h: &Haproxy) -> Result<Backend, String>;
}

/// This machine.
pub struct Live;

impl System for Live {
    fn kind(&self, path: &Path) -> io::Result<Kind> {
        let t = std::fs::metadata(path)?.file_type();
        Ok(if t.is_file() {
            Kind::File
        } else if t.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        })
    }

    fn read_template(&self, path: &Path, as_user: Option<&Credentials>) -> io::Result<String> {
        read_template(path, as_user)
    }

    fn lookup_user(&self, name: &str) -> io::Result<Option<User>> {
        crate::sys::lookup_user(name)
    }

    fn lookup_gid(&self, name: &str) -> io::Result<Option<u32>> {
        crate::sys::lookup_group(name)
    }

    fn group_list(&self, user: &str, gid: u32) -> io::Result<Vec<u32>> {
        crate::sys::group_list(user, gid)
    }

    fn ids(&self) -> (u32, u32) {
        (crate::sys::euid(), crate::sys::egid())
    }

    fn haproxy(&self, h: &Haproxy) -> Result<Backend, String> {
        crate::haproxy::describe(h)
    }
}

/// Templates are small regular files: a device or a FIFO named by mistake,
/// or put in a template's place, must not hang or exhaust rolld. A group
/// with `user:` has its templates read as that user: a template its user
/// can change is a path to whatever it points to, and rolld, as root,
/// would otherwise copy a file that user may not read (`/etc/shadow`) into
/// an output it may.
pub fn read_template(path: &Path, as_user: Option<&Credentials>) -> io::Result<String> {
    const MAX: u64 = 1 << 20;
    match as_user {
        None => super::read_regular(path, MAX),
        Some(c) => {
            let path = path.to_path_buf();
            crate::sys::with_fs_identity(c.uid, c.gid, &c.groups, move || super::read_regular(&path, MAX))?
        }
    }
}

/// Resolves every draft. `file` names the config in messages.
pub fn resolve(drafts: Vec<Draft>, file: &str, sys: &dyn System) -> Result<Vec<GroupConfig>, Vec<String>> {
    let mut cx = Cx { file, errs: Vec::new() };
    let groups: Vec<GroupConfig> = drafts.into_iter().map(|d| group(&mut cx, d, sys)).collect();
    if cx.errs.is_empty() { Ok(groups) } else { Err(cx.errs) }
}

fn group(cx: &mut Cx, d: Draft, sys: &dyn System) -> GroupConfig {
    let mut g = d.cfg;
    let name = g.name.clone();
    match sys.kind(&g.directory) {
        Ok(Kind::Dir) => {}
        Ok(_) => cx.err(&format!("{name}.directory"), format!("{} is not a directory", g.directory.display())),
        Err(e) => cx.err(&format!("{name}.directory"), format!("{}: {e}", g.directory.display())),
    }
    if let Some(prog) = g.argv.first().filter(|p| p.contains('/'))
        && !matches!(sys.kind(Path::new(prog)), Ok(Kind::File))
    {
        cx.err(&format!("{name}.cmd"), format!("program {prog} not found"));
    }
    let before = cx.errs.len();
    if d.user.is_some() || d.gid.is_some() {
        g.credentials = credentials(cx, &name, d.user.as_deref(), d.gid.as_deref(), sys);
    }
    // Templates are read as the group's user: with no user to read them
    // as, they are not read at all.
    let readable = cx.errs.len() == before;
    for Render { key, template, output } in &d.renders {
        let src = if readable {
            read_and_parse(cx, &format!("{key}.replace_file[1]"), template, g.credentials.as_ref(), sys)
        } else {
            None
        };
        if let Some(src) = src {
            // It must render with what a rollout gives it, not only parse:
            // an undefined variable would otherwise roll back every rollout.
            if let [first, second, ..] = g.worksets.as_slice()
                && let Err(e) = crate::actions::render_string(&src, &name, first, second)
            {
                let why = format!("does not render with ports, old_ports and group: {e}");
                cx.err(key, format!("template {} {why}", template.display()));
            }
        }
        if let Some(dir) = output.parent().filter(|d| !matches!(sys.kind(d), Ok(Kind::Dir))) {
            cx.err(&format!("{key}.replace_file[2]"), format!("output directory {} does not exist", dir.display()));
        }
    }
    if let Some(h) = &g.haproxy {
        haproxy(cx, &name, h, &g.worksets, sys);
    }
    g
}

/// HAProxy is asked about the backend: the socket must answer at level
/// admin, the backend exist with a balance algorithm rolld can drain
/// under, and have a server for every port of every workset.
fn haproxy(cx: &mut Cx, name: &str, h: &Haproxy, worksets: &[Vec<u16>], sys: &dyn System) {
    let key = format!("{name}.haproxy");
    if let Some(dir) = h.state_file.as_ref().and_then(|f| f.parent()).filter(|d| !matches!(sys.kind(d), Ok(Kind::Dir)))
    {
        cx.err(&format!("{key}.state_file"), format!("directory {} does not exist", dir.display()));
    }
    match sys.haproxy(h) {
        Ok(b) => {
            let ports: Vec<u16> = worksets.iter().flatten().copied().collect();
            for p in crate::haproxy::problems(&b, &h.backend, &ports) {
                cx.err(&key, p);
            }
        }
        Err(e) => cx.err(&key, e),
    }
}

/// The template's text, when it reads and parses.
fn read_and_parse(
    cx: &mut Cx,
    key: &str,
    path: &Path,
    as_user: Option<&Credentials>,
    sys: &dyn System,
) -> Option<String> {
    let parsed = sys.read_template(path, as_user).map_err(|e| e.to_string()).and_then(|src| {
        minijinja::Environment::new().template_from_str(&src).map_err(|e| e.to_string())?;
        Ok(src)
    });
    parsed.map_err(|e| cx.err(key, format!("template {}: {e}", path.display()))).ok()
}

/// Resolves `user:` and `group:`. An unknown name is an error, never a
/// silent fallback to running the group as root. A uid with no entry (an
/// image with no /etc/passwd) is that uid, with `group:` as its only group:
/// without `group:` it is an error (its group is not known).
fn credentials(
    cx: &mut Cx,
    name: &str,
    user: Option<&str>,
    gid: Option<&str>,
    sys: &dyn System,
) -> Option<Credentials> {
    let (euid, egid) = sys.ids();
    let mut bare_uid = None;
    let u = match user {
        None => None,
        Some(u) => match sys.lookup_user(u) {
            Ok(Some(found)) => Some(found),
            Ok(None) => match (u.parse::<u32>(), gid) {
                (Ok(n), Some(_)) => {
                    bare_uid = Some(n);
                    None
                }
                (Ok(_), None) => {
                    cx.err(
                        &format!("{name}.user"),
                        format!("uid {u} has no entry in the user database: give its group: too"),
                    );
                    return None;
                }
                (Err(_), _) => {
                    cx.err(&format!("{name}.user"), format!("unknown user {u:?}; refusing to run the group as root"));
                    return None;
                }
            },
            Err(e) => {
                cx.err(&format!("{name}.user"), format!("cannot look up user {u:?}: {e}"));
                return None;
            }
        },
    };
    let gid = match gid {
        None => u.as_ref().map_or(egid, |u| u.gid),
        Some(gname) => match sys.lookup_gid(gname) {
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
    let uid = u.as_ref().map_or(bare_uid.unwrap_or(euid), |u| u.uid);
    if euid != 0 && (uid != euid || gid != egid) {
        let key = if user.is_some() { "user" } else { "group" };
        cx.err(&format!("{name}.{key}"), format!("switching needs rolld to run as root (it runs as uid {euid})"));
        return None;
    }
    if euid != 0 {
        // rolld's own user and group: nothing to switch (and no right to).
        return None;
    }
    let groups = match &u {
        Some(u) => match sys.group_list(&u.name, gid) {
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

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
