//! The loop never waits: the real binary, with work that takes long (a
//! run_proc that hangs, backends that accept and never answer, control
//! clients that dribble or flood), shown not to hold SIGTERM, `rolld
//! status` or another group. Also groups that appear or disappear on
//! SIGHUP.
//!
//! Ports: Harness k = 22..=29 (22200-22912); the second group of a test
//! uses base + 21, 22, 31, 32.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

/// `rolld status`, timed; panics unless it answers (exit 0).
fn timed_status(h: &Harness) -> Duration {
    let t = Instant::now();
    let o = Command::new(rolld_bin())
        .args(["status"])
        .arg(&h.config)
        .arg("--run-dir")
        .arg(h.path("run"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "status failed: {}\n{}", text(&o), h.log_text());
    took
}

/// The ports of the second group of harness `h`: two worksets of two.
fn second_ports(h: &Harness) -> [[u16; 2]; 2] {
    let base = h.ws[0][0] - 1;
    let ws = [[base + 21, base + 22], [base + 31, base + 32]];
    for p in ws.iter().flatten() {
        assert!(!listens(*p), "port {p} is already in use before the test");
    }
    ws
}

/// A group named `name` of app.py backends on `ws`, with extra lines.
fn group_yaml(h: &Harness, name: &str, ws: [[u16; 2]; 2], extra: &str) -> String {
    let d = h.dir.display();
    let [[a0, a1], [b0, b1]] = ws;
    let mut y = format!(
        "{name}:
  cmd: '{py} {d}/app.py {{numproc}}'
  workset:
    - numprocs: [{a0}, {a1}]
    - numprocs: [{b0}, {b1}]
  smoke_test:
    - check_all_http_ports: numprocs
  stop_timeout: 2
  drain_quiet: 0.2
",
        py = python()
    );
    for l in extra.lines() {
        y.push_str(&format!("  {l}\n"));
    }
    y
}

/// Pids of processes whose command line holds `needle` and `what`.
fn pids_with(h: &Harness, what: &str) -> Vec<i32> {
    procs_matching(&h.needle).into_iter().filter(|(_, argv)| argv.join(" ").contains(what)).map(|(p, _)| p).collect()
}

/// SIGTERM, then exit 0 within `limit` (measured here, from the signal),
/// and nothing of the test left running.
fn sigterm_exits_within(h: &mut Harness, limit: Duration) {
    let t = Instant::now();
    h.signal(libc::SIGTERM);
    let code = h.wait_exit(limit + S(10));
    let took = t.elapsed();
    assert_eq!(code, 0, "{}", h.log_text());
    assert!(took <= limit, "SIGTERM took {took:?} to take effect, more than {limit:?}\n{}", h.log_text());
    let left = procs_matching(&h.needle);
    assert!(left.is_empty(), "still running after rolld exited: {left:?}\n{}", h.log_text());
}

/// Two groups: `jobs` hangs 10 s in its after_start while `web` rolls over,
/// is restarted on time after a crash, and `status` answers throughout.
#[test]
fn one_group_in_a_long_action_holds_neither_another_group_nor_status() {
    let mut h = Harness::new("live-two-groups", 22);
    let web = second_ports(&h);
    let d = h.dir.display().to_string();
    let jobs = group_yaml(
        &h,
        "jobs",
        h.ws,
        &format!("after_start:\n  - run_proc: 'if [ -e {d}/slow ]; then sleep 10; fi'\naction_timeout: 30"),
    );
    let web_yaml = group_yaml(&h, "web", web, "");
    std::fs::write(&h.config, format!("{jobs}{web_yaml}")).unwrap();
    h.spawn();
    h.wait_count("live on", 2, S(20));
    h.touch("slow");
    h.signal(libc::SIGHUP);
    h.wait_log("jobs' after_start running", "jobs ready done in", S(20));
    let mut worst = Duration::ZERO;
    let t = Instant::now();
    // web's rollout completes while jobs' action runs.
    while h.count("web rollout ok: ") == 0 {
        worst = worst.max(timed_status(&h));
        assert!(t.elapsed() < S(8), "web did not roll over while jobs' action ran\n{}", h.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.count("jobs rollout ok: "), 0, "jobs' action is still running");
    for p in web[1] {
        assert!(answers(p), "web serves on its new set");
    }
    // A web backend that dies meanwhile is restarted after its 1 s backoff.
    let victim = pids_with(&h, &format!("app.py {}", web[1][0]));
    assert_eq!(victim.len(), 1, "one backend on {}", web[1][0]);
    kill(victim[0], libc::SIGKILL);
    let killed = Instant::now();
    while h.count(&format!("web:{} restarted as pid", web[1][0])) == 0 {
        worst = worst.max(timed_status(&h));
        assert!(killed.elapsed() < S(3), "the backend was not restarted on time\n{}", h.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.count("jobs rollout ok: "), 0, "jobs' action is still running");
    assert!(worst < Duration::from_millis(200), "rolld status took {worst:?} at worst during the rollout");
    h.wait_count("jobs rollout ok: ", 1, S(20));
    let line = h.line("jobs rollout ok: ");
    assert!(phase_secs(&line, "after_start") >= 9.5, "jobs waited for its own action: {line}");
    h.stop_ok(S(8));
}

/// A run_proc whose process and its own child hang: SIGTERM kills them at
/// once and every set stops within stop_timeout (2 s) + 1 s.
#[test]
fn sigterm_during_a_hanging_run_proc_takes_effect_at_once() {
    let mut h = Harness::new("live-term-action", 23);
    h.write(
        "hang.py",
        "import os, sys, time\nif os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), 'hang')):\n    if os.fork() == 0:\n        time.sleep(300)\n    time.sleep(300)\n",
    );
    let extra = format!("after_start:\n  - run_proc: '{} {}/hang.py'", python(), h.dir.display());
    let extra: &'static str = Box::leak(extra.into_boxed_str());
    h.write_config(&Cfg { after_start: false, action_timeout: 60.0, extra, ..Cfg::default() });
    h.start();
    h.touch("hang");
    h.signal(libc::SIGHUP);
    h.wait_log("the hanging step", "g ready done in", S(20));
    h.wait_for("the step and its child to run", S(5), || pids_with(&h, "hang.py").len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    sigterm_exits_within(&mut h, S(3));
    assert!(h.log_text().contains("killing run_proc"), "{}", h.log_text());
}

/// A backend that accepts and never answers, the new set's: SIGTERM during
/// its check takes effect at once.
#[test]
fn sigterm_during_a_check_that_never_answers_takes_effect_at_once() {
    let mut h = Harness::new("live-term-check", 24);
    h.write("mute.py", MUTE_PY);
    let mut c = Cfg { script: "mute.py", start_timeout: 30.0, ..Cfg::default() };
    c.extra = "smoke_test:\n  - check_all_http_ports: {ports: numprocs, timeout: 20}";
    let y = h.yaml(&c).replace("  smoke_test:\n    - check_all_http_ports: numprocs\n", "");
    std::fs::write(&h.config, y).unwrap();
    h.start();
    h.touch("mute");
    h.signal(libc::SIGHUP);
    h.wait_log("the new set spawned", "g spawn done in", S(20));
    std::thread::sleep(Duration::from_millis(500));
    sigterm_exits_within(&mut h, S(3));
}

/// A slow request holds the drain of the old set: SIGTERM then stops every
/// set without waiting for it.
#[test]
fn sigterm_during_a_drain_takes_effect_at_once() {
    let mut h = Harness::new("live-term-drain", 25);
    h.write_config(&Cfg::default());
    h.start();
    let port = h.ws[0][0];
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /slow?s=30 HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    });
    std::thread::sleep(Duration::from_millis(300));
    h.signal(libc::SIGHUP);
    h.wait_log("the drain", "g after_start done in", S(20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(h.count(" rollout ok: "), 0, "the slow request holds the drain");
    sigterm_exits_within(&mut h, S(3));
    slow.join().unwrap();
}

/// Listens and accepts, and never answers, when the flag `mute` exists;
/// otherwise the example app.
pub const MUTE_PY: &str = r#"import os, socket, sys, time
here = os.path.dirname(os.path.abspath(__file__))
if os.path.exists(os.path.join(here, "mute")):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(64)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)
os.execv(sys.executable, [sys.executable, os.path.join(here, "app.py"), sys.argv[1]])
"#;

/// Four ports that accept and never answer: the rollout rolls back at
/// start_timeout (3 s), not after 4 x the check's timeout.
#[test]
fn four_mute_ports_roll_back_at_start_timeout_not_later() {
    let mut h = Harness::new("live-four-mute", 26);
    h.write("mute.py", MUTE_PY);
    let base = h.ws[0][0] - 1;
    let ws = [[base + 1, base + 2, base + 3, base + 4], [base + 11, base + 12, base + 13, base + 14]];
    for p in ws.iter().flatten() {
        assert!(!listens(*p), "port {p} in use before the test");
    }
    let list = |s: &[u16; 4]| s.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let y = format!(
        "g:
  cmd: '{py} {d}/mute.py {{numproc}}'
  workset:
    - numprocs: [{a}]
    - numprocs: [{b}]
  smoke_test:
    - check_all_http_ports: {{ports: numprocs, timeout: 2}}
  start_timeout: 3
  stop_timeout: 2
  drain_quiet: 0.2
",
        py = python(),
        d = h.dir.display(),
        a = list(&ws[0]),
        b = list(&ws[1])
    );
    std::fs::write(&h.config, y).unwrap();
    h.spawn();
    h.wait_log("first start", "live on", S(20));
    h.touch("mute");
    h.signal(libc::SIGHUP);
    h.wait_count(" rolled back: ", 1, S(20));
    let line = h.line(" rolled back: ");
    assert!(line.contains("not ready within start_timeout 3.00s"), "{line}");
    let ready = phase_secs(&line, "ready");
    assert!((2.9..3.6).contains(&ready), "the ready phase lasted {ready} s, not start_timeout: {line}");
    for p in ws[0] {
        assert!(answers(p), "the old set still serves on {p}");
    }
    h.stop_ok(S(8));
}

/// The control socket of the harness's daemon.
fn socket(h: &Harness) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(h.path("run"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    assert_eq!(found.len(), 1, "one socket in the run dir: {found:?}");
    found[0].clone()
}

/// A client that dribbles a byte every 0.3 s, and one that sends 1 MiB
/// without a newline, are cut after 1 s at most; `status` is answered at
/// once meanwhile.
#[test]
fn slow_and_flooding_clients_are_cut_and_others_answered() {
    let mut h = Harness::new("live-clients", 27);
    h.write_config(&Cfg::default());
    h.start();
    let sock = socket(&h);
    let path = sock.clone();
    let dribbler = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        let t = Instant::now();
        for b in b"status json" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        (t.elapsed(), got)
    });
    let path = sock.clone();
    let flooder = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_write_timeout(Some(S(5))).unwrap();
        let t = Instant::now();
        let sent = s.write_all(&vec![b'x'; 1 << 20]);
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        (t.elapsed(), sent.is_err(), got)
    });
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        let took = timed_status(&h);
        assert!(took < Duration::from_millis(200), "status took {took:?} beside the slow clients");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (took, got) = dribbler.join().unwrap();
    assert!(took < Duration::from_millis(1800), "the dribbler was cut after {took:?}");
    assert_eq!(got, "error request timed out\n");
    let (took, write_failed, got) = flooder.join().unwrap();
    assert!(took < S(2), "the flooder was cut after {took:?}");
    assert!(write_failed || got == "error request too long\n", "the flooder got {got:?}");
    let log = h.log_text();
    assert!(log.contains("control client cut: no whole request within 1s"), "{log}");
    assert!(log.contains("control client cut: request longer than 4096 bytes"), "{log}");
    h.stop_ok(S(8));
}

/// A group added by a reload that cannot start fails alone: reported by
/// `reload --wait` (exit 1), the other group rolled and serving, rolld
/// running. A group removed by a reload is drained (a request in flight
/// completes) and then stopped.
#[test]
fn groups_added_and_removed_on_reload() {
    let mut h = Harness::new("live-add-remove", 28);
    let other = second_ports(&h);
    let base = h.yaml(&Cfg::default());
    let slowgroup = group_yaml(&h, "old", other, "");
    std::fs::write(&h.config, format!("{base}{slowgroup}")).unwrap();
    h.spawn();
    h.wait_count("live on", 2, S(20));
    // Remove `old` while a 2 s request is in flight on it; add `broken`,
    // whose program exits at once.
    let port = other[0][0];
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /slow?s=2 HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    });
    std::thread::sleep(Duration::from_millis(300));
    let broken = other[1];
    let broken_yaml = format!(
        "broken:
  cmd: '/bin/sh -c \"exit 3\" {{numproc}}'
  workset:
    - numprocs: [{}, {}]
    - numprocs: [{}, {}]
  smoke_test:
    - check_all_tcp_ports: numprocs
",
        broken[0],
        broken[1],
        broken[0] + 10,
        broken[1] + 10
    );
    std::fs::write(&h.config, format!("{base}{broken_yaml}")).unwrap();
    let o = client(&h, &["reload", "--wait"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("broken start failed: "), "{out}");
    assert!(out.contains("exited (exit 3)"), "{out}");
    assert!(out.contains("g rollout ok: "), "{out}");
    let reply = slow.join().unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "the request in flight on the removed group completed: {reply}");
    assert!(reply.contains(&format!("slow done port {port}")), "{reply}");
    let log = h.log_text();
    let drained = h.line("old no longer in the config: draining");
    let stopped = h.line("old removed from the config: drained and stopped");
    assert!(secs_between(&drained, &stopped) >= 1.5, "stopped only after the request ended\n{log}");
    for p in other[0] {
        assert!(!listens(p), "the removed group's port {p} is closed");
    }
    h.assert_live(1);
    assert!(h.child.as_mut().unwrap().try_wait().unwrap().is_none(), "rolld keeps running\n{log}");
    let o = client(&h, &["status"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("broken"), "{}", text(&o));
    assert!(!text(&o).contains("\nold "), "{}", text(&o));
    h.stop_ok(S(8));
}
