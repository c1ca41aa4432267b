//! One line per event on stderr: UTC time, level, group[:port], message.
//!
//! And the one escape of text that leaves rolld. Messages carry text from
//! outside (a process's name, a backend's output, a template's error, a
//! client's request) as it came; the sinks escape it, once: this log, the
//! lines written to control clients (`session`, which carries `status`
//! text too), the JSON of `status` (`control::json_str`), and what the
//! clients and `rolld check` print. So no text can end a line and forge
//! the next one, or reach a terminal as an escape sequence.

use crate::group::Level;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn log(level: Level, group: &str, port: Option<u16>, msg: &str) {
    let line = line(SystemTime::now(), level, group, port, msg);
    // One write per line, so lines of concurrent writers do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A log line, escaped, with its newline.
fn line(at: SystemTime, level: Level, group: &str, port: Option<u16>, msg: &str) -> String {
    let lvl = match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    let who = match port {
        Some(p) => format!("{group}:{p}"),
        None => group.to_string(),
    };
    format!("{} {lvl} {} {}\n", timestamp(at), escape(&who), escape(msg))
}

pub fn info(group: &str, msg: &str) {
    log(Level::Info, group, None, msg);
}

pub fn error(group: &str, msg: &str) {
    log(Level::Error, group, None, msg);
}

/// Whether `c` may not leave rolld as it is: a control character (C0 with
/// newline, CR, ESC and NUL; DEL; C1, whose CSI a terminal may obey), or
/// one that changes how a line reads (line and paragraph separators, and
/// the bidirectional marks, embeddings, overrides and isolates). Every one
/// is in the Basic Multilingual Plane.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character `is_unsafe` names shown as `\xNN` (or
/// `\u{NNNN}` above U+00FF): the result holds none, so escaping it again
/// changes nothing. A backslash is left as it is: `\x0a` in the text and
/// an escaped newline read the same, but neither can end a line.
pub fn escape(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c as u32 {
            _ if !is_unsafe(c) => out.push(c),
            n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
            n => out.push_str(&format!("\\u{{{n:04x}}}")),
        }
    }
    out
}

/// RFC 3339 UTC with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Text from outside, hostile, and how `escape` shows it: for the tests
/// of every sink.
#[cfg(test)]
pub const HOSTILE: &[(&str, &str)] = &[
    ("x\nend ok\nz", "x\\x0aend ok\\x0az"),
    ("a\r\nb\rc", "a\\x0d\\x0ab\\x0dc"),
    ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
    ("nul\0here\t", "nul\\x00here\\x09"),
    ("del\u{7f} csi\u{9b}31m nel\u{85}", "del\\x7f csi\\x9b31m nel\\x85"),
    ("ls\u{2028}ps\u{2029}rlo\u{202e}fsi\u{2068}", "ls\\u{2028}ps\\u{2029}rlo\\u{202e}fsi\\u{2068}"),
    // Invalid UTF-8 arrives as U+FFFD, from a lossy decoding.
    ("bad \u{fffd}\u{fffd} utf-8", "bad \u{fffd}\u{fffd} utf-8"),
    ("caf\u{e9} \u{1f600} \\x0a", "caf\u{e9} \u{1f600} \\x0a"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_what_may_not_leave_rolld_and_only_that() {
        for (raw, shown) in HOSTILE {
            assert_eq!(escape(raw), *shown, "{raw:?}");
            assert_eq!(escape(shown), *shown, "escaping twice changes nothing: {raw:?}");
            assert!(!shown.chars().any(is_unsafe));
        }
        let lossy = String::from_utf8_lossy(b"a\xff\xfe\n\xc3");
        assert_eq!(escape(&lossy), "a\u{fffd}\u{fffd}\\x0a\u{fffd}");
    }

    #[test]
    fn a_log_line_is_one_line_whatever_its_text() {
        for (raw, shown) in HOSTILE {
            let l = line(UNIX_EPOCH, Level::Warn, "web", Some(8001), raw);
            assert_eq!(l, format!("1970-01-01T00:00:00.000Z WARN web:8001 {shown}\n"));
            let l = line(UNIX_EPOCH, Level::Error, raw, None, "msg");
            assert_eq!(l, format!("1970-01-01T00:00:00.000Z ERROR {shown} msg\n"));
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_642_215_123);
        assert_eq!(timestamp(t), "2026-11-25T21:30:15.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
