//! The `replace_file` action of after_start: render a template. (A
//! `run_proc` is a child process: see `work`.) A rendered file is
//! written to a temporary file in the same directory and renamed over the
//! output, so a load balancer never reads half a config.

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
    let tmp = output.with_file_name(format!(".{name}.rolld-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("rename to {}: {e}", output.display())
    })
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
        render(&t, &o, "g", &[1, 2], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&o).unwrap(), "1 2");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temp file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
