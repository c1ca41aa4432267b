//! Tests of `parse`: the text alone, so no file, no user and no temporary
//! directory. A rejected config is a row of a table: the YAML and every
//! message it must give, in order. An accepted one is a test of what it
//! becomes. Also `split_shell`, which splits `cmd`. (What the system is
//! asked is in resolve_tests.rs; `load` and the real file system in
//! load_tests.rs.)

use super::*;
use crate::config::testing::{BASE, FILE, SEED, with};
use crate::config::{Action, Check, GroupConfig, Host, Render, Timing};
use std::path::PathBuf;
use std::time::Duration;

/// The drafts of a text that must parse with no problem.
#[track_caller]
fn drafts(text: &str) -> Vec<Draft> {
    let p = parse(text, FILE, Path::new(BASE));
    assert!(p.errors.is_empty(), "expected the config to parse, got:\n{}", p.errors.join("\n"));
    p.drafts
}

/// The single group of a text that must parse.
#[track_caller]
fn one(text: &str) -> GroupConfig {
    let mut d = drafts(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    d.pop().unwrap().cfg
}

/// Runs a table: each row's text, made by `text` from the row's YAML, must
/// give exactly the row's messages (each without its `test.yml: `).
#[track_caller]
fn rows<S: AsRef<str>, M: AsRef<[W]>, W: AsRef<str>>(table: &[(S, M)], text: impl Fn(&str) -> String) {
    let got = |yaml: &str| parse(&text(yaml), FILE, Path::new(BASE)).errors;
    crate::config::testing::rows(table, got, |w| format!("{FILE}: {w}"));
}

fn base() -> PathBuf {
    PathBuf::from(BASE)
}

/// An HTTP check of localhost with no header and no body to match.
fn http_check(path: &str, status: u16, timeout: Duration) -> Check {
    Check::Http { host: Host::Localhost, path: path.into(), status, headers: Vec::new(), body: None, timeout }
}

// ------------------------------------------------------------ rejected: lines added to group g

/// YAML lines added to the valid group `g` of `with`, and their messages.
const GROUP_ROWS: &[(&str, &[&str])] = &[
    // outputs, directory
    ("  stdout: [a, b]\n", &["g.stdout: expected a string, got a list"]),
    ("  directory: 12\n", &["g.directory: expected a string, got 12 (a number)"]),
    // smoke tests: shape, ports, path, status, timeout, keys of the other kind
    ("  smoke_test:\n    check_all_http_ports: numprocs\n", &["g.smoke_test: expected a list, got a mapping"]),
    (
        "  smoke_test:\n    - check_all_http_ports\n",
        &["g.smoke_test[0]: expected a mapping, got \"check_all_http_ports\""],
    ),
    (
        "  smoke_test:\n    - {check_all_http_ports: numprocs, check_all_tcp_ports: numprocs}\n",
        &["g.smoke_test[0]: expected exactly one key, got 2"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: numprocs\n    - check_ping: numprocs\n",
        &["g.smoke_test[1]: unknown check \"check_ping\" (known: check_all_http_ports, check_all_tcp_ports)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: ports\n",
        &["g.smoke_test[0].check_all_http_ports: expected the word numprocs (the set's ports), got \"ports\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {path: /health}\n",
        &["g.smoke_test[0].check_all_http_ports: missing `ports: numprocs`"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: [9001]}\n",
        &["g.smoke_test[0].check_all_http_ports.ports: expected the word numprocs (the set's ports), got a list"],
    ),
    // A wrong `ports:` is reported once, not also as missing.
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: all}\n",
        &["g.smoke_test[0].check_all_http_ports.ports: expected the word numprocs (the set's ports), got \"all\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, method: HEAD}\n",
        &["g.smoke_test[0].check_all_http_ports.method: unknown key"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, path: health}\n",
        &["g.smoke_test[0].check_all_http_ports.path: must start with /, got \"health\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, status: 99}\n",
        &["g.smoke_test[0].check_all_http_ports.status: expected an HTTP status, got 99 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, status: 600}\n",
        &["g.smoke_test[0].check_all_http_ports.status: expected an HTTP status, got 600 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, status: ok}\n",
        &["g.smoke_test[0].check_all_http_ports.status: expected an HTTP status, got \"ok\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, status: -200}\n",
        &["g.smoke_test[0].check_all_http_ports.status: expected an HTTP status, got -200 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, timeout: 0}\n",
        &["g.smoke_test[0].check_all_tcp_ports.timeout: expected a number of seconds, more than zero, \
           got 0 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, timeout: -1}\n",
        &["g.smoke_test[0].check_all_tcp_ports.timeout: expected a number of seconds, more than zero, \
           got -1 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, timeout: -0.5}\n",
        &["g.smoke_test[0].check_all_tcp_ports.timeout: expected a number of seconds, more than zero, \
           got -0.5 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, timeout: soon}\n",
        &["g.smoke_test[0].check_all_tcp_ports.timeout: expected a number of seconds, more than zero, got \"soon\""],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, path: /x, status: 200}\n",
        &[
            "g.smoke_test[0].check_all_tcp_ports.path: unknown key",
            "g.smoke_test[0].check_all_tcp_ports.status: unknown key",
        ],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: {ports: numprocs, headers: {Host: a.example}, body: ok}\n",
        &[
            "g.smoke_test[0].check_all_tcp_ports.headers: unknown key",
            "g.smoke_test[0].check_all_tcp_ports.body: unknown key",
        ],
    ),
    // check headers
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {Bad Name: x}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: \
           header name \"Bad Name\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {\"X-A\\r\\nB\": x}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: \
           header name \"X-A\\r\\nB\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {\"\": x}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: \
           header name \"\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {\"X:Y\": x}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: \
           header name \"X:Y\" is not a token (letters, digits and !#$%&'*+-.^_`|~)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-A: \"a\\r\\nInjected: 1\"}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-A: the value contains a line break: \"a\\r\\nInjected: 1\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-A: \"a\\nb\"}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-A: the value contains a line break: \"a\\nb\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-A: \"caf\\u00e9\"}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-A: the value must be printable ASCII, got \"café\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-A: \"a\\x01\"}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-A: the value must be printable ASCII, got \"a\\u{1}\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-A: \"a\\x7f\"}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-A: the value must be printable ASCII, got \"a\\u{7f}\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {Connection: keep-alive}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.Connection: cannot be set: \
           rolld sends a GET with no body and `Connection: close`"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {content-length: '5'}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.content-length: cannot be set: \
           rolld sends a GET with no body and `Connection: close`"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {Transfer-Encoding: chunked}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.Transfer-Encoding: cannot be set: \
           rolld sends a GET with no body and `Connection: close`"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {Host: a.example, host: b.example}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.host: given twice (header names do not depend on case)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-Version: 2}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-Version: expected a string, got 2 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {X-On: true}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers.X-On: expected a string, got true (a boolean)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: [Host, app.example]}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: expected a mapping, got a list"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: app.example}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: expected a mapping, got \"app.example\""],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, headers: {1: x}}\n",
        &["g.smoke_test[0].check_all_http_ports.headers: key 1 (a number) is not a string"],
    ),
    // check body
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, body: ''}\n",
        &["g.smoke_test[0].check_all_http_ports.body: is empty (it would match any body)"],
    ),
    // Unquoted, 1.10 is the number 1.1: the text to match is lost.
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, body: 1.10}\n",
        &["g.smoke_test[0].check_all_http_ports.body: expected a string, got 1.1 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, body: [a]}\n",
        &["g.smoke_test[0].check_all_http_ports.body: expected a string, got a list"],
    ),
    (
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, body: null}\n",
        &["g.smoke_test[0].check_all_http_ports.body: expected a string, got null"],
    ),
    // env
    (
        "  env:\n    A: [1, 2]\n    B: ~\n    C: ok\n",
        &["g.env.A: expected a string, got a list", "g.env.B: expected a string, got null"],
    ),
    ("  env:\n    - A=1\n", &["g.env: expected a mapping, got a list"]),
    ("  env:\n    1: one\n", &["g.env: key 1 (a number) is not a string"]),
    // timings: zero is refused except for drain_quiet
    ("  drain_quiet: -1\n", &["g.drain_quiet: expected a number of seconds, zero or more, got -1 (a number)"]),
    ("  start_timeout: 0\n", &["g.start_timeout: expected a number of seconds, more than zero, got 0 (a number)"]),
    ("  start_timeout: -5\n", &["g.start_timeout: expected a number of seconds, more than zero, got -5 (a number)"]),
    (
        "  start_timeout: -0.5\n",
        &["g.start_timeout: expected a number of seconds, more than zero, got -0.5 (a number)"],
    ),
    ("  drain_timeout: 0\n", &["g.drain_timeout: expected a number of seconds, more than zero, got 0 (a number)"]),
    ("  drain_timeout: -5\n", &["g.drain_timeout: expected a number of seconds, more than zero, got -5 (a number)"]),
    (
        "  drain_timeout: -0.5\n",
        &["g.drain_timeout: expected a number of seconds, more than zero, got -0.5 (a number)"],
    ),
    ("  stop_timeout: 0\n", &["g.stop_timeout: expected a number of seconds, more than zero, got 0 (a number)"]),
    ("  stop_timeout: -5\n", &["g.stop_timeout: expected a number of seconds, more than zero, got -5 (a number)"]),
    ("  stop_timeout: -0.5\n", &["g.stop_timeout: expected a number of seconds, more than zero, got -0.5 (a number)"]),
    ("  action_timeout: 0\n", &["g.action_timeout: expected a number of seconds, more than zero, got 0 (a number)"]),
    ("  action_timeout: -5\n", &["g.action_timeout: expected a number of seconds, more than zero, got -5 (a number)"]),
    (
        "  action_timeout: -0.5\n",
        &["g.action_timeout: expected a number of seconds, more than zero, got -0.5 (a number)"],
    ),
    // timings that are not numbers, or not finite
    ("  stop_timeout: '30'\n", &["g.stop_timeout: expected a number of seconds, more than zero, got \"30\""]),
    ("  stop_timeout: 30s\n", &["g.stop_timeout: expected a number of seconds, more than zero, got \"30s\""]),
    ("  stop_timeout: true\n", &["g.stop_timeout: expected a number of seconds, more than zero, got true (a boolean)"]),
    ("  stop_timeout: ~\n", &["g.stop_timeout: expected a number of seconds, more than zero, got null"]),
    ("  stop_timeout: [1]\n", &["g.stop_timeout: expected a number of seconds, more than zero, got a list"]),
    ("  stop_timeout: .inf\n", &["g.stop_timeout: expected a number of seconds, more than zero, got .inf (a number)"]),
    ("  stop_timeout: .nan\n", &["g.stop_timeout: expected a number of seconds, more than zero, got .nan (a number)"]),
    // timings absurdly long: a billion seconds or more
    (
        "  start_timeout: 1e300\n",
        &["g.start_timeout: expected a number of seconds, more than zero, got 1e300 (a number)"],
    ),
    (
        "  start_timeout: 1000000000\n",
        &["g.start_timeout: expected a number of seconds, more than zero, got 1000000000 (a number)"],
    ),
    // drain_signal, drain_report
    ("  drain_signal: KILL\n", &["g.drain_signal: unknown or unusable signal \"KILL\""]),
    ("  drain_signal: BOGUS\n", &["g.drain_signal: unknown or unusable signal \"BOGUS\""]),
    ("  drain_signal: 0\n", &["g.drain_signal: unknown or unusable signal 0 (a number)"]),
    ("  drain_report: -1\n", &["g.drain_report: expected a number of seconds, zero or more, got -1 (a number)"]),
    // bake, health
    ("  bake: -1\n", &["g.bake: expected a number of seconds, zero or more, got -1 (a number)"]),
    ("  bake: 6s\n", &["g.bake: expected a number of seconds, zero or more, got \"6s\""]),
    ("  health: 5\n", &["g.health: expected a mapping, got 5 (a number)"]),
    ("  health: {every: 5, failures: 3}\n", &["g.health: runs the group's smoke_test checks: this group has none"]),
    (
        "  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {every: 0, failures: 3}\n",
        &["g.health.every: expected a number of seconds, more than zero, got 0 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {every: 1, failures: 0}\n",
        &["g.health.failures: expected a number of checks in a row, 1 to 1000, got 0 (a number)"],
    ),
    (
        "  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {every: 1, failures: two}\n",
        &["g.health.failures: expected a number of checks in a row, 1 to 1000, got \"two\""],
    ),
    ("  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {every: 1}\n", &["g.health.failures: missing"]),
    (
        "  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {failures: 2, often: 1}\n",
        &["g.health.often: unknown key (every, failures)", "g.health.every: missing"],
    ),
    // stop_signal: KILL and STOP cannot be caught
    ("  stop_signal: KILL\n", &["g.stop_signal: unknown or unusable signal \"KILL\""]),
    ("  stop_signal: SIGKILL\n", &["g.stop_signal: unknown or unusable signal \"SIGKILL\""]),
    ("  stop_signal: 9\n", &["g.stop_signal: unknown or unusable signal 9 (a number)"]),
    ("  stop_signal: STOP\n", &["g.stop_signal: unknown or unusable signal \"STOP\""]),
    ("  stop_signal: SIGSTOP\n", &["g.stop_signal: unknown or unusable signal \"SIGSTOP\""]),
    // stop_signal: not a signal
    ("  stop_signal: TERMINATE\n", &["g.stop_signal: unknown or unusable signal \"TERMINATE\""]),
    ("  stop_signal: SIGFOO\n", &["g.stop_signal: unknown or unusable signal \"SIGFOO\""]),
    ("  stop_signal: ''\n", &["g.stop_signal: unknown or unusable signal \"\""]),
    ("  stop_signal: 0\n", &["g.stop_signal: unknown or unusable signal 0 (a number)"]),
    ("  stop_signal: 65\n", &["g.stop_signal: unknown or unusable signal 65 (a number)"]),
    ("  stop_signal: -15\n", &["g.stop_signal: unknown or unusable signal -15 (a number)"]),
    ("  stop_signal: 1.5\n", &["g.stop_signal: unknown or unusable signal 1.5 (a number)"]),
    ("  stop_signal: [TERM]\n", &["g.stop_signal: expected a string, got a list"]),
    // after_start shape
    ("  after_start: nginx -s reload\n", &["g.after_start: expected a list, got \"nginx -s reload\""]),
    ("  after_start:\n    - {run_proc: a, replace_file: b}\n", &["g.after_start[0]: expected exactly one key, got 2"]),
    (
        "  after_start:\n    - run_proc: 'true'\n    - restart_nginx: now\n",
        &["g.after_start[1]: unknown action \"restart_nginx\" (known: replace_file, run_proc)"],
    ),
    ("  after_start:\n    - run_proc: true\n", &["g.after_start[0].run_proc: expected a string, got true (a boolean)"]),
    ("  after_start:\n    - run_proc: '  '\n", &["g.after_start[0].run_proc: empty command"]),
    ("  after_start:\n    - run_proc:\n", &["g.after_start[0].run_proc: expected a string, got null"]),
    (
        "  after_start:\n    - replace_file: ok.templ\n",
        &["g.after_start[0].replace_file: expected a list, got \"ok.templ\""],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, ok.templ]\n",
        &["g.after_start[0].replace_file: expected [numprocs, TEMPLATE, OUTPUT]"],
    ),
    (
        "  after_start:\n    - replace_file: [ports, ok.templ, out.conf]\n",
        &["g.after_start[0].replace_file[0]: expected the word numprocs (the set's ports), got \"ports\""],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, 1, [a]]\n",
        &[
            "g.after_start[0].replace_file[1]: expected a string, got 1 (a number)",
            "g.after_start[0].replace_file[2]: expected a string, got a list",
        ],
    ),
    // group level
    ("  comand: x\n", &["g.comand: unknown key"]),
    ("  42: x\n", &["g: key 42 (a number) is not a string"]),
    // several errors at once, in the order of the text
    (
        concat!(
            "  smoke_test:\n",
            "    - check_all_http_ports: {ports: numprocs, host: 'a:1', headers: {Connection: close}, body: ''}\n",
            "    - check_all_tcp_ports: {ports: numprocs, host: ''}\n"
        ),
        &[
            "g.smoke_test[0].check_all_http_ports.host: expected a host with no port (the port is the set's), \
             got \"a:1\"",
            "g.smoke_test[0].check_all_http_ports.headers.Connection: cannot be set: \
             rolld sends a GET with no body and `Connection: close`",
            "g.smoke_test[0].check_all_http_ports.body: is empty (it would match any body)",
            "g.smoke_test[1].check_all_tcp_ports.host: expected an IP address or a host name, got \"\"",
        ],
    ),
];

#[test]
fn rejected_group_lines() {
    rows(GROUP_ROWS, with);
}

/// `host:` values a check refuses, and why: the same for both kinds of check.
const HOST_ROWS: &[(&str, &str)] = &[
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

#[test]
fn rejected_check_hosts() {
    for check in ["check_all_http_ports", "check_all_tcp_ports"] {
        let table: Vec<(String, Vec<String>)> = HOST_ROWS
            .iter()
            .map(|(host, why)| {
                let yaml = format!("  smoke_test:\n    - {check}: {{ports: numprocs, host: {host}}}\n");
                (yaml, vec![format!("g.smoke_test[0].{check}.host: {why}")])
            })
            .collect();
        rows(&table, with);
    }
}

/// Host names longer than DNS allows: a label of 64 bytes, a name of 255.
#[test]
fn rejected_host_names_longer_than_dns_allows() {
    let label = format!("{}.example", "a".repeat(64));
    let name = vec!["a".repeat(63); 4].join(".");
    assert_eq!(name.len(), 255);
    let msg = |host: &str| {
        format!("g.smoke_test[0].check_all_tcp_ports.host: expected an IP address or a host name, got {host:?}")
    };
    let (for_label, for_name) = (msg(&label), msg(&name));
    let (want_label, want_name) = ([for_label.as_str()], [for_name.as_str()]);
    let text = |host: &str| format!("  smoke_test:\n    - check_all_tcp_ports: {{ports: numprocs, host: {host}}}\n");
    let table: Vec<(String, &[&str])> = vec![(text(&label), &want_label), (text(&name), &want_name)];
    rows(&table, with);
}

// ------------------------------------------------------------ rejected: whole files

/// Whole files, and their messages.
const FILE_ROWS: &[(&str, &[&str])] = &[
    // YAML and file level
    ("", &["no group defined (the file is empty)"]),
    ("\n\n", &["no group defined (the file is empty)"]),
    ("# only a comment\n", &["no group defined (the file is empty)"]),
    ("---\n", &["no group defined (the file is empty)"]),
    ("{}\n", &["no group defined"]),
    ("- cmd: prog\n  workset: []\n", &["the top level must map group names to groups"]),
    ("just text\n", &["the top level must map group names to groups"]),
    // group level
    ("g: 5\n", &["g: expected a mapping, got 5 (a number)"]),
    ("g:\n", &["g: expected a mapping, got null"]),
    (
        "7:\n  cmd: p\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name 7 (a number) is not a string"],
    ),
    // group names
    (
        "'my app':\n  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name \"my app\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (not ' ')"],
    ),
    (
        "\"a\\nb\":\n  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name \"a\\nb\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (not '\\n')"],
    ),
    (
        "'web/1':\n  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name \"web/1\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (not '/')"],
    ),
    (
        "'é':\n  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name \"é\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (not 'é')"],
    ),
    (
        "'':\n  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["group name \"\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (0 characters)"],
    ),
    // cmd
    (
        "g:\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["g.cmd: missing (the command to run, with {numproc} for the port)"],
    ),
    // Not a string: not also reported missing.
    (
        "g:\n  cmd: [prog, x]\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["g.cmd: expected a string, got a list"],
    ),
    ("g:\n  cmd: ''\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n", &["g.cmd: is empty"]),
    ("g:\n  cmd: '   '\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n", &["g.cmd: is empty"]),
    ("g:\n  cmd: \"\\t\"\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n", &["g.cmd: is empty"]),
    (
        "g:\n  cmd: \"prog 'abc {numproc}\"\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["g.cmd: unterminated single quote"],
    ),
    (
        "g:\n  cmd: 'prog \"abc {numproc}'\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["g.cmd: unterminated double quote"],
    ),
    (
        "g:\n  cmd: 'prog abc\\'\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &["g.cmd: trailing backslash"],
    ),
    // worksets and ports
    ("g:\n  cmd: prog\n", &["g.workset: missing (at least two worksets are needed, or listen: and procs:)"]),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9002]\n",
        &["g.workset: at least two worksets are needed (one serves while the next starts)"],
    ),
    (
        "g:\n  cmd: prog\n  workset: []\n",
        &["g.workset: at least two worksets are needed (one serves while the next starts)"],
    ),
    ("g:\n  cmd: prog\n  workset:\n    numprocs: [9001]\n", &["g.workset: expected a list, got a mapping"]),
    ("g:\n  cmd: prog\n  workset:\n", &["g.workset: expected a list, got null"]),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: []\n",
        &["g.workset[1]: a workset needs at least one port"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - ports: [9002]\n",
        &[
            "g.workset[1]: expected `numprocs: [ports]`, got key \"ports\"",
            "g.workset: at least two worksets are needed (one serves while the next starts)",
        ],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: 9002\n",
        &["g.workset[1].numprocs: expected a list, got 9002 (a number)"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 0]\n    - numprocs: [9002]\n",
        &["g.workset[0]: port 0 (a number) is not in 1..65535"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: [70000]\n",
        &["g.workset[1]: port 70000 (a number) is not in 1..65535"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [65536, 9001]\n    - numprocs: [-1, 9002]\n",
        &[
            "g.workset[0]: port 65536 (a number) is not in 1..65535",
            "g.workset[1]: port -1 (a number) is not in 1..65535",
        ],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, abc]\n    - numprocs: [9002]\n",
        &["g.workset[0]: port \"abc\" is not in 1..65535"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9003, 9001.5]\n    - numprocs: [9002]\n",
        &["g.workset[0]: port 9001.5 (a number) is not in 1..65535"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9003, 9001]\n    - numprocs: [9002]\n",
        &["g.workset[0]: port 9001 appears twice"],
    ),
    (
        "g:\n  cmd: prog\n  workset:\n    - numprocs: [9001, 9002]\n    - numprocs: [9003, 9001]\n",
        &["g.workset[1]: port 9001 is already used by g.workset[0]"],
    ),
    (
        "a:\n  cmd: prog\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
         b:\n  cmd: prog\n  workset:\n    - numprocs: [9003]\n    - numprocs: [9004, 9002]\n",
        &["b.workset[1]: port 9002 is already used by a.workset[1]"],
    ),
    // surge: 1 to the size of a workset, every workset of one size
    (
        concat!(
            "g:\n",
            "  cmd: prog {numproc}\n",
            "  workset:\n",
            "    - numprocs: [9001, 9002]\n",
            "    - numprocs: [9011, 9012]\n",
            "  surge: 0\n"
        ),
        &["g.surge: expected a number of processes, 1 or more, got 0 (a number)"],
    ),
    (
        concat!(
            "g:\n",
            "  cmd: prog {numproc}\n",
            "  workset:\n",
            "    - numprocs: [9001, 9002]\n",
            "    - numprocs: [9011, 9012]\n",
            "  surge: -1\n"
        ),
        &["g.surge: expected a number of processes, 1 or more, got -1 (a number)"],
    ),
    (
        concat!(
            "g:\n",
            "  cmd: prog {numproc}\n",
            "  workset:\n",
            "    - numprocs: [9001, 9002]\n",
            "    - numprocs: [9011, 9012]\n",
            "  surge: two\n"
        ),
        &["g.surge: expected a number of processes, 1 or more, got \"two\""],
    ),
    (
        concat!(
            "g:\n",
            "  cmd: prog {numproc}\n",
            "  workset:\n",
            "    - numprocs: [9001, 9002]\n",
            "    - numprocs: [9011, 9012]\n",
            "  surge: 3\n"
        ),
        &["g.surge: 3 is more than the 2 processes of a workset"],
    ),
    (
        concat!(
            "g:\n",
            "  cmd: prog {numproc}\n",
            "  workset:\n",
            "    - numprocs: [9001, 9002]\n",
            "    - numprocs: [9011]\n",
            "  surge: 1\n"
        ),
        &["g.workset: with surge, \
           every workset must have the same number of ports (slot i is the i-th port of each), got sizes 2, 1"],
    ),
    // several errors at once: every group, every key, the shared ports last
    (
        "g:\n  cmd: prog\n  bogus: 1\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9001]\n",
        &["g.bogus: unknown key", "g.workset[1]: port 9001 is already used by g.workset[0]"],
    ),
    (
        "ok:\n  cmd: p\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
         bad:\n  cmd: p\n  oops: 1\n  workset:\n    - numprocs: [9101]\n    - numprocs: [9102]\n",
        &["bad.oops: unknown key"],
    ),
    (
        "\
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
",
        &[
            "web.colour: unknown key",
            "web.workset[0]: port 0 (a number) is not in 1..65535",
            "web.smoke_test[0]: unknown check \"check_ping\" (known: check_all_http_ports, check_all_tcp_ports)",
            "web.after_start[0].run_proc: expected a string, got true (a boolean)",
            "web.stop_signal: unknown or unusable signal \"KILL\"",
            "web.drain_quiet: expected a number of seconds, zero or more, got -1 (a number)",
            "api.workset: at least two worksets are needed (one serves while the next starts)",
            "api.cmd: missing (the command to run, with {numproc} for the port)",
        ],
    ),
];

#[test]
fn rejected_files() {
    rows(FILE_ROWS, str::to_string);
}

/// A group name of 65 characters, one more than allowed.
#[test]
fn rejected_group_name_of_65_characters() {
    let long = "y".repeat(65);
    let msg =
        format!("group name \"{long}\": a group name is 1 to 64 letters, digits, '-', '_' or '.' (65 characters)");
    let want = [msg.as_str()];
    let text =
        format!("{long}:\n  cmd: prog {{numproc}}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n");
    let table: Vec<(String, &[&str])> = vec![(text, &want)];
    rows(&table, str::to_string);
}

/// Invalid YAML is one message, with the line and column where the parser
/// stopped (after the file name, so not a row of the tables).
#[test]
fn invalid_yaml_is_reported_with_its_line() {
    let errors = |text: &str| parse(text, FILE, Path::new(BASE)).errors;
    // Line 4 has a second `: ` in a plain scalar.
    assert_eq!(
        errors("g:\n  cmd: prog\n  workset:\n    - numprocs: a: b\n    - numprocs: [9002]\n"),
        ["test.yml:4:18: invalid YAML: mapping values are not allowed in this context at line 4 column 18"]
    );
    // A quote opened on line 8 and never closed.
    assert_eq!(
        errors(concat!(
            "a:\n",
            "  cmd: prog\n",
            "  workset:\n",
            "    - numprocs: [9001]\n",
            "    - numprocs: [9002]\n",
            "\n",
            "b:\n",
            "  cmd: 'open\n",
            "  workset: []\n"
        )),
        ["test.yml:10:1: invalid YAML: found unexpected end of stream at line 10 column 1, \
          while scanning a quoted scalar at line 8 column 8"]
    );
    // A key given twice: the place named is where the mapping holding it
    // begins (line 2), not the second `cmd:` (line 3).
    assert_eq!(
        errors("g:\n  cmd: a\n  cmd: b\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n"),
        ["test.yml:2:3: invalid YAML: g: duplicate entry with key \"cmd\" at line 2 column 3"]
    );
}

// ------------------------------------------------------------ accepted

#[test]
fn defaults_when_optional_keys_are_absent() {
    let d = drafts(&with(""));
    assert_eq!(
        d,
        vec![Draft {
            cfg: GroupConfig {
                name: "g".into(),
                base: base(),
                argv: vec!["prog".into(), "{numproc}".into()],
                directory: base(),
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
                listen: None,
                haproxy: None,
                health: None,
            },
            user: None,
            gid: None,
            renders: Vec::new(),
        }]
    );
}

#[test]
fn paths_are_joined_never_looked_at() {
    let g = one(&with(
        "  directory: app\n  after_start:\n    - replace_file: [numprocs, tmpl/up.templ, /etc/nginx/up.conf]\n",
    ));
    assert_eq!(g.directory, base().join("app"));
    let dots = one(&with("  directory: ./app//x/.\n  cmd: ./bin/../run {numproc}\n"));
    assert_eq!(dots.directory, Path::new("/srv/app/app/x"), "`.` and `//` dropped");
    assert_eq!(dots.argv[0], "/srv/app/app/x/bin/../run", "`..` kept");
    let g2 = one(concat!(
        "g:\n",
        "  cmd: bin/server {numproc}\n",
        "  directory: /opt/x\n",
        "  workset:\n",
        "    - numprocs: [9001]\n",
        "    - numprocs: [9002]\n"
    ));
    assert_eq!(g2.argv, ["/opt/x/bin/server", "{numproc}"]);
    assert_eq!(
        g.actions,
        vec![Action::ReplaceFile { template: base().join("tmpl/up.templ"), output: "/etc/nginx/up.conf".into() }]
    );
}

#[test]
fn user_and_group_are_kept_as_written() {
    let d = drafts(&with("  user: www-data\n  group: 33\n"));
    assert_eq!((d[0].user.as_deref(), d[0].gid.as_deref()), (Some("www-data"), Some("33")));
    assert_eq!(d[0].cfg.credentials, None, "resolve sets them");
}

#[test]
fn a_group_with_problems_is_still_drafted_for_resolve() {
    let p = parse(&with("  bogus: 1\n  directory: elsewhere\n"), FILE, Path::new(BASE));
    assert_eq!(p.errors, [format!("{FILE}: g.bogus: unknown key")]);
    assert_eq!(p.drafts.len(), 1);
    assert_eq!(p.drafts[0].cfg.directory, base().join("elsewhere"));
}

// ------------------------------------------------------------ accepted: the seed

#[test]
fn seed_config_parses_unchanged_apart_from_its_directory() {
    const RUN_PROC: &str = "ps auxw| grep nginx | grep master | grep -v grep | awk '{print $2}' | xargs kill -HUP";
    let d = drafts(&SEED.replace("DIR", "/srv/app/app"));
    assert_eq!(
        d,
        vec![Draft {
            cfg: GroupConfig {
                name: "app-servers".into(),
                base: base(),
                // Joined to the directory, `..` and all: nothing is looked at.
                argv: vec!["/srv/app/app/../env/bin/python".into(), "app.py".into(), "{numproc}".into()],
                directory: "/srv/app/app".into(),
                stdout: Some("logs/tornado-{numproc}.log".into()),
                stderr: Some("logs/tornado-{numproc}.err".into()),
                env: Vec::new(),
                worksets: vec![vec![8001, 8002, 8003, 8004], vec![8501, 8502, 8503, 8504]],
                checks: vec![http_check("/", 200, Duration::from_secs(2))],
                actions: vec![
                    Action::ReplaceFile {
                        template: base().join("example/nginx-tornado.conf.templ"),
                        output: base().join("example/nginx-tornado.conf"),
                    },
                    Action::RunProc { command: RUN_PROC.into() },
                ],
                timing: Timing {
                    start_timeout: Duration::from_secs(30),
                    drain_timeout: Duration::from_secs(300),
                    drain_quiet: Duration::from_secs(1),
                    stop_timeout: Duration::from_secs(10),
                    action_timeout: Duration::from_secs(30),
                    drain_report: Duration::from_secs(5),
                    bake: Duration::ZERO,
                },
                stop_signal: libc::SIGTERM,
                drain_signal: None,
                surge: None,
                credentials: None,
                listen: None,
                haproxy: None,
                health: None,
            },
            user: None,
            gid: None,
            renders: vec![Render {
                key: "app-servers.after_start[0]".into(),
                template: base().join("example/nginx-tornado.conf.templ"),
                output: base().join("example/nginx-tornado.conf"),
            }],
        }]
    );
    assert_eq!(d[0].cfg.timing, Timing::default());
}

#[test]
fn seed_config_with_a_relative_directory() {
    let g = one(&SEED.replace("DIR", "../app"));
    assert_eq!(g.directory, Path::new("/srv/app/../app"));
    assert_eq!(g.argv[0], "/srv/app/../app/../env/bin/python");
}

// ------------------------------------------------------------ accepted: cmd and directory

#[test]
fn directory_defaults_to_base() {
    let g = one("g:\n  cmd: bin/server --port={numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n");
    assert_eq!(g.directory, base());
    assert_eq!(g.argv, ["/srv/app/bin/server", "--port={numproc}"]);
}

#[test]
fn relative_directory_is_relative_to_base() {
    let text = concat!(
        "g:\n",
        "  cmd: ./run.sh {numproc}\n",
        "  directory: srv/app\n",
        "  workset:\n",
        "    - numprocs: [9001]\n",
        "    - numprocs: [9002]\n"
    );
    let g = one(text);
    assert_eq!(g.directory, Path::new("/srv/app/srv/app"));
    assert_eq!(g.argv, ["/srv/app/srv/app/run.sh", "{numproc}"], "the `./` is dropped");
}

#[test]
fn absolute_directory_is_used_as_is() {
    let g = one(&with("  directory: /opt/elsewhere\n"));
    assert_eq!(g.directory, Path::new("/opt/elsewhere"));
    assert_eq!(g.base, base());
}

#[test]
fn bare_program_name_is_left_for_path_lookup() {
    let g = one(
        "g:\n  cmd: python3 -m http.server {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
    );
    assert_eq!(g.argv, ["python3", "-m", "http.server", "{numproc}"]);
}

#[test]
fn quoted_cmd_arguments_are_split_like_a_shell() {
    let text = r#"g:
  cmd: prog --name 'a b' "c \"d\"" e\ f {numproc}
  workset:
    - numprocs: [9001]
    - numprocs: [9002]
"#;
    assert_eq!(one(text).argv, ["prog", "--name", "a b", "c \"d\"", "e f", "{numproc}"]);
}

#[test]
fn cmd_continued_over_several_lines() {
    let text =
        "g:\n  cmd: |\n    prog --a \\\n      {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    assert_eq!(one(text).argv, ["prog", "--a", "{numproc}"]);
}

#[test]
fn stdout_and_stderr_are_kept_as_written() {
    let g = one(&with("  stdout: out/{numproc}.log\n  stderr: /var/log/x-{numproc}.err\n"));
    assert_eq!(g.stdout.as_deref(), Some("out/{numproc}.log"));
    assert_eq!(g.stderr.as_deref(), Some("/var/log/x-{numproc}.err"));
}

// ------------------------------------------------------------ accepted: groups and worksets

#[test]
fn groups_are_returned_in_file_order() {
    let text = "zeta:\n  cmd: a\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
                alpha:\n  cmd: b\n  workset:\n    - numprocs: [9003]\n    - numprocs: [9004]\n\
                mid:\n  cmd: c\n  workset:\n    - numprocs: [9005]\n    - numprocs: [9006]\n";
    let names: Vec<String> = drafts(text).into_iter().map(|d| d.cfg.name).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn group_names_are_letters_digits_dash_underscore_dot() {
    let body = "  cmd: prog {numproc}\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n";
    for name in ["web", "app-servers", "api_v2", "svc.eu-1", &"x".repeat(64)] {
        assert_eq!(one(&format!("{name}:\n{body}")).name, name);
    }
}

#[test]
fn worksets_keep_their_order_and_sizes() {
    let text = concat!(
        "g:\n",
        "  cmd: p\n",
        "  workset:\n",
        "    - numprocs: [1, 65535]\n",
        "    - numprocs: [3000]\n",
        "    - numprocs: [4000, 4001, 4002]\n"
    );
    assert_eq!(one(text).worksets, vec![vec![1, 65535], vec![3000], vec![4000, 4001, 4002]]);
}

#[test]
fn ports_1_and_65535_are_accepted() {
    let g = one("g:\n  cmd: prog\n  workset:\n    - numprocs: [1]\n    - numprocs: [65535]\n");
    assert_eq!(g.worksets, vec![vec![1], vec![65535]]);
}

#[test]
fn surge_of_one_to_the_size_of_a_workset() {
    let ws = |a: &str, b: &str| {
        format!("g:\n  cmd: prog {{numproc}}\n  workset:\n    - numprocs: [{a}]\n    - numprocs: [{b}]\n")
    };
    assert_eq!(one(&format!("{}  surge: 1\n", ws("9001, 9002", "9011, 9012"))).surge, Some(1));
    assert_eq!(
        one(&format!("{}  surge: 2\n", ws("9001, 9002", "9011, 9012"))).surge,
        Some(2),
        "surge = N is blue/green"
    );
    assert_eq!(one(&ws("9001, 9002", "9011")).surge, None, "no surge: sizes may differ");
}

// ------------------------------------------------------------ accepted: smoke tests

#[test]
fn long_http_check_form() {
    let g = one(&with(
        "  smoke_test:\n    - check_all_http_ports: {ports: numprocs, path: /health, status: 204, timeout: 0.5}\n",
    ));
    assert_eq!(g.checks, vec![http_check("/health", 204, Duration::from_millis(500))]);
}

#[test]
fn long_http_check_form_in_block_style_with_defaults() {
    let g = one(&with("  smoke_test:\n    - check_all_http_ports:\n        ports: numprocs\n"));
    assert_eq!(g.checks, vec![http_check("/", 200, Duration::from_secs(2))]);
}

#[test]
fn check_all_tcp_ports_short_and_long() {
    let g = one(&with(concat!(
        "  smoke_test:\n",
        "    - check_all_tcp_ports: numprocs\n",
        "    - check_all_tcp_ports: {ports: numprocs, timeout: 5}\n",
        "    - check_all_http_ports: numprocs\n"
    )));
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
fn check_status_100_and_599_are_accepted() {
    for status in [100, 599] {
        let g =
            one(&with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, status: {status}}}\n")));
        assert_eq!(g.checks, vec![http_check("/", status, Duration::from_secs(2))]);
    }
}

#[test]
fn check_host_forms() {
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
        let check = |kind: &str| format!("    - check_all_{kind}_ports: {{ports: numprocs, host: {written}}}\n");
        let g = one(&with(&format!("  smoke_test:\n{}{}", check("http"), check("tcp"))));
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
fn check_headers_keep_their_names_values_and_order() {
    let g = one(&with(concat!(
        "  smoke_test:\n",
        "    - check_all_http_ports:\n",
        "        ports: numprocs\n",
        "        headers:\n",
        "          Host: app.example\n",
        "          X-Health-Token: 'abc=='\n",
        "          accept: '*/*'\n",
        "          X-Empty: ''\n",
        "          X-Tab: \"a\\tb\"\n"
    )));
    let Check::Http { headers, .. } = &g.checks[0] else { panic!("{:?}", g.checks) };
    let want: Vec<(String, String)> =
        [("Host", "app.example"), ("X-Health-Token", "abc=="), ("accept", "*/*"), ("X-Empty", ""), ("X-Tab", "a\tb")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
    assert_eq!(*headers, want);
}

#[test]
fn check_body_forms() {
    for (written, want) in [("v1.2.3", "v1.2.3"), ("'\"status\": \"ok\"'", "\"status\": \"ok\""), ("'1.10'", "1.10")] {
        let g =
            one(&with(&format!("  smoke_test:\n    - check_all_http_ports: {{ports: numprocs, body: {written}}}\n")));
        let Check::Http { body, .. } = &g.checks[0] else { panic!("{:?}", g.checks) };
        assert_eq!(body.as_deref(), Some(want), "{written}");
    }
}

#[test]
fn long_http_check_with_every_key() {
    let g = one(&with(concat!(
        "  smoke_test:\n",
        "    - check_all_http_ports:\n",
        "        ports: numprocs\n",
        "        host: '::1'\n",
        "        path: /health\n",
        "        status: 204\n",
        "        headers:\n",
        "          Host: app.example\n",
        "        body: ok\n",
        "        timeout: 1.5\n"
    )));
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

// ------------------------------------------------------------ accepted: env, timings, signals

#[test]
fn env_values_may_be_strings_numbers_or_booleans() {
    let g = one(&with(concat!(
        "  env:\n",
        "    NAME: web\n",
        "    PORT_BASE: 8000\n",
        "    RATIO: 0.5\n",
        "    DEBUG: true\n",
        "    QUOTED: '42'\n",
        "    EMPTY: ''\n"
    )));
    let want: Vec<(String, String)> =
        [("NAME", "web"), ("PORT_BASE", "8000"), ("RATIO", "0.5"), ("DEBUG", "true"), ("QUOTED", "42"), ("EMPTY", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(g.env, want);
}

#[test]
fn timings_accept_fractional_seconds() {
    let g = one(&with(concat!(
        "  start_timeout: 2.5\n",
        "  drain_timeout: 0.25\n",
        "  drain_quiet: 0.5\n",
        "  stop_timeout: 1.5\n",
        "  action_timeout: 0.75\n"
    )));
    assert_eq!(
        g.timing,
        Timing {
            start_timeout: Duration::from_millis(2500),
            drain_timeout: Duration::from_millis(250),
            drain_quiet: Duration::from_millis(500),
            stop_timeout: Duration::from_millis(1500),
            action_timeout: Duration::from_millis(750),
            drain_report: Duration::from_secs(5),
            bake: Duration::ZERO,
        }
    );
    assert_eq!(one(&with("  start_timeout: 0.1\n")).timing.start_timeout, Duration::from_secs_f64(0.1));
}

#[test]
fn timings_accept_whole_seconds() {
    let g = one(&with(
        "  start_timeout: 5\n  drain_timeout: 600\n  drain_quiet: 2\n  stop_timeout: 3\n  action_timeout: 60\n",
    ));
    assert_eq!(
        g.timing,
        Timing {
            start_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(600),
            drain_quiet: Duration::from_secs(2),
            stop_timeout: Duration::from_secs(3),
            action_timeout: Duration::from_secs(60),
            drain_report: Duration::from_secs(5),
            bake: Duration::ZERO,
        }
    );
}

#[test]
fn a_day_long_timeout_is_accepted() {
    assert_eq!(one(&with("  start_timeout: 86400\n")).timing.start_timeout, Duration::from_secs(86400));
}

#[test]
fn drain_quiet_zero_is_accepted() {
    for v in ["0", "0.0"] {
        let g = one(&with(&format!("  drain_quiet: {v}\n")));
        assert_eq!(g.timing.drain_quiet, Duration::ZERO);
        assert_eq!(g.timing.drain_timeout, Duration::from_secs(300));
    }
}

#[test]
fn bake_and_health() {
    let g = one(&with("  bake: 6\n"));
    assert_eq!((g.timing.bake, g.health), (Duration::from_secs(6), None));
    assert_eq!(one(&with("")).timing.bake, Duration::ZERO, "no bake by default");
    let g = one(&with("  smoke_test:\n    - check_all_tcp_ports: numprocs\n  health: {every: 0.5, failures: 3}\n"));
    assert_eq!(g.health, Some(crate::config::Health { every: Duration::from_millis(500), failures: 3 }));
}

#[test]
fn drain_signal_and_drain_report() {
    let g = one(&with("  drain_signal: USR1\n  drain_report: 2.5\n"));
    assert_eq!(g.drain_signal, Some(libc::SIGUSR1));
    assert_eq!(g.timing.drain_report, Duration::from_millis(2500));
    let g = one(&with("  drain_signal: 12\n  drain_report: 0\n"));
    assert_eq!(g.drain_signal, Some(12));
    assert_eq!(g.timing.drain_report, Duration::ZERO, "0 turns the reports off");
}

#[test]
fn stop_signal_names_and_numbers() {
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
        assert_eq!(one(&with(&format!("  stop_signal: {v}\n"))).stop_signal, want, "stop_signal: {v}");
    }
}

// ------------------------------------------------------------ accepted: after_start

#[test]
fn replace_file_and_run_proc() {
    let g = one(&with(concat!(
        "  after_start:\n",
        "    - replace_file: [numprocs, tmpl/up.conf.templ, out/up.conf]\n",
        "    - run_proc: 'nginx -s reload'\n"
    )));
    assert_eq!(
        g.actions,
        vec![
            Action::ReplaceFile { template: base().join("tmpl/up.conf.templ"), output: base().join("out/up.conf") },
            Action::RunProc { command: "nginx -s reload".into() },
        ]
    );
}

#[test]
fn replace_file_paths_are_relative_to_base_not_directory() {
    let g = one(&with("  directory: ../app\n  after_start:\n    - replace_file: [numprocs, x.templ, x.out]\n"));
    assert_eq!(g.directory, Path::new("/srv/app/../app"));
    assert_eq!(g.actions, vec![Action::ReplaceFile { template: base().join("x.templ"), output: base().join("x.out") }]);
}

// ------------------------------------------------------------ warnings

#[test]
fn warnings_for_no_smoke_test_and_ephemeral_ports() {
    let g = one(&with(""));
    let w = crate::config::warnings(std::slice::from_ref(&g), Some((9002, 9100)));
    assert_eq!(
        w,
        vec![
            "g: no smoke_test: a new set goes live as soon as it is spawned, ready or not".to_string(),
            "g.workset[1]: port(s) 9002 inside net.ipv4.ip_local_port_range 9002-9100: \
             an outgoing connection can hold one when the set starts"
                .to_string(),
        ]
    );
    let g = one(&with("  smoke_test:\n    - check_all_tcp_ports: numprocs\n"));
    assert!(crate::config::warnings(&[g], Some((32768, 60999))).is_empty());
    // A listen: group's check ports: a connection out of one of them would
    // be sent to the socket it names.
    let g = one(&listening("  listen: 8080\n  procs: 2\n  smoke_test:\n    - check_all_tcp_ports: numprocs\n"));
    assert!(crate::config::warnings(std::slice::from_ref(&g), Some((32768, 60999))).is_empty());
    assert_eq!(
        crate::config::warnings(&[g], Some((32767, 60999))),
        vec![
            "w.check_from: ports 32764-32767 overlap net.ipv4.ip_local_port_range 32767-60999: \
             a connection from this host to 0.0.0.0:8080 out of one of them would be taken for a check"
                .to_string()
        ]
    );
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

// ------------------------------------------------------------ listen: rolld holds the port

/// A `listen:` group `w` with `extra` lines.
fn listening(extra: &str) -> String {
    let cmd = if extra.contains("  cmd: ") { "" } else { "  cmd: 'app --fd {fd}'\n" };
    format!("w:\n{cmd}{extra}")
}

const LISTEN_ROWS: &[(&str, &[&str])] = &[
    ("  listen: 8080\n", &["w.procs: missing (how many processes serve the listen: port)"]),
    (
        "  procs: 2\n",
        &[
            "w.procs: only with listen: (a port rolld holds itself)",
            "w.workset: missing (at least two worksets are needed, or listen: and procs:)",
            "w.cmd: {fd} is the socket of a listen: group's process; this group has no listen:",
        ],
    ),
    (
        "  listen: 8080\n  procs: 2\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        &[
            "w.workset: listen: and workset: exclude each other (with listen:, rolld holds the port and gives each process a socket of it)",
        ],
    ),
    (
        "  listen: 0\n  procs: 2\n",
        &["w.listen: expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080'), got 0 (a number)"],
    ),
    (
        "  listen: 70000\n  procs: 2\n",
        &["w.listen: expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080'), got 70000 (a number)"],
    ),
    (
        "  listen: 'localhost:8080'\n  procs: 2\n",
        &["w.listen: expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080'), got \"localhost:8080\""],
    ),
    (
        "  listen: '[::]'\n  procs: 2\n",
        &["w.listen: expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080'), got \"[::]\""],
    ),
    (
        "  listen: [8080]\n  procs: 2\n",
        &["w.listen: expected a port, or an address and port ('127.0.0.1:8080', '[::]:8080'), got a list"],
    ),
    ("  listen: 8080\n  procs: 0\n", &["w.procs: expected a number of processes, 1 to 128, got 0 (a number)"]),
    ("  listen: 8080\n  procs: 129\n", &["w.procs: expected a number of processes, 1 to 128, got 129 (a number)"]),
    ("  listen: 8080\n  procs: 2\n  check_from: 0\n", &["w.check_from: expected a port, 1 to 65535, got 0 (a number)"]),
    (
        "  listen: 8080\n  procs: 2\n  check_from: 65533\n",
        &["w.check_from: the 4 check ports from 65533 do not fit below 65536"],
    ),
    ("  listen: 8080\n  procs: 2\n  check_from: 8078\n", &["w.workset[1]: port 8080 is already used by w.listen"]),
    ("  listen: 8080\n  procs: 2\n  surge: 3\n", &["w.surge: 3 is more than the 2 processes of a workset"]),
    // {fd} is a listen: group's
    (
        "  cmd: 'app --fd {fd}'\n",
        &["g.cmd: {fd} is the socket of a listen: group's process; this group has no listen:"],
    ),
    (
        "  env:\n    FD: '{fd}'\n",
        &["g.env: {fd} is the socket of a listen: group's process; this group has no listen:"],
    ),
];

#[test]
fn rejected_listen_groups() {
    let (with_g, without_g): (Vec<_>, Vec<_>) = LISTEN_ROWS.iter().partition(|(y, _)| y.contains("{fd}"));
    rows(&without_g.into_iter().copied().collect::<Vec<_>>(), listening);
    rows(&with_g.into_iter().copied().collect::<Vec<_>>(), with);
}

#[test]
fn a_listen_port_is_a_port_of_the_whole_file() {
    let text = format!(
        "{}a:\n  cmd: prog\n  workset:\n    - numprocs: [8080]\n    - numprocs: [8081]\n",
        listening("  listen: 8080\n  procs: 1\n")
    );
    let p = parse(&text, FILE, Path::new(BASE));
    assert_eq!(p.errors, vec![format!("{FILE}: a.workset[0]: port 8080 is already used by w.listen")]);
    let two = format!(
        "{}{}",
        listening("  listen: '127.0.0.1:8080'\n  procs: 1\n"),
        listening("  listen: 8080\n  procs: 1\n").replace("w:", "v:")
    );
    let p = parse(&two, FILE, Path::new(BASE));
    assert_eq!(p.errors, vec![format!("{FILE}: v.listen: port 8080 is already used by w.listen")]);
}

#[test]
fn a_listen_group_is_two_banks_of_check_ports_and_a_route_first() {
    let g = one(&listening("  listen: 8080\n  procs: 3\n  after_start:\n    - run_proc: 'notify'\n"));
    let l = g.listen.clone().unwrap();
    assert_eq!(l.addr, "0.0.0.0:8080".parse().unwrap(), "a bare port is every IPv4 address");
    assert_eq!((l.procs, l.check_from), (3, 32762), "the 6 ports just below 32768");
    assert_eq!(g.worksets, vec![vec![32762, 32763, 32764], vec![32765, 32766, 32767]]);
    assert_eq!(g.actions, vec![Action::Route, Action::RunProc { command: "notify".into() }]);
    let g = one(&listening("  listen: '[::]:8443'\n  procs: 1\n  check_from: 20000\n"));
    let l = g.listen.unwrap();
    assert_eq!((l.addr, l.check_from), ("[::]:8443".parse().unwrap(), 20000));
    assert_eq!(g.worksets, vec![vec![20000], vec![20001]]);
    assert_eq!(g.actions, vec![Action::Route]);
    assert_eq!(one(&listening("  listen: '8080'\n  procs: 1\n")).listen.unwrap().addr.port(), 8080);
}

#[test]
fn default_check_ports_of_several_listen_groups_do_not_meet() {
    let text = format!(
        "{}{}",
        listening("  listen: 8080\n  procs: 2\n"),
        listening("  listen: 8081\n  procs: 3\n").replace("w:", "v:")
    );
    let d = drafts(&text);
    assert_eq!(d[0].cfg.worksets, vec![vec![32764, 32765], vec![32766, 32767]]);
    assert_eq!(d[1].cfg.worksets, vec![vec![32758, 32759, 32760], vec![32761, 32762, 32763]]);
}

// ------------------------------------------------------------ haproxy: the switch through HAProxy's API

const HAPROXY_ROWS: &[(&str, &[&str])] = &[
    ("  haproxy: /run/haproxy.sock\n", &["g.haproxy: expected a mapping, got \"/run/haproxy.sock\""]),
    (
        "  haproxy: {}\n",
        &[
            "g.haproxy.socket: missing (HAProxy's stats socket, level admin)",
            "g.haproxy.backend: missing (the backend rolld switches)",
        ],
    ),
    ("  haproxy:\n    socket: /run/h.sock\n", &["g.haproxy.backend: missing (the backend rolld switches)"]),
    ("  haproxy:\n    backend: app\n", &["g.haproxy.socket: missing (HAProxy's stats socket, level admin)"]),
    ("  haproxy:\n    socket: 12\n    backend: app\n", &["g.haproxy.socket: expected a string, got 12 (a number)"]),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: 'my app'\n",
        &["g.haproxy.backend: \"my app\" is not a backend name (letters, digits, '-', '_', '.' and ':')"],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: 'a;shutdown sessions server a/b'\n",
        &[
            "g.haproxy.backend: \"a;shutdown sessions server a/b\" is not a backend name (letters, digits, '-', '_', '.' and ':')",
        ],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: app\n    weight: 3\n",
        &["g.haproxy.weight: unknown key (known: socket, backend, state_file, revert_errors)"],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: app\n    revert_errors: -1\n",
        &["g.haproxy.revert_errors: expected a number of errors, 0 (never) to 1000000000, got -1 (a number)"],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: app\n    revert_errors: many\n",
        &["g.haproxy.revert_errors: expected a number of errors, 0 (never) to 1000000000, got \"many\""],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: app\n    state_file: [x]\n",
        &["g.haproxy.state_file: expected a string, got a list"],
    ),
];

#[test]
fn rejected_haproxy_keys() {
    rows(HAPROXY_ROWS, with);
    let both = listening("  listen: 8080\n  procs: 1\n  haproxy:\n    socket: /run/h.sock\n    backend: app\n");
    let p = parse(&both, FILE, Path::new(BASE));
    assert_eq!(
        p.errors,
        [format!(
            "{FILE}: w.haproxy: haproxy: and listen: exclude each other (with listen:, rolld holds the port: no load balancer is in front)"
        )]
    );
}

#[test]
fn a_haproxy_group_switches_first_and_needs_no_quiet_drain() {
    let g = one(&with(
        "  haproxy:\n    socket: run/h.sock\n    backend: app\n    state_file: /var/lib/haproxy/state\n  after_start:\n    - run_proc: notify\n",
    ));
    let h = g.haproxy.clone().unwrap();
    assert_eq!(h.socket, PathBuf::from("/srv/app/run/h.sock"), "relative to the config's directory");
    assert_eq!((h.backend.as_str(), h.state_file), ("app", Some(PathBuf::from("/var/lib/haproxy/state"))));
    assert_eq!(g.actions, vec![Action::Haproxy, Action::RunProc { command: "notify".into() }]);
    assert_eq!(g.timing.drain_quiet, Duration::ZERO);
    let g = one(&with("  haproxy:\n    socket: /h.sock\n    backend: app\n  drain_quiet: 2\n"));
    assert_eq!((g.actions.as_slice(), g.timing.drain_quiet), ([Action::Haproxy].as_slice(), Duration::from_secs(2)));
    assert_eq!(one(&with("")).haproxy, None);
    assert_eq!(h.revert_errors, 5, "the default");
    let g = one(&with("  haproxy:\n    socket: /h.sock\n    backend: app\n    revert_errors: 0\n"));
    assert_eq!(g.haproxy.map(|h| h.revert_errors), Some(0));
}
