//! A minimal backend for benchmarks: listens on 127.0.0.1:PORT and closes
//! every connection it accepts. SIGTERM (default action) ends it at once.
//!
//!   cargo run --release --example tiny_backend -- PORT

use std::net::TcpListener;

fn main() {
    let port: u16 = match std::env::args().nth(1).and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: tiny_backend PORT");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tiny_backend: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    for conn in listener.incoming() {
        drop(conn);
    }
}
