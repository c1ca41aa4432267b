//! A light HTTP backend for scale tests: `http_backend PORT` answers every
//! request on 127.0.0.1:PORT with 200 and `port PORT` (`port PORT release
//! R` when RELEASE=R is in its environment), one connection at a time, in
//! about 1 MiB of memory. `http_backend PORT --fd N` serves instead the
//! listening socket it inherited as descriptor N, PORT then only naming it
//! in answers: behind rolld's `listen:`, `http_backend {numproc} --fd {fd}`.
//! SIGTERM ends it at once (the default action), without finishing
//! anything: only rolld's drain keeps requests from being cut, which is
//! what a scale test of the drain wants.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: http_backend PORT [--fd N]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(port) = args.first().and_then(|p| p.parse::<u16>().ok()) else { usage() };
    let listener = match &args[1..] {
        [] => TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
            eprintln!("http_backend: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }),
        [flag, n] if flag == "--fd" => {
            let Some(fd) = n.parse::<RawFd>().ok().filter(|&fd| fd > 2) else { usage() };
            inherited(fd)
        }
        _ => usage(),
    };
    let body = match std::env::var("RELEASE") {
        Ok(r) => format!("port {port} release {r}\n"),
        Err(_) => format!("port {port}\n"),
    };
    let answer = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(c) => c,
            // Not a listening socket: accept would fail for ever.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSOCK | libc::EBADF)) => {
                eprintln!("http_backend: accept: {e}");
                std::process::exit(1);
            }
            Err(_) => continue,
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(answer.as_bytes());
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
        eprintln!("http_backend: descriptor {fd} is not a socket to listen on: {e}");
        std::process::exit(1);
    }
    listener
}
