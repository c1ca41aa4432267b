//! The `replace_file` action of after_start: render a template. (A
//! `run_proc` is a child process: see `work`.) A rendered file is
//! written to a temporary file in the same directory and renamed over the
//! output, so a load balancer never reads half a config.

use crate::config::Credentials;
use std::io::Write;
use std::path::{Path, PathBuf};

/// minijinja's fuel for one render: its instructions and the bytes they
/// build use it up. The example's LB configs over 2000 ports take a
/// fraction of it; a template that loops for ever (or nearly) ends here
/// instead of holding a worker.
const FUEL: u64 = 2_000_000;
/// What a render may write.
const MAX_OUTPUT: usize = 16 << 20;

/// Renders `template` with `ports`, `old_ports` and `group`.
pub fn render_string(src: &str, group: &str, ports: &[u16], old_ports: &[u16]) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    let tmpl = env.template_from_str(src).map_err(|e| e.to_string())?;
    let ctx = minijinja::context! { ports => ports.to_vec(), old_ports => old_ports.to_vec(), group => group };
    let mut out = Capped(Vec::new());
    tmpl.render_captured_to(ctx, &mut out).map_err(|e| match e.kind() {
        minijinja::ErrorKind::WriteFailure => format!("the output is larger than {MAX_OUTPUT} bytes"),
        _ => e.to_string(),
    })?;
    String::from_utf8(out.0).map_err(|e| e.to_string())
}

/// A buffer that refuses to grow past `MAX_OUTPUT`.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(std::io::Error::other("too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `template` (read as `as_user`, when given) into `output`,
/// atomically. When `as_user` could change where the output's path leads
/// (it may write a directory the path goes through: a link put there
/// would send the file to `/etc/modprobe.d`), the output is written as
/// that user, so the file lands only where that user could put it;
/// otherwise as rolld, so an LB config in a directory of root's is written.
pub fn render(
    template: &Path,
    as_user: Option<&Credentials>,
    output: &Path,
    group: &str,
    ports: &[u16],
    old_ports: &[u16],
) -> Result<(), String> {
    let src =
        crate::config::read_template(template, as_user).map_err(|e| format!("template {}: {e}", template.display()))?;
    let text = render_string(&src, group, ports, old_ports)?;
    let Some(c) = as_user.filter(|c| c.uid != 0) else { return install(output, &text) };
    let Some(dir) = writable_on_the_way(output, c).map_err(|e| format!("{}: {e}", output.display()))? else {
        return install(output, &text);
    };
    let target = output.to_path_buf();
    crate::sys::with_fs_identity(c.uid, c.gid, &c.groups, move || install(&target, &text))
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| format!("{e} (written as uid {}: it may write {}, on the output's path)", c.uid, dir.display()))
}

/// `text` into `output`: a temporary file beside it, fsynced, renamed.
fn install(output: &Path, text: &str) -> Result<(), String> {
    let name = output.file_name().and_then(|n| n.to_str()).ok_or("output has no file name")?;
    let (tmp, mut file) = create_temp(output, name)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    written
        .map_err(|e| format!("write {}: {e}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, output).map_err(|e| format!("rename to {}: {e}", output.display())))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// The first directory that the resolution of `output`'s directory goes
/// through (symlinks followed one by one, as the kernel does) and that
/// `c` may write: there it could swap the next name for a link. `None`
/// when there is none. Mode bits only (ACLs are not read); in a sticky
/// directory only entries `c` owns count.
fn writable_on_the_way(output: &Path, c: &Credentials) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    use std::path::Component;
    let may_write = |m: &std::fs::Metadata| {
        let bits = if m.uid() == c.uid {
            0o200
        } else if c.groups.contains(&m.gid()) || m.gid() == c.gid {
            0o020
        } else {
            0o002
        };
        m.mode() & bits != 0
    };
    let dir = output.parent().unwrap_or(Path::new("/"));
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for comp in p.components().rev() {
            todo.push(comp.as_os_str().to_os_string());
        }
    };
    push(&mut todo, dir);
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop() {
        match Path::new(&name).components().next() {
            None | Some(Component::CurDir) => {}
            Some(Component::RootDir | Component::Prefix(_)) => cur = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                cur.pop();
            }
            Some(Component::Normal(n)) => {
                let here = std::fs::metadata(&cur)?;
                let next = cur.join(n);
                let entry = std::fs::symlink_metadata(&next)?;
                let sticky = here.mode() & 0o1000 != 0;
                if may_write(&here) && (!sticky || entry.uid() == c.uid) {
                    return Ok(Some(cur));
                }
                if entry.file_type().is_symlink() {
                    links += 1;
                    if links > 40 {
                        return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    push(&mut todo, &std::fs::read_link(&next)?);
                } else {
                    cur = next;
                }
            }
        }
    }
    Ok(None)
}

/// A new file beside `output`, `.NAME.rolld-RANDOM`: created, never opened
/// if something is already there (a symlink included), so another user
/// with write access to the directory cannot make rolld write elsewhere.
fn create_temp(output: &Path, name: &str) -> Result<(std::path::PathBuf, std::fs::File), String> {
    use std::hash::{BuildHasher, Hasher};
    create_temp_with(output, name, || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.finish()
    })
}

/// `create_temp`, with the random numbers from `next`.
fn create_temp_with(
    output: &Path,
    name: &str,
    mut next: impl FnMut() -> u64,
) -> Result<(std::path::PathBuf, std::fs::File), String> {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..16 {
        let tmp = output.with_file_name(format!(".{name}.rolld-{:016x}", next()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("create {}: {e}", tmp.display())),
        }
    }
    Err(format!("create a temporary file beside {}: every name tried exists", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ports_old_ports_and_group() {
        let src =
            "# {{ group }}\n{% for p in ports %}server 127.0.0.1:{{ p }};\n{% endfor %}old={{ old_ports|join(',') }}";
        let out = render_string(src, "web", &[8001, 8002], &[8501]).unwrap();
        assert_eq!(out, "# web\nserver 127.0.0.1:8001;\nserver 127.0.0.1:8002;\nold=8501");
    }

    #[test]
    fn unknown_variable_is_an_error_not_an_empty_string() {
        assert!(render_string("{{ portz }}", "web", &[1], &[]).is_err());
    }

    #[test]
    fn temporary_names_are_unpredictable_and_never_reused() {
        let dir = std::env::temp_dir().join(format!("rolld-temp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out.conf");
        let mut names = std::collections::HashSet::new();
        for _ in 0..50 {
            let (tmp, _f) = create_temp(&out, "out.conf").unwrap();
            let n = tmp.file_name().unwrap().to_str().unwrap().to_string();
            assert!(n.starts_with(".out.conf.rolld-") && !n.contains(&std::process::id().to_string()), "{n}");
            assert!(names.insert(n));
        }
        // A name already taken (here a symlink to a file rolld must not
        // touch) is never opened: the next name is tried.
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".out.conf.rolld-{:016x}", 1))).unwrap();
        let mut seq = [1u64, 2].into_iter();
        let (tmp, f) = create_temp_with(&out, "out.conf", || seq.next().unwrap()).unwrap();
        drop(f);
        assert_eq!(tmp, dir.join(format!(".out.conf.rolld-{:016x}", 2)));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_atomically_over_the_output() {
        let dir = std::env::temp_dir().join(format!("rolld-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (t, o) = (dir.join("t.templ"), dir.join("out.conf"));
        std::fs::write(&t, "{{ ports|join(' ') }}").unwrap();
        std::fs::write(&o, "old").unwrap();
        render(&t, None, &o, "g", &[1, 2], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&o).unwrap(), "1 2");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temp file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With credentials, the template is read as that user: a link to a
    /// file only root may read fails, and the output is not touched; the
    /// rest of rolld keeps its own identity.
    #[test]
    fn a_template_is_read_as_the_user_given() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rolld-render-as-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (secret, t, o) = (dir.join("secret"), dir.join("t.templ"), dir.join("out.conf"));
        std::fs::write(&secret, "root:SECRET:19000").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&secret, &t).unwrap();
        std::fs::write(&o, "old").unwrap();
        let nobody = crate::sys::lookup_user("nobody").unwrap().expect("a user nobody");
        let as_nobody =
            crate::config::Credentials { uid: nobody.uid, gid: nobody.gid, groups: vec![nobody.gid], user: None };
        let err = render(&t, Some(&as_nobody), &o, "g", &[1], &[]).unwrap_err();
        if crate::sys::euid() == 0 {
            assert!(err.ends_with("t.templ: Permission denied (os error 13)"), "{err}");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "old", "the output is not touched");
            render(&t, None, &o, "g", &[1], &[]).expect("rolld itself, root, still reads it");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "root:SECRET:19000");
            // Another root process's memory map, /proc/PID/maps: its mode
            // is 0444, and CAP_SYS_PTRACE would pass the kernel's ptrace
            // check; the reading thread has no capability left.
            let mut holder = std::process::Command::new("sleep").arg("30").spawn().unwrap();
            let t2 = dir.join("t2.templ");
            std::os::unix::fs::symlink(format!("/proc/{}/maps", holder.id()), &t2).unwrap();
            let err = render(&t2, Some(&as_nobody), &o, "g", &[1], &[]).unwrap_err();
            let _ = holder.kill();
            let _ = holder.wait();
            assert!(err.ends_with("Permission denied (os error 13)"), "{err}");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "root:SECRET:19000", "the output is not touched");
        } else {
            assert!(err.contains("Operation not permitted"), "only root can take another's identity: {err}");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "old");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_template_that_runs_away_is_stopped() {
        let start = std::time::Instant::now();
        let forever = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}";
        let e = render_string(forever, "g", &[1], &[]).unwrap_err();
        assert!(e.contains("fuel"), "{e}");
        let big = "{% for i in range(20) %}{{ 'x' * 1000000 }}{% endfor %}";
        assert_eq!(
            render_string(big, "g", &[1], &[]).unwrap_err(),
            format!("the output is larger than {MAX_OUTPUT} bytes")
        );
        // The example's templates, over 2000 ports each, are far from it.
        let (ports, old): (Vec<u16>, Vec<u16>) = ((1..=2000).collect(), (3001..=5000).collect());
        for t in
            [include_str!("../example/nginx/upstream.conf.templ"), include_str!("../example/haproxy/haproxy.cfg.templ")]
        {
            let out = render_string(t, "g", &ports, &old).unwrap();
            assert!(out.contains("127.0.0.1:2000"), "{out}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    }

    /// Where a user could swap a name on the output's path for a link.
    #[test]
    fn directories_a_user_may_write_on_the_output_s_way() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        assert_eq!(crate::sys::euid(), 0, "this test needs root (it gives directories to another uid)");
        let dir = std::env::temp_dir().join(format!("rolld-way-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = Credentials { uid: 54321, gid: 54321, groups: vec![54321, 54322], user: None };
        for d in ["root/etc", "mine/sub", "shared", "sticky"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::os::unix::fs::chown(dir.join("mine"), Some(54321), None).unwrap();
        std::os::unix::fs::chown(dir.join("shared"), Some(0), Some(54322)).unwrap();
        std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o775)).unwrap();
        std::fs::set_permissions(dir.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::create_dir(dir.join("sticky/roots")).unwrap();
        std::fs::create_dir(dir.join("sticky/theirs")).unwrap();
        std::os::unix::fs::chown(dir.join("sticky/theirs"), Some(54321), None).unwrap();
        symlink(dir.join("mine/sub"), dir.join("root/via-mine")).unwrap();
        symlink("../root/etc", dir.join("root/etc-again")).unwrap();
        let way = |p: &str| writable_on_the_way(&dir.join(p), &c).unwrap();
        assert_eq!(way("root/etc/lb.conf"), None, "root's all the way");
        assert_eq!(way("root/etc-again/lb.conf"), None, "a link of root's to root's");
        assert_eq!(way("mine/sub/lb.conf"), Some(dir.join("mine")), "its own directory");
        assert_eq!(way("root/via-mine/lb.conf"), Some(dir.join("mine")), "through a link into its directory");
        assert_eq!(way("shared/lb.conf"), None, "its group may write shared, but lb.conf is the last name");
        std::fs::create_dir(dir.join("shared/d")).unwrap();
        assert_eq!(way("shared/d/lb.conf"), Some(dir.join("shared")), "a group it is in may write shared");
        assert_eq!(way("sticky/roots/lb.conf"), None, "in a sticky directory, root's entry stays root's");
        assert_eq!(way("sticky/theirs/lb.conf"), Some(dir.join("sticky")), "its own entry in a sticky one");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
