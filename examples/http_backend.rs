//! A light HTTP backend for scale tests and minimal images: `http_backend
//! PORT` answers every request on 127.0.0.1:PORT with 200 and `port PORT`
//! (`port PORT release R` when RELEASE=R is in its environment), one
//! connection at a time, in about 1 MiB of memory. `http_backend PORT --fd
//! N` serves instead the listening socket it inherited as descriptor N, PORT
//! then only naming it in answers: behind rolld's `listen:`, `http_backend
//! {numproc} --fd {fd}`. SIGTERM ends it at once (the default action),
//! without finishing anything: only rolld's drain keeps requests from being
//! cut, which is what a scale test of the drain wants.
//!
//! Options, after PORT and `--fd N`:
//!   --keep-alive         HTTP/1.1 with persistent connections, each served
//!                        by a thread of its own; after SIGUSR1 (rolld's
//!                        drain_signal) every answer says `Connection:
//!                        close`, so clients come back through the port
//!   --workers K          K processes serve the socket: this one and K - 1
//!                        children forked at start, each killed when this
//!                        one dies (their zombies are for its parent's
//!                        reaper, rolld as PID 1 in a container)
//!   --release-file PATH  the release is the first line of PATH, read once
//!                        at start (instead of RELEASE); a release named
//!                        `bad*` answers 500 to everything

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: http_backend PORT [--fd N] [--keep-alive] [--workers K] [--release-file PATH]");
    std::process::exit(2);
}

fn die(msg: String) -> ! {
    eprintln!("http_backend: {msg}");
    std::process::exit(1);
}

struct Opts {
    port: u16,
    fd: Option<RawFd>,
    keep_alive: bool,
    workers: u32,
    release_file: Option<String>,
}

fn parse(args: &[String]) -> Opts {
    let Some(port) = args.first().and_then(|p| p.parse::<u16>().ok()) else { usage() };
    let mut o = Opts { port, fd: None, keep_alive: false, workers: 1, release_file: None };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--keep-alive" => o.keep_alive = true,
            "--fd" => {
                o.fd = Some(rest.next().and_then(|n| n.parse().ok()).filter(|&fd| fd > 2).unwrap_or_else(|| usage()))
            }
            "--workers" => {
                o.workers = rest.next().and_then(|n| n.parse().ok()).filter(|&k| k >= 1).unwrap_or_else(|| usage())
            }
            "--release-file" => o.release_file = Some(rest.next().cloned().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = parse(&args);
    let listener = match o.fd {
        None => {
            TcpListener::bind(("127.0.0.1", o.port)).unwrap_or_else(|e| die(format!("bind 127.0.0.1:{}: {e}", o.port)))
        }
        Some(fd) => inherited(fd),
    };
    let release = match &o.release_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.lines().next().unwrap_or("").trim().to_string()),
            Err(e) => die(format!("{path}: {e}")),
        },
        None => std::env::var("RELEASE").ok(),
    };
    let (status, body) = match &release {
        Some(r) if r.starts_with("bad") => {
            ("500 Internal Server Error", format!("port {} release {r} fails\n", o.port))
        }
        Some(r) => ("200 OK", format!("port {} release {r}\n", o.port)),
        None => ("200 OK", format!("port {}\n", o.port)),
    };
    // Before the fork: a worker is never without it (no thread is made).
    let draining = Arc::new(AtomicBool::new(false));
    if o.keep_alive
        && let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&draining))
    {
        die(format!("SIGUSR1: {e}"));
    }
    let me = std::process::id();
    for _ in 1..o.workers {
        if fork_worker(me) {
            break;
        }
    }
    if !o.keep_alive {
        let answer = format!("HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        for conn in incoming(&listener) {
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = read_request(&mut conn, &mut Vec::new());
            let _ = conn.write_all(answer.as_bytes());
        }
        return;
    }
    let head = Arc::new(format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len()));
    let body = Arc::new(body);
    for conn in incoming(&listener) {
        let (head, body, draining) = (Arc::clone(&head), Arc::clone(&body), Arc::clone(&draining));
        let _ = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            let mut buf = Vec::new();
            while let Some(close) = read_request(&mut conn, &mut buf) {
                let close = close || draining.load(Ordering::Relaxed);
                let end = if close { "Connection: close\r\n\r\n" } else { "\r\n" };
                if conn.write_all(format!("{head}{end}{body}").as_bytes()).is_err() || close {
                    break;
                }
            }
        });
    }
}

/// The connections accepted on `listener`, for ever.
fn incoming(listener: &TcpListener) -> impl Iterator<Item = TcpStream> + '_ {
    listener.incoming().filter_map(|conn| match conn {
        Ok(c) => Some(c),
        // Not a listening socket: accept would fail for ever.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSOCK | libc::EBADF)) => {
            die(format!("accept: {e}"))
        }
        Err(_) => None,
    })
}

/// Reads one request's head (a GET: no body) from `conn`, `buf` holding
/// what came before it; leaves in `buf` what follows it. Some(true) when
/// the client asks to close after the answer (HTTP/1.0, or `Connection:
/// close`); None at the end of the connection.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<bool> {
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match conn.read(&mut chunk) {
            // SIGUSR1 came to this thread.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    buf.drain(..end);
    let http10 = head.lines().next().is_some_and(|l| l.ends_with("http/1.0"));
    Some(http10 || head.lines().any(|l| l.starts_with("connection:") && l.contains("close")))
}

/// Forks a worker serving the same socket; true in the worker, which dies
/// with this process (`me`).
fn fork_worker(me: u32) -> bool {
    // SAFETY: no thread runs yet: the child may do anything after fork.
    match unsafe { libc::fork() } {
        -1 => die(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: a plain prctl on this process.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
                die(format!("PR_SET_PDEATHSIG: {}", std::io::Error::last_os_error()));
            }
            if std::os::unix::process::parent_id() != me {
                std::process::exit(0); // it died before the line above
            }
            true
        }
        _ => false,
    }
}

/// The listening TCP socket inherited as descriptor `fd`, made blocking
/// (whoever made it may have left it non-blocking).
fn inherited(fd: RawFd) -> TcpListener {
    // SAFETY: descriptor `fd` was handed to this process to own; it is
    // not used anywhere else in it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let addr = listener.local_addr().and_then(|a| listener.set_nonblocking(false).map(|()| a));
    if let Err(e) = addr {
        die(format!("descriptor {fd} is not a socket to listen on: {e}"));
    }
    listener
}
