//! End-to-end tests: the real rolld binary against real python3 backends.
//!
//! Each test has its own temp dir (rolld-it-<test>-<pid>) and its own port
//! range (20000 + 100*k), so they run in parallel. Durations are asserted
//! from rolld's own log timestamps where they matter, so a loaded machine
//! delays a test without failing it.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

const ROLLOUT_OK: &str = " rollout ok: ";
const ROLLED_BACK: &str = " rolled back: ";

fn server(extra: impl FnOnce(&mut Cfg)) -> Cfg {
    let mut c = Cfg { script: "server.py", ..Cfg::default() };
    extra(&mut c);
    c
}

/// Case 1: Start, every port answers; SIGTERM stops everything, exit 0.
#[test]
fn start_serves_and_sigterm_stops_everything() {
    let mut h = Harness::new("start-stop", 1);
    h.write_config(&Cfg::default());
    h.start();
    h.assert_live(0);
    for p in h.ws[0] {
        assert_eq!(http_get(p), Some((200, format!("port {p}\n"))));
    }
    let live = h.line("live on");
    assert!(live.contains(&format!("live on {},{}", h.ws[0][0], h.ws[0][1])), "{live}");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0), "after_start runs on the first start too");
    assert_eq!(h.read("ports.txt"), h.ports_text(0));
    h.stop_ok(S(8));
}

/// Case 2: SIGHUP rolls to the next workset, and the one after back to the first.
#[test]
fn sighup_rolls_to_the_next_workset() {
    let mut h = Harness::new("rollout-ok", 2);
    h.write_config(&Cfg::default());
    h.start();
    let old: Vec<i32> = h.ws[0].iter().flat_map(|&p| h.backend_pids("app.py", p)).collect();
    assert_eq!(old.len(), 2, "one backend per port");

    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    let line = h.line(ROLLOUT_OK);
    let [[a0, a1], [b0, b1]] = h.ws;
    assert!(line.contains(&format!("rollout ok: {a0},{a1} -> {b0},{b1}")), "{line}");
    h.assert_live(1);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(1));
    assert_eq!(h.read("ports.txt"), h.ports_text(1), "run_proc sees ROLLD_PORTS of the new set");
    for pid in old {
        h.wait_for(&format!("old backend {pid} gone"), S(3), || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
    }

    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 2, S(30));
    let line = h.last_line(ROLLOUT_OK);
    assert!(line.contains(&format!("rollout ok: {b0},{b1} -> {a0},{a1}")), "{line}");
    h.assert_live(0);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));
    assert_eq!(h.read("ports.txt"), h.ports_text(0));
    h.stop_ok(S(8));
}

/// Case 3: A new set answering 500 is rolled back; the old one keeps serving.
#[test]
fn smoke_failure_rolls_back_then_a_good_set_rolls() {
    let mut h = Harness::new("smoke-500", 3);
    h.write_config(&server(|c| c.start_timeout = 2.0));
    h.start();
    h.touch("bad");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let line = h.line(ROLLED_BACK);
    assert!(h.ws[1].iter().any(|p| line.contains(&format!("port {p} "))), "names a new port: {line}");
    assert!(line.contains("answered 500"), "names the status: {line}");
    assert!(line.contains(&format!("still live on {},{}", h.ws[0][0], h.ws[0][1])), "{line}");
    h.assert_live(0);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));
    assert_eq!(h.count(ROLLOUT_OK), 0);

    h.remove("bad");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    let line = h.line(ROLLOUT_OK);
    assert!(line.contains(&format!("-> {},{}", h.ws[1][0], h.ws[1][1])), "{line}");
    h.assert_live(1);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(1));
    h.stop_ok(S(8));
}

/// Case 4: New processes that exit at once fail the rollout at once, not at
/// start_timeout, and the log shows their exit code and stderr.
#[test]
fn new_set_exiting_at_once_rolls_back_fast_with_its_stderr() {
    let mut h = Harness::new("crash-at-start", 4);
    h.write_config(&server(|c| c.start_timeout = 20.0));
    h.start();
    h.touch("crash");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let spawned = h.line("rollout: spawning workset 1");
    let line = h.line(ROLLED_BACK);
    let took = secs_between(&spawned, &line);
    assert!(took < 5.0, "rolled back after {took:.2}s, start_timeout is 20s:\n{}", h.log_text());
    assert!(line.contains("exit 3"), "{line}");
    assert!(h.ws[1].iter().any(|p| line.contains(&format!("port {p} exited (exit 3)"))), "{line}");
    // The tail of the backend's stderr follows the summary line.
    h.wait_for("the stderr tail with boom", S(5), || h.lines("  | ").iter().any(|l| l.contains("boom")));
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// Case 5: A new set that never listens is rolled back at start_timeout.
#[test]
fn never_ready_rolls_back_at_start_timeout() {
    let mut h = Harness::new("never-ready", 5);
    h.write_config(&server(|c| c.start_timeout = 1.5));
    h.start();
    h.touch("never");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let spawned = h.line("rollout: spawning workset 1");
    let line = h.line(ROLLED_BACK);
    let took = secs_between(&spawned, &line);
    assert!((1.2..6.0).contains(&took), "rolled back after {took:.2}s with start_timeout 1.5s:\n{}", h.log_text());
    assert!(line.contains("start_timeout"), "{line}");
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// Case 6: A failing after_start command rolls back and re-renders the LB
/// config for the old set.
#[test]
fn failing_after_start_rolls_back_and_points_back() {
    let mut h = Harness::new("after-start-fails", 6);
    h.write_config(&Cfg::default());
    h.start();
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));
    h.touch("lbfail");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let line = h.line(ROLLED_BACK);
    assert!(line.contains("after_start failed"), "{line}");
    assert!(line.contains("run_proc"), "{line}");
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0), "LB config points back at the old set");
    assert_eq!(h.read("ports.txt"), h.ports_text(0));
    h.assert_live(0);
    assert_eq!(h.count(ROLLOUT_OK), 0);

    h.remove("lbfail");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    h.assert_live(1);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(1));
    assert_eq!(h.read("ports.txt"), h.ports_text(1));
    h.stop_ok(S(8));
}

/// Case 7: A hanging after_start command is killed at action_timeout and the
/// rollout rolled back.
#[test]
fn hanging_after_start_is_killed_at_action_timeout() {
    let mut h = Harness::new("after-start-hangs", 7);
    h.write_config(&Cfg { action_timeout: 1.0, ..Cfg::default() });
    h.start();
    h.touch("lbhang");
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLED_BACK, 1, S(30));
    let spawned = h.line("rollout: spawning workset 1");
    let line = h.line(ROLLED_BACK);
    let took = secs_between(&spawned, &line);
    assert!(took < 6.0, "rolled back after {took:.2}s with action_timeout 1s:\n{}", h.log_text());
    assert!(line.contains("did not finish within 1s"), "{line}");
    let lb = format!("{}lb.py", h.needle);
    h.wait_for("the hanging lb.py to be killed", S(3), || procs_matching(&lb).is_empty());
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(0));
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// Case 8: Backends that ignore SIGTERM are SIGKILLed after stop_timeout, on a
/// rollout and on exit.
#[test]
fn backends_ignoring_sigterm_are_killed_after_stop_timeout() {
    let mut h = Harness::new("ignore-term", 8);
    h.touch("ignore_term");
    h.write_config(&server(|c| c.stop_timeout = 1.0));
    h.start();
    let old: Vec<i32> = h.ws[0].iter().flat_map(|&p| h.backend_pids("server.py", p)).collect();
    assert_eq!(old.len(), 2);
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    assert!(h.log_text().contains("SIGKILL"), "{}", h.log_text());
    for pid in old {
        h.wait_for(&format!("old backend {pid} gone"), S(3), || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
    }
    h.assert_live(1);
    let t = Instant::now();
    h.stop_ok(S(4));
    assert!(t.elapsed() < S(5), "stopped in {:?}", t.elapsed());
}

/// Case 9: A worker forked into the backend's process group that ignores
/// SIGTERM (and holds the listening socket) is gone after a rollout and
/// after exit.
#[test]
fn forked_workers_ignoring_sigterm_are_killed_with_their_group() {
    let mut h = Harness::new("fork-worker", 9);
    h.touch("fork_worker");
    h.write_config(&server(|_| {}));
    h.start();
    for p in h.ws[0] {
        h.wait_for(&format!("parent and worker on port {p}"), S(5), || h.backend_pids("server.py", p).len() == 2);
    }
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    for p in h.ws[0] {
        h.wait_for(&format!("old port {p}: parent and worker gone"), S(5), || {
            h.backend_pids("server.py", p).is_empty()
        });
    }
    h.assert_live(1);
    for p in h.ws[1] {
        assert_eq!(h.backend_pids("server.py", p).len(), 2, "parent and worker on new port {p}");
    }
    // Not `stop_ok`: rolld exits before the SIGKILLed workers are gone, see
    // `exit_waits_for_killed_workers`.
    h.stop_ok_eventually(S(8));
}

/// Case 9b: Once rolld says a set is stopped (" rollout ok: "), the workers it
/// SIGKILLed are gone and their ports free. A worker that takes a while to
/// die (128 MB to free) shows it: a rollout queued behind the first one
/// finds the old ports still held by those workers and is refused.
#[test]
fn queued_rollout_is_not_refused_by_dying_workers() {
    let mut h = Harness::new("fat-worker-hup", 17);
    h.touch("fork_worker");
    h.touch("fat_worker");
    h.write_config(&server(|_| {}));
    h.start();
    h.wait_workers(0);
    h.signal(libc::SIGHUP);
    h.wait_log("the rollout to start", "rollout: spawning workset 1", S(20));
    h.signal(libc::SIGHUP);
    h.wait_for("two rollouts, or a rollback", S(30), || h.count(ROLLOUT_OK) >= 2 || h.count(ROLLED_BACK) >= 1);
    assert_eq!(h.count(ROLLED_BACK), 0, "the queued rollout was refused:\n{}", h.log_text());
    h.assert_live(0);
    h.stop_ok_eventually(S(8));
}

/// Case 9c: When rolld exits, the workers it SIGKILLed are gone and their ports
/// free (a supervisor restarting rolld at once must be able to bind them).
#[test]
fn exit_waits_for_killed_workers() {
    let mut h = Harness::new("fat-worker-exit", 19);
    h.touch("fork_worker");
    h.touch("fat_worker");
    h.write_config(&server(|_| {}));
    // The teardown of a killed worker is not always slow: try three times.
    for round in 1..=3 {
        for p in h.ws[0] {
            let _ = std::fs::remove_file(h.path(&format!("worker-{p}.ready")));
        }
        h.spawn();
        h.wait_count("live on", round, S(20));
        h.wait_workers(0);
        h.stop_ok(S(8));
    }
}

/// Case 10: A live backend that dies is restarted on its port.
#[test]
fn crashed_live_backend_is_restarted() {
    let mut h = Harness::new("crash-restart", 10);
    h.write_config(&Cfg::default());
    h.start();
    let port = h.ws[0][1];
    let pids = h.backend_pids("app.py", port);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed_at = Instant::now();
    kill(pids[0], libc::SIGKILL);
    h.wait_log("exited unexpectedly", &format!("pid {} exited unexpectedly (signal 9)", pids[0]), S(5));
    h.wait_log("restart", "restarted as pid", S(10));
    let line = h.line("restarted as pid");
    assert!(line.contains(&format!("g:{port} ")), "{line}");
    let new_pid: i32 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert_ne!(new_pid, pids[0]);
    h.wait_for(&format!("port {port} to answer again"), S(5).saturating_sub(killed_at.elapsed()), || answers(port));
    assert_eq!(h.backend_pids("app.py", port), vec![new_pid]);
    assert!(answers(h.ws[0][0]));
    assert!(h.line("exited unexpectedly").contains("restarting in 1.00s"), "{}", h.log_text());

    // A second crash waits twice as long.
    let killed_at = Instant::now();
    kill(new_pid, libc::SIGKILL);
    h.wait_log("second crash", &format!("pid {new_pid} exited unexpectedly (signal 9); restarting in 2.00s"), S(5));
    h.wait_count("restarted as pid", 2, S(10));
    h.wait_for(&format!("port {port} to answer again"), S(6).saturating_sub(killed_at.elapsed()), || answers(port));
    assert!(killed_at.elapsed() >= Duration::from_millis(1900), "restarted after {:?}", killed_at.elapsed());
    h.stop_ok(S(8));
}

/// Case 11: A storm of SIGHUPs gives one rollout, plus at most one more for the
/// signals that came during it.
#[test]
fn hup_storm_gives_at_most_two_rollouts() {
    let mut h = Harness::new("hup-storm", 11);
    h.write_config(&Cfg::default());
    h.start();
    for _ in 0..20 {
        h.signal(libc::SIGHUP);
    }
    h.wait_count(ROLLOUT_OK, 1, S(30));
    if h.log_text().contains("another rollout will follow") {
        h.wait_count(ROLLOUT_OK, 2, S(30));
    }
    std::thread::sleep(S(3));
    let n = h.count(ROLLOUT_OK);
    assert!((1..=2).contains(&n), "{n} rollouts:\n{}", h.log_text());
    std::thread::sleep(S(1));
    assert_eq!(h.count(ROLLOUT_OK), n, "settled:\n{}", h.log_text());
    let live = if n == 1 { 1 } else { 0 };
    h.assert_live(live);
    assert_eq!(h.read("lb.conf").trim(), h.ports_text(live));
    h.stop_ok(S(8));
}

/// Case 12: An invalid config at start: exit 2, every problem listed, nothing
/// started; a missing config file: exit 2.
#[test]
fn invalid_or_missing_config_at_start_exits_2() {
    let mut h = Harness::new("bad-config-start", 12);
    let good = h.yaml(&Cfg::default());
    let bad = format!(
        "{}  bogus: 1\n",
        good.replace(&format!("{}, {}]", h.ws[1][0], h.ws[1][1]), &format!("{}, 70000]", h.ws[1][0]))
    );
    std::fs::write(&h.config, bad).unwrap();
    h.spawn();
    assert_eq!(h.wait_exit(S(10)), 2);
    let log = h.log_text();
    assert!(log.contains("g.bogus: unknown key"), "{log}");
    assert!(log.contains("port 70000"), "{log}");
    assert!(log.contains("2 problem(s)"), "{log}");
    assert!(log.contains("nothing started"), "{log}");
    for p in h.ws.iter().flatten() {
        assert!(!listens(*p), "port {p}");
    }
    h.assert_nothing_left();

    h.config = h.path("missing.yml");
    h.spawn();
    assert_eq!(h.wait_exit(S(10)), 2);
    assert!(h.log_text().contains("missing.yml: cannot read"), "{}", h.log_text());
    h.assert_nothing_left();
}

/// Case 13: An invalid config on SIGHUP changes nothing; a valid one then rolls.
#[test]
fn invalid_config_on_sighup_changes_nothing() {
    let mut h = Harness::new("bad-config-hup", 13);
    let cfg = Cfg::default();
    h.write_config(&cfg);
    h.start();
    std::fs::write(&h.config, format!("{}  bogus: 1\n", h.yaml(&cfg))).unwrap();
    h.signal(libc::SIGHUP);
    h.wait_log("nothing changed", "nothing changed", S(10));
    assert!(h.log_text().contains("g.bogus: unknown key"), "{}", h.log_text());
    h.assert_live(0);
    assert_eq!(h.count("spawning workset 1"), 0);
    assert!(h.child.as_mut().unwrap().try_wait().unwrap().is_none(), "rolld stays up");

    h.write_config(&cfg);
    h.signal(libc::SIGHUP);
    h.wait_count(ROLLOUT_OK, 1, S(30));
    h.assert_live(1);
    h.stop_ok(S(8));
}

/// Case 14: A port of workset 0 already taken: rolld starts on workset 1 and
/// says who holds it. Both worksets blocked: exit 1 naming the ports.
#[test]
fn busy_port_at_start_uses_the_next_workset_or_fails() {
    let mut h = Harness::new("busy-port", 14);
    h.write_config(&Cfg::default());
    let [[a0, a1], [b0, b1]] = h.ws;
    let hold = TcpListener::bind(("127.0.0.1", a0)).unwrap();
    h.start();
    let me = std::process::id();
    assert!(h.log_text().contains(&format!("port {a0} is held by pid {me}")), "{}", h.log_text());
    assert!(h.line("live on").contains(&format!("live on {b0},{b1}")), "{}", h.log_text());
    for p in [b0, b1] {
        assert!(answers(p), "port {p}");
    }
    assert!(!listens(a1));
    drop(hold);
    h.stop_ok(S(8));

    let hold0 = TcpListener::bind(("127.0.0.1", a1)).unwrap();
    let hold1 = TcpListener::bind(("127.0.0.1", b0)).unwrap();
    std::fs::write(&h.log, "").unwrap();
    h.spawn();
    assert_eq!(h.wait_exit(S(20)), 1);
    let log = h.log_text();
    assert!(log.contains("no free workset"), "{log}");
    assert!(log.contains(&format!("port {a1} is held by")), "{log}");
    assert!(log.contains(&format!("port {b0} is held by")), "{log}");
    assert!(log.contains("rolld exiting (1)"), "{log}");
    for p in [a0, b1] {
        assert!(!listens(p), "port {p}");
    }
    h.assert_nothing_left();
    drop((hold0, hold1));
}

/// Case 15: SIGTERM while a new set is still starting stops both sets, exit 0.
#[test]
fn sigterm_during_a_rollout_stops_everything() {
    let mut h = Harness::new("term-mid-rollout", 15);
    h.write_config(&server(|_| {}));
    h.start();
    h.touch("slow");
    h.signal(libc::SIGHUP);
    h.wait_log("the rollout to start", "rollout: spawning workset 1", S(20));
    for p in h.ws[1] {
        h.wait_for(&format!("new backend for {p} running"), S(5), || !h.backend_pids("server.py", p).is_empty());
    }
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    h.stop_ok(S(5));
    assert!(t.elapsed() < S(5), "stopped in {:?}", t.elapsed());
    assert_eq!(h.count(ROLLOUT_OK), 0, "{}", h.log_text());
}

/// Case 16: `rolld check`.
#[test]
fn check_subcommand() {
    let h = Harness::new("check", 16);
    h.write_config(&Cfg::default());
    let out = Command::new(rolld_bin()).arg("check").arg(&h.config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": ok"), "{stdout}");
    let [[a0, a1], [b0, b1]] = h.ws;
    let summary = format!("g: 2 workset(s) [{a0},{a1} | {b0},{b1}], 1 check(s), 2 after_start action(s)");
    assert!(stdout.contains(&summary), "{stdout}");

    let bad = h.path("bad.yml");
    let text =
        format!("{}  bogus: 1\n", h.yaml(&Cfg::default()).replace(&format!("{b0}, {b1}]"), &format!("{b0}, 0]")));
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(rolld_bin()).arg("check").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("g.bogus: unknown key"), "{stderr}");
    assert!(stderr.contains("port 0"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    let out = Command::new(rolld_bin()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    let out = Command::new(rolld_bin()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    for p in h.ws.iter().flatten() {
        assert!(!listens(*p), "port {p}");
    }
    h.assert_nothing_left();
}

/// Case 17: A request in flight on the old set when the switch happens is
/// answered, and the old set is stopped only after it is done.
#[test]
fn drain_waits_for_requests_in_flight() {
    let mut h = Harness::new("drain", 18);
    h.write_config(&Cfg::default());
    h.start();
    let port = h.ws[0][0];
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(S(10))).unwrap();
        std::io::Write::write_all(&mut s, b"GET /slow?s=3 HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = String::new();
        let r = std::io::Read::read_to_string(&mut s, &mut buf).map(|_| buf);
        (r, now_of_day())
    });
    std::thread::sleep(Duration::from_millis(300));
    h.signal(libc::SIGHUP);
    let (answer, done_at) = slow.join().unwrap();
    let answer = answer.expect("the slow request is answered");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(&format!("slow done port {port}")), "{answer}");
    h.wait_count(ROLLOUT_OK, 1, S(20));
    let line = h.line(ROLLOUT_OK);
    let stop_began = line_time(&line).unwrap() - phase_secs(&line, "stop");
    assert!(
        stop_began + 0.05 >= done_at,
        "the old set was stopped {:.2}s before its request was answered: {line}",
        done_at - stop_began
    );
    h.assert_live(1);
    h.stop_ok(S(8));
}

/// Case 18: A first start that fails (the backends exit at once): exit 1, the
/// reason and the stderr tail in the log, nothing left.
#[test]
fn failed_first_start_exits_1() {
    let mut h = Harness::new("first-start-fails", 20);
    h.touch("crash");
    h.write_config(&server(|_| {}));
    h.spawn();
    assert_eq!(h.wait_exit(S(20)), 1);
    let line = h.line("start failed: ");
    assert!(line.contains("exit 3"), "{line}");
    assert!(h.lines("  | ").iter().any(|l| l.contains("boom")), "{}", h.log_text());
    assert!(h.log_text().contains("rolld exiting (1)"), "{}", h.log_text());
    for p in h.ws.iter().flatten() {
        assert!(!listens(*p), "port {p}");
    }
    h.assert_nothing_left();
}

/// Case 19: SIGINT stops everything like SIGTERM.
#[test]
fn sigint_stops_everything() {
    let mut h = Harness::new("sigint", 21);
    h.write_config(&Cfg::default());
    h.start();
    h.assert_live(0);
    h.signal(libc::SIGINT);
    assert_eq!(h.wait_exit(S(8)), 0);
    assert!(h.log_text().contains("SIGINT: stopping every set"), "{}", h.log_text());
    for p in h.ws.iter().flatten() {
        assert!(!listens(*p), "port {p}");
    }
    h.assert_nothing_left();
}

/// A proxy in rolld's environment (`HTTP_PROXY`, set for a service's
/// outgoing traffic) does not carry its smoke checks: they go straight to
/// the backends on this host.
#[test]
fn smoke_checks_ignore_a_proxy_in_the_environment() {
    let mut h = Harness::new("no-proxy", 91);
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        h.env.push((var.into(), "http://127.0.0.1:9".into()));
    }
    h.write_config(&server(|c| c.start_timeout = 5.0));
    h.start();
    h.assert_live(0);
    h.stop_ok(S(8));
}
