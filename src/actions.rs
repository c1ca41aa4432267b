//! The `replace_file` action of after_start: render a template. (A
//! `run_proc` is a child process: see `work`.) A rendered file is
//! written to a temporary file in the same directory and renamed over the
//! output, so a load balancer never reads half a config.

use std::io::Write;
use std::path::Path;

/// Renders `template` with `ports`, `old_ports` and `group`.
pub fn render_string(src: &str, group: &str, ports: &[u16], old_ports: &[u16]) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let tmpl = env.template_from_str(src).map_err(|e| e.to_string())?;
    tmpl.render(minijinja::context! { ports => ports.to_vec(), old_ports => old_ports.to_vec(), group => group })
        .map_err(|e| e.to_string())
}

/// Renders `template` into `output`, atomically.
pub fn render(template: &Path, output: &Path, group: &str, ports: &[u16], old_ports: &[u16]) -> Result<(), String> {
    let src = crate::config::read_template(template).map_err(|e| format!("template {}: {e}", template.display()))?;
    let text = render_string(&src, group, ports, old_ports)?;
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
        render(&t, &o, "g", &[1, 2], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&o).unwrap(), "1 2");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temp file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
