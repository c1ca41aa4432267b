//! Smoke tests: one check of one port, bounded in time.
//!
//! HTTP checks use a fresh ureq agent that keeps no idle connection: a
//! pooled connection from rolld would later count as a request in flight
//! and hold up the drain of that port.

use crate::config::Check;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Runs every check on `port`; the first failure, described, or Ok.
pub fn check_port(checks: &[Check], port: u16) -> Result<(), String> {
    checks.iter().try_for_each(|c| match c {
        Check::Http { path, status, timeout } => http(port, path, *status, *timeout),
        Check::Tcp { timeout } => tcp(port, *timeout),
    })
}

fn http(port: u16, path: &str, want: u16, timeout: Duration) -> Result<(), String> {
    let url = format!("http://localhost:{port}{path}");
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .max_redirects(0)
        .build()
        .new_agent();
    match agent.get(&url).header("Connection", "close").call() {
        Ok(resp) if resp.status().as_u16() == want => Ok(()),
        Ok(resp) => Err(format!("GET {url} answered {} (want {want})", resp.status().as_u16())),
        Err(e) => Err(format!("GET {url}: {e}")),
    }
}

fn tcp(port: u16, timeout: Duration) -> Result<(), String> {
    let addrs = ("localhost", port).to_socket_addrs().map_err(|e| format!("resolve localhost: {e}"))?;
    let mut last = String::from("no address for localhost");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    Err(last)
}
