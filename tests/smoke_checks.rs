//! The smoke checks of the real rolld binary against backends that listen
//! on ::1 only (tests/host_app.py): both loopbacks for `localhost` whatever
//! /etc/hosts says, a Host header for an app that checks it, a body that
//! must contain the release's version.
//!
//! These need IPv6 loopback (::1 on lo) and fail, never skip, without it.
//! The first one runs rolld in a mount namespace of its own (`unshare -m`,
//! so it needs root) with a private /etc/hosts bind-mounted over the real
//! one, which stays untouched.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;

const S: fn(u64) -> std::time::Duration = std::time::Duration::from_secs;

const ROLLOUT_OK: &str = " rollout ok: ";
const ROLLED_BACK: &str = " rolled back: ";
const HOST_APP: &str = include_str!("host_app.py");

/// The harness for test `name` with tests/host_app.py as its backend;
/// fails at once when ::1 is missing or a port of the test is taken there.
fn harness(name: &str, k: u16) -> Harness {
    let h = Harness::new(name, k);
    for p in h.ws.iter().flatten() {
        let addr = v6_loopback(*p);
        if let Err(e) = TcpListener::bind(addr) {
            panic!("cannot listen on {addr}: {e}. These tests need IPv6 loopback (`ip -6 addr show lo` must list ::1)");
        }
    }
    h.write("host_app.py", HOST_APP);
    h
}

fn cfg(start_timeout: f64) -> Cfg {
    Cfg { script: "host_app.py", start_timeout, ..Cfg::default() }
}

/// Writes the config with these smoke_test entries (lines indented by 4)
/// instead of the harness's `check_all_http_ports: numprocs`.
fn write_config(h: &Harness, c: &Cfg, smoke: &str) {
    let default = "  smoke_test:\n    - check_all_http_ports: numprocs\n";
    let y = h.yaml(c);
    assert!(y.contains(default), "{y}");
    std::fs::write(&h.config, y.replace(default, &format!("  smoke_test:\n{smoke}"))).unwrap();
}

/// GET / on [::1]:port with `Host: host`.
fn get6(port: u16, host: &str) -> Option<(u16, String)> {
    http_get_at(v6_loopback(port), host, "/")
}

/// Waits until every port of workset `set` answers on ::1 (with `host`)
/// with `version`, and those of the other set are closed.
fn assert_live6(h: &Harness, set: usize, host: &str, version: &str) {
    for p in h.ws[set] {
        let want = format!("port {p} version {version}\n");
        h.wait_for(&format!("[::1]:{p} to answer {want:?}"), S(5), || get6(p, host) == Some((200, want.clone())));
        assert!(!listens(p), "127.0.0.1:{p} listens: the backend must be bound to ::1 only");
    }
    for p in h.ws[1 - set] {
        h.wait_for(&format!("[::1]:{p} to be closed"), S(5), || !listens_at(v6_loopback(p)));
    }
}

/// A backend bound to ::1 alone passes the short forms of both checks, with
/// an /etc/hosts that maps localhost to 127.0.0.1 only (as this project's
/// CI machine's does, and many container images'), on the first start and
/// on a rollout.
#[test]
fn v6_only_backends_pass_the_short_checks_whatever_etc_hosts_says() {
    let mut h = harness("v6-only-short-forms", 60);
    h.write("hosts", "127.0.0.1 localhost\n");
    let bind_hosts = r#"mount --bind "$0" /etc/hosts && exec "$@""#;
    let hosts = h.path("hosts").display().to_string();
    let wrapper = ["unshare", "-m", "sh", "-c", bind_hosts, &hosts];
    h.wrapper = wrapper.iter().map(|s| s.to_string()).collect();

    // The premise: in such a namespace, the resolver has no ::1 for localhost.
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["getent", "ahosts", "localhost"])
        .output()
        .expect("run unshare (util-linux) and getent");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "getent under {wrapper:?}: {out:?}");
    assert!(seen.contains("127.0.0.1") && !seen.contains("::1"), "localhost still resolves to ::1 there:\n{seen}");

    write_config(&h, &cfg(10.0), "    - check_all_http_ports: numprocs\n    - check_all_tcp_ports: numprocs\n");
    h.start();
    assert_live6(&h, 0, "localhost", "1");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    assert_eq!(h.count(ROLLED_BACK), 0, "{}", h.log_text());
    assert_live6(&h, 1, "localhost", "1");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(1));
    h.stop_ok(S(8));
    h.assert_nothing_left();
}

/// The same backends fail a check of 127.0.0.1, naming that address: the
/// check above really went to ::1.
#[test]
fn a_check_of_127_0_0_1_fails_on_v6_only_backends() {
    let mut h = harness("v6-only-v4-check", 61);
    write_config(&h, &cfg(1.5), "    - check_all_tcp_ports: {ports: numprocs, host: 127.0.0.1, timeout: 0.5}\n");
    h.spawn();
    assert_eq!(h.wait_exit(S(20)), 1, "{}", h.log_text());
    let line = h.line("start failed: ");
    let named = h.ws[0].iter().any(|p| line.contains(&format!("connect to 127.0.0.1:{p}: 127.0.0.1:{p} refused")));
    assert!(named, "{line}");
    assert!(!line.contains("[::1]"), "only the given host is tried: {line}");
    h.assert_nothing_left();
}

/// An app that answers only for its own name (400 otherwise, as Django's
/// ALLOWED_HOSTS does) fails the check without `headers:`, at the first
/// start and on a rollout, with the status and the app's answer in the
/// message; with `Host: app.example` it passes.
#[test]
fn host_checking_app_fails_without_headers_and_passes_with_them() {
    let mut h = harness("host-header", 62);
    h.write("want_host", "app.example\n");
    let plain = "    - check_all_http_ports: numprocs\n";
    let with_host =
        "    - check_all_http_ports:\n        ports: numprocs\n        headers:\n          Host: app.example\n";

    write_config(&h, &cfg(1.5), plain);
    h.spawn();
    assert_eq!(h.wait_exit(S(20)), 1, "{}", h.log_text());
    let line = h.line("start failed: ");
    let named = h.ws[0].iter().any(|p| {
        line.contains(&format!(
            "GET http://localhost:{p}/: [::1]:{p} answered 400 (want 200), \
             the body begins \"Invalid HTTP_HOST header: 'localhost:{p}'.\\n\"; 127.0.0.1:{p} refused"
        ))
    });
    assert!(named, "{line}");
    h.assert_nothing_left();

    write_config(&h, &cfg(1.5), with_host);
    h.start();
    assert_live6(&h, 0, "app.example", "1");
    assert_eq!(get6(h.ws[0][0], "localhost").map(|r| r.0), Some(400), "the app refuses other names");

    write_config(&h, &cfg(1.5), plain);
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let line = h.line(ROLLED_BACK);
    assert!(h.ws[1].iter().any(|p| line.contains(&format!("[::1]:{p} answered 400 (want 200)"))), "{line}");
    assert!(line.contains("Invalid HTTP_HOST header: 'localhost:"), "{line}");
    assert_eq!(h.count(ROLLOUT_OK), 0, "{}", h.log_text());
    assert_live6(&h, 0, "app.example", "1");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));

    write_config(&h, &cfg(10.0), with_host);
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    assert_live6(&h, 1, "app.example", "1");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(1));
    h.stop_ok(S(8));
}

/// A new set whose body lacks the expected text (the release's version) is
/// rolled back, and the message shows what came back; once the config
/// expects that version, the set rolls.
#[test]
fn body_mismatch_rolls_back_showing_what_came_back() {
    let mut h = harness("body-mismatch", 63);
    let expect = |v: &str| format!("    - check_all_http_ports: {{ports: numprocs, body: 'version {v}'}}\n");
    h.write("version", "2\n");
    write_config(&h, &cfg(10.0), &expect("2"));
    h.start();
    assert_live6(&h, 0, "localhost", "2");

    h.write("version", "3\n");
    write_config(&h, &cfg(1.5), &expect("2"));
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let line = h.line(ROLLED_BACK);
    let shown = h.ws[1].iter().any(|p| {
        line.contains(&format!(
            "[::1]:{p} answered 200 with a body without \"version 2\": the body begins \"port {p} version 3\\n\""
        ))
    });
    assert!(shown, "{line}");
    assert!(line.contains(&format!("still live on {},{}", h.ws[0][0], h.ws[0][1])), "{line}");
    assert_eq!(h.count(ROLLOUT_OK), 0, "{}", h.log_text());
    assert_live6(&h, 0, "localhost", "2");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));

    write_config(&h, &cfg(10.0), &expect("3"));
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    assert_live6(&h, 1, "localhost", "3");
    h.stop_ok(S(8));
}

/// `rolld check` accepts every new key and lists every problem in them,
/// each with the file and the key.
#[test]
fn rolld_check_validates_the_new_keys() {
    let h = harness("check-new-keys", 64);
    let good = "    - check_all_http_ports:\n        ports: numprocs\n        host: '::1'\n        headers: {Host: app.example, X-Token: abc}\n        body: 'version 1'\n    - check_all_tcp_ports: {ports: numprocs, host: localhost}\n";
    write_config(&h, &cfg(10.0), good);
    let out = Command::new(rolld_bin()).arg("check").arg(&h.config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 check(s)"), "{stdout}");

    let bad = "    - check_all_http_ports:\n        ports: numprocs\n        host: 'localhost:8000'\n        headers: {Host: \"a\\r\\nX: y\", Connection: keep-alive, 'Bad Name': x}\n        body: ''\n    - check_all_tcp_ports: {ports: numprocs, host: '[10.0.0.1]', body: x}\n";
    write_config(&h, &cfg(10.0), bad);
    let out = Command::new(rolld_bin()).arg("check").arg(&h.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let file = h.config.display().to_string();
    let k = "g.smoke_test[0].check_all_http_ports";
    for want in [
        format!("{file}: {k}.host: expected a host with no port (the port is the set's), got \"localhost:8000\""),
        format!("{file}: {k}.headers.Host: the value contains a line break: \"a\\r\\nX: y\""),
        format!("{file}: {k}.headers.Connection: cannot be set"),
        format!("{file}: {k}.headers: header name \"Bad Name\" is not a token"),
        format!("{file}: {k}.body: is empty (it would match any body)"),
        format!(
            "{file}: g.smoke_test[1].check_all_tcp_ports.host: expected an IPv6 address between the brackets, got \"[10.0.0.1]\""
        ),
        format!("{file}: g.smoke_test[1].check_all_tcp_ports.body: unknown key"),
        "7 problem(s)".to_string(),
    ] {
        assert!(stderr.contains(&want), "no {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains('\r'), "a raw CR reached the output: {stderr:?}");
    for p in h.ws.iter().flatten() {
        assert!(!listens(*p) && !listens_at(v6_loopback(*p)), "port {p}");
    }
}
