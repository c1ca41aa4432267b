//! A light HTTP backend for scale tests: `http_backend PORT` answers every
//! request on 127.0.0.1:PORT with 200 and `port PORT`, one connection at a
//! time, in about 1 MiB of memory. SIGTERM ends it at once (the default
//! action), without finishing anything: only rolld's drain keeps requests
//! from being cut, which is what a scale test of the drain wants.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

fn main() {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: http_backend PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("http_backend: bind 127.0.0.1:{port}: {e}");
        std::process::exit(1);
    });
    let body = format!("port {port}\n");
    let answer = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
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
