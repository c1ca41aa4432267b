//! Unit tests of the config loader (`parse`, `load`, `split_shell`,
//! `with_port`). Every test that touches the file system works in its own
//! temporary directory, removed when the test ends (even on failure).

use super::*;
use std::fs;

fn parse_all(text: &str, file: &str, base: &Path) -> Result<Vec<GroupConfig>, Vec<String>> {
    let Parsed { drafts, mut errors } = super::parse(text, file, base);
    match resolve(drafts, file, &Live) {
        Ok(g) if errors.is_empty() => Ok(g),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.extend(e);
            Err(errors)
        }
    }
}

/// The name `parse` is given for the file in every message.
const FILE: &str = "test.yml";

/// The seed config of the original project, `DIR` standing for its directory.
const SEED: &str = r#"app-servers:
  cmd: '../env/bin/python app.py {numproc}'
  directory: 'DIR'
  stderr: 'logs/tornado-{numproc}.err'
  stdout: 'logs/tornado-{numproc}.log'

  workset:
    - numprocs: [8001, 8002, 8003, 8004]
    - numprocs: [8501, 8502, 8503, 8504]

  smoke_test:
    - check_all_http_ports: numprocs

  after_start:
    - replace_file: [numprocs, 'example/nginx-tornado.conf.templ', 'example/nginx-tornado.conf']
    - run_proc: ps auxw| grep nginx | grep master | grep -v grep | awk '{print $2}' | xargs kill -HUP
"#;

const SEED_RUN_PROC: &str = "ps auxw| grep nginx | grep master | grep -v grep | awk '{print $2}' | xargs kill -HUP";

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

/// A valid group `g` (bare program, two worksets, no directory) followed by
/// `extra`, whose lines are indented by two spaces.
fn with(extra: &str) -> String {
    format!("g:\n  cmd: prog {{numproc}}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n{extra}")
}

#[track_caller]
fn good(text: &str, base: &Path) -> Vec<GroupConfig> {
    match parse_all(text, FILE, base) {
        Ok(groups) => groups,
        Err(errs) => panic!("expected the config to parse, got:\n{}", errs.join("\n")),
    }
}

/// The single group of a config that must parse.
#[track_caller]
fn one(text: &str, base: &Path) -> GroupConfig {
    let mut groups = good(text, base);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    groups.pop().unwrap()
}

#[track_caller]
fn bad(text: &str, base: &Path) -> Vec<String> {
    match parse_all(text, FILE, base) {
        Ok(groups) => panic!("expected errors, the config parsed: {groups:#?}"),
        Err(errs) => {
            assert!(!errs.is_empty(), "Err with no message");
            errs
        }
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

/// Asserts that no message contains `part`.
#[track_caller]
fn lacks(errs: &[String], part: &str) {
    assert!(!errs.iter().any(|e| e.contains(part)), "a message contains {part:?}; messages:\n{}", errs.join("\n"));
}

/// Asserts that there is exactly one message and that it is `want`.
#[track_caller]
fn only(errs: &[String], want: &str) {
    assert_eq!(errs, [want.to_string()], "messages:\n{}", errs.join("\n"));
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// An HTTP check of localhost with no header and no body to match.
fn http_check(path: &str, status: u16, timeout: Duration) -> Check {
    Check::Http { host: Host::Localhost, path: path.into(), status, headers: Vec::new(), body: None, timeout }
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
fn seed_config_parses_unchanged_apart_from_its_directory() {
    let t = TempDir::new("seed");
    let (base, app) = seed_tree(&t);
    let text = SEED.replace("DIR", app.to_str().unwrap());
    let g = one(&text, &base);

    assert_eq!(g.name, "app-servers");
    assert_eq!(g.base, base);
    assert_eq!(g.directory, app);

    assert_eq!(g.argv.len(), 3, "{:?}", g.argv);
    let prog = Path::new(&g.argv[0]);
    assert!(prog.is_absolute(), "argv[0] {prog:?} is not absolute");
    assert_eq!(fs::canonicalize(prog).unwrap(), fs::canonicalize(t.path().join("env/bin/python")).unwrap());
    assert_eq!(g.argv[1..], ["app.py", "{numproc}"]);

    assert_eq!(g.stdout.as_deref(), Some("logs/tornado-{numproc}.log"));
    assert_eq!(g.stderr.as_deref(), Some("logs/tornado-{numproc}.err"));
    assert!(g.env.is_empty());
    assert_eq!(g.worksets, vec![vec![8001, 8002, 8003, 8004], vec![8501, 8502, 8503, 8504]]);
    assert_eq!(
        g.checks,
        vec![Check::Http {
            host: Host::Localhost,
            path: "/".into(),
            status: 200,
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(2),
        }]
    );
    assert_eq!(
        g.actions,
        vec![
            Action::ReplaceFile {
                template: base.join("example/nginx-tornado.conf.templ"),
                output: base.join("example/nginx-tornado.conf"),
            },
            Action::RunProc { command: SEED_RUN_PROC.into() },
        ]
    );
    assert_eq!(
        g.timing,
        Timing {
            start_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(300),
            drain_quiet: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(30),
            drain_report: Duration::from_secs(5),
        }
    );
    assert_eq!(g.timing, Timing::default());
    assert_eq!(g.stop_signal, libc::SIGTERM);
}

#[test]
fn seed_config_with_a_relative_directory() {
    let t = TempDir::new("seed_relative");
    let (base, app) = seed_tree(&t);
    let text = SEED.replace("DIR", "../app");
    let g = one(&text, &base);
    assert_eq!(fs::canonicalize(&g.directory).unwrap(), fs::canonicalize(&app).unwrap());
    assert_eq!(fs::canonicalize(&g.argv[0]).unwrap(), fs::canonicalize(t.path().join("env/bin/python")).unwrap());
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
    // The same as parsing the text with the base load found.
    assert_eq!(*g, one(&SEED.replace("DIR", app.to_str().unwrap()), &g.base));
}

// ------------------------------------------------------------ defaults

#[test]
fn defaults_when_optional_keys_are_absent() {
    let t = TempDir::new("defaults");
    let g = one(&with(""), t.path());
    assert_eq!(
        g,
        GroupConfig {
            name: "g".into(),
            base: t.path().to_path_buf(),
            argv: vec!["prog".into(), "{numproc}".into()],
            directory: t.path().to_path_buf(),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            worksets: vec![vec![9001], vec![9002]],
            checks: Vec::new(),
            actions: Vec::new(),
            timing: Timing::default(),
            stop_signal: libc::SIGTERM,
            drain_signal: None,
            surge: None,
            credentials: None,
        }
    );
}

#[test]
fn directory_defaults_to_base() {
    let t = TempDir::new("dir_default");
    t.file("bin/server", "");
    let g = one(
        "g:\n  cmd: bin/server --port={numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        t.path(),
    );
    assert_eq!(g.directory, t.path());
    assert_eq!(g.argv, [t.path().join("bin/server").to_str().unwrap(), "--port={numproc}"]);
}

#[test]
fn relative_directory_is_relative_to_base() {
    let t = TempDir::new("dir_relative");
    let app = t.dir("srv/app");
    t.file("srv/app/run.sh", "");
    let text = "g:\n  cmd: ./run.sh {numproc}\n  directory: srv/app\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    let g = one(text, t.path());
    assert_eq!(g.directory, app);
    assert!(Path::new(&g.argv[0]).is_absolute(), "{:?}", g.argv);
    assert_eq!(fs::canonicalize(&g.argv[0]).unwrap(), fs::canonicalize(app.join("run.sh")).unwrap());
}

#[test]
fn absolute_directory_is_used_as_is() {
    let t = TempDir::new("dir_absolute");
    let app = t.dir("elsewhere");
    let base = t.dir("conf");
    let g = one(&with(&format!("  directory: {}\n", app.display())), &base);
    assert_eq!(g.directory, app);
}

#[test]
fn bare_program_name_is_left_for_path_lookup() {
    let t = TempDir::new("bare_prog");
    let g = one(
        "g:\n  cmd: python3 -m http.server {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        t.path(),
    );
    assert_eq!(g.argv, ["python3", "-m", "http.server", "{numproc}"]);
}

#[test]
fn quoted_cmd_arguments_are_split_like_a_shell() {
    let t = TempDir::new("cmd_quotes");
    let text = r#"g:
  cmd: prog --name 'a b' "c \"d\"" e\ f {numproc}
  workset:
    - numprocs: [9001]
    - numprocs: [9002]
"#;
    let g = one(text, t.path());
    assert_eq!(g.argv, ["prog", "--name", "a b", "c \"d\"", "e f", "{numproc}"]);
}

#[test]
fn program_with_a_slash_that_does_not_exist_is_an_error() {
    let t = TempDir::new("prog_missing");
    let text = "g:\n  cmd: bin/nope {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    let errs = bad(text, t.path());
    only(&errs, &format!("{FILE}: g.cmd: program {} not found", t.path().join("bin/nope").display()));
}

#[test]
fn program_that_is_a_directory_is_an_error() {
    let t = TempDir::new("prog_dir");
    t.dir("bin/server");
    let text = "g:\n  cmd: bin/server {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    has(&bad(text, t.path()), &[": g.cmd: program ", "bin/server not found"]);
}

#[test]
fn stdout_and_stderr_are_kept_as_written() {
    let t = TempDir::new("outputs");
    let g = one(&with("  stdout: out/{numproc}.log\n  stderr: /var/log/x-{numproc}.err\n"), t.path());
    assert_eq!(g.stdout.as_deref(), Some("out/{numproc}.log"));
    assert_eq!(g.stderr.as_deref(), Some("/var/log/x-{numproc}.err"));
}

#[test]
fn stdout_not_a_string_is_an_error() {
    let t = TempDir::new("stdout_list");
    only(&bad(&with("  stdout: [a, b]\n"), t.path()), &format!("{FILE}: g.stdout: expected a string, got a list"));
}

#[test]
fn groups_are_returned_in_file_order() {
    let t = TempDir::new("order");
    let text = "zeta:\n  cmd: a\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
                alpha:\n  cmd: b\n  workset:\n    - numprocs: [9003]\n    - numprocs: [9004]\n\
                mid:\n  cmd: c\n  workset:\n    - numprocs: [9005]\n    - numprocs: [9006]\n";
    let names: Vec<String> = good(text, t.path()).into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn worksets_keep_their_order_and_sizes() {
    let t = TempDir::new("worksets");
    let text = "g:\n  cmd: p\n  workset:\n    - numprocs: [1, 65535]\n    - numprocs: [3000]\n    - numprocs: [4000, 4001, 4002]\n";
    let g = one(text, t.path());
    assert_eq!(g.worksets, vec![vec![1, 65535], vec![3000], vec![4000, 4001, 4002]]);
}

// ------------------------------------------------------------ smoke tests

#[test]
fn long_http_check_form() {
    let t = TempDir::new("check_long");
    let g = one(
        &with(
            "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, path: /health, status: 204, timeout: 0.5}\n",
        ),
        t.path(),
    );
    assert_eq!(g.checks, vec![http_check("/health", 204, Duration::from_millis(500))]);
}

#[test]
fn long_http_check_form_in_block_style_with_defaults() {
    let t = TempDir::new("check_long_block");
    let g = one(&with("  smoke_test:\n    - check_all_http_ports:\n        ports: numprocs\n"), t.path());
    assert_eq!(g.checks, vec![http_check("/", 200, Duration::from_secs(2))]);
}

#[test]
fn check_all_tcp_ports_short_and_long() {
    let t = TempDir::new("check_tcp");
    let g = one(
        &with(
            "  smoke_test:\n    - check_all_tcp_ports: numprocs\n    - check_all_tcp_ports: {ports: numprocs, timeout: 5}\n    - check_all_http_ports: numprocs\n",
        ),
        t.path(),
    );
    assert_eq!(
        g.checks,
        vec![
            Check::Tcp { host: Host::Localhost, timeout: Duration::from_secs(2) },
            Check::Tcp { host: Host::Localhost, timeout: Duration::from_secs(5) },
            http_check("/", 200, Duration::from_secs(2)),
        ]
    );
}

#[test]
fn tcp_check_rejects_http_only_keys() {
    let t = TempDir::new("check_tcp_http_keys");
    let errs =
        bad(&with("  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, path: /x, status: 200}\n"), t.path());
    has(&errs, &[&format!("{FILE}: g.smoke_test[0].check_all_tcp_ports.path: unknown key")]);
    has(&errs, &[&format!("{FILE}: g.smoke_test[0].check_all_tcp_ports.status: unknown key")]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn unknown_key_inside_a_long_check() {
    let t = TempDir::new("check_unknown_key");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: {ports: numprocs, method: HEAD}\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test[0].check_all_http_ports.method: unknown key"));
}

#[test]
fn long_check_without_ports() {
    let t = TempDir::new("check_no_ports");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: {path: /health}\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test[0].check_all_http_ports: missing `ports: numprocs`"));
}

#[test]
fn long_check_with_ports_other_than_numprocs() {
    let t = TempDir::new("check_bad_ports");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: {ports: [9001]}\n"), t.path());
    has(
        &errs,
        &[&format!("{FILE}: g.smoke_test[0].check_all_http_ports.ports: expected the word numprocs"), "got a list"],
    );
}

#[test]
fn long_check_with_wrong_ports_is_reported_once() {
    let t = TempDir::new("check_bad_ports_once");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: {ports: all}\n"), t.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    lacks(&errs, "missing");
}

#[test]
fn short_check_with_argument_other_than_numprocs() {
    let t = TempDir::new("check_short_bad");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: ports\n"), t.path());
    only(
        &errs,
        &format!(
            "{FILE}: g.smoke_test[0].check_all_http_ports: expected the word numprocs (the set's ports), got \"ports\""
        ),
    );
}

#[test]
fn check_path_must_start_with_a_slash() {
    let t = TempDir::new("check_path");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports: {ports: numprocs, path: health}\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test[0].check_all_http_ports.path: must start with /, got \"health\""));
}

#[test]
fn check_status_must_be_an_http_status() {
    let t = TempDir::new("check_status");
    for (status, shown) in
        [("99", "99 (a number)"), ("600", "600 (a number)"), ("ok", "\"ok\""), ("-200", "-200 (a number)")]
    {
        let errs = bad(
            &with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, status: {status}}}\n")),
            t.path(),
        );
        only(
            &errs,
            &format!("{FILE}: g.smoke_test[0].check_all_http_ports.status: expected an HTTP status, got {shown}"),
        );
    }
    for status in [100, 599] {
        let g = one(
            &with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, status: {status}}}\n")),
            t.path(),
        );
        assert_eq!(g.checks, vec![http_check("/", status, Duration::from_secs(2))]);
    }
}

#[test]
fn unknown_check() {
    let t = TempDir::new("check_unknown");
    let errs =
        bad(&with("  smoke_test:\n    - check_all_http_ports: numprocs\n    - check_ping: numprocs\n"), t.path());
    only(
        &errs,
        &format!(
            "{FILE}: g.smoke_test[1]: unknown check \"check_ping\" (known: check_all_http_ports, check_all_tcp_ports)"
        ),
    );
}

#[test]
fn check_with_two_keys() {
    let t = TempDir::new("check_two_keys");
    let errs =
        bad(&with("  smoke_test:\n    - {check_all_http_ports: numprocs, check_all_tcp_ports: numprocs}\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test[0]: expected exactly one key, got 2"));
}

#[test]
fn check_that_is_not_a_mapping() {
    let t = TempDir::new("check_scalar");
    let errs = bad(&with("  smoke_test:\n    - check_all_http_ports\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test[0]: expected a mapping, got \"check_all_http_ports\""));
}

#[test]
fn smoke_test_that_is_not_a_list() {
    let t = TempDir::new("smoke_not_list");
    let errs = bad(&with("  smoke_test:\n    check_all_http_ports: numprocs\n"), t.path());
    only(&errs, &format!("{FILE}: g.smoke_test: expected a list, got a mapping"));
}

#[test]
fn check_timeout_zero_or_negative_is_rejected() {
    let t = TempDir::new("check_timeout");
    for (v, shown) in
        [("0", "0 (a number)"), ("-1", "-1 (a number)"), ("-0.5", "-0.5 (a number)"), ("soon", "\"soon\"")]
    {
        let errs = bad(
            &with(&format!("  smoke_test:\n    - check_all_tcp_ports: {{ports: numprocs, timeout: {v}}}\n")),
            t.path(),
        );
        only(
            &errs,
            &format!(
                "{FILE}: g.smoke_test[0].check_all_tcp_ports.timeout: expected a number of seconds, more than zero, got {shown}"
            ),
        );
    }
}

#[test]
fn check_host_forms() {
    let t = TempDir::new("check_host");
    let ip = |s: &str| Host::Ip(s.parse().unwrap());
    let table = [
        ("localhost", Host::Localhost),
        ("LocalHost", Host::Localhost),
        ("localhost.", Host::Localhost),
        ("127.0.0.1", ip("127.0.0.1")),
        ("10.0.0.5", ip("10.0.0.5")),
        ("'::1'", ip("::1")),
        ("'[::1]'", ip("::1")),
        ("'fd00::5'", ip("fd00::5")),
        ("app.internal", Host::Name("app.internal".into())),
        ("svc_1.local.", Host::Name("svc_1.local.".into())),
        ("web-2", Host::Name("web-2".into())),
    ];
    for (written, want) in table {
        let g = one(
            &with(&format!(
                "  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, host: {written}}}\n    - check_all_tcp_ports: {{ports: numprocs, host: {written}}}\n"
            )),
            t.path(),
        );
        let Check::Http { host, .. } = &g.checks[0] else { panic!("{:?}", g.checks) };
        assert_eq!(*host, want, "http host: {written}");
        assert_eq!(
            g.checks[1],
            Check::Tcp { host: want.clone(), timeout: Duration::from_secs(2) },
            "tcp host: {written}"
        );
    }
}

#[test]
fn check_host_errors() {
    let t = TempDir::new("check_host_errors");
    let table = [
        ("''", "expected an IP address or a host name, got \"\""),
        ("'localhost:8000'", "expected a host with no port (the port is the set's), got \"localhost:8000\""),
        ("'[::1]:8000'", "expected a host with no port (the port is the set's), got \"[::1]:8000\""),
        ("'http://app.example'", "expected a host only, with no scheme or path, got \"http://app.example\""),
        ("'app/health'", "expected a host only, with no scheme or path, got \"app/health\""),
        ("'[127.0.0.1]'", "expected an IPv6 address between the brackets, got \"[127.0.0.1]\""),
        ("'app example'", "expected an IP address or a host name, got \"app example\""),
        ("'1.2.3'", "expected an IP address or a host name, got \"1.2.3\""),
        ("'-app.example'", "expected an IP address or a host name, got \"-app.example\""),
        ("'a..b'", "expected an IP address or a host name, got \"a..b\""),
        ("42", "expected a string, got 42 (a number)"),
        ("[a]", "expected a string, got a list"),
    ];
    for check in ["check_all_http_ports", "check_all_tcp_ports"] {
        for (written, msg) in table {
            let errs =
                bad(&with(&format!("  smoke_test:\n    - {check}: {{ports: numprocs, host: {written}}}\n")), t.path());
            only(&errs, &format!("{FILE}: g.smoke_test[0].{check}.host: {msg}"));
        }
    }
}

#[test]
fn check_host_name_longer_than_dns_allows() {
    let t = TempDir::new("check_host_long");
    let label = "a".repeat(64);
    let errs = bad(
        &with(&format!("  smoke_test:\n    - check_all_tcp_ports: {{ports: numprocs, host: {label}.example}}\n")),
        t.path(),
    );
    has(&errs, &["g.smoke_test[0].check_all_tcp_ports.host: expected an IP address or a host name"]);
    let name = vec!["a".repeat(63); 4].join(".");
    assert_eq!(name.len(), 255);
    let errs =
        bad(&with(&format!("  smoke_test:\n    - check_all_tcp_ports: {{ports: numprocs, host: {name}}}\n")), t.path());
    has(&errs, &["g.smoke_test[0].check_all_tcp_ports.host: expected an IP address or a host name"]);
}

#[test]
fn check_headers_keep_their_names_values_and_order() {
    let t = TempDir::new("check_headers");
    let text = with(
        "  smoke_test:\n    - check_all_http_ports:\n        ports: numprocs\n        headers:\n          Host: app.example\n          X-Health-Token: 'abc=='\n          accept: '*/*'\n          X-Empty: ''\n          X-Tab: \"a\\tb\"\n",
    );
    let g = one(&text, t.path());
    let Check::Http { headers, .. } = &g.checks[0] else { panic!("{:?}", g.checks) };
    let want: Vec<(String, String)> =
        [("Host", "app.example"), ("X-Health-Token", "abc=="), ("accept", "*/*"), ("X-Empty", ""), ("X-Tab", "a\tb")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
    assert_eq!(*headers, want);
}

#[test]
fn check_header_errors() {
    let t = TempDir::new("check_header_errors");
    let k = "g.smoke_test[0].check_all_http_ports.headers";
    let table = [
        (
            "{Bad Name: x}",
            format!("{k}: header name \"Bad Name\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"),
        ),
        (
            "{\"X-A\\r\\nB\": x}",
            format!("{k}: header name \"X-A\\r\\nB\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"),
        ),
        ("{\"\": x}", format!("{k}: header name \"\" is not a token (letters, digits and !#$%&'*+-.^_`|~)")),
        ("{\"X:Y\": x}", format!("{k}: header name \"X:Y\" is not a token (letters, digits and !#$%&'*+-.^_`|~)")),
        ("{X-A: \"a\\r\\nInjected: 1\"}", format!("{k}.X-A: the value contains a line break: \"a\\r\\nInjected: 1\"")),
        ("{X-A: \"a\\nb\"}", format!("{k}.X-A: the value contains a line break: \"a\\nb\"")),
        ("{X-A: \"caf\\u00e9\"}", format!("{k}.X-A: the value must be printable ASCII, got \"café\"")),
        ("{X-A: \"a\\x01\"}", format!("{k}.X-A: the value must be printable ASCII, got \"a\\u{{1}}\"")),
        ("{X-A: \"a\\x7f\"}", format!("{k}.X-A: the value must be printable ASCII, got \"a\\u{{7f}}\"")),
        (
            "{Connection: keep-alive}",
            format!("{k}.Connection: cannot be set: rolld sends a GET with no body and `Connection: close`"),
        ),
        (
            "{content-length: '5'}",
            format!("{k}.content-length: cannot be set: rolld sends a GET with no body and `Connection: close`"),
        ),
        (
            "{Transfer-Encoding: chunked}",
            format!("{k}.Transfer-Encoding: cannot be set: rolld sends a GET with no body and `Connection: close`"),
        ),
        ("{Host: a.example, host: b.example}", format!("{k}.host: given twice (header names do not depend on case)")),
        ("{X-Version: 2}", format!("{k}.X-Version: expected a string, got 2 (a number)")),
        ("{X-On: true}", format!("{k}.X-On: expected a string, got true (a boolean)")),
        ("[Host, app.example]", format!("{k}: expected a mapping, got a list")),
        ("app.example", format!("{k}: expected a mapping, got \"app.example\"")),
        ("{1: x}", format!("{k}: key 1 (a number) is not a string")),
    ];
    for (written, msg) in table {
        let errs = bad(
            &with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, headers: {written}}}\n")),
            t.path(),
        );
        only(&errs, &format!("{FILE}: {msg}"));
    }
}

#[test]
fn check_body_forms_and_errors() {
    let t = TempDir::new("check_body");
    for (written, want) in [("v1.2.3", "v1.2.3"), ("'\"status\": \"ok\"'", "\"status\": \"ok\""), ("'1.10'", "1.10")] {
        let g = one(
            &with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, body: {written}}}\n")),
            t.path(),
        );
        let Check::Http { body, .. } = &g.checks[0] else { panic!("{:?}", g.checks) };
        assert_eq!(body.as_deref(), Some(want), "{written}");
    }
    let k = "g.smoke_test[0].check_all_http_ports.body";
    for (written, msg) in [
        ("''", "is empty (it would match any body)"),
        ("1.10", "expected a string, got 1.1 (a number)"),
        ("[a]", "expected a string, got a list"),
        ("null", "expected a string, got null"),
    ] {
        let errs = bad(
            &with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, body: {written}}}\n")),
            t.path(),
        );
        only(&errs, &format!("{FILE}: {k}: {msg}"));
    }
}

#[test]
fn tcp_check_rejects_headers_and_body() {
    let t = TempDir::new("check_tcp_http_only");
    let errs = bad(
        &with("  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, headers: {Host: a.example}, body: ok}\n"),
        t.path(),
    );
    has(&errs, &[&format!("{FILE}: g.smoke_test[0].check_all_tcp_ports.headers: unknown key")]);
    has(&errs, &[&format!("{FILE}: g.smoke_test[0].check_all_tcp_ports.body: unknown key")]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn long_http_check_with_every_key() {
    let t = TempDir::new("check_every_key");
    let text = with(
        "  smoke_test:\n    - check_all_http_ports:\n        ports: numprocs\n        host: '::1'\n        path: /health\n        status: 204\n        headers:\n          Host: app.example\n        body: ok\n        timeout: 1.5\n",
    );
    let g = one(&text, t.path());
    assert_eq!(
        g.checks,
        vec![Check::Http {
            host: Host::Ip("::1".parse().unwrap()),
            path: "/health".into(),
            status: 204,
            headers: vec![("Host".into(), "app.example".into())],
            body: Some("ok".into()),
            timeout: Duration::from_millis(1500),
        }]
    );
}

#[test]
fn problems_in_several_new_keys_are_all_reported() {
    let t = TempDir::new("check_new_keys_all");
    let errs = bad(
        &with(
            "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, host: 'a:1', headers: {Connection: close}, body: ''}\n    - check_all_tcp_ports: {ports: numprocs, host: ''}\n",
        ),
        t.path(),
    );
    has(&errs, &["g.smoke_test[0].check_all_http_ports.host: expected a host with no port"]);
    has(&errs, &["g.smoke_test[0].check_all_http_ports.headers.Connection: cannot be set"]);
    has(&errs, &["g.smoke_test[0].check_all_http_ports.body: is empty"]);
    has(&errs, &["g.smoke_test[1].check_all_tcp_ports.host: expected an IP address or a host name"]);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

// ------------------------------------------------------------ env

#[test]
fn env_values_may_be_strings_numbers_or_booleans() {
    let t = TempDir::new("env");
    let g = one(
        &with(
            "  env:\n    NAME: web\n    PORT_BASE: 8000\n    RATIO: 0.5\n    DEBUG: true\n    QUOTED: '42'\n    EMPTY: ''\n",
        ),
        t.path(),
    );
    let want: Vec<(String, String)> =
        [("NAME", "web"), ("PORT_BASE", "8000"), ("RATIO", "0.5"), ("DEBUG", "true"), ("QUOTED", "42"), ("EMPTY", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(g.env, want);
}

#[test]
fn env_value_that_is_not_a_scalar() {
    let t = TempDir::new("env_bad_value");
    let errs = bad(&with("  env:\n    A: [1, 2]\n    B: ~\n    C: ok\n"), t.path());
    has(&errs, &[&format!("{FILE}: g.env.A: expected a string, got a list")]);
    has(&errs, &[&format!("{FILE}: g.env.B: expected a string, got null")]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn env_that_is_not_a_mapping() {
    let t = TempDir::new("env_list");
    only(&bad(&with("  env:\n    - A=1\n"), t.path()), &format!("{FILE}: g.env: expected a mapping, got a list"));
}

#[test]
fn env_key_that_is_not_a_string() {
    let t = TempDir::new("env_key");
    only(&bad(&with("  env:\n    1: one\n"), t.path()), &format!("{FILE}: g.env: key 1 (a number) is not a string"));
}

// ------------------------------------------------------------ timings

#[test]
fn timings_accept_fractional_seconds() {
    let t = TempDir::new("timing_fraction");
    let g = one(
        &with(
            "  start_timeout: 2.5\n  drain_timeout: 0.25\n  drain_quiet: 0.5\n  stop_timeout: 1.5\n  action_timeout: 0.75\n",
        ),
        t.path(),
    );
    assert_eq!(
        g.timing,
        Timing {
            start_timeout: Duration::from_millis(2500),
            drain_timeout: Duration::from_millis(250),
            drain_quiet: Duration::from_millis(500),
            stop_timeout: Duration::from_millis(1500),
            action_timeout: Duration::from_millis(750),
            drain_report: Duration::from_secs(5),
        }
    );
    let g = one(&with("  start_timeout: 0.1\n"), t.path());
    assert_eq!(g.timing.start_timeout, secs(0.1));
}

#[test]
fn timings_accept_whole_seconds() {
    let t = TempDir::new("timing_whole");
    let g = one(
        &with("  start_timeout: 5\n  drain_timeout: 600\n  drain_quiet: 2\n  stop_timeout: 3\n  action_timeout: 60\n"),
        t.path(),
    );
    assert_eq!(
        g.timing,
        Timing {
            start_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(600),
            drain_quiet: Duration::from_secs(2),
            stop_timeout: Duration::from_secs(3),
            action_timeout: Duration::from_secs(60),
            drain_report: Duration::from_secs(5),
        }
    );
}

#[test]
fn drain_quiet_zero_is_accepted() {
    let t = TempDir::new("drain_quiet_zero");
    for v in ["0", "0.0"] {
        let g = one(&with(&format!("  drain_quiet: {v}\n")), t.path());
        assert_eq!(g.timing.drain_quiet, Duration::ZERO);
        assert_eq!(g.timing.drain_timeout, Duration::from_secs(300));
    }
}

#[test]
fn drain_quiet_negative_is_rejected() {
    let t = TempDir::new("drain_quiet_negative");
    only(
        &bad(&with("  drain_quiet: -1\n"), t.path()),
        &format!("{FILE}: g.drain_quiet: expected a number of seconds, zero or more, got -1 (a number)"),
    );
}

#[test]
fn zero_and_negative_timeouts_are_rejected() {
    let t = TempDir::new("timing_nonpositive");
    for key in ["start_timeout", "drain_timeout", "stop_timeout", "action_timeout"] {
        for (v, shown) in [("0", "0 (a number)"), ("-5", "-5 (a number)"), ("-0.5", "-0.5 (a number)")] {
            let errs = bad(&with(&format!("  {key}: {v}\n")), t.path());
            only(&errs, &format!("{FILE}: g.{key}: expected a number of seconds, more than zero, got {shown}"));
        }
    }
}

#[test]
fn timeouts_that_are_not_numbers_are_rejected() {
    let t = TempDir::new("timing_nan");
    for (v, shown) in [
        ("'30'", "\"30\""),
        ("30s", "\"30s\""),
        ("true", "true (a boolean)"),
        ("~", "null"),
        ("[1]", "a list"),
        (".inf", ".inf (a number)"),
        (".nan", ".nan (a number)"),
    ] {
        let errs = bad(&with(&format!("  stop_timeout: {v}\n")), t.path());
        has(&errs, &["g.stop_timeout: expected a number of seconds, more than zero, got "]);
        has(&errs, &[shown]);
        assert_eq!(errs.len(), 1, "{errs:#?}");
    }
}

#[test]
fn absurdly_long_timeouts_are_rejected() {
    let t = TempDir::new("timing_huge");
    has(&bad(&with("  start_timeout: 1e300\n"), t.path()), &["g.start_timeout: expected a number of seconds"]);
    has(&bad(&with("  start_timeout: 1000000000\n"), t.path()), &["g.start_timeout: expected a number of seconds"]);
    let g = one(&with("  start_timeout: 86400\n"), t.path());
    assert_eq!(g.timing.start_timeout, Duration::from_secs(86400));
}

// ------------------------------------------------------------ drain_signal, drain_report

#[test]
fn drain_signal_and_drain_report() {
    let t = TempDir::new("drain_signal");
    let g = one(&with("  drain_signal: USR1\n  drain_report: 2.5\n"), t.path());
    assert_eq!(g.drain_signal, Some(libc::SIGUSR1));
    assert_eq!(g.timing.drain_report, Duration::from_millis(2500));
    let g = one(&with("  drain_signal: 12\n  drain_report: 0\n"), t.path());
    assert_eq!(g.drain_signal, Some(12));
    assert_eq!(g.timing.drain_report, Duration::ZERO, "0 turns the reports off");
    for (v, shown) in [("KILL", "\"KILL\""), ("BOGUS", "\"BOGUS\""), ("0", "0 (a number)")] {
        let errs = bad(&with(&format!("  drain_signal: {v}\n")), t.path());
        only(&errs, &format!("{FILE}: g.drain_signal: unknown or unusable signal {shown}"));
    }
    let errs = bad(&with("  drain_report: -1\n"), t.path());
    assert!(errs.iter().any(|e| e.contains("g.drain_report")), "{errs:?}");
}

// ------------------------------------------------------------ what check catches beyond syntax

#[test]
fn a_template_that_does_not_render_is_an_error() {
    let t = TempDir::new("template_render");
    t.file("good.templ", "{% for p in ports %}{{ p }} {% endfor %}{{ old_ports|join(',') }} {{ group }}");
    t.file("bad.templ", "{{ portz }}");
    let act = |tmpl: &str| format!("  after_start:\n    - replace_file: [numprocs, '{tmpl}', 'out.conf']\n");
    one(&with(&act("good.templ")), t.path());
    let errs = bad(&with(&act("bad.templ")), t.path());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!(
            "{FILE}: g.after_start[0]: template {} does not render with ports, old_ports and group: ",
            t.path().join("bad.templ").display()
        )),
        "{errs:?}"
    );
    assert!(errs[0].contains("undefined"), "{errs:?}");
}

#[test]
fn rolld_s_own_user_needs_no_switch() {
    let t = TempDir::new("own_user");
    let me = crate::sys::euid().to_string();
    let g = one(&with(&format!("  user: '{me}'\n")), t.path());
    if crate::sys::euid() == 0 {
        assert!(g.credentials.is_some(), "as root, user: switches (here to root itself)");
    } else {
        assert_eq!(g.credentials, None, "not root: its own user is no switch, and no setgroups at start");
    }
}

#[test]
fn warnings_for_no_smoke_test_and_ephemeral_ports() {
    let t = TempDir::new("warnings");
    let g = one(&with(""), t.path());
    let w = crate::config::warnings(std::slice::from_ref(&g), Some((9002, 9100)));
    assert_eq!(
        w,
        vec![
            "g: no smoke_test: a new set goes live as soon as it is spawned, ready or not".to_string(),
            "g.workset[1]: port(s) 9002 inside net.ipv4.ip_local_port_range 9002-9100: an outgoing connection can hold one when the set starts".to_string(),
        ]
    );
    let g = one(&with("  smoke_test:\n    - check_all_tcp_ports: numprocs\n"), t.path());
    assert!(crate::config::warnings(&[g], Some((32768, 60999))).is_empty());
}

// ------------------------------------------------------------ group names

#[test]
fn group_names_are_letters_digits_dash_underscore_dot() {
    let t = TempDir::new("group_names");
    let body = "  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    for name in ["web", "app-servers", "api_v2", "svc.eu-1", &"x".repeat(64)] {
        assert_eq!(one(&format!("{name}:\n{body}"), t.path()).name, name);
    }
    let rule = "a group name is 1 to 64 letters, digits, '-', '_' or '.'";
    for (yaml, shown, why) in [
        ("'my app'", "\"my app\"", "(not ' ')"),
        ("\"a\\nb\"", "\"a\\nb\"", "(not '\\n')"),
        ("'web/1'", "\"web/1\"", "(not '/')"),
        ("'é'", "\"é\"", "(not 'é')"),
        ("''", "\"\"", "(0 characters)"),
    ] {
        only(&bad(&format!("{yaml}:\n{body}"), t.path()), &format!("{FILE}: group name {shown}: {rule} {why}"));
    }
    let long = "y".repeat(65);
    only(
        &bad(&format!("{long}:\n{body}"), t.path()),
        &format!("{FILE}: group name \"{long}\": {rule} (65 characters)"),
    );
}

// ------------------------------------------------------------ surge

#[test]
fn surge_needs_worksets_of_one_size_and_at_most_their_size() {
    let t = TempDir::new("surge");
    let ws = |a: &str, b: &str| {
        format!("g:\n  cmd: prog {{numproc}}\n  workset:\n    - numprocs: [{a}]\n    - numprocs: [{b}]\n")
    };
    let g = one(&format!("{}  surge: 1\n", ws("9001, 9002", "9011, 9012")), t.path());
    assert_eq!(g.surge, Some(1));
    let g = one(&format!("{}  surge: 2\n", ws("9001, 9002", "9011, 9012")), t.path());
    assert_eq!(g.surge, Some(2), "surge = N is blue/green");
    assert_eq!(one(&ws("9001, 9002", "9011"), t.path()).surge, None, "no surge: sizes may differ");
    for (extra, want) in [
        ("  surge: 0\n", "g.surge: expected a number of processes, 1 or more, got 0 (a number)"),
        ("  surge: -1\n", "g.surge: expected a number of processes, 1 or more, got -1 (a number)"),
        ("  surge: two\n", "g.surge: expected a number of processes, 1 or more, got \"two\""),
        ("  surge: 3\n", "g.surge: 3 is more than the 2 processes of a workset"),
    ] {
        only(&bad(&format!("{}{extra}", ws("9001, 9002", "9011, 9012")), t.path()), &format!("{FILE}: {want}"));
    }
    only(
        &bad(&format!("{}  surge: 1\n", ws("9001, 9002", "9011")), t.path()),
        &format!(
            "{FILE}: g.workset: with surge, every workset must have the same number of ports (slot i is the i-th port of each), got sizes 2, 1"
        ),
    );
}

// ------------------------------------------------------------ stop_signal

#[test]
fn stop_signal_names_and_numbers() {
    let t = TempDir::new("stop_signal");
    for (v, want) in [
        ("TERM", libc::SIGTERM),
        ("SIGTERM", libc::SIGTERM),
        ("QUIT", libc::SIGQUIT),
        ("SIGQUIT", libc::SIGQUIT),
        ("INT", libc::SIGINT),
        ("SIGINT", libc::SIGINT),
        ("15", libc::SIGTERM),
        ("'15'", libc::SIGTERM),
        ("3", libc::SIGQUIT),
        ("sigint", libc::SIGINT),
        ("HUP", libc::SIGHUP),
        ("USR1", libc::SIGUSR1),
        ("WINCH", libc::SIGWINCH),
    ] {
        let g = one(&with(&format!("  stop_signal: {v}\n")), t.path());
        assert_eq!(g.stop_signal, want, "stop_signal: {v}");
    }
}

#[test]
fn stop_signal_kill_and_stop_are_rejected() {
    let t = TempDir::new("stop_signal_kill");
    for (v, shown) in [
        ("KILL", "\"KILL\""),
        ("SIGKILL", "\"SIGKILL\""),
        ("9", "9 (a number)"),
        ("STOP", "\"STOP\""),
        ("SIGSTOP", "\"SIGSTOP\""),
    ] {
        let errs = bad(&with(&format!("  stop_signal: {v}\n")), t.path());
        only(&errs, &format!("{FILE}: g.stop_signal: unknown or unusable signal {shown}"));
    }
}

#[test]
fn stop_signal_garbage_is_rejected() {
    let t = TempDir::new("stop_signal_garbage");
    for (v, shown) in [
        ("TERMINATE", "\"TERMINATE\""),
        ("SIGFOO", "\"SIGFOO\""),
        ("''", "\"\""),
        ("0", "0 (a number)"),
        ("65", "65 (a number)"),
        ("-15", "-15 (a number)"),
        ("1.5", "1.5 (a number)"),
    ] {
        let errs = bad(&with(&format!("  stop_signal: {v}\n")), t.path());
        only(&errs, &format!("{FILE}: g.stop_signal: unknown or unusable signal {shown}"));
    }
    only(
        &bad(&with("  stop_signal: [TERM]\n"), t.path()),
        &format!("{FILE}: g.stop_signal: expected a string, got a list"),
    );
}

// ------------------------------------------------------------ group-level errors

#[test]
fn unknown_key_at_group_level() {
    let t = TempDir::new("unknown_key");
    only(&bad(&with("  comand: x\n"), t.path()), &format!("{FILE}: g.comand: unknown key"));
}

#[test]
fn group_key_that_is_not_a_string() {
    let t = TempDir::new("group_key_number");
    only(&bad(&with("  42: x\n"), t.path()), &format!("{FILE}: g: key 42 (a number) is not a string"));
}

#[test]
fn group_that_is_not_a_mapping() {
    let t = TempDir::new("group_scalar");
    only(&bad("g: 5\n", t.path()), &format!("{FILE}: g: expected a mapping, got 5 (a number)"));
    only(&bad("g:\n", t.path()), &format!("{FILE}: g: expected a mapping, got null"));
}

#[test]
fn group_name_that_is_not_a_string() {
    let t = TempDir::new("group_name_number");
    let text = "7:\n  cmd: p\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    only(&bad(text, t.path()), &format!("{FILE}: group name 7 (a number) is not a string"));
}

#[test]
fn cmd_missing() {
    let t = TempDir::new("cmd_missing");
    let errs = bad("g:\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.cmd: missing (the command to run, with {{numproc}} for the port)"));
}

#[test]
fn cmd_not_a_string_is_not_also_reported_missing() {
    let t = TempDir::new("cmd_list");
    let errs = bad("g:\n  cmd: [prog, x]\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.cmd: expected a string, got a list"));
}

#[test]
fn cmd_empty() {
    let t = TempDir::new("cmd_empty");
    for v in ["''", "'   '", "\"\\t\""] {
        let text = format!("g:\n  cmd: {v}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n");
        only(&bad(&text, t.path()), &format!("{FILE}: g.cmd: is empty"));
    }
}

#[test]
fn cmd_with_an_unterminated_quote() {
    let t = TempDir::new("cmd_quote");
    let single = "g:\n  cmd: \"prog 'abc {numproc}\"\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    only(&bad(single, t.path()), &format!("{FILE}: g.cmd: unterminated single quote"));
    let double = "g:\n  cmd: 'prog \"abc {numproc}'\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    only(&bad(double, t.path()), &format!("{FILE}: g.cmd: unterminated double quote"));
    let backslash = "g:\n  cmd: 'prog abc\\'\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    only(&bad(backslash, t.path()), &format!("{FILE}: g.cmd: trailing backslash"));
}

#[test]
fn cmd_continued_over_several_lines() {
    let t = TempDir::new("cmd_continued");
    let text =
        "g:\n  cmd: |\n    prog --a \\\n      {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    let g = one(text, t.path());
    assert_eq!(g.argv, ["prog", "--a", "{numproc}"]);
}

// ------------------------------------------------------------ worksets

const TWO_SETS: &str = "  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";

#[test]
fn workset_missing() {
    let t = TempDir::new("workset_missing");
    only(
        &bad("g:\n  cmd: prog\n", t.path()),
        &format!("{FILE}: g.workset: missing (at least two worksets are needed)"),
    );
}

#[test]
fn only_one_workset() {
    let t = TempDir::new("workset_one");
    only(
        &bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9002]\n", t.path()),
        &format!("{FILE}: g.workset: at least two worksets are needed (one serves while the next starts)"),
    );
}

#[test]
fn workset_that_is_an_empty_list() {
    let t = TempDir::new("workset_empty_list");
    has(&bad("g:\n  cmd: prog\n  workset: []\n", t.path()), &["g.workset: ", "at least two worksets"]);
}

#[test]
fn workset_that_is_not_a_list() {
    let t = TempDir::new("workset_not_list");
    only(
        &bad("g:\n  cmd: prog\n  workset:\n    numprocs: [9001]\n", t.path()),
        &format!("{FILE}: g.workset: expected a list, got a mapping"),
    );
    only(&bad("g:\n  cmd: prog\n  workset:\n", t.path()), &format!("{FILE}: g.workset: expected a list, got null"));
}

#[test]
fn an_empty_workset() {
    let t = TempDir::new("workset_empty");
    only(
        &bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: []\n", t.path()),
        &format!("{FILE}: g.workset[1]: a workset needs at least one port"),
    );
}

#[test]
fn workset_entry_with_another_key() {
    let t = TempDir::new("workset_key");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - ports: [9002]\n", t.path());
    has(&errs, &[&format!("{FILE}: g.workset[1]: expected `numprocs: [ports]`, got key \"ports\"")]);
}

#[test]
fn workset_numprocs_that_is_not_a_list() {
    let t = TempDir::new("workset_scalar");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: 9002\n", t.path());
    has(&errs, &[&format!("{FILE}: g.workset[1].numprocs: expected a list, got 9002 (a number)")]);
}

#[test]
fn port_zero() {
    let t = TempDir::new("port_zero");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 0]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.workset[0]: port 0 (a number) is not in 1..65535"));
}

#[test]
fn port_70000() {
    let t = TempDir::new("port_70000");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: [70000]\n", t.path());
    has(&errs, &[&format!("{FILE}: g.workset[1]: port 70000 (a number) is not in 1..65535")]);
}

#[test]
fn port_65536_and_negative() {
    let t = TempDir::new("port_edges");
    let errs =
        bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [65536, 9001]\n    - numprocs: [-1, 9002]\n", t.path());
    has(&errs, &[&format!("{FILE}: g.workset[0]: port 65536 (a number) is not in 1..65535")]);
    has(&errs, &[&format!("{FILE}: g.workset[1]: port -1 (a number) is not in 1..65535")]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn port_abc() {
    let t = TempDir::new("port_abc");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, abc]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.workset[0]: port \"abc\" is not in 1..65535"));
}

#[test]
fn port_as_a_float() {
    let t = TempDir::new("port_float");
    let errs = bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9003, 9001.5]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.workset[0]: port 9001.5 (a number) is not in 1..65535"));
}

#[test]
fn a_port_twice_in_one_workset() {
    let t = TempDir::new("port_twice");
    let errs =
        bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9003, 9001]\n    - numprocs: [9002]\n", t.path());
    only(&errs, &format!("{FILE}: g.workset[0]: port 9001 appears twice"));
}

#[test]
fn a_port_shared_by_two_worksets() {
    let t = TempDir::new("port_two_sets");
    let errs =
        bad("g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9002]\n    - numprocs: [9003, 9001]\n", t.path());
    only(&errs, &format!("{FILE}: g.workset[1]: port 9001 is already used by g.workset[0]"));
}

#[test]
fn a_port_shared_by_two_groups() {
    let t = TempDir::new("port_two_groups");
    let text = "a:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
                b:\n  cmd: prog\n  workset:\n    - numprocs: [9003]\n    - numprocs: [9004, 9002]\n";
    let errs = bad(text, t.path());
    only(&errs, &format!("{FILE}: b.workset[1]: port 9002 is already used by a.workset[1]"));
}

#[test]
fn a_port_shared_by_two_worksets_is_reported_along_with_other_errors() {
    let t = TempDir::new("port_two_sets_and_more");
    let text = "g:\n  cmd: prog\n  bogus: 1\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9001]\n";
    let errs = bad(text, t.path());
    has(&errs, &[&format!("{FILE}: g.bogus: unknown key")]);
    has(&errs, &[&format!("{FILE}: g.workset[1]: port 9001 is already used by g.workset[0]")]);
}

#[test]
fn ports_1_and_65535_are_accepted() {
    let t = TempDir::new("port_bounds");
    let g = one("g:\n  cmd: prog\n  workset:\n    - numprocs: [1]\n    - numprocs: [65535]\n", t.path());
    assert_eq!(g.worksets, vec![vec![1], vec![65535]]);
}

// ------------------------------------------------------------ directory

#[test]
fn directory_missing() {
    let t = TempDir::new("dir_missing");
    let errs = bad(&with("  directory: nope\n"), t.path());
    let dir = t.path().join("nope");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    has(&errs, &[&format!("{FILE}: g.directory: {}: ", dir.display()), "No such file or directory"]);
}

#[test]
fn directory_that_is_a_file() {
    let t = TempDir::new("dir_file");
    let file = t.file("plain", "");
    only(
        &bad(&with("  directory: plain\n"), t.path()),
        &format!("{FILE}: g.directory: {} is not a directory", file.display()),
    );
}

#[test]
fn base_that_does_not_exist_is_reported_as_the_directory() {
    let t = TempDir::new("base_missing");
    let base = t.path().join("gone");
    has(&bad(&with(""), &base), &[&format!("{FILE}: g.directory: {}", base.display())]);
}

#[test]
fn directory_not_a_string() {
    let t = TempDir::new("dir_number");
    only(
        &bad(&with("  directory: 12\n"), t.path()),
        &format!("{FILE}: g.directory: expected a string, got 12 (a number)"),
    );
}

// ------------------------------------------------------------ after_start

#[test]
fn replace_file_and_run_proc() {
    let t = TempDir::new("actions");
    t.file("tmpl/up.conf.templ", "{{ ports }} {{ old_ports }} {{ group }}");
    let out = t.dir("out");
    let g = one(
        &with(
            "  after_start:\n    - replace_file: [numprocs, tmpl/up.conf.templ, out/up.conf]\n    - run_proc: 'nginx -s reload'\n",
        ),
        t.path(),
    );
    assert_eq!(
        g.actions,
        vec![
            Action::ReplaceFile { template: t.path().join("tmpl/up.conf.templ"), output: out.join("up.conf") },
            Action::RunProc { command: "nginx -s reload".into() },
        ]
    );
}

#[test]
fn replace_file_paths_are_relative_to_base_not_directory() {
    let t = TempDir::new("actions_base");
    let base = t.dir("conf");
    t.dir("app");
    t.file("conf/x.templ", "");
    let g = one(&with("  directory: ../app\n  after_start:\n    - replace_file: [numprocs, x.templ, x.out]\n"), &base);
    assert_eq!(g.actions, vec![Action::ReplaceFile { template: base.join("x.templ"), output: base.join("x.out") }]);
}

#[test]
fn run_proc_true_is_not_a_command() {
    let t = TempDir::new("run_proc_bool");
    only(
        &bad(&with("  after_start:\n    - run_proc: true\n"), t.path()),
        &format!("{FILE}: g.after_start[0].run_proc: expected a string, got true (a boolean)"),
    );
}

#[test]
fn run_proc_empty() {
    let t = TempDir::new("run_proc_empty");
    only(
        &bad(&with("  after_start:\n    - run_proc: '  '\n"), t.path()),
        &format!("{FILE}: g.after_start[0].run_proc: empty command"),
    );
    only(
        &bad(&with("  after_start:\n    - run_proc:\n"), t.path()),
        &format!("{FILE}: g.after_start[0].run_proc: expected a string, got null"),
    );
}

#[test]
fn template_missing() {
    let t = TempDir::new("template_missing");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, missing.templ, out.conf]\n"), t.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    has(
        &errs,
        &[
            &format!(
                "{FILE}: g.after_start[0].replace_file[1]: template {}: ",
                t.path().join("missing.templ").display()
            ),
            "No such file or directory",
        ],
    );
}

#[test]
fn template_that_is_a_directory() {
    let t = TempDir::new("template_dir");
    t.dir("t.templ");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, t.templ, out.conf]\n"), t.path());
    has(
        &errs,
        &[&format!("{FILE}: g.after_start[0].replace_file[1]: template {}: ", t.path().join("t.templ").display())],
    );
}

#[test]
fn template_with_a_syntax_error() {
    let t = TempDir::new("template_syntax");
    let tmpl = t.file("bad.templ", "upstream {\n{% for p in ports %}\n  server {{ p };\n}\n");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, bad.templ, out.conf]\n"), t.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    has(&errs, &[&format!("{FILE}: g.after_start[0].replace_file[1]: template {}: ", tmpl.display()), "syntax error"]);
}

#[test]
fn output_directory_missing() {
    let t = TempDir::new("output_missing");
    t.file("ok.templ", "{{ ports }}");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, ok.templ, nodir/out.conf]\n"), t.path());
    only(
        &errs,
        &format!(
            "{FILE}: g.after_start[0].replace_file[2]: output directory {} does not exist",
            t.path().join("nodir").display()
        ),
    );
}

#[test]
fn template_and_output_errors_name_the_action() {
    let t = TempDir::new("template_index");
    t.file("ok.templ", "");
    let errs = bad(
        &with(
            "  after_start:\n    - replace_file: [numprocs, ok.templ, out.conf]\n    - replace_file: [numprocs, missing.templ, nodir/out.conf]\n",
        ),
        t.path(),
    );
    has(&errs, &["g.after_start[1].replace_file[1]: ", "missing.templ"]);
    has(&errs, &["g.after_start[1].replace_file[2]: ", "nodir"]);
}

#[test]
fn replace_file_with_two_arguments() {
    let t = TempDir::new("replace_two");
    t.file("ok.templ", "");
    only(
        &bad(&with("  after_start:\n    - replace_file: [numprocs, ok.templ]\n"), t.path()),
        &format!("{FILE}: g.after_start[0].replace_file: expected [numprocs, TEMPLATE, OUTPUT]"),
    );
}

#[test]
fn replace_file_that_is_not_a_list() {
    let t = TempDir::new("replace_scalar");
    only(
        &bad(&with("  after_start:\n    - replace_file: ok.templ\n"), t.path()),
        &format!("{FILE}: g.after_start[0].replace_file: expected a list, got \"ok.templ\""),
    );
}

#[test]
fn replace_file_first_argument_not_numprocs() {
    let t = TempDir::new("replace_first");
    t.file("ok.templ", "");
    only(
        &bad(&with("  after_start:\n    - replace_file: [ports, ok.templ, out.conf]\n"), t.path()),
        &format!(
            "{FILE}: g.after_start[0].replace_file[0]: expected the word numprocs (the set's ports), got \"ports\""
        ),
    );
}

#[test]
fn replace_file_paths_that_are_not_strings() {
    let t = TempDir::new("replace_types");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, 1, [a]]\n"), t.path());
    has(&errs, &[&format!("{FILE}: g.after_start[0].replace_file[1]: expected a string, got 1 (a number)")]);
    has(&errs, &[&format!("{FILE}: g.after_start[0].replace_file[2]: expected a string, got a list")]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn unknown_action() {
    let t = TempDir::new("action_unknown");
    only(
        &bad(&with("  after_start:\n    - run_proc: 'true'\n    - restart_nginx: now\n"), t.path()),
        &format!("{FILE}: g.after_start[1]: unknown action \"restart_nginx\" (known: replace_file, run_proc)"),
    );
}

#[test]
fn action_with_two_keys() {
    let t = TempDir::new("action_two_keys");
    only(
        &bad(&with("  after_start:\n    - {run_proc: a, replace_file: b}\n"), t.path()),
        &format!("{FILE}: g.after_start[0]: expected exactly one key, got 2"),
    );
}

#[test]
fn after_start_that_is_not_a_list() {
    let t = TempDir::new("after_start_scalar");
    only(
        &bad(&with("  after_start: nginx -s reload\n"), t.path()),
        &format!("{FILE}: g.after_start: expected a list, got \"nginx -s reload\""),
    );
}

// ------------------------------------------------------------ the file as a whole

#[test]
fn yaml_syntax_error_reports_the_line() {
    let t = TempDir::new("yaml_syntax");
    // Line 4 has a second `: ` in a plain scalar.
    let text = "g:\n  cmd: prog\n  workset:\n    - numprocs: a: b\n    - numprocs: [9002]\n";
    let errs = bad(text, t.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert!(e.starts_with(&format!("{FILE}:4:")), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn yaml_syntax_error_on_a_later_line() {
    let t = TempDir::new("yaml_syntax_later");
    let text = "a:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\nb:\n  cmd: 'open\n  workset: []\n";
    let errs = bad(text, t.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let line: usize = errs[0]
        .strip_prefix(&format!("{FILE}:"))
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line number in {:?}", errs[0]));
    assert!(line >= 8, "line {line} is before the opening quote: {}", errs[0]);
}

#[test]
fn yaml_duplicate_key_is_an_error() {
    let t = TempDir::new("yaml_duplicate");
    let text = "g:\n  cmd: a\n  cmd: b\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    has(&bad(text, t.path()), &[&format!("{FILE}:"), "invalid YAML", "duplicate"]);
}

#[test]
fn empty_file() {
    let t = TempDir::new("empty");
    for text in ["", "\n\n", "# only a comment\n", "---\n"] {
        only(&bad(text, t.path()), &format!("{FILE}: no group defined (the file is empty)"));
    }
    only(&bad("{}\n", t.path()), &format!("{FILE}: no group defined"));
}

#[test]
fn top_level_a_list() {
    let t = TempDir::new("top_list");
    only(
        &bad("- cmd: prog\n  workset: []\n", t.path()),
        &format!("{FILE}: the top level must map group names to groups"),
    );
    only(&bad("just text\n", t.path()), &format!("{FILE}: the top level must map group names to groups"));
}

#[test]
fn several_errors_are_all_reported_at_once() {
    let t = TempDir::new("many");
    let text = "\
web:
  cmd: prog {numproc}
  colour: blue
  workset:
    - numprocs: [9001, 0]
    - numprocs: [9002]
  smoke_test:
    - check_ping: numprocs
  after_start:
    - run_proc: true
  stop_signal: KILL
  drain_quiet: -1
api:
  workset:
    - numprocs: [9101]
";
    let errs = bad(text, t.path());
    let want = [
        "web.colour: unknown key",
        "web.workset[0]: port 0 (a number) is not in 1..65535",
        "web.smoke_test[0]: unknown check \"check_ping\"",
        "web.after_start[0].run_proc: expected a string, got true (a boolean)",
        "web.stop_signal: unknown or unusable signal \"KILL\"",
        "web.drain_quiet: expected a number of seconds, zero or more",
        "api.workset: at least two worksets are needed",
        "api.cmd: missing",
    ];
    assert!(errs.len() >= 3);
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for w in want {
        has(&errs, &[&format!("{FILE}: {w}")]);
    }
    assert!(errs.iter().all(|e| e.starts_with(&format!("{FILE}: "))), "{errs:#?}");
}

#[test]
fn one_bad_group_fails_the_whole_file() {
    let t = TempDir::new("one_bad");
    let text = format!(
        "ok:\n  cmd: p\n{TWO_SETS}bad:\n  cmd: p\n  oops: 1\n  workset:\n    - numprocs: [9101]\n    - numprocs: [9102]\n"
    );
    only(&bad(&text, t.path()), &format!("{FILE}: bad.oops: unknown key"));
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

// ------------------------------------------------------------ split_shell

fn words(s: &str) -> Vec<String> {
    split_shell(s).unwrap_or_else(|e| panic!("split_shell({s:?}): {e}"))
}

#[test]
fn split_shell_plain_words_and_whitespace() {
    assert_eq!(words("a b  c"), ["a", "b", "c"]);
    assert_eq!(words("  lead and trail  "), ["lead", "and", "trail"]);
    assert_eq!(words("tab\tnew\nline"), ["tab", "new", "line"]);
    assert_eq!(words("python app.py {numproc}"), ["python", "app.py", "{numproc}"]);
}

#[test]
fn split_shell_empty() {
    assert!(words("").is_empty());
    assert!(words("   \t\n ").is_empty());
}

#[test]
fn split_shell_single_quotes() {
    assert_eq!(words("'a b' c"), ["a b", "c"]);
    assert_eq!(words(r#"'no \escapes "here"'"#), [r#"no \escapes "here""#]);
    assert_eq!(words("'$HOME' '{print $2}'"), ["$HOME", "{print $2}"]);
}

#[test]
fn split_shell_double_quotes() {
    assert_eq!(words(r#""a b" c"#), ["a b", "c"]);
    assert_eq!(words(r#""q\"uote""#), ["q\"uote"]);
    assert_eq!(words(r#""back\\slash""#), ["back\\slash"]);
    assert_eq!(words(r#""\$HOME \`x\`""#), ["$HOME `x`"]);
    // Other backslashes are kept, as in sh.
    assert_eq!(words(r#""a\nb\ c""#), ["a\\nb\\ c"]);
    assert_eq!(words(r#""it's""#), ["it's"]);
    // Backslash-newline inside double quotes is a line continuation.
    assert_eq!(words("\"ab\\\ncd\""), ["abcd"]);
}

#[test]
fn split_shell_backslash_outside_quotes() {
    assert_eq!(words(r"a\ b c"), ["a b", "c"]);
    assert_eq!(words(r"\'x\'"), ["'x'"]);
    assert_eq!(words(r#"\"x\""#), ["\"x\""]);
    assert_eq!(words(r"a\\b"), ["a\\b"]);
    assert_eq!(words("ab\\\ncd"), ["abcd"]);
}

#[test]
fn split_shell_empty_and_adjacent_quotes() {
    assert_eq!(words("''"), [""]);
    assert_eq!(words(r#""""#), [""]);
    assert_eq!(words(r#"a '' "" b"#), ["a", "", "", "b"]);
    assert_eq!(words(r#"a'b'"c"d"#), ["abcd"]);
    assert_eq!(words(r#"--opt="x y"'z'"#), ["--opt=x yz"]);
}

#[test]
fn split_shell_does_not_expand() {
    assert_eq!(words("$HOME ~ *.py a|b a;b"), ["$HOME", "~", "*.py", "a|b", "a;b"]);
}

#[test]
fn split_shell_errors() {
    assert_eq!(split_shell("'open"), Err("unterminated single quote".to_string()));
    assert_eq!(split_shell("a 'b c"), Err("unterminated single quote".to_string()));
    assert_eq!(split_shell("\"open"), Err("unterminated double quote".to_string()));
    assert_eq!(split_shell("\"open\\\""), Err("unterminated double quote".to_string()));
    assert_eq!(split_shell("\"open\\"), Err("unterminated double quote".to_string()));
    assert_eq!(split_shell("a\\"), Err("trailing backslash".to_string()));
}

#[test]
fn split_shell_line_continuation_between_words() {
    assert_eq!(words("a \\\n b"), ["a", "b"]);
    assert_eq!(words("a \\\n"), ["a"]);
    assert_eq!(words("prog --a \\\n  {numproc}\n"), ["prog", "--a", "{numproc}"]);
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

#[test]
fn user_and_group_resolve_to_credentials() {
    let t = TempDir::new("user_ok");
    let groups = parse_all(&with("  user: nobody\n  group: nogroup\n"), FILE, t.path()).expect("valid");
    let c = groups[0].credentials.clone().expect("credentials");
    let nobody = crate::sys::lookup_user("nobody").unwrap().unwrap();
    assert_eq!((c.uid, c.gid), (nobody.uid, crate::sys::lookup_group("nogroup").unwrap().unwrap()));
    assert!(c.groups.contains(&c.gid));
    assert_eq!(c.user.as_ref().map(|u| u.0.as_str()), Some("nobody"));
}

#[test]
fn unknown_user_is_refused_not_run_as_root() {
    let t = TempDir::new("user_unknown");
    let errs = bad(&with("  user: no-such-user-here\n  group: no-such-group\n"), t.path());
    has(&errs, &["g.user: ", "unknown user \"no-such-user-here\"", "refusing to run the group as root"]);
}

#[test]
fn unknown_group_is_refused() {
    let t = TempDir::new("group_unknown");
    let errs = bad(&with("  group: no-such-group-here\n"), t.path());
    has(&errs, &["g.group: ", "unknown group \"no-such-group-here\""]);
}

#[test]
fn a_device_as_template_is_refused_without_reading_it() {
    let t = TempDir::new("template_device");
    let errs = bad(&with("  after_start:\n    - replace_file: [numprocs, /dev/zero, out.conf]\n"), t.path());
    has(&errs, &["g.after_start[0].replace_file[1]: ", "/dev/zero", "not a regular file"]);
}
