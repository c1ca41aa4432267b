//! Harness for the integration tests: a temp dir per test, the real rolld
//! binary with its stderr in a log file, real python3 backends, and a guard
//! that leaves nothing running whatever happens.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example backend: GET / -> 200 "port N".
pub const APP_PY: &str = include_str!("../../example/app.py");

/// A backend whose behaviour is chosen at start by flag files in its
/// directory, so an old set keeps behaving while a new one misbehaves:
///   crash        print "boom" on stderr and exit 3 at once
///   never        never listen
///   slow         sleep 3 s before listening
///   bad          answer 500 to everything
///   ignore_term  ignore SIGTERM
///   fork_worker  fork a worker (same process group, holding the listening
///                socket) that ignores SIGTERM and never exits by itself
///   fat_worker   with fork_worker: the worker holds 128 MB, so that after
///                a SIGKILL it takes a while (often 1 s under gVisor) to
///                die and release the port
/// A worker creates worker-PORT.ready once set up.
pub const SERVER_PY: &str = r#"import os, signal, sys, time, socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
def flag(name):
    return os.path.exists(os.path.join(here, name))

port = int(sys.argv[1])
if flag("crash"):
    sys.stderr.write("boom\n")
    sys.stderr.flush()
    sys.exit(3)
if flag("never"):
    while True:
        time.sleep(60)
if flag("slow"):
    time.sleep(3)
status = 500 if flag("bad") else 200
if flag("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = ("port %d\n" % port).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = port

srv = S(("127.0.0.1", port), H)
if flag("fork_worker"):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ballast = b"x" * (128 << 20) if flag("fat_worker") else b""
        open(os.path.join(here, "worker-%d.ready" % port), "w").close()
        while True:
            time.sleep(60)
srv.serve_forever(poll_interval=0.05)
"#;

/// The run_proc action: writes $ROLLD_PORTS to ports.txt; fails (exit 1)
/// when `lbfail` exists, hangs 30 s when `lbhang` exists.
pub const LB_PY: &str = r#"import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
if os.path.exists(os.path.join(here, "lbhang")):
    time.sleep(30)
if os.path.exists(os.path.join(here, "lbfail")):
    sys.stderr.write("lb.py: failing on purpose\n")
    sys.exit(1)
with open(os.path.join(here, "ports.txt"), "w") as f:
    f.write(os.environ.get("ROLLD_PORTS", ""))
"#;

pub const LB_TEMPL: &str = "{{ ports|join(' ') }}\n";

/// The python interpreter: the system one when there is one (it starts
/// faster than a version-manager shim), else whatever `python3` is.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

/// Runs a client subcommand (`reload`, `status`, ...) against the
/// harness's daemon, and shows what it said in the test's output.
pub fn client(h: &Harness, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(rolld_bin());
    cmd.args(args).arg(&h.config).arg("--run-dir").arg(h.path("run"));
    let out = cmd.stdin(Stdio::null()).output().expect("run the client");
    eprintln!(
        "rolld {args:?}: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A client's stdout and stderr, one after the other.
pub fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn rolld_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rolld")
}

/// Polls `f` every 20 ms until it is true; on expiry panics with `what`
/// and the content of `log`.
pub fn wait_for(what: &str, deadline: Duration, log: &Path, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= end {
            panic!(
                "timed out after {:?} waiting for: {what}\n----- rolld log ({}) -----\n{}-----",
                deadline,
                log.display(),
                std::fs::read_to_string(log).unwrap_or_else(|e| format!("(cannot read: {e})\n"))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when something accepts connections on 127.0.0.1:port.
pub fn listens(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// GET / on 127.0.0.1:port: status and body, or None.
pub fn http_get(port: u16) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// True when GET / on port answers 200 "port N".
pub fn answers(port: u16) -> bool {
    matches!(http_get(port), Some((200, body)) if body.trim() == format!("port {port}"))
}

/// Processes (pid, argv) whose command line contains `needle`, zombies and
/// this test process excepted.
pub fn procs_matching(needle: &str) -> Vec<(i32, Vec<String>)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else { continue };
        if raw.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&raw);
        if !text.contains(needle) {
            continue;
        }
        if matches!(proc_state(pid).as_str(), "Z" | "X") {
            continue;
        }
        let argv = text.split('\0').filter(|s| !s.is_empty()).map(str::to_string).collect();
        out.push((pid, argv));
    }
    out
}

/// The state letter of `pid` in /proc (`R`, `S`, `T`, `Z`...), or "".
pub fn proc_state(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).unwrap_or("").to_string()
}

/// Children of a test, SIGKILLed (with the process group each may lead)
/// and reaped however the test ends.
pub struct Kids(pub Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // Only a child not yet reaped: a reaped one's pid, and so the
            // group it led, may be someone else's by now.
            if matches!(c.try_wait(), Ok(None)) {
                let pid = c.id() as i32;
                kill(-pid, libc::SIGKILL);
                kill(pid, libc::SIGKILL);
                let _ = c.wait();
            }
        }
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Seconds of the day of a log line's leading RFC 3339 timestamp
/// (`2026-11-25T19:45:09.567Z ...`).
pub fn line_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let (_, time) = ts.split_once('T')?;
    let time = time.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Seconds of the day (UTC) now, on the clock of the log timestamps.
pub fn now_of_day() -> f64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_nanos()) / 1e9
}

/// The duration of phase `name` in a rollout summary line
/// (`... (spawn 8ms, ready 129ms, ..., stop 1.02s, total 1.4s)`).
pub fn phase_secs(line: &str, name: &str) -> f64 {
    let pat = format!("{name} ");
    let rest = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.split([',', ')']).map(str::trim).find_map(|p| p.strip_prefix(&pat)))
        .unwrap_or_else(|| panic!("no {name} phase in {line}"));
    if let Some(ms) = rest.strip_suffix("ms") {
        ms.parse::<f64>().unwrap() / 1000.0
    } else {
        rest.strip_suffix('s').and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad {name} phase in {line}"))
    }
}

/// Seconds between two log lines, by rolld's own timestamps.
pub fn secs_between(from: &str, to: &str) -> f64 {
    let (a, b) = (line_time(from).expect("timestamp"), line_time(to).expect("timestamp"));
    let d = b - a;
    if d < 0.0 { d + 86_400.0 } else { d }
}

/// Options of the generated config.
pub struct Cfg {
    /// Backend script in the test dir: "app.py" or "server.py".
    pub script: &'static str,
    pub start_timeout: f64,
    pub stop_timeout: f64,
    pub action_timeout: f64,
    pub drain_quiet: f64,
    /// With after_start: replace_file lb.templ -> lb.conf, then run_proc lb.py.
    pub after_start: bool,
    /// Extra lines added to the group, indented by two spaces.
    pub extra: &'static str,
}

impl Default for Cfg {
    fn default() -> Self {
        Cfg {
            script: "app.py",
            start_timeout: 10.0,
            stop_timeout: 2.0,
            action_timeout: 10.0,
            drain_quiet: 0.2,
            after_start: true,
            extra: "",
        }
    }
}

/// One test's world: its temp dir, ports, rolld process and log. Dropping
/// it SIGKILLs rolld and everything whose command line names the dir, and
/// removes the dir.
pub struct Harness {
    pub name: String,
    pub dir: PathBuf,
    /// `dir` with a trailing slash: what every backend's command line holds.
    pub needle: String,
    pub log: PathBuf,
    pub config: PathBuf,
    /// Two worksets of two ports each.
    pub ws: [[u16; 2]; 2],
    pub child: Option<Child>,
    /// Run directory for rolld; the test dir's `run` when `None`.
    pub run_dir: Option<PathBuf>,
    /// Extra environment for rolld.
    pub env: Vec<(String, String)>,
    /// A command that runs rolld (e.g. `unshare ...`), when not empty.
    pub wrapper: Vec<String>,
}

impl Harness {
    /// A fresh dir for test `name`, ports 20000 + 100*k + {1, 2, 11, 12}.
    pub fn new(name: &str, k: u16) -> Harness {
        let dir = std::env::temp_dir().join(format!("rolld-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = 20000 + 100 * k;
        let h = Harness {
            name: name.to_string(),
            needle: format!("{}/", dir.display()),
            log: dir.join("rolld.log"),
            config: dir.join("rolld.yml"),
            dir,
            ws: [[base + 1, base + 2], [base + 11, base + 12]],
            child: None,
            run_dir: None,
            env: Vec::new(),
            wrapper: Vec::new(),
        };
        for p in h.ws.iter().flatten() {
            assert!(!listens(*p), "port {p} of test {name} is already in use before the test");
        }
        h.write("app.py", APP_PY);
        h.write("server.py", SERVER_PY);
        h.write("lb.py", LB_PY);
        h.write("lb.templ", LB_TEMPL);
        h
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    pub fn touch(&self, flag: &str) {
        self.write(flag, "");
    }

    pub fn remove(&self, flag: &str) {
        std::fs::remove_file(self.path(flag)).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn ports_text(&self, set: usize) -> String {
        format!("{} {}", self.ws[set][0], self.ws[set][1])
    }

    pub fn yaml(&self, c: &Cfg) -> String {
        let d = self.dir.display();
        let [[a0, a1], [b0, b1]] = self.ws;
        let mut y = format!(
            "g:
  cmd: '{py} {d}/{script} {{numproc}}'
  stderr: 'logs/{{numproc}}.err'
  workset:
    - numprocs: [{a0}, {a1}]
    - numprocs: [{b0}, {b1}]
  smoke_test:
    - check_all_http_ports: numprocs
  start_timeout: {st}
  stop_timeout: {sp}
  action_timeout: {at}
  drain_quiet: {dq}
",
            py = python(),
            script = c.script,
            st = c.start_timeout,
            sp = c.stop_timeout,
            at = c.action_timeout,
            dq = c.drain_quiet,
        );
        if c.after_start {
            y.push_str(&format!(
                "  after_start:
    - replace_file: [numprocs, 'lb.templ', 'lb.conf']
    - run_proc: '{} {d}/lb.py'
",
                python()
            ));
        }
        for l in c.extra.lines() {
            y.push_str(&format!("  {l}\n"));
        }
        y
    }

    pub fn write_config(&self, c: &Cfg) {
        std::fs::write(&self.config, self.yaml(c)).unwrap();
    }

    /// Starts rolld on the config file, stderr to the log (appended, so a
    /// second run in the same test keeps the first one's lines).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "rolld already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(self.path("rolld.out")).unwrap();
        // The control socket and state file go in the test dir too, not in
        // the shared default run directory.
        let run_dir = self.run_dir.clone().unwrap_or_else(|| self.path("run"));
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(rolld_bin());
                c
            }
            None => Command::new(rolld_bin()),
        };
        let child = cmd
            .arg("--run-dir")
            .arg(run_dir)
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("spawn rolld");
        self.child = Some(child);
    }

    /// Starts rolld and waits until the first workset is live.
    pub fn start(&mut self) {
        self.spawn();
        self.wait_log("first start: live on", "live on", Duration::from_secs(20));
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("rolld running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        kill(self.pid(), sig);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines containing `pat`.
    pub fn lines(&self, pat: &str) -> Vec<String> {
        self.log_text().lines().filter(|l| l.contains(pat)).map(str::to_string).collect()
    }

    pub fn count(&self, pat: &str) -> usize {
        self.lines(pat).len()
    }

    pub fn wait_for(&self, what: &str, deadline: Duration, f: impl FnMut() -> bool) {
        wait_for(what, deadline, &self.log, f)
    }

    /// Waits until the log holds at least `n` lines containing `pat`.
    pub fn wait_count(&self, pat: &str, n: usize, deadline: Duration) {
        self.wait_for(&format!("{n} log line(s) containing {pat:?}"), deadline, || self.count(pat) >= n)
    }

    pub fn wait_log(&self, what: &str, pat: &str, deadline: Duration) {
        self.wait_for(what, deadline, || self.log_text().contains(pat))
    }

    /// The first log line containing `pat` (panics with the log if none).
    pub fn line(&self, pat: &str) -> String {
        self.lines(pat).into_iter().next().unwrap_or_else(|| panic!("no log line with {pat:?}:\n{}", self.log_text()))
    }

    pub fn last_line(&self, pat: &str) -> String {
        self.lines(pat).pop().unwrap_or_else(|| panic!("no log line with {pat:?}:\n{}", self.log_text()))
    }

    /// Waits for rolld to exit; its exit code (panics on a signal death).
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let mut child = self.child.take().expect("rolld running");
        let mut status = None;
        wait_for("rolld to exit", deadline, &self.log, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.unwrap();
        status.code().unwrap_or_else(|| panic!("rolld died of {status:?}\n{}", self.log_text()))
    }

    /// Waits for rolld to end, whatever the cause.
    pub fn wait_exit_any(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("rolld running");
        let mut status = None;
        wait_for("rolld to end", deadline, &self.log, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// Waits until no process but this test names the test dir.
    pub fn assert_nothing_left(&self) {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            let left = procs_matching(&self.needle);
            if left.is_empty() {
                return;
            }
            if Instant::now() >= end {
                panic!("processes of the test still running: {left:?}\n----- rolld log -----\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the forked workers of workset `set` are set up.
    pub fn wait_workers(&self, set: usize) {
        for p in self.ws[set] {
            let f = self.path(&format!("worker-{p}.ready"));
            self.wait_for(&format!("worker of port {p} ready"), Duration::from_secs(10), || f.exists());
        }
    }

    /// Pids of processes whose argv ends with `script port`.
    pub fn backend_pids(&self, script: &str, port: u16) -> Vec<i32> {
        let path = format!("{}{script}", self.needle);
        let port = port.to_string();
        procs_matching(&self.needle)
            .into_iter()
            .filter(|(_, argv)| argv.len() >= 2 && argv[argv.len() - 2] == path && argv[argv.len() - 1] == port)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Waits until both ports of workset `set` answer and those of the
    /// other set do not listen.
    pub fn assert_live(&self, set: usize) {
        let other = 1 - set;
        for p in self.ws[set] {
            self.wait_for(&format!("port {p} to answer 200 \"port {p}\""), Duration::from_secs(5), || answers(p));
        }
        for p in self.ws[other] {
            self.wait_for(&format!("port {p} to be closed"), Duration::from_secs(5), || !listens(p));
        }
    }

    /// SIGTERM, then exit 0 within `deadline`, "rolld exiting (0)", ports
    /// closed as rolld exits, nothing left.
    pub fn stop_ok(&mut self, deadline: Duration) {
        self.stop_checked(deadline, false);
    }

    /// As `stop_ok`, but ports and processes may take up to 3 s more to go
    /// away after rolld exited (see `exit_waits_for_killed_workers`).
    pub fn stop_ok_eventually(&mut self, deadline: Duration) {
        self.stop_checked(deadline, true);
    }

    fn stop_checked(&mut self, deadline: Duration, grace: bool) {
        self.signal(libc::SIGTERM);
        let code = self.wait_exit(deadline);
        assert_eq!(code, 0, "exit code\n{}", self.log_text());
        assert!(self.log_text().contains("rolld exiting (0)"), "{}", self.log_text());
        for p in self.ws.iter().flatten() {
            if grace {
                self.wait_for(&format!("port {p} closed after rolld exited"), Duration::from_secs(3), || !listens(*p));
            } else {
                assert!(!listens(*p), "port {p} still listens after rolld exited\n{}", self.log_text());
            }
        }
        if grace {
            self.assert_nothing_left();
        } else {
            let left = procs_matching(&self.needle);
            assert!(left.is_empty(), "still running after rolld exited: {left:?}\n{}", self.log_text());
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id() as i32, libc::SIGKILL);
            let _ = c.wait();
        }
        for _ in 0..100 {
            let left = procs_matching(&self.needle);
            if left.is_empty() {
                break;
            }
            for (pid, _) in left {
                kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::env::var_os("ROLLD_IT_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// GET `path` on `addr` with `Host: host`: status and body, or None.
pub fn http_get_at(addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// True when something accepts connections on `addr`.
pub fn listens_at(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// [::1]:port.
pub fn v6_loopback(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
}
