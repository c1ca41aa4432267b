//! `rolld reload` and `rolld status`: clients of a running daemon's
//! control socket.

use crate::control;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Connects to the daemon running `config`; exit code 2 and a message when
/// there is none.
fn connect(config: &Path, run_dir: Option<&Path>) -> Result<UnixStream, String> {
    let canon = std::fs::canonicalize(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let dir = control::run_dir(run_dir)?;
    let sock = control::socket_path(&dir, &canon);
    UnixStream::connect(&sock).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("no rolld is running {} (no {})", canon.display(), sock.display()),
        ErrorKind::ConnectionRefused => {
            format!("no rolld is running {} ({} is stale: its daemon died)", canon.display(), sock.display())
        }
        _ => format!("cannot reach the rolld of {}: {}: {e}", canon.display(), sock.display()),
    })
}

fn send(stream: &mut UnixStream, req: &str) -> Result<(), String> {
    stream.write_all(format!("{req}\n").as_bytes()).map_err(|e| format!("sending the request: {e}"))
}

/// `rolld reload`: 0 live, 1 rolled back, 2 no daemon or invalid config,
/// 3 timed out (the rollout goes on).
pub fn reload(config: &Path, run_dir: Option<&Path>, wait: bool, timeout: Option<Duration>) -> u8 {
    let mut stream = match connect(config, run_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rolld reload: {e}");
            return 2;
        }
    };
    if let Err(e) = send(&mut stream, "reload") {
        eprintln!("rolld reload: {e}");
        return 2;
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let _ = reader.get_ref().set_read_timeout(Some(left));
        }
        match reader.read_line(&mut line) {
            Ok(0) => {
                eprintln!("rolld reload: the daemon closed the connection before the rollout ended");
                return 1;
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                eprintln!("rolld reload: --timeout passed; the rollout goes on");
                return 3;
            }
            Err(e) => {
                eprintln!("rolld reload: {e}");
                return 1;
            }
        }
        let l = line.trim_end();
        let (kind, rest) = l.split_once(' ').unwrap_or((l, ""));
        match kind {
            "queued" if !wait => {
                println!("rollout requested");
                return 0;
            }
            "queued" => println!("rollout requested; waiting"),
            "phase" | "log" => println!("{rest}"),
            // done GROUP OUTCOME SUMMARY: the summary says the outcome.
            "done" => {
                let mut f = rest.splitn(3, ' ');
                let (group, summary) = (f.next().unwrap_or(""), f.nth(1).unwrap_or(""));
                println!("{group} {summary}");
            }
            "end" => {
                return match rest {
                    "ok" => 0,
                    "invalid" => 2,
                    _ => 1,
                };
            }
            "error" => {
                eprintln!("rolld reload: {rest}");
                return 2;
            }
            _ => println!("{l}"),
        }
    }
}

/// `rolld status`: prints the daemon's answer; 0, or 2 with no daemon.
pub fn status(config: &Path, run_dir: Option<&Path>, json: bool) -> u8 {
    let mut stream = match connect(config, run_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rolld status: {e}");
            return 2;
        }
    };
    let req = if json { "status json" } else { "status" };
    if let Err(e) = send(&mut stream, req) {
        eprintln!("rolld status: {e}");
        return 2;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut text = String::new();
    match std::io::Read::read_to_string(&mut stream, &mut text) {
        Ok(_) if text.starts_with("error ") => {
            eprintln!("rolld status: {}", text.trim_end());
            2
        }
        Ok(_) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("rolld status: {e}");
            2
        }
    }
}
