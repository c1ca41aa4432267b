//! Tests of `spawn` with real children: a shell that reports what it got
//! (its pid, arguments, environment and descriptors) into its stdout file.
//! The tests that look at inherited variables or at descriptor numbers run
//! again in a process of their own (`alone`), whose environment holds a
//! NOTIFY_SOCKET and LISTEN_* variables for a backend not to inherit, and
//! where no other test opens descriptors meanwhile; like rolld, it marks
//! the descriptors it inherited close-on-exec first.

use super::*;
use crate::config::{self, GroupConfig};
use crate::sys::{self, ExitStatus};
use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Set in the process a test runs alone in.
const ALONE: &str = "ROLLD_PROCESS_TEST_ALONE";

/// Whether this is the run of test `name` alone; if not, runs it alone
/// (with a deadline) and asserts that it passed.
fn alone(name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        // As rolld does at start: what the test runner inherited does
        // not reach the children.
        sys::cloexec_from_3().unwrap();
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    // Through a shell that closes descriptor 3, which the tests want free:
    // whatever runs the tests may hand one down there (`flock FILE cargo
    // test` does: its lock).
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "exec 3>&-; exec \"$0\" \"$@\""])
        .arg(exe)
        .args([&format!("process::tests::{name}"), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "rolld:other")
        .env("LISTEN_PIDFDID", "12")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name}, run alone: {:?}\n{text}", out.status);
    assert!(text.contains("1 passed"), "{name} did not run alone:\n{text}");
    false
}

/// A directory of its own for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rolld-process-test-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Group `g` in `dir` with stdout and stderr files, `extra` lines added,
/// running `argv` with `env`.
fn group(dir: &Path, extra: &str, argv: &[&str], env: &[(&str, &str)]) -> GroupConfig {
    let yml = dir.join("rolld.yml");
    let text = format!(
        "g:\n  cmd: /bin/sh\n  directory: '{}'\n  stdout: 'out-{{numproc}}.log'\n  stderr: 'err-{{numproc}}.log'\n{extra}  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n",
        dir.display()
    );
    fs::write(&yml, text).unwrap();
    let mut g = config::load(&yml).unwrap_or_else(|e| panic!("{}", e.join("\n"))).groups.remove(0);
    g.argv = argv.iter().map(|a| a.to_string()).collect();
    g.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    g
}

/// What the reporting shell saw.
#[derive(Debug)]
struct Report {
    pid: i32,
    args: String,
    env: HashMap<String, String>,
    /// The target of its descriptor 3, when it has one.
    fd3: Option<String>,
    fds: Vec<i32>,
}

/// Prints what `report` parses; `{fd}` and `{numproc}` as its arguments.
const REPORTER: &str = r#"echo "pid=$$"
echo "args=$1 $2"
echo "env:"
env
echo "fd3:"
readlink /proc/$$/fd/3
echo "fds:"
ls /proc/$$/fd
echo "end""#;

fn reporter_argv() -> [&'static str; 6] {
    ["/bin/sh", "-c", REPORTER, "reporter", "{fd}", "{numproc}"]
}

/// Spawns `g` on port 9001 with `socket` and waits for it to end well
/// (its last line `end`); its pid and stdout.
fn spawn_and_wait(g: &GroupConfig, socket: Option<BorrowedFd<'_>>) -> (i32, String) {
    let path = |t: &Option<String>| g.directory.join(with_port(t.as_ref().unwrap(), 9001));
    let (out, err) = (path(&g.stdout), path(&g.stderr));
    let _ = (fs::remove_file(&out), fs::remove_file(&err));
    let pid = spawn(g, 9001, socket).unwrap();
    let status = sys::wait_child(pid, Duration::from_secs(10));
    let (out, err) = (fs::read_to_string(out).unwrap_or_default(), fs::read_to_string(err).unwrap_or_default());
    assert_eq!(status, Some(ExitStatus::Code(0)), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.ends_with("end\n"), "stdout:\n{out}\nstderr:\n{err}");
    (pid, out)
}

/// Spawns `g` as `spawn_and_wait` does, and parses what it printed.
fn run(g: &GroupConfig, socket: Option<BorrowedFd<'_>>) -> Report {
    let (pid, out) = spawn_and_wait(g, socket);
    let mut r = Report { pid: 0, args: String::new(), env: HashMap::new(), fd3: None, fds: Vec::new() };
    let mut section = "";
    for line in out.lines() {
        match line {
            "env:" | "fd3:" | "fds:" | "end" => section = line,
            _ => match section {
                "" if line.starts_with("pid=") => r.pid = line[4..].parse().unwrap(),
                "" if line.starts_with("args=") => r.args = line[5..].to_string(),
                "env:" => {
                    if let Some((k, v)) = line.split_once('=') {
                        r.env.insert(k.to_string(), v.to_string());
                    }
                }
                "fd3:" => r.fd3 = Some(line.to_string()),
                "fds:" => r.fds.push(line.parse().unwrap()),
                _ => panic!("unexpected line {line:?} in:\n{out}"),
            },
        }
    }
    assert_eq!(r.pid, pid, "the pid spawn returned is the backend's");
    r
}

fn link(fd: BorrowedFd<'_>) -> String {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().to_string_lossy().into_owned()
}

/// What every backend handed a socket sees.
#[track_caller]
fn assert_listening(r: &Report, socket: BorrowedFd<'_>) {
    assert_eq!(r.env.get("LISTEN_PID"), Some(&r.pid.to_string()), "{r:?}");
    assert_eq!(r.env.get("LISTEN_FDS").map(String::as_str), Some("1"), "{r:?}");
    assert_eq!(r.env.get("LISTEN_FDNAMES").map(String::as_str), Some("g"), "{r:?}");
    assert!(!r.env.contains_key("LISTEN_PIDFDID"), "an inherited LISTEN_ variable: {r:?}");
    assert!(!r.env.contains_key("NOTIFY_SOCKET"), "{r:?}");
    assert_eq!(r.args, "3 9001", "{{fd}} and {{numproc}} in the arguments");
    assert_eq!(r.env.get("SLOT").map(String::as_str), Some("fd=3 port=9001"), "{{fd}} in env: {r:?}");
    assert_eq!(r.fd3.as_deref(), Some(link(socket).as_str()), "descriptor 3 is the socket");
    assert!(link(socket).starts_with("socket:["));
    assert_eq!(r.fds, [0, 1, 2, 3], "no other descriptor reaches the backend");
}

const SLOT: (&str, &str) = ("SLOT", "fd={fd} port={numproc}");

#[test]
fn a_listening_backend_gets_its_socket_as_3_and_its_own_pid() {
    if !alone("a_listening_backend_gets_its_socket_as_3_and_its_own_pid") {
        return;
    }
    // Descriptor 3 of rolld is something else: the socket is moved there,
    // and the other does not follow.
    let other = fs::File::open("/dev/null").unwrap();
    assert_eq!(other.as_raw_fd(), 3, "descriptor 3 was taken before the test");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = TempDir::new("listening");
    let g = group(&t.0, "", &reporter_argv(), &[SLOT]);
    for _ in 0..3 {
        let r = run(&g, Some(listener.as_fd()));
        assert_listening(&r, listener.as_fd());
    }
    // rolld's own descriptor stays where it was, listening.
    assert!(link(listener.as_fd()).starts_with("socket:["));
    assert!(listener.local_addr().is_ok());
}

#[test]
fn a_socket_that_is_descriptor_3_reaches_the_backend() {
    if !alone("a_socket_that_is_descriptor_3_reaches_the_backend") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(listener.as_raw_fd(), 3, "descriptor 3 was taken before the test");
    let t = TempDir::new("fd3");
    let g = group(&t.0, "", &reporter_argv(), &[SLOT]);
    let r = run(&g, Some(listener.as_fd()));
    assert_listening(&r, listener.as_fd());
}

#[test]
fn a_listening_backend_of_another_user() {
    if !alone("a_listening_backend_of_another_user") {
        return;
    }
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = TempDir::new("user");
    // The backend's user opens its files, and creates their directory.
    fs::set_permissions(&t.0, fs::Permissions::from_mode(0o777)).unwrap();
    let mut g = group(&t.0, "  user: nobody\n", &reporter_argv(), &[SLOT]);
    g.stdout = Some("logs/out-{numproc}.log".into());
    g.stderr = Some("logs/err-{numproc}.log".into());
    let r = run(&g, Some(listener.as_fd()));
    assert_listening(&r, listener.as_fd());
    let c = g.credentials.as_ref().unwrap();
    let (user, home) = c.user.clone().unwrap();
    assert_eq!(user, "nobody");
    for (k, v) in [("USER", &user), ("LOGNAME", &user), ("HOME", &home)] {
        assert_eq!(r.env.get(k), Some(v), "{k}");
    }
    for f in ["logs", "logs/out-9001.log", "logs/err-9001.log"] {
        let m = fs::metadata(t.0.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (c.uid, c.gid), "{f} is the user's");
    }
}

#[test]
fn a_backend_without_a_socket_gets_none_of_it() {
    if !alone("a_backend_without_a_socket_gets_none_of_it") {
        return;
    }
    let _listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = TempDir::new("none");
    let g = group(&t.0, "", &reporter_argv(), &[SLOT]);
    let r = run(&g, None);
    assert!(!r.env.keys().any(|k| k.starts_with("LISTEN_")), "{r:?}");
    assert!(!r.env.contains_key("NOTIFY_SOCKET"), "{r:?}");
    assert_eq!(r.args, "{fd} 9001");
    assert_eq!(r.env.get("SLOT").map(String::as_str), Some("fd={fd} port=9001"));
    assert_eq!(r.fd3, None);
    assert_eq!(r.fds, [0, 1, 2]);
}

#[test]
fn the_program_is_looked_for_in_the_path_of_its_environment() {
    let t = TempDir::new("path");
    let bin = t.0.join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("rolld-test-prog"), "#!/bin/sh\necho \"$0 ran\"\necho end\n").unwrap();
    fs::set_permissions(bin.join("rolld-test-prog"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let g = group(&t.0, "", &["rolld-test-prog"], &[("PATH", &path)]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for socket in [None, Some(listener.as_fd())] {
        let (_, out) = spawn_and_wait(&g, socket);
        assert!(out.starts_with(&format!("{}/rolld-test-prog ran\n", bin.display())), "{out}");
    }
}

#[test]
fn a_program_that_cannot_run_is_an_error_of_spawn() {
    let t = TempDir::new("missing");
    let g = group(&t.0, "", &["/nonexistent/rolld-test-prog", "{fd}"], &[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for socket in [None, Some(listener.as_fd())] {
        let e = spawn(&g, 9001, socket).unwrap_err();
        assert!(e.starts_with("/nonexistent/rolld-test-prog: No such file or directory"), "{e}");
    }
    let e = spawn(&g, 9001, Some(std::io::stdin().as_fd())).unwrap_err();
    assert!(e.contains("descriptor 0, one of 0, 1 and 2"), "{e}");
    let g = group(&t.0, "", &["/bin/true"], &[("SECRET", "a\0b")]);
    let e = spawn(&g, 9001, None).unwrap_err();
    assert_eq!(e, "/bin/true: a NUL byte in the variable SECRET");
}

#[test]
fn fd_is_replaced_only_for_a_listening_backend() {
    assert_eq!(with_port_fd("fd://{fd} {numproc} {fd}", 8001, true), "fd://3 8001 3");
    assert_eq!(with_port_fd("fd://{fd} {numproc}", 8001, false), "fd://{fd} 8001");
}
