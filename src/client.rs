//! `rolld reload` and `rolld status`: clients of a running daemon's
//! control socket.
//!
//! Each outcome has its own exit code, so that a deploy script never
//! mistakes one for another: a daemon that is not there (2) is not a
//! daemon that is slow to answer (3), and a rollout cut short by the
//! daemon stopping (4) is not a rollback (1).
//!
//! The outcome is read only from a whole line of fixed words (`end ok`),
//! which no text can make: the daemon sends each piece of text after a
//! fixed word, escaped, on a line of its own. What a client prints is
//! escaped again (an older daemon sent text raw): nothing the daemon
//! relays reaches the terminal as an escape sequence.

use crate::{config, control, log};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The new set is live (reload), or the answer was printed (status).
pub const OK: u8 = 0;
/// The rollout rolled back, or (with `surge`) ended partial.
pub const ROLLED_BACK: u8 = 1;
/// No daemon runs the config, the config is invalid, or a usage error.
pub const NO_DAEMON: u8 = 2;
/// The daemon did not answer in time, or `--timeout` passed.
pub const TIMED_OUT: u8 = 3;
/// The daemon stopped (or died) before the rollout ended.
pub const STOPPED: u8 = 4;

/// Every exit code of every command, and what it means. Every command
/// also exits 2 on a usage error. docs/operations.md is tested against
/// this table, both ways.
pub const EXIT_CODES: &[(&str, u8, &str)] = &[
    ("rolld CONFIG", OK, "stopped by SIGTERM or SIGINT: every set stopped"),
    ("rolld CONFIG", 1, "the first start failed, another rolld runs CONFIG, or its control socket cannot be set up"),
    ("rolld CONFIG", 2, "CONFIG is invalid (nothing started), or a usage error"),
    ("rolld check", OK, "CONFIG is valid"),
    ("rolld check", 2, "CONFIG is invalid (every problem listed), or a usage error"),
    ("rolld reload", OK, "the new set is live (without --wait: the request is queued)"),
    ("rolld reload", ROLLED_BACK, "rolled back, reverted during its bake, or partial"),
    ("rolld reload", NO_DAEMON, "no daemon runs CONFIG, the config is invalid, or a usage error"),
    (
        "rolld reload",
        TIMED_OUT,
        "no answer within 10 s or --timeout, or --timeout passed while waiting (the rollout goes on)",
    ),
    ("rolld reload", STOPPED, "rolld stopped before the rollout ended"),
    ("rolld status", OK, "the status is printed"),
    ("rolld status", NO_DAEMON, "no daemon runs CONFIG, or a usage error"),
    ("rolld status", TIMED_OUT, "no answer within --timeout (10 s by default)"),
    ("rolld promote", OK, "a bake was ended"),
    ("rolld promote", ROLLED_BACK, "no group was baking"),
    ("rolld promote", NO_DAEMON, "no daemon runs CONFIG, or a usage error"),
    ("rolld promote", TIMED_OUT, "no answer within --timeout (10 s by default)"),
    ("rolld revert", OK, "a bake was ended"),
    ("rolld revert", ROLLED_BACK, "no group was baking"),
    ("rolld revert", NO_DAEMON, "no daemon runs CONFIG, or a usage error"),
    ("rolld revert", TIMED_OUT, "no answer within --timeout (10 s by default)"),
    ("rolld help", OK, "printed"),
    ("rolld help", 2, "an unknown COMMAND, or a usage error"),
];

/// How long a daemon has to accept a client and answer its request (the
/// status text, or `queued` for a reload) when no `--timeout` is given.
/// A daemon answers within milliseconds whatever its groups are doing; one
/// that does not is stopped (SIGSTOP, a debugger) or starved.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client gave up: its exit code and message.
struct Fail(u8, String);

/// Connects to the daemon running `config` by `deadline`.
fn connect(config: &Path, run_dir: Option<&Path>, deadline: Instant) -> Result<(UnixStream, PathBuf), Fail> {
    let abs = config::absolute(config)
        .map_err(|e| Fail(NO_DAEMON, format!("{}: cannot make the path absolute: {e}", config.display())))?;
    let dir = control::run_dir(run_dir).map_err(|e| Fail(NO_DAEMON, e))?;
    let sock = control::socket_path(&dir, &abs);
    let shown = abs.display().to_string();
    // connect(2) on a Unix socket waits, with no time limit, while the
    // daemon's accept queue is full (a stopped daemon with many clients):
    // it runs on a thread of its own, left behind if it is still waiting
    // when this client gives up and exits.
    let (tx, rx) = std::sync::mpsc::channel();
    let target = sock.clone();
    std::thread::spawn(move || tx.send(UnixStream::connect(&target)));
    let left = deadline.saturating_duration_since(Instant::now());
    let stream = match rx.recv_timeout(left) {
        Ok(r) => r.map_err(|e| match e.kind() {
            ErrorKind::NotFound => Fail(
                NO_DAEMON,
                format!(
                    "no rolld is running {shown} (no {}; a daemon using another run directory is not seen here)",
                    sock.display()
                ),
            ),
            ErrorKind::ConnectionRefused => {
                Fail(NO_DAEMON, format!("no rolld is running {shown} ({} is stale: its daemon died)", sock.display()))
            }
            _ => Fail(NO_DAEMON, format!("cannot reach the rolld of {shown}: {}: {e}", sock.display())),
        })?,
        Err(_) => {
            return Err(Fail(
                TIMED_OUT,
                format!(
                    "the rolld of {shown} did not accept the connection within {} ({}): is it stopped or overloaded?",
                    fmt_secs(left),
                    sock.display()
                ),
            ));
        }
    };
    Ok((stream, abs))
}

fn fmt_secs(d: Duration) -> String {
    format!("{}s", (d.as_secs_f64() * 10.0).round() / 10.0)
}

fn send(stream: &mut UnixStream, req: &str) -> Result<(), Fail> {
    stream.write_all(format!("{req}\n").as_bytes()).map_err(|e| Fail(NO_DAEMON, format!("sending the request: {e}")))
}

/// Sets the read timeout to what is left before `deadline`; false once it
/// has passed.
fn time_left(stream: &UnixStream, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    let _ = stream.set_read_timeout(Some(left));
    true
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// `rolld reload`: 0 live, 1 rolled back or partial, 2 no daemon or
/// invalid config, 3 the daemon did not take the request in time or
/// `--timeout` passed (the rollout goes on), 4 the daemon stopped before
/// the rollout ended.
pub fn reload(config: &Path, run_dir: Option<&Path>, wait: bool, timeout: Option<Duration>) -> u8 {
    match follow_reload(config, run_dir, wait, timeout) {
        Ok(code) => code,
        Err(Fail(code, msg)) => {
            eprintln!("rolld reload: {}", log::escape(&msg));
            code
        }
    }
}

/// What a line of the answer to `reload` means.
#[derive(Debug, PartialEq)]
enum Reply {
    /// `queued`: the request is taken.
    Queued,
    /// Text to print, escaped.
    Show(String),
    /// `error WHY`: the request is refused.
    Refused(String),
    Live,
    RolledBack,
    Invalid,
    Stopped,
}

/// Reads a line of the answer to `reload`, as received (with its newline).
/// Only a whole line of fixed words ends the rollout; an `end` line this
/// client does not know is not live. A line cut by the end of the
/// connection is only shown.
fn reply(raw: &[u8]) -> Reply {
    let Some(raw) = raw.strip_suffix(b"\n") else { return Reply::Show(log::escape(&String::from_utf8_lossy(raw))) };
    let line = String::from_utf8_lossy(raw);
    let (kind, rest) = line.split_once(' ').unwrap_or((&line, ""));
    match (kind, rest) {
        ("end", "ok") => Reply::Live,
        ("end", "invalid") => Reply::Invalid,
        ("end", "stopped") => Reply::Stopped,
        ("end", _) => Reply::RolledBack,
        ("queued", _) => Reply::Queued,
        ("phase" | "log", _) => Reply::Show(log::escape(rest)),
        // done GROUP OUTCOME SUMMARY: the summary says the outcome.
        ("done", _) => {
            let mut f = rest.splitn(3, ' ');
            let (group, summary) = (f.next().unwrap_or(""), f.nth(1).unwrap_or(""));
            Reply::Show(log::escape(&format!("{group} {summary}")))
        }
        ("error", _) => Reply::Refused(rest.to_string()),
        _ => Reply::Show(log::escape(&line)),
    }
}

fn follow_reload(config: &Path, run_dir: Option<&Path>, wait: bool, timeout: Option<Duration>) -> Result<u8, Fail> {
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    // Until `queued`, the daemon has ANSWER_TIMEOUT (or less, by --timeout).
    let answer_by = deadline.map_or(start + ANSWER_TIMEOUT, |d| d.min(start + ANSWER_TIMEOUT));
    let (mut stream, abs) = connect(config, run_dir, answer_by)?;
    let shown = abs.display();
    send(&mut stream, "reload")?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut queued = false;
    loop {
        line.clear();
        let by = if queued { deadline } else { Some(answer_by) };
        if let Some(by) = by
            && !time_left(reader.get_ref(), by)
        {
            return Err(too_late(queued, &abs, by - start));
        }
        if by.is_none() {
            let _ = reader.get_ref().set_read_timeout(None);
        }
        match reader.read_until(b'\n', &mut line) {
            Ok(0) if !queued => {
                return Err(Fail(NO_DAEMON, format!("the rolld of {shown} closed the connection without an answer")));
            }
            Ok(0) => {
                return Err(Fail(
                    STOPPED,
                    format!("the rolld of {shown} closed the connection before the rollout ended (did it die?)"),
                ));
            }
            Ok(_) => {}
            Err(e) if timed_out(&e) => return Err(too_late(queued, &abs, by.map_or(Duration::ZERO, |b| b - start))),
            Err(e) => {
                return Err(Fail(STOPPED, format!("lost the connection to the rolld of {shown}: {e}")));
            }
        }
        match reply(&line) {
            Reply::Queued if !wait => {
                println!("rollout requested");
                return Ok(OK);
            }
            Reply::Queued => {
                queued = true;
                println!("rollout requested; waiting");
            }
            Reply::Show(text) => println!("{text}"),
            Reply::Live => return Ok(OK),
            Reply::RolledBack => return Ok(ROLLED_BACK),
            Reply::Invalid => return Ok(NO_DAEMON),
            Reply::Stopped => {
                return Err(Fail(
                    STOPPED,
                    format!("the rolld of {shown} was stopped before the rollout ended; it stops every set"),
                ));
            }
            Reply::Refused(why) => return Err(Fail(NO_DAEMON, why)),
        }
    }
}

/// The message of a deadline passed: before `queued`, the daemon did not
/// answer; after, `--timeout` passed while the rollout goes on.
fn too_late(queued: bool, config: &Path, after: Duration) -> Fail {
    if queued {
        Fail(TIMED_OUT, "--timeout passed; the rollout goes on".to_string())
    } else {
        Fail(
            TIMED_OUT,
            format!(
                "the rolld of {} did not answer within {}: is it stopped or overloaded? (it may still roll when it resumes)",
                config.display(),
                fmt_secs(after)
            ),
        )
    }
}

/// `rolld status`: prints the daemon's answer; 0, 2 with no daemon, 3 when
/// the daemon does not answer within `timeout` (ANSWER_TIMEOUT by default).
pub fn status(config: &Path, run_dir: Option<&Path>, json: bool, timeout: Option<Duration>) -> u8 {
    let req = if json { "status json" } else { "status" };
    match ask(config, run_dir, req, timeout.unwrap_or(ANSWER_TIMEOUT)) {
        Ok(text) => {
            print!("{}", printable(&text, json));
            OK
        }
        Err(Fail(code, msg)) => {
            eprintln!("rolld status: {}", log::escape(&msg));
            code
        }
    }
}

/// The answer to `status`, as printed: each line escaped (JSON as in a
/// JSON string, so that it stays valid), each with its newline.
fn printable(answer: &str, json: bool) -> String {
    if answer.is_empty() {
        return String::new();
    }
    let lines = answer.strip_suffix('\n').unwrap_or(answer).split('\n');
    lines.map(|l| if json { control::json_escape(l) } else { log::escape(l) } + "\n").collect()
}

/// `rolld promote` and `rolld revert` (`word`): 0 when a bake was ended
/// so, 1 when no group was baking, 2 with no daemon, 3 when it does not
/// answer within `timeout`.
pub fn bake(config: &Path, run_dir: Option<&Path>, word: &str, timeout: Option<Duration>) -> u8 {
    match ask(config, run_dir, word, timeout.unwrap_or(ANSWER_TIMEOUT)) {
        Ok(text) if text.starts_with("none ") => {
            eprint!("rolld {word}: {}", printable(text.trim_start_matches("none "), false));
            ROLLED_BACK
        }
        Ok(text) => {
            print!("{}", printable(&text, false));
            OK
        }
        Err(Fail(code, msg)) => {
            eprintln!("rolld {word}: {}", log::escape(&msg));
            code
        }
    }
}

/// The whole answer of the daemon to the request line `req`.
fn ask(config: &Path, run_dir: Option<&Path>, req: &str, timeout: Duration) -> Result<String, Fail> {
    let start = Instant::now();
    let deadline = start + timeout;
    let (mut stream, abs) = connect(config, run_dir, deadline)?;
    send(&mut stream, req)?;
    // The whole answer by the deadline, however it is cut into reads.
    let mut text = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if !time_left(&stream, deadline) {
            return Err(no_answer(&abs, timeout, !text.is_empty()));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(no_answer(&abs, timeout, !text.is_empty())),
            Err(e) => {
                return Err(Fail(NO_DAEMON, format!("reading the answer of the rolld of {}: {e}", abs.display())));
            }
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    if text.starts_with("error ") {
        return Err(Fail(NO_DAEMON, text.trim_end().to_string()));
    }
    Ok(text)
}

fn no_answer(config: &Path, timeout: Duration, partly: bool) -> Fail {
    let what = if partly { "finish its answer" } else { "answer" };
    Fail(
        TIMED_OUT,
        format!(
            "the rolld of {} did not {what} within {}: is it stopped or overloaded?",
            config.display(),
            fmt_secs(timeout)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_line_of_fixed_words_is_an_outcome() {
        assert_eq!(reply(b"end ok\n"), Reply::Live);
        assert_eq!(reply(b"end rolled-back\n"), Reply::RolledBack);
        assert_eq!(reply(b"end invalid\n"), Reply::Invalid);
        assert_eq!(reply(b"end stopped\n"), Reply::Stopped);
        assert_eq!(reply(b"queued\n"), Reply::Queued);
        assert_eq!(reply(b"error rolld is stopping\n"), Reply::Refused("rolld is stopping".into()));
        for not_live in [&b"end ok\r\n"[..], b"end ok \n", b"end  ok\n", b"end ok\x1b\n", b"end later\n"] {
            assert_eq!(reply(not_live), Reply::RolledBack, "{:?}", String::from_utf8_lossy(not_live));
        }
        // Cut by the end of the connection: shown, not taken.
        assert_eq!(reply(b"end ok"), Reply::Show("end ok".into()));
        assert_eq!(reply(b"log x end ok\n"), Reply::Show("x end ok".into()));
    }

    #[test]
    fn what_a_client_prints_is_escaped() {
        for (raw, shown) in log::HOSTILE {
            assert_eq!(reply(format!("log web:8001 {raw}\n").as_bytes()), Reply::Show(format!("web:8001 {shown}")));
            assert_eq!(reply(format!("phase web {raw}\n").as_bytes()), Reply::Show(format!("web {shown}")));
            let done = format!("done web rolled-back {raw}\n");
            assert_eq!(reply(done.as_bytes()), Reply::Show(format!("web {shown}")));
            assert_eq!(reply(format!("{raw}\n").as_bytes()), Reply::Show(shown.to_string()));
            // In the answer to `status`, a newline ends a line.
            if !raw.contains('\n') {
                assert_eq!(printable(&format!("a\n{raw}\n"), false), format!("a\n{shown}\n"));
            }
        }
        // Bytes that are not UTF-8 are shown, not a reason to give up.
        assert_eq!(reply(b"log web \xff\xfe\x1b[2J\n"), Reply::Show("web \u{fffd}\u{fffd}\\x1b[2J".into()));
        // JSON stays JSON: an older daemon's DEL in a string, escaped.
        assert_eq!(printable("{\"a\":\"\u{7f}\"}\n", true), "{\"a\":\"\\u007f\"}\n");
        assert_eq!(printable("", false), "");
    }
}
