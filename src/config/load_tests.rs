//! Tests of `load` on the real system: real files, directories, FIFOs and
//! users, through `Live`; also `with_port`. Each test works in a temporary
//! directory of its own, removed when it ends (even on failure). What the
//! text alone gives is in parse_tests.rs; what resolving makes of what the
//! system says, for every case, in resolve_tests.rs.

use super::*;
use crate::config::testing::{FILE, SEED, with};
use std::fs;

/// A directory of its own for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rolld-config-test-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the directory `rel` (and its parents); its path.
    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Writes `contents` to `rel`, creating parents; its path.
    fn file(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Asserts that one message contains every one of `parts`.
#[track_caller]
fn has(errs: &[String], parts: &[&str]) {
    assert!(
        errs.iter().any(|e| parts.iter().all(|p| e.contains(p))),
        "no message contains all of {parts:?}; messages:\n{}",
        errs.join("\n")
    );
}

// ---------------------------------------------------------------- the seed

/// Lays out what the seed config needs under `t`: the config directory
/// `conf` (the base, with the template under `example/`), the working
/// directory `app` and the interpreter `env/bin/python`. Returns (base, app).
fn seed_tree(t: &TempDir) -> (PathBuf, PathBuf) {
    let base = t.dir("conf");
    let app = t.dir("app");
    t.file("env/bin/python", "#!/bin/sh\n");
    t.file(
        "conf/example/nginx-tornado.conf.templ",
        "upstream app {\n{% for p in ports %}  server 127.0.0.1:{{ p }};\n{% endfor %}}\n",
    );
    (base, app)
}

#[test]
fn seed_config_through_load() {
    let t = TempDir::new("seed_load");
    let (base, app) = seed_tree(&t);
    let path = t.file("conf/rolld.yml", &SEED.replace("DIR", app.to_str().unwrap()));
    let cfg = load(&path).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(cfg.path.is_absolute(), "{:?}", cfg.path);
    assert_eq!(fs::canonicalize(&cfg.path).unwrap(), fs::canonicalize(&path).unwrap());
    assert_eq!(cfg.groups.len(), 1);
    let g = &cfg.groups[0];
    assert_eq!(Some(g.base.as_path()), cfg.path.parent());
    assert_eq!(fs::canonicalize(&g.base).unwrap(), fs::canonicalize(&base).unwrap());
    // What parsing the text with the base load found gives: resolving
    // changes nothing (no user:).
    let draft = super::parse(&SEED.replace("DIR", app.to_str().unwrap()), FILE, &g.base).drafts.remove(0);
    assert_eq!(*g, draft.cfg);
}

// ------------------------------------------------------------ the real system

/// What `Live` says of real files and users, through `load`: each row's
/// YAML, added to group `g` in `rolld.yml` of a directory laid out by
/// `system_tree`, and every message it gives, `{D}` standing for that
/// directory (each message starts with the config's path).
const SYSTEM_ROWS: &[(&str, &[&str])] = &[
    ("  cmd: bin/nope {numproc}\n", &["g.cmd: program {D}/bin/nope not found"]),
    ("  cmd: bin/server {numproc}\n", &["g.cmd: program {D}/bin/server not found"]),
    ("  directory: nope\n", &["g.directory: {D}/nope: No such file or directory (os error 2)"]),
    ("  directory: plain\n", &["g.directory: {D}/plain is not a directory"]),
    (
        "  after_start:\n    - replace_file: [numprocs, missing.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template {D}/missing.templ: No such file or directory (os error 2)"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, t.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template {D}/t.templ: not a regular file"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, /dev/zero, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template /dev/zero: not a regular file"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, fifo.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template {D}/fifo.templ: not a regular file"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, big.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template {D}/big.templ: larger than 1048576 bytes"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, ok.templ, nodir/out.conf]\n",
        &["g.after_start[0].replace_file[2]: output directory {D}/nodir does not exist"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, bad.templ, out.conf]\n",
        &["g.after_start[0]: template {D}/bad.templ does not render with ports, old_ports and group: \
           undefined value: `portz` is undefined (in <string>:1)"],
    ),
    // text and system problems at once: a replace_file is named by its
    // place in the list, and its files are looked at even when its first
    // argument is wrong
    (
        "  after_start:\n    - run_proc: ''\n    - replace_file: [numprocs, missing.templ, nodir/out]\n",
        &[
            "g.after_start[0].run_proc: empty command",
            "g.after_start[1].replace_file[1]: template {D}/missing.templ: No such file or directory (os error 2)",
            "g.after_start[1].replace_file[2]: output directory {D}/nodir does not exist",
        ],
    ),
    (
        "  after_start:\n    - replace_file: [ports, missing.templ, nodir/out]\n",
        &[
            "g.after_start[0].replace_file[0]: expected the word numprocs (the set's ports), got \"ports\"",
            "g.after_start[0].replace_file[1]: template {D}/missing.templ: No such file or directory (os error 2)",
            "g.after_start[0].replace_file[2]: output directory {D}/nodir does not exist",
        ],
    ),
    (
        "  user: rolld-no-such-user\n",
        &["g.user: unknown user \"rolld-no-such-user\"; refusing to run the group as root"],
    ),
    ("  group: rolld-no-such-group\n", &["g.group: unknown group \"rolld-no-such-group\""]),
];

/// The directory the rows of `SYSTEM_ROWS` need.
fn system_tree(t: &TempDir) {
    t.dir("bin/server");
    t.file("plain", "");
    t.dir("t.templ");
    t.file("ok.templ", "{% for p in ports %}{{ p }} {% endfor %}{{ old_ports|join(',') }} {{ group }}");
    t.file("bad.templ", "{{ portz }}");
    t.file("big.templ", &"x".repeat((1 << 20) + 1));
    let made = std::process::Command::new("mkfifo").arg(t.path().join("fifo.templ")).status().unwrap();
    assert!(made.success(), "mkfifo");
}

#[test]
fn the_real_system_through_load() {
    let t = TempDir::new("system");
    system_tree(&t);
    let path = t.path().join("rolld.yml");
    let d = t.path().display().to_string();
    let got = |yaml: &str| {
        fs::write(&path, with(yaml)).unwrap();
        load(&path).err().unwrap_or_default()
    };
    crate::config::testing::rows(SYSTEM_ROWS, got, |w| format!("{}: {}", path.display(), w.replace("{D}", &d)));
    fs::write(&path, with("  after_start:\n    - replace_file: [numprocs, ok.templ, out.conf]\n")).unwrap();
    load(&path).unwrap_or_else(|e| panic!("a template that renders, an output directory that exists: {e:#?}"));
}

#[test]
fn real_users_and_groups() {
    let t = TempDir::new("users");
    let path = t.file("rolld.yml", &with("  user: nobody\n  group: nogroup\n"));
    let nobody = crate::sys::lookup_user("nobody").unwrap().expect("a user nobody");
    let nogroup = crate::sys::lookup_group("nogroup").unwrap().expect("a group nogroup");
    if crate::sys::euid() == 0 {
        let c = load(&path).unwrap().groups[0].credentials.clone().expect("credentials");
        assert_eq!((c.uid, c.gid), (nobody.uid, nogroup));
        assert!(c.groups.contains(&c.gid));
        assert_eq!(c.user.as_ref().map(|u| u.0.as_str()), Some("nobody"));
    } else {
        let errs = load(&path).unwrap_err();
        assert!(errs[0].ends_with("g.user: switching needs rolld to run as root"), "{errs:#?}");
    }
    let me = crate::sys::euid();
    fs::write(&path, with(&format!("  user: '{me}'\n"))).unwrap();
    let c = load(&path).unwrap().groups[0].credentials.clone();
    assert_eq!(c.is_some(), me == 0, "as root, user: switches (to root itself); not root, its own user is no switch");
}

// ------------------------------------------------------------ load

#[test]
fn load_a_path_that_does_not_exist() {
    let t = TempDir::new("load_missing");
    let path = t.path().join("nope.yml");
    let errs = load(&path).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("{}: cannot read: ", path.display())), "{errs:#?}");
    assert!(errs[0].contains("No such file or directory"), "{errs:#?}");
}

#[test]
fn load_a_directory() {
    let t = TempDir::new("load_dir");
    let dir = t.dir("conf.yml");
    let errs = load(&dir).unwrap_err();
    assert_eq!(errs, [format!("{}: is a directory, not a config file", dir.display())]);
}

#[test]
fn load_a_valid_file() {
    let t = TempDir::new("load_ok");
    let path = t.file("rolld.yml", &with("  stop_signal: QUIT\n"));
    let cfg = load(&path).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(cfg.path.is_absolute(), "{:?}", cfg.path);
    assert_eq!(fs::canonicalize(&cfg.path).unwrap(), fs::canonicalize(&path).unwrap());
    assert_eq!(cfg.groups.len(), 1);
    assert_eq!(Some(cfg.groups[0].base.as_path()), cfg.path.parent());
    assert_eq!(cfg.groups[0].directory, cfg.groups[0].base);
    assert_eq!(cfg.groups[0].stop_signal, libc::SIGQUIT);
}

#[test]
fn load_names_the_file_in_every_message() {
    let t = TempDir::new("load_bad");
    let path = t.file("rolld.yml", "g:\n  cmd: ''\n  workset:\n    - numprocs: [9001]\n");
    let errs = load(&path).unwrap_err();
    let prefix = format!("{}: ", path.display());
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs.iter().all(|e| e.starts_with(&prefix)), "{errs:#?}");
    has(&errs, &["g.cmd: is empty"]);
    has(&errs, &["g.workset: at least two worksets"]);
}

#[test]
fn load_reports_yaml_errors_with_the_file_and_line() {
    let t = TempDir::new("load_yaml");
    let path = t.file("rolld.yml", "g:\n  cmd: [unclosed\n");
    let errs = load(&path).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("{}:", path.display())), "{errs:#?}");
    assert!(errs[0].contains("invalid YAML"), "{errs:#?}");
}

#[test]
fn load_an_empty_file() {
    let t = TempDir::new("load_empty");
    let path = t.file("rolld.yml", "");
    assert_eq!(load(&path).unwrap_err(), [format!("{}: no group defined (the file is empty)", path.display())]);
}

// ------------------------------------------------------------ with_port

#[test]
fn with_port_replaces_every_placeholder() {
    assert_eq!(with_port("app.py {numproc}", 8001), "app.py 8001");
    assert_eq!(with_port("logs/{numproc}/x-{numproc}.log", 80), "logs/80/x-80.log");
    assert_eq!(with_port("{numproc}", 65535), "65535");
}

#[test]
fn with_port_leaves_other_text_alone() {
    assert_eq!(with_port("no placeholder", 8001), "no placeholder");
    assert_eq!(with_port("{numprocs} {port} {NUMPROC} {print $2}", 1), "{numprocs} {port} {NUMPROC} {print $2}");
    assert_eq!(with_port("", 1), "");
}
