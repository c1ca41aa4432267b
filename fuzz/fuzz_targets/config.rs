//! Arbitrary text as a rolld config: `config::parse`, then `resolve` on
//! the real system, and `split_shell` must answer with errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The base directory of relative paths: a directory under the system temp
/// dir holding the few files the seed configs name (a program, a template,
/// a log directory), so that valid configs get through every check.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = std::env::temp_dir().join("rolld-fuzz-base");
        let files: [(&str, &str); 4] = [
            ("env/bin/python", "#!/bin/sh\n"),
            ("example/nginx-tornado.conf.templ", "upstream app {\n{% for p in ports %}  server 127.0.0.1:{{ p }};\n{% endfor %}}\n"),
            ("example/broken.templ", "{% for p in ports %}\n"),
            ("app/logs/.keep", ""),
        ];
        for (path, text) in files {
            let path = base.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).expect("fuzz base dir");
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                std::fs::write(&path, text).expect("fuzz base file");
            }
        }
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = rolld::config::parse(&text, "fuzz.yml", base());
    let _ = rolld::config::resolve(parsed.drafts, "fuzz.yml", &rolld::config::Live);
    let _ = rolld::config::split_shell(&text);
});
