//! One daemon per config, and how clients find it and report on it, run
//! for real: many rollds started at once on one config, the default run
//! directory under XDG_RUNTIME_DIR, a `current` symlink flipped between
//! releases, and the exit codes of a daemon that is slow to answer (3) or
//! stopped in the middle of a rollout (4).

mod common;

use common::*;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const ANOTHER: &str = "another rolld already runs this config";

/// Waits for `child` to exit within `deadline`; SIGKILLs it and panics on
/// expiry.
fn wait_child(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= end {
            kill(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
            panic!("{what}: still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished client: exit code, stdout and stderr.
struct Ran {
    code: i32,
    out: String,
    err: String,
    took: Duration,
}

/// Runs `rolld ARGS` in `cwd` with a deadline, its output in files there.
fn run_client(cwd: &Path, args: &[&str], env: &[(&str, &Path)], wrapper: &[&str], deadline: Duration) -> Ran {
    let tag = format!("client-{}", std::process::id());
    let (out_path, err_path) = (cwd.join(format!("{tag}.out")), cwd.join(format!("{tag}.err")));
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(rolld_bin());
            c
        }
        None => Command::new(rolld_bin()),
    };
    cmd.args(args).current_dir(cwd).env_remove("XDG_RUNTIME_DIR").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let mut child =
        cmd.stdout(File::create(&out_path).unwrap()).stderr(File::create(&err_path).unwrap()).spawn().unwrap();
    let status = wait_child(&mut child, deadline, &format!("rolld {args:?}"));
    let took = t.elapsed();
    let ran = Ran {
        code: status.code().unwrap_or_else(|| panic!("rolld {args:?} died of {status:?}")),
        out: std::fs::read_to_string(&out_path).unwrap(),
        err: std::fs::read_to_string(&err_path).unwrap(),
        took,
    };
    eprintln!("rolld {args:?}: exit {} in {:?}\n--- stdout\n{}--- stderr\n{}", ran.code, took, ran.out, ran.err);
    ran
}

/// `rolld ARGS CONFIG --run-dir RUN` against the harness's daemon.
fn client(h: &Harness, args: &[&str], deadline: Duration) -> Ran {
    let (config, run) = (h.config.to_str().unwrap().to_string(), h.path("run"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend([config.as_str(), "--run-dir", run.to_str().unwrap()]);
    run_client(&h.dir, &all, &[], &[], deadline)
}

fn server_cfg() -> Cfg {
    Cfg { script: "server.py", ..Cfg::default() }
}

// ---------------------------------------------------------------- point 9

/// Ten rollds started at once on one config, eight times over (a race
/// between two of them is not hit every time): each time
/// exactly one runs, and the nine others exit 1 at once, naming the config,
/// having started nothing. Then the survivor is SIGKILLed: its socket is
/// left behind, and the next rolld replaces it and takes over.
#[test]
fn of_many_rollds_started_at_once_on_one_config_exactly_one_runs() {
    const N: usize = 10;
    const ROUNDS: usize = 8;
    let mut h = Harness::new("cli-one-daemon", 30);
    h.write_config(&server_cfg());
    let run = h.path("run");
    let config = h.config.display().to_string();
    for round in 0..ROUNDS {
        let mut kids = Kids(Vec::new());
        let errs: Vec<PathBuf> = (0..N).map(|i| h.path(&format!("round{round}-{i}.err"))).collect();
        for err in &errs {
            let child = Command::new(rolld_bin())
                .arg("--run-dir")
                .arg(&run)
                .arg(&h.config)
                .current_dir(&h.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(err).unwrap())
                .spawn()
                .unwrap();
            kids.0.push(child);
        }
        // Nine exit; the tenth goes on.
        let mut exited: Vec<Option<ExitStatus>> = vec![None; N];
        let what = format!("round {round}: {} of {N} rollds to exit", N - 1);
        wait_for(&what, Duration::from_secs(30), &errs[0], || {
            for (k, e) in kids.0.iter_mut().zip(&mut exited) {
                if e.is_none() {
                    *e = k.try_wait().unwrap();
                }
            }
            exited.iter().filter(|e| e.is_some()).count() >= N - 1
        });
        let survivors: Vec<usize> = (0..N).filter(|&i| exited[i].is_none()).collect();
        assert_eq!(survivors.len(), 1, "round {round}: exactly one rolld runs: {exited:?}");
        let s = survivors[0];
        for i in (0..N).filter(|&i| i != s) {
            let text = std::fs::read_to_string(&errs[i]).unwrap();
            assert_eq!(exited[i].unwrap().code(), Some(1), "round {round}, rolld {i}:\n{text}");
            assert!(text.contains(ANOTHER) && text.contains(&config), "round {round}, rolld {i}:\n{text}");
            assert!(text.contains("nothing started"), "{text}");
            assert!(!text.contains(&format!("running {config}")), "a refused rolld got as far as running:\n{text}");
        }
        wait_for(&format!("round {round}: the survivor live"), Duration::from_secs(20), &errs[s], || {
            std::fs::read_to_string(&errs[s]).unwrap().contains(" live on ")
        });
        h.assert_live(0);
        // Still exactly one, once everything has settled.
        assert!(kids.0[s].try_wait().unwrap().is_none(), "the survivor still runs");
        let mut survivor = kids.0.remove(s);
        if round + 1 < ROUNDS {
            kill(survivor.id() as i32, libc::SIGTERM);
            let st = wait_child(&mut survivor, Duration::from_secs(15), "the survivor after SIGTERM");
            assert_eq!(st.code(), Some(0), "{}", std::fs::read_to_string(&errs[s]).unwrap());
            h.assert_nothing_left();
        } else {
            // SIGKILL: the socket stays, stale; the lock goes with the process.
            kill(survivor.id() as i32, libc::SIGKILL);
            let _ = survivor.wait();
        }
    }
    let socks: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    assert_eq!(socks.len(), 1, "the killed daemon's socket is left: {socks:?}");
    assert!(socks[0].with_extension("lock").exists(), "and its lock file");
    let stale = client(&h, &["status"], Duration::from_secs(15));
    assert_eq!(stale.code, 2, "a stale socket is no daemon");
    assert!(stale.err.contains("stale"), "{}", stale.err);
    h.spawn();
    h.wait_log("the next rolld takes over", "took over the live set", Duration::from_secs(15));
    h.wait_count(" rollout ok: ", 1, Duration::from_secs(20));
    let st = client(&h, &["status"], Duration::from_secs(15));
    assert_eq!(st.code, 0, "the replaced socket answers");
    h.stop_ok_eventually(Duration::from_secs(15));
}

// ---------------------------------------------------------------- point 10

/// Without --run-dir, a daemon and its clients agree on
/// `$XDG_RUNTIME_DIR/rolld` (here inside the test's dir, and for a user
/// other than root, since root always uses /run/rolld).
#[test]
fn without_run_dir_clients_find_their_daemon_under_xdg_runtime_dir() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = unsafe { libc::geteuid() } == 0;
    let as_nobody: &[&str] = &["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    if root && Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("SKIP: as root, needs setpriv to run rolld as a user other than root");
        return;
    }
    let wrapper: &[&str] = if root { as_nobody } else { &[] };
    let mut h = Harness::new("cli-xdg", 31);
    h.write_config(&server_cfg());
    let (xdg, other) = (h.path("xdg"), h.path("xdg-other"));
    let uid = if root {
        std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, "nobody"]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        for d in [&xdg, &other] {
            std::fs::create_dir(d).unwrap();
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        uid
    } else {
        std::fs::create_dir(&xdg).unwrap();
        std::fs::create_dir(&other).unwrap();
        unsafe { libc::geteuid() }
    };
    for d in [&xdg, &other] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let log = File::create(&h.log).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(rolld_bin());
            c
        }
        None => Command::new(rolld_bin()),
    };
    let child = cmd
        .arg(&h.config)
        .env("XDG_RUNTIME_DIR", &xdg)
        .current_dir(&h.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    h.child = Some(child);
    h.wait_log("first start", " live on ", Duration::from_secs(20));
    let run = xdg.join("rolld");
    let meta = std::fs::symlink_metadata(&run).expect("the run directory is under XDG_RUNTIME_DIR");
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
    let names: Vec<String> =
        std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".sock")) && names.iter().any(|n| n.ends_with(".lock")), "{names:?}");
    let config = h.config.to_str().unwrap();
    let st = run_client(&h.dir, &["status", config], &[("XDG_RUNTIME_DIR", &xdg)], wrapper, Duration::from_secs(15));
    assert_eq!(st.code, 0, "{}", st.err);
    assert!(st.out.contains("GROUP") && st.out.contains(&h.ws[0][0].to_string()), "{}", st.out);
    let r = run_client(
        &h.dir,
        &["reload", "--wait", config],
        &[("XDG_RUNTIME_DIR", &xdg)],
        wrapper,
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 0, "{}", r.err);
    h.assert_live(1);
    // A client whose XDG_RUNTIME_DIR differs looks elsewhere: no daemon.
    let st = run_client(&h.dir, &["status", config], &[("XDG_RUNTIME_DIR", &other)], wrapper, Duration::from_secs(15));
    assert_eq!(st.code, 2, "{}", st.err);
    assert!(st.err.contains("no rolld is running") && st.err.contains(&other.display().to_string()), "{}", st.err);
    h.stop_ok(Duration::from_secs(15));
}

// ---------------------------------------------------------------- point 11

/// A release's backend: GET / -> 200 "MARK port N". Extra arguments are
/// ignored (the tests put the test dir there, so the cleanup finds it).
const RELEASE_APP: &str = r#"import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port = int(sys.argv[1])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = ("MARK port %d\n" % port).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever(poll_interval=0.05)
"#;

fn answers_as(port: u16, mark: &str) -> bool {
    matches!(http_get(port), Some((200, body)) if body.trim() == format!("{mark} port {port}"))
}

/// `current -> releases/r1`, rolld started on `current/rolld.yml` (a
/// relative path); `current` flipped to r2 by rename, then SIGHUP: r2's
/// config is read, its backend runs from r2, its template is rendered into
/// r2. Clients given `current/rolld.yml`, spelt three ways, reach the daemon.
#[test]
fn a_symlink_flip_is_followed_by_sighup_and_by_clients() {
    let mut h = Harness::new("cli-flip", 32);
    let d = h.dir.display().to_string();
    let [[a0, a1], [b0, b1]] = h.ws;
    for r in ["r1", "r2"] {
        let rel = h.path(&format!("releases/{r}"));
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join("app.py"), RELEASE_APP.replace("MARK", r)).unwrap();
        std::fs::write(rel.join("lb.templ"), format!("{r} {{{{ ports|join(' ') }}}}\n")).unwrap();
        // Relative paths only: the program's script (from `directory`, by
        // default the config's), the template and the output.
        let yaml = format!(
            "g:
  cmd: '{py} app.py {{numproc}} {d}/'
  workset:
    - numprocs: [{a0}, {a1}]
    - numprocs: [{b0}, {b1}]
  smoke_test:
    - check_all_http_ports: numprocs
  stop_timeout: 2
  drain_quiet: 0.2
  after_start:
    - replace_file: [numprocs, 'lb.templ', 'lb.conf']
",
            py = python()
        );
        std::fs::write(rel.join("rolld.yml"), yaml).unwrap();
    }
    std::os::unix::fs::symlink("releases/r1", h.path("current")).unwrap();
    h.config = PathBuf::from("current/rolld.yml");
    h.start();
    for p in h.ws[0] {
        h.wait_for(&format!("port {p} answers as r1"), Duration::from_secs(5), || answers_as(p, "r1"));
    }
    assert_eq!(h.read("releases/r1/lb.conf").trim_end(), format!("r1 {a0} {a1}"));
    // The flip, as `ln -sfn` does it: a new link renamed over the old one.
    std::os::unix::fs::symlink("releases/r2", h.path("current.new")).unwrap();
    std::fs::rename(h.path("current.new"), h.path("current")).unwrap();
    h.signal(libc::SIGHUP);
    h.wait_count(" rollout ok: ", 1, Duration::from_secs(30));
    for p in h.ws[1] {
        h.wait_for(&format!("port {p} answers as r2"), Duration::from_secs(5), || answers_as(p, "r2"));
    }
    assert_eq!(
        h.read("releases/r2/lb.conf").trim_end(),
        format!("r2 {b0} {b1}"),
        "the template of r2, rendered into r2"
    );
    assert_eq!(h.read("releases/r1/lb.conf").trim_end(), format!("r1 {a0} {a1}"), "r1 untouched");
    let run = h.path("run");
    let run = run.to_str().unwrap();
    let r = run_client(
        &h.dir,
        &["reload", "current/rolld.yml", "--wait", "--run-dir", run],
        &[],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    for p in h.ws[0] {
        h.wait_for(&format!("port {p} answers as r2"), Duration::from_secs(5), || answers_as(p, "r2"));
    }
    let abs = format!("{d}/current/rolld.yml");
    for spelt in ["./current/rolld.yml", abs.as_str(), "releases/../current/rolld.yml"] {
        let st = run_client(&h.dir, &["status", spelt, "--run-dir", run], &[], &[], Duration::from_secs(15));
        assert_eq!(st.code, 0, "status {spelt}: {}", st.err);
    }
    // The resolved path names another config: not this daemon's.
    let st =
        run_client(&h.dir, &["status", "releases/r2/rolld.yml", "--run-dir", run], &[], &[], Duration::from_secs(15));
    assert_eq!(st.code, 2, "{}", st.err);
    h.stop_ok(Duration::from_secs(15));
}

// ---------------------------------------------------------------- point 15

/// A daemon that cannot answer (SIGSTOP) is not "no daemon": status and
/// reload exit 3 at their timeout, saying so; once it runs again, they
/// work.
#[test]
fn a_daemon_that_does_not_answer_is_exit_3_not_no_daemon() {
    let mut h = Harness::new("cli-slow", 33);
    h.write_config(&server_cfg());
    h.start();
    h.signal(libc::SIGSTOP);
    let st = client(&h, &["status", "--timeout", "1"], Duration::from_secs(10));
    assert_eq!(st.code, 3, "{}", st.err);
    assert!(st.err.contains("did not answer within 1s") && st.err.contains("rolld.yml"), "{}", st.err);
    assert!(st.took >= Duration::from_millis(900) && st.took < Duration::from_secs(5), "{:?}", st.took);
    // The default time limit.
    let st = client(&h, &["status", "--json"], Duration::from_secs(30));
    assert_eq!(st.code, 3, "{}", st.err);
    assert!(st.err.contains("did not answer within 10s"), "{}", st.err);
    assert!(st.took >= Duration::from_millis(9500) && st.took < Duration::from_secs(15), "{:?}", st.took);
    // A reload that is not even queued says so, not "the rollout goes on".
    let r = client(&h, &["reload", "--wait", "--timeout", "1"], Duration::from_secs(10));
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(r.err.contains("did not answer within 1s") && !r.err.contains("goes on"), "{}", r.err);
    h.signal(libc::SIGCONT);
    let st = client(&h, &["status"], Duration::from_secs(15));
    assert_eq!(st.code, 0, "{}", st.err);
    assert!(st.out.contains("GROUP"), "{}", st.out);
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(15)), 0);
    h.assert_nothing_left();
}

/// Starts `rolld reload --wait` on the harness's config in the background
/// and waits until the daemon has queued it.
fn follow_reload(h: &Harness, kids: &mut Kids) -> (PathBuf, PathBuf) {
    let (out, err) = (h.path("follow.out"), h.path("follow.err"));
    let child = Command::new(rolld_bin())
        .args(["reload", "--wait"])
        .arg(&h.config)
        .arg("--run-dir")
        .arg(h.path("run"))
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    kids.0.push(child);
    h.wait_for("the reload queued", Duration::from_secs(10), || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("rollout requested; waiting")
    });
    (out, err)
}

/// SIGTERM while `reload --wait` follows a slow rollout: the client exits
/// 4 ("stopped before the rollout ended"), not 1 ("rolled back").
#[test]
fn reload_wait_exits_4_when_rolld_is_stopped_during_the_rollout() {
    let mut h = Harness::new("cli-stopped", 34);
    h.write_config(&server_cfg());
    h.start();
    h.touch("slow"); // the new set listens only after 3 s
    let mut kids = Kids(Vec::new());
    let (_, err) = follow_reload(&h, &mut kids);
    h.signal(libc::SIGTERM);
    let st = wait_child(&mut kids.0[0], Duration::from_secs(15), "reload --wait after SIGTERM");
    let text = std::fs::read_to_string(&err).unwrap();
    assert_eq!(st.code(), Some(4), "{text}");
    assert!(text.contains("was stopped before the rollout ended") && text.contains("rolld.yml"), "{text}");
    assert!(h.count(" rollout ok: ") + h.count(" rolled back: ") == 0, "the rollout did not end:\n{}", h.log_text());
    assert_eq!(h.wait_exit(Duration::from_secs(15)), 0);
    h.assert_nothing_left();
}

/// A daemon killed outright while `reload --wait` follows its rollout: the
/// connection ends with no outcome, which is 4 too, not 1.
#[test]
fn reload_wait_exits_4_when_rolld_dies_during_the_rollout() {
    let mut h = Harness::new("cli-died", 35);
    h.write_config(&server_cfg());
    h.start();
    h.touch("slow");
    let mut kids = Kids(Vec::new());
    let (_, err) = follow_reload(&h, &mut kids);
    h.signal(libc::SIGKILL);
    let st = wait_child(&mut kids.0[0], Duration::from_secs(15), "reload --wait after SIGKILL");
    let text = std::fs::read_to_string(&err).unwrap();
    assert_eq!(st.code(), Some(4), "{text}");
    assert!(text.contains("closed the connection before the rollout ended"), "{text}");
    h.wait_exit_any(Duration::from_secs(5));
}
