//! One line per event on stderr: UTC time, level, group[:port], message.

use crate::group::Level;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn log(level: Level, group: &str, port: Option<u16>, msg: &str) {
    let lvl = match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    let who = match port {
        Some(p) => format!("{group}:{p}"),
        None => group.to_string(),
    };
    let line = format!("{} {lvl} {who} {msg}\n", timestamp(SystemTime::now()));
    // One write per line, so lines of concurrent writers do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(group: &str, msg: &str) {
    log(Level::Info, group, None, msg);
}

pub fn error(group: &str, msg: &str) {
    log(Level::Error, group, None, msg);
}

/// `s` with control characters shown as `\xNN`, so that what a child or
/// a client wrote cannot forge or break a log line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("a\nb\x1b[2Jc\u{7f}"), "a\\x0ab\\x1b[2Jc\\x7f");
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
