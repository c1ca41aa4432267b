//! The example backends serve a listening socket handed to them as rolld
//! hands it in `listen:` mode: started by `process::spawn` with the socket
//! as descriptor 3 and `--fd {fd}` in their command. Each test holds the
//! socket as rolld does (on 127.0.0.1, a port of the kernel's choosing)
//! and asks through it. examples/http_backend must be built (`cargo test`
//! builds the examples; `cargo build --examples` does too).

mod common;

use rolld::config::{self, GroupConfig};
use rolld::{process, sys};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A directory of its own for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rolld-backends-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEPTMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A backend started by `process::spawn`: on drop, its process group is
/// killed and it is waited for.
struct Backend(i32);

impl Backend {
    fn start(g: &GroupConfig, listener: &TcpListener) -> Backend {
        Backend(process::spawn(g, 9001, Some(listener.as_fd())).unwrap())
    }

    /// Sends `sig` to its process group and waits (at most 10 s) for it to end.
    fn stop(self, sig: i32) {
        let pidfd = sys::pidfd_open(self.0).unwrap();
        sys::kill_group(self.0, sig).unwrap();
        let ended = sys::poll_readable(&[pidfd.as_fd()], Some(Duration::from_secs(10))).unwrap();
        assert!(ended[0], "backend {} still runs 10 s after signal {sig}", self.0);
        while let Ok(Some(_)) = sys::reap_any() {}
        std::mem::forget(self);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = sys::kill_group(self.0, libc::SIGKILL);
        if let Ok(pidfd) = sys::pidfd_open(self.0) {
            let _ = sys::poll_readable(&[pidfd.as_fd()], Some(Duration::from_secs(10)));
        }
        while let Ok(Some(_)) = sys::reap_any() {}
    }
}

/// Group `g` in `dir` running `cmd`, its stderr in `err.log`: a `listen:`
/// group (the config is only read; the test hands its own socket).
fn group(dir: &Path, cmd: &str, extra: &str) -> GroupConfig {
    let yml = dir.join("rolld.yml");
    let text = format!(
        "g:\n  cmd: '{cmd}'\n  directory: '{}'\n  stderr: 'err.log'\n{extra}  listen: '127.0.0.1:9000'\n  procs: 1\n  check_from: 9001\n",
        dir.display()
    );
    std::fs::write(&yml, text).unwrap();
    config::load(&yml).unwrap_or_else(|e| panic!("{}", e.join("\n"))).groups.remove(0)
}

/// Sends GET `path` on a connection to `listener` (which the kernel
/// completes whether anyone accepts yet); the open connection.
fn ask(listener: &TcpListener, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    s
}

/// The answer on `conn`: its status line and body.
fn answer(mut conn: TcpStream, dir: &Path) -> (String, String) {
    let mut text = String::new();
    let read = conn.read_to_string(&mut text);
    let err = std::fs::read_to_string(dir.join("err.log")).unwrap_or_default();
    assert!(read.is_ok() && !text.is_empty(), "no answer ({read:?}); backend stderr:\n{err}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The path of the example `name`, built beside this test's binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "no {} (cargo build --examples)", path.display());
    path
}

#[test]
fn http_backend_serves_the_socket_it_is_handed_and_names_its_release() {
    let t = TempDir::new("http_backend");
    let cmd = format!("{} {{numproc}} --fd {{fd}}", example("http_backend").display());
    let g = group(&t.0, &cmd, "  env:\n    RELEASE: v7\n");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = Backend::start(&g, &listener);
    let (status, body) = answer(ask(&listener, "/"), &t.0);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.0 200 OK", "port 9001 release v7\n"));
    backend.stop(libc::SIGTERM);
    // What comes while no process serves waits in the socket's queue for
    // the next one.
    let waiting = ask(&listener, "/");
    let _next = Backend::start(&g, &listener);
    let (status, body) = answer(waiting, &t.0);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.0 200 OK", "port 9001 release v7\n"));
}

/// One HTTP/1.1 GET on `conn`, kept alive; the status line, whether the
/// answer says `Connection: close`, and the body.
#[track_caller]
fn keep_alive_get(conn: &mut TcpStream) -> (String, bool, String) {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed before a whole answer: {:?}", String::from_utf8_lossy(&text));
        text.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&text).into_owned();
        let Some((head, body)) = t.split_once("\r\n\r\n") else { continue };
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        if body.len() >= len {
            let close = head.lines().any(|l| l == "Connection: close");
            return (head.lines().next().unwrap().to_string(), close, body.to_string());
        }
    }
}

#[test]
fn http_backend_keeps_connections_alive_until_its_drain_signal() {
    let t = TempDir::new("http_backend_keep_alive");
    std::fs::write(t.0.join("release"), "v8\n").unwrap();
    let cmd = format!(
        "{} {{numproc}} --fd {{fd}} --keep-alive --workers 2 --release-file {}",
        example("http_backend").display(),
        t.0.join("release").display()
    );
    let g = group(&t.0, &cmd, "");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = Backend::start(&g, &listener);
    let mut conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ok = ("HTTP/1.1 200 OK".to_string(), false, "port 9001 release v8\n".to_string());
    assert_eq!(keep_alive_get(&mut conn), ok);
    assert_eq!(keep_alive_get(&mut conn), ok, "the same connection, again");
    // rolld's drain_signal reaches every process of the group.
    sys::kill_group(backend.0, libc::SIGUSR1).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keep_alive_get(&mut conn), (ok.0.clone(), true, ok.2.clone()), "after SIGUSR1: Connection: close");
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).unwrap(), 0, "then closed");
    for _ in 0..8 {
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(keep_alive_get(&mut c).1, "every process drains");
    }
    backend.stop(libc::SIGTERM);
    // A release named bad* answers 500.
    std::fs::write(t.0.join("release"), "bad-2\n").unwrap();
    let _bad = Backend::start(&g, &listener);
    let (status, body) = answer(ask(&listener, "/"), &t.0);
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 500 Internal Server Error", "port 9001 release bad-2 fails\n")
    );
}

#[test]
fn app_py_serves_the_socket_it_is_handed() {
    let t = TempDir::new("app_py");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("example/app.py");
    let cmd = format!("{} {} {{numproc}} --fd {{fd}}", common::python(), app.display());
    let g = group(&t.0, &cmd, "");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = Backend::start(&g, &listener);
    let (status, body) = answer(ask(&listener, "/"), &t.0);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.0 200 OK", "port 9001\n"));
    backend.stop(libc::SIGTERM);
    let err = std::fs::read_to_string(t.0.join("err.log")).unwrap();
    assert!(err.contains("port 9001: listening on descriptor 3") && err.contains("port 9001: stopped"), "{err}");
}

#[test]
fn release_backend_serves_the_socket_it_is_handed_and_names_its_release() {
    let t = TempDir::new("release_backend");
    let script = t.0.join("release_backend.py");
    std::fs::write(&script, include_str!("release_backend.py")).unwrap();
    std::fs::write(t.0.join("release"), "v3\n").unwrap();
    let cmd = format!("{} {} {{numproc}} --fd {{fd}}", common::python(), script.display());
    let g = group(&t.0, &cmd, "");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = Backend::start(&g, &listener);
    let (status, body) = answer(ask(&listener, "/release"), &t.0);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.0 200 OK", "v3\n"));
    let (_, body) = answer(ask(&listener, "/"), &t.0);
    assert_eq!(body, "port 9001\n");
    backend.stop(libc::SIGTERM);
}
