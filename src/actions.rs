//! The `replace_file` action of after_start: render a template. (A
//! `run_proc` is a child process: see `work`.) The rendered file is
//! written by `output`: to a temporary file in the output's directory,
//! renamed over the output, so a load balancer never reads half a config.

use crate::config::Credentials;
use crate::output::Commit;
use std::io::Write;
use std::path::Path;

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
/// atomically, as `output::write` writes it: as that user when it could
/// change where the output's path leads, else as rolld; only while
/// `commit` holds.
pub fn render(
    template: &Path,
    as_user: Option<&Credentials>,
    output: &Path,
    commit: &Commit,
    group: &str,
    ports: &[u16],
    old_ports: &[u16],
) -> Result<(), String> {
    let src =
        crate::config::read_template(template, as_user).map_err(|e| format!("template {}: {e}", template.display()))?;
    let text = render_string(&src, group, ports, old_ports)?;
    crate::output::write(output, text, as_user, commit)
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
    fn writes_atomically_over_the_output() {
        let dir = std::env::temp_dir().join(format!("rolld-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (t, o) = (dir.join("t.templ"), dir.join("out.conf"));
        std::fs::write(&t, "{{ ports|join(' ') }}").unwrap();
        std::fs::write(&o, "old").unwrap();
        render(&t, None, &o, &Commit::always(), "g", &[1, 2], &[]).unwrap();
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
        let err = render(&t, Some(&as_nobody), &o, &Commit::always(), "g", &[1], &[]).unwrap_err();
        if crate::sys::euid() == 0 {
            assert!(err.ends_with("t.templ: Permission denied (os error 13)"), "{err}");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "old", "the output is not touched");
            render(&t, None, &o, &Commit::always(), "g", &[1], &[]).expect("rolld itself, root, still reads it");
            assert_eq!(std::fs::read_to_string(&o).unwrap(), "root:SECRET:19000");
            // Another root process's memory map, /proc/PID/maps: its mode
            // is 0444, and CAP_SYS_PTRACE would pass the kernel's ptrace
            // check; the reading thread has no capability left.
            let mut holder = std::process::Command::new("sleep").arg("30").spawn().unwrap();
            let t2 = dir.join("t2.templ");
            std::os::unix::fs::symlink(format!("/proc/{}/maps", holder.id()), &t2).unwrap();
            let err = render(&t2, Some(&as_nobody), &o, &Commit::always(), "g", &[1], &[]).unwrap_err();
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
}
