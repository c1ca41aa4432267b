//! The deploy-script interface, run for real: `rolld reload --wait` and its
//! exit codes, `rolld status`, how clients find their daemon, sd_notify,
//! rolld as PID 1, a takeover after rolld is SIGKILLed, and log rotation.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn server(extra: impl FnOnce(&mut Cfg)) -> Cfg {
    let mut c = Cfg { script: "server.py", ..Cfg::default() };
    extra(&mut c);
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("client exited normally")
}

#[test]
fn reload_wait_reports_each_phase_and_exits_0_when_live() {
    let mut h = Harness::new("cmd-reload-ok", 40);
    h.write_config(&server(|_| {}));
    h.start();
    let o = client(&h, &["reload", "--wait"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = text(&o);
    for phase in ["g spawn ", "g ready ", "g after_start ", "g drain ", "g stop ", "rollout ok: "] {
        assert!(out.contains(phase), "no {phase:?} in:\n{out}");
    }
    h.assert_live(1);
    // Without --wait: queued and exit 0 at once; the rollout follows.
    let o = client(&h, &["reload"]);
    assert_eq!(code(&o), 0);
    h.wait_count(" rollout ok: ", 2, Duration::from_secs(20));
    h.assert_live(0);
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(10)), 0);
    h.assert_nothing_left();
}

#[test]
fn reload_wait_exits_1_on_rollback_with_the_reason_and_stderr() {
    let mut h = Harness::new("cmd-reload-rollback", 41);
    h.write_config(&server(|_| {}));
    h.start();
    h.touch("crash");
    let o = client(&h, &["reload", "--wait"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let out = text(&o);
    let port = h.ws[1][0].min(h.ws[1][1]);
    assert!(out.contains("g rollout rolled back: "), "{out}");
    assert!(out.contains("exit 3"), "the exit status is given: {out}");
    assert!(out.contains("boom"), "the backend's stderr is given: {out}");
    assert!(out.contains(&format!("{}", h.ws[1][0])) || out.contains(&format!("{port}")), "{out}");
    h.assert_live(0);
    h.remove("crash");
    assert_eq!(code(&client(&h, &["reload", "--wait"])), 0);
    h.assert_live(1);
}

#[test]
fn reload_exits_2_on_invalid_config_or_without_daemon() {
    let mut h = Harness::new("cmd-reload-invalid", 42);
    h.write_config(&server(|_| {}));
    let o = client(&h, &["reload", "--wait"]);
    assert_eq!(code(&o), 2, "no daemon yet");
    assert!(text(&o).contains("no rolld is running"), "{}", text(&o));
    h.start();
    let good = h.yaml(&server(|_| {}));
    std::fs::write(&h.config, format!("{good}  bogus_key: 1\n")).unwrap();
    let o = client(&h, &["reload", "--wait"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("g.bogus_key: unknown key"), "{}", text(&o));
    h.assert_live(0);
    // Usage errors are 2 as well.
    let o = Command::new(rolld_bin()).args(["reload"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(rolld_bin()).args(["reload", "x.yml", "--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    // A daemon killed outright leaves a stale socket: detected, not trusted.
    h.signal(libc::SIGKILL);
    h.wait_exit_any(Duration::from_secs(5));
    let o = client(&h, &["reload", "--wait"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("stale"), "{}", text(&o));
    let o = client(&h, &["status"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn reload_timeout_exits_3_and_the_rollout_goes_on() {
    let mut h = Harness::new("cmd-reload-timeout", 43);
    h.write_config(&server(|_| {}));
    h.start();
    h.touch("slow"); // the new set listens only after 3 s
    let t = Instant::now();
    let o = client(&h, &["reload", "--wait", "--timeout", "0.5"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(3), "returned at its timeout, took {:?}", t.elapsed());
    h.wait_count(" rollout ok: ", 1, Duration::from_secs(20));
    h.assert_live(1);
}

#[test]
fn status_shows_live_set_pids_restarts_and_last_rollout() {
    let mut h = Harness::new("cmd-status", 44);
    h.write_config(&server(|_| {}));
    h.start();
    assert_eq!(code(&client(&h, &["reload", "--wait"])), 0);
    let pid = h.backend_pids("server.py", h.ws[1][0])[0];
    kill(pid, libc::SIGKILL);
    h.wait_log("restart", "restarted as pid", Duration::from_secs(10));
    let o = client(&h, &["status"]);
    assert_eq!(code(&o), 0);
    let out = text(&o);
    assert!(out.contains("GROUP") && out.contains("RESTARTS"), "{out}");
    let row = out.lines().find(|l| l.contains(&format!(" {} ", h.ws[1][0]))).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(" idle ") && row.trim_end().ends_with(" 1"), "one restart: {row}");
    assert!(out.contains("last: ") && out.contains("rollout ok"), "{out}");
    let o = client(&h, &["status", "--json"]);
    assert_eq!(code(&o), 0);
    let json = String::from_utf8_lossy(&o.stdout).to_string();
    for want in [
        "\"version\":2".to_string(),
        "\"name\":\"g\"".to_string(),
        "\"phase\":\"idle\"".to_string(),
        format!("\"workset\":1,\"ports\":[{},{}]", h.ws[1][0], h.ws[1][1]),
        "\"restarts\":1".to_string(),
        "\"outcome\":\"ok\"".to_string(),
        "\"rollout\":null".to_string(),
        "\"drain\":null".to_string(),
        "\"slot\":0,\"workset\":1,\"rollout\":2".to_string(),
    ] {
        assert!(json.contains(&want), "no {want} in {json}");
    }
}

#[test]
fn clients_never_confuse_two_daemons_and_one_config_runs_once() {
    let mut a = Harness::new("cmd-two-a", 45);
    let mut b = Harness::new("cmd-two-b", 46);
    a.write_config(&server(|_| {}));
    b.write_config(&server(|_| {}));
    // Both in one run dir: the socket name comes from the config's path.
    let shared = a.path("run");
    let _ = std::fs::create_dir_all(&shared);
    b.run_dir = Some(shared.clone());
    a.start();
    b.start();
    let o =
        Command::new(rolld_bin()).args(["reload", "--wait", "--run-dir"]).arg(&shared).arg(&a.config).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    a.assert_live(1);
    b.assert_live(0);
    assert_eq!(b.count(" rollout ok: "), 0);
    // A second daemon on the same config is refused.
    let o = Command::new(rolld_bin()).arg("--run-dir").arg(&shared).arg(&a.config).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another rolld already runs this config"));
    a.assert_live(1);
}

/// sd_notify: READY=1 with STATUS once live, RELOADING=1 with
/// MONOTONIC_USEC at a rollout's start, READY=1 at its end, STOPPING=1.
#[test]
fn sd_notify_messages() {
    let mut h = Harness::new("cmd-notify", 47);
    h.write_config(&server(|_| {}));
    let sock_path = h.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    h.env.push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    h.spawn();
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notify message in time");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&format!("STATUS=live: g on {},{}", h.ws[0][0], h.ws[0][1])), "{ready}");
    assert!(h.log_text().contains(" live on "), "READY=1 only once the set is live");
    h.signal(libc::SIGHUP);
    let reloading = next();
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    let usec: u64 = reloading.rsplit('=').next().unwrap().trim().parse().unwrap();
    assert!(usec > 0);
    let ready = next();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&format!("g on {},{}", h.ws[1][0], h.ws[1][1])), "{ready}");
    assert!(h.log_text().contains(" rollout ok: "), "READY=1 only once the rollout has ended");
    h.signal(libc::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    assert_eq!(h.wait_exit(Duration::from_secs(10)), 0);
}

/// A backend that also forks a short-lived grandchild which it never
/// waits for: an orphan whose zombie only PID 1 (or a subreaper) reaps.
const ORPHANER_PY: &str = r#"import os, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.3)
        os._exit(0)
    os._exit(0)
os.wait()
here = os.path.dirname(os.path.abspath(__file__))
os.execv(sys.executable, [sys.executable, os.path.join(here, "app.py"), sys.argv[1]])
"#;

fn children_of(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let f: Vec<&str> = rest.split(' ').collect();
        if f.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
            let me = e.file_name().to_string_lossy().parse().unwrap_or(0);
            out.push((me, f[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// As PID 1 of a pid namespace (a container's init): orphans are reaped,
/// SIGTERM works although PID 1 has no default signal actions, and no
/// zombie is left.
#[test]
fn as_pid_1_reaps_orphans_and_stops_on_sigterm() {
    if Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).status().map_or(true, |s| !s.success())
    {
        eprintln!("SKIP: unshare --pid is not permitted here");
        return;
    }
    let mut h = Harness::new("cmd-pid1", 48);
    h.write("orphaner.py", ORPHANER_PY);
    h.write_config(&Cfg { script: "orphaner.py", after_start: false, ..Cfg::default() });
    h.wrapper = ["unshare", "--pid", "--fork", "--mount-proc"].map(String::from).to_vec();
    h.start();
    let unshare = h.pid();
    let rolld = children_of(unshare).first().map(|c| c.0).expect("rolld under unshare");
    let status = std::fs::read_to_string(format!("/proc/{rolld}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.trim_end().ends_with("\t1"), "rolld is PID 1 in its namespace: {nspid}");
    // The grandchildren exit after 0.3 s as orphans of rolld; their zombies
    // must be reaped.
    std::thread::sleep(Duration::from_millis(600));
    h.wait_for("no zombie under rolld", Duration::from_secs(5), || children_of(rolld).iter().all(|c| c.1 != 'Z'));
    h.assert_live(0);
    kill(rolld, libc::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(10)), 0, "unshare passes on rolld's exit code");
    assert!(h.log_text().contains("rolld exiting (0)"));
    h.assert_nothing_left();
}

/// rolld SIGKILLed: its backends keep serving; a new rolld on the same
/// config takes them over from the state file, rolls to the free workset,
/// then drains and stops them.
#[test]
fn a_new_rolld_takes_over_after_rolld_is_killed() {
    let mut h = Harness::new("cmd-takeover", 49);
    h.write_config(&server(|_| {}));
    h.start();
    let old: Vec<i32> = h.ws[0].iter().flat_map(|&p| h.backend_pids("server.py", p)).collect();
    assert_eq!(old.len(), 2);
    h.signal(libc::SIGKILL);
    h.wait_exit_any(Duration::from_secs(5));
    for p in h.ws[0] {
        assert!(answers(p), "port {p} still serves after rolld died");
    }
    h.spawn();
    h.wait_log("takeover", "took over the live set", Duration::from_secs(10));
    h.wait_count(" rollout ok: ", 1, Duration::from_secs(20));
    h.assert_live(1);
    for pid in old {
        h.wait_for(&format!("old pid {pid} gone"), Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
    }
    assert!(h.read("lb.conf").contains(&h.ports_text(1)), "the LB points at the new set");
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(10)), 0);
    h.assert_nothing_left();
}

/// A backend that writes numbered lines to stdout every few ms, and a
/// last line when told to stop; one write(2) per line, so the lines of
/// two processes appending to one file never interleave.
const TICKER_PY: &str = r#"import os, signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port = int(sys.argv[1])
n = 0
lock = threading.Lock()
def tick():
    global n
    while True:
        with lock:
            os.write(1, b"%d %d\n" % (port, n))
            n += 1
        time.sleep(0.002)
threading.Thread(target=tick, daemon=True).start()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
def stop(*_):
    with lock:
        os.write(1, b"%d final %d\n" % (port, n))
        os._exit(0)
signal.signal(signal.SIGTERM, stop)
srv.serve_forever(poll_interval=0.05)
"#;

/// Rotation by rename (logrotate's default `create`), then a rollout: the
/// old processes finish in the renamed files, the new ones open new files.
/// Every numbered line is in one file or the other: nothing is lost.
#[test]
fn log_rotation_by_rename_and_reload_loses_no_line() {
    let mut h = Harness::new("cmd-logrotate", 50);
    h.write("ticker.py", TICKER_PY);
    h.write_config(&Cfg { script: "ticker.py", extra: "stdout: 'logs/app.log'", ..Cfg::default() });
    h.start();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(h.path("logs/app.log"), h.path("logs/app.log.1")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(code(&client(&h, &["reload", "--wait"])), 0);
    let rotated = h.read("logs/app.log.1");
    let fresh = h.read("logs/app.log");
    for p in h.ws[0] {
        let mine: Vec<&str> = rotated.lines().filter(|l| l.starts_with(&format!("{p} "))).collect();
        let last = mine.last().unwrap_or_else(|| panic!("no line of {p} in the rotated file"));
        let total: usize = last.strip_prefix(&format!("{p} final ")).expect("the final line is there").parse().unwrap();
        assert!(total > 50, "port {p} wrote {total} lines");
        for i in 0..total {
            assert!(
                mine.contains(&format!("{p} {i}").as_str()),
                "line {i} of port {p} lost:\n{}",
                mine.iter().skip(i.saturating_sub(3)).take(6).copied().collect::<Vec<_>>().join("\n")
            );
        }
        assert!(!fresh.contains(&format!("{p} ")), "the old set never writes to the new file");
    }
    for p in h.ws[1] {
        assert!(fresh.contains(&format!("{p} 0\n")), "the new set writes to the new file");
    }
}

/// Writes the descriptors it has open above 2 to fds-PORT.txt (fstat on
/// each number, so that looking opens nothing), then runs the example app.
const FDLIST_PY: &str = r#"import os, sys
here = os.path.dirname(os.path.abspath(__file__))
open_fds = []
for fd in range(3, 256):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
with open(os.path.join(here, "fds-%s.txt" % sys.argv[1]), "w") as f:
    f.write(" ".join(map(str, open_fds)))
os.execv(sys.executable, [sys.executable, os.path.join(here, "app.py"), sys.argv[1]])
"#;

/// No descriptor of rolld's reaches a backend or a run_proc command: not
/// its own (signal pipe, control socket, log files), and not one rolld
/// itself inherited without close-on-exec (7 and 9 here).
#[test]
fn children_inherit_no_descriptor_beyond_0_1_2() {
    let mut h = Harness::new("cmd-fds", 51);
    h.write("fdlist.py", FDLIST_PY);
    let run_proc = format!("run_proc: '{} {}/fdlist.py runproc || true'", python(), h.dir.display());
    let extra: &'static str = Box::leak(format!("after_start:\n  - {run_proc}").into_boxed_str());
    h.write_config(&Cfg { script: "fdlist.py", after_start: false, extra, ..Cfg::default() });
    h.wrapper = ["bash", "-c", "exec 7>/dev/null 9</dev/null; exec \"$0\" \"$@\""].map(String::from).to_vec();
    h.start();
    for p in h.ws[0] {
        assert_eq!(h.read(&format!("fds-{p}.txt")), "", "backend {p} has descriptors beyond 0, 1, 2");
    }
    assert_eq!(h.read("fds-runproc.txt"), "", "run_proc has descriptors beyond 0, 1, 2");
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(10)), 0);
}

/// Prints its uid, gid and groups to stdout, then runs the example app.
const WHOAMI_PY: &str = r#"import os, sys
print("uid=%d gid=%d groups=%s" % (os.getuid(), os.getgid(), sorted(os.getgroups())), flush=True)
here = os.path.dirname(os.path.abspath(__file__))
os.execv(sys.executable, [sys.executable, os.path.join(here, "app.py"), sys.argv[1]])
"#;

fn id_of(args: &[&str]) -> String {
    String::from_utf8(Command::new("id").args(args).output().unwrap().stdout).unwrap().trim().to_string()
}

/// As root, `user:` runs the backends as that user, with its group and
/// supplementary groups, never as root.
#[test]
fn backends_run_as_the_configured_user() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut h = Harness::new("cmd-user", 52);
    h.write("whoami.py", WHOAMI_PY);
    // The backends' files are opened as their user: their directory is
    // that user's (rolld, as root, creates nothing for it).
    let (uid, gid) = (id_of(&["-u", "nobody"]), id_of(&["-g", "nobody"]));
    std::fs::create_dir(h.path("logs")).unwrap();
    std::os::unix::fs::chown(h.path("logs"), uid.parse().ok(), gid.parse().ok()).unwrap();
    h.write_config(&Cfg {
        script: "whoami.py",
        after_start: false,
        extra: "user: nobody\nstdout: 'logs/{numproc}.out'",
        ..Cfg::default()
    });
    h.start();
    for p in h.ws[0] {
        let out = h.read(&format!("logs/{p}.out"));
        assert!(out.starts_with(&format!("uid={uid} gid={gid} groups=[")), "backend {p}: {out}");
        assert!(!out.contains("groups=[0") && !out.contains(", 0]"), "no root group kept: {out}");
    }
}

/// rolld run by an unprivileged user: its run directory, socket and state
/// file are its own, and `rolld reload --wait` of the same user works.
#[test]
fn an_unprivileged_user_runs_and_controls_rolld() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("SKIP: needs root and setpriv to become another user");
        return;
    }
    let mut h = Harness::new("cmd-unprivileged", 53);
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    h.write_config(&server(|_| {}));
    let as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    h.wrapper = as_nobody.map(String::from).to_vec();
    h.start();
    let run = h.path("run");
    let meta = std::fs::metadata(&run).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta).to_string(), id_of(&["-u", "nobody"]));
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o700);
    let o = Command::new(as_nobody[0])
        .args(&as_nobody[1..])
        .arg(rolld_bin())
        .args(["reload", "--wait", "--run-dir"])
        .arg(&run)
        .arg(&h.config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    h.assert_live(1);
}
