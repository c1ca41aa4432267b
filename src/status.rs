//! `rolld status`, text and JSON, as pure functions of a snapshot of the
//! daemon. The JSON schema is documented in docs/operations.md, which
//! tests/docs.rs checks against the field names written here. The text is
//! a list of lines, each escaped where it is sent (`session`); the JSON is
//! one line whose strings `json_str` escapes.

use crate::control::json_str;
use crate::group::{BakeView, DrainView, Group, Outcome, Proc, Tally, fmt_duration, fmt_ports};
use crate::haproxy::Receipt;
use crate::log;
use std::path::Path;
use std::time::{Instant, SystemTime};

/// How a group's last rollout ended: when, how, its summary line, and its
/// receipt: what rolld saw of its drains, and what HAProxy counted.
#[derive(Clone, Debug)]
pub struct Last {
    pub at: SystemTime,
    pub outcome: Outcome,
    pub summary: String,
    pub tally: Tally,
    pub haproxy: Option<Receipt>,
}

/// What status shows, taken at one instant.
pub struct Snapshot<'a> {
    pub pid: u32,
    pub config: &'a Path,
    pub reload_pending: bool,
    pub now: Instant,
    pub groups: Vec<View<'a>>,
}

pub struct View<'a> {
    pub group: &'a Group,
    pub last: Option<&'a Last>,
}

/// A rollout's receipt: what rolld saw of its drains, and (`haproxy`,
/// else null) what HAProxy counted from the rollout's start to the end of
/// its drain.
fn receipt_json(t: &Tally, h: Option<&Receipt>) -> String {
    let ms =
        |d: Option<std::time::Duration>| d.map_or("null".to_string(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0));
    let haproxy = match h {
        None => "null".to_string(),
        Some(r) => {
            let deltas = match r.deltas() {
                None => "null".to_string(),
                Some(d) => format!(
                    "{{\"requests_old\":{},\"requests_new\":{},\"hrsp_5xx\":{},\"econ\":{},\"eresp\":{},\"wretr\":{},\"wredis\":{}}}",
                    d.req_old, d.req_new, d.hrsp_5xx, d.econ, d.eresp, d.wretr, d.wredis
                ),
            };
            format!(
                "{{\"switch_ms\":{},\"drain_ms\":{},\"reloads_caught\":{},\"counts\":{deltas}}}",
                ms(r.switch_took),
                ms(r.drain_took),
                r.reapplied
            )
        }
    };
    format!(
        "{{\"drained\":{},\"left_at_drain_timeout\":{},\"sigkills\":{},\"haproxy\":{haproxy}}}",
        t.drained,
        t.left_at_timeout.map_or("null".to_string(), |n| n.to_string()),
        t.killed
    )
}

/// The status as lines (without their newlines).
pub fn text(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!("rolld pid {}  config {}", s.pid, s.config.display())];
    out.push(format!(
        "{:<16} {:<13} {:<7} {:>5} {:>8} {:>9} {:>8}",
        "GROUP", "PHASE", "WORKSET", "PORT", "PID", "UPTIME", "RESTARTS"
    ));
    let now = s.now;
    for v in &s.groups {
        let g = v.group;
        let Some(live) = &g.live else {
            out.push(format!("{:<16} {:<13} -", g.name, g.phase_name()));
            if let Some(d) = g.draining() {
                out.push(format!("{:<16} {}", "", drain_line(&d, now)));
            }
            continue;
        };
        for p in &live.procs {
            let pid = p.pid.map_or("-".to_string(), |p| p.to_string());
            let up = p.pid.map_or("-".to_string(), |_| fmt_uptime(now.saturating_duration_since(p.started).as_secs()));
            out.push(format!(
                "{:<16} {:<13} {:<7} {:>5} {:>8} {:>9} {:>8}",
                g.name,
                g.phase_name(),
                live.workset_of(p.port).map_or("-".to_string(), |w| w.to_string()),
                p.port,
                pid,
                up,
                p.restarts
            ));
        }
        if let Some(d) = g.draining() {
            out.push(format!("{:<16} {}", "", drain_line(&d, now)));
        }
        if let Some(b) = g.baking() {
            out.push(format!("{:<16} {}", "", bake_line(&b, now)));
        }
        if let Some(h) = live.cfg.health {
            let procs: Vec<String> = live.procs.iter().map(|p| health_word(p, now)).collect();
            out.push(format!(
                "{:<16} health every {}: {}; heals {}",
                "",
                fmt_duration(h.every),
                procs.join(", "),
                g.heals
            ));
        }
        if let Some(new) = g.incoming() {
            let batch = g.batch().map_or(String::new(), |(b, of)| format!(" (batch {b} of {of})"));
            out.push(format!("{:<16} rollout to {}{batch}", "", fmt_ports(&new.ports())));
        }
        if let Some(Last { at, summary, .. }) = v.last {
            out.push(format!("{:<16} last: {} {summary}", "", log::timestamp(*at)));
        }
    }
    out
}

/// The JSON status, one line (without its newline); its schema is
/// documented in docs/operations.md.
pub fn json(s: &Snapshot) -> String {
    let now = s.now;
    let ports = |p: &[u16]| format!("[{}]", fmt_ports(p));
    let groups: Vec<String> = s
        .groups
        .iter()
        .map(|v| {
            let g = v.group;
            let live = match &g.live {
                None => "null".to_string(),
                Some(l) => {
                    let procs: Vec<String> = l
                        .procs
                        .iter()
                        .map(|p| {
                            let up = now.saturating_duration_since(p.started).as_secs_f64();
                            format!(
                                "{{\"port\":{},\"pid\":{},\"uptime_seconds\":{},\"restarts\":{},\"slot\":{},\"workset\":{},\"rollout\":{},\"health\":{}}}",
                                p.port,
                                p.pid.map_or("null".into(), |v| v.to_string()),
                                if p.pid.is_some() { format!("{up:.3}") } else { "null".into() },
                                p.restarts,
                                p.slot,
                                number(l.workset_of(p.port)),
                                p.rollout,
                                health_json(p, now)
                            )
                        })
                        .collect();
                    format!(
                        "{{\"workset\":{},\"ports\":{},\"processes\":[{}]}}",
                        number(l.workset()),
                        ports(&l.ports()),
                        procs.join(",")
                    )
                }
            };
            let drain = match g.draining() {
                None => "null".to_string(),
                Some(d) => drain_json(&d, now),
            };
            let bake = match g.baking() {
                None => "null".to_string(),
                Some(b) => format!(
                    "{{\"ports\":{},\"old_ports\":{},\"left_seconds\":{:.3},\"haproxy_errors\":{},\"haproxy_unread\":{}}}",
                    ports(&b.ports),
                    ports(&b.old),
                    b.until.saturating_duration_since(now).as_secs_f64(),
                    b.lb_errors.map_or("null".into(), |n| n.to_string()),
                    b.lb_unread
                ),
            };
            let rollout = match g.incoming() {
                Some(n) => {
                    let batch = g.batch().map_or("null".to_string(), |(b, of)| format!("[{b},{of}]"));
                    format!("{{\"workset\":{},\"ports\":{},\"batch\":{batch}}}", number(n.workset()), ports(&n.ports()))
                }
                None => "null".into(),
            };
            let last = match v.last {
                None => "null".to_string(),
                Some(Last { at, outcome, summary, tally, haproxy }) => {
                    let (word, reason) = match outcome {
                        Outcome::Ok => ("ok", "null".to_string()),
                        Outcome::RolledBack { reason, .. } => ("rolled-back", json_str(reason)),
                        Outcome::StartFailed { reason, .. } => ("start-failed", json_str(reason)),
                        Outcome::Partial { reason, .. } => ("partial", json_str(reason)),
                        Outcome::Reverted { reason, .. } => ("reverted", json_str(reason)),
                    };
                    format!(
                        "{{\"outcome\":\"{word}\",\"at\":{},\"reason\":{reason},\"summary\":{},\"receipt\":{}}}",
                        json_str(&log::timestamp(*at)),
                        json_str(summary),
                        receipt_json(tally, haproxy.as_ref())
                    )
                }
            };
            format!(
                "{{\"name\":{},\"phase\":\"{}\",\"live\":{live},\"rollout\":{rollout},\"drain\":{drain},\"bake\":{bake},\"heals\":{},\"last_rollout\":{last}}}",
                json_str(&g.name),
                g.phase_name(),
                g.heals
            )
        })
        .collect();
    format!(
        "{{\"version\":2,\"pid\":{},\"config\":{},\"reload_pending\":{},\"groups\":[{}]}}",
        s.pid,
        json_str(&s.config.display().to_string()),
        s.reload_pending,
        groups.join(",")
    )
}

/// A live process's health checks: `8001 ok 0.42s ago`, `8002 failing 2
/// in a row 0.10s ago (timed out)`, `8003 not checked yet`.
fn health_word(p: &Proc, now: Instant) -> String {
    match p.health_now().and_then(|h| Some((h.fails, h.last.as_ref()?))) {
        None => format!("{} not checked yet", p.port),
        Some((_, (at, Ok(())))) => format!("{} ok {} ago", p.port, fmt_duration(now.saturating_duration_since(*at))),
        Some((n, (at, Err(e)))) => {
            format!("{} failing {n} in a row {} ago ({e})", p.port, fmt_duration(now.saturating_duration_since(*at)))
        }
    }
}

/// `{"failures":N,"last_check_seconds_ago":S,"last_error":null|"..."}`,
/// or null before the first check.
fn health_json(p: &Proc, now: Instant) -> String {
    match p.health_now().and_then(|h| Some((h.fails, h.last.as_ref()?))) {
        None => "null".to_string(),
        Some((n, (at, result))) => format!(
            "{{\"failures\":{n},\"last_check_seconds_ago\":{:.3},\"last_error\":{}}}",
            now.saturating_duration_since(*at).as_secs_f64(),
            result.as_ref().err().map_or("null".to_string(), |e| json_str(e))
        ),
    }
}

/// `baking 8501,8502: 4.20s left; 8001,8002 kept to revert to; 0 error(s) counted by HAProxy`
fn bake_line(b: &BakeView, now: Instant) -> String {
    let left = fmt_duration(b.until.saturating_duration_since(now));
    let mut line = format!("baking {}: {left} left; {} kept to revert to", fmt_ports(&b.ports), fmt_ports(&b.old));
    if let Some(n) = b.lb_errors {
        line.push_str(&format!("; {n} error(s) counted by HAProxy"));
    }
    if b.lb_unread {
        line.push_str("; HAProxy's counters cannot be read: the bake cannot pass until they are");
    }
    line
}

/// `draining 8001,8002: 3 connection(s) left (8001: 2, 8002: 1); drain_timeout in 42s`
fn drain_line(d: &DrainView, now: Instant) -> String {
    let left = fmt_duration(d.deadline.saturating_duration_since(now));
    let ports = fmt_ports(&d.ports);
    match &d.counts {
        None => format!("draining {ports}: not counted yet; drain_timeout in {left}"),
        Some(c) => {
            let n: usize = c.iter().map(|c| c.1).sum();
            let per: Vec<String> = c.iter().map(|(p, n)| format!("{p}: {n}")).collect();
            format!("draining {ports}: {n} connection(s) left ({}); drain_timeout in {left}", per.join(", "))
        }
    }
}

/// `{"ports":[...],"connections":N,"per_port":[{"port":P,"connections":N}],"deadline_in_seconds":S}`;
/// the counts are null before the first count.
fn drain_json(d: &DrainView, now: Instant) -> String {
    let (total, per) = match &d.counts {
        None => ("null".to_string(), "null".to_string()),
        Some(c) => {
            let per: Vec<String> = c.iter().map(|(p, n)| format!("{{\"port\":{p},\"connections\":{n}}}")).collect();
            (c.iter().map(|c| c.1).sum::<usize>().to_string(), format!("[{}]", per.join(",")))
        }
    };
    format!(
        "{{\"ports\":[{}],\"connections\":{total},\"per_port\":{per},\"deadline_in_seconds\":{:.3}}}",
        fmt_ports(&d.ports),
        d.deadline.saturating_duration_since(now).as_secs_f64()
    )
}

/// A JSON number, or null.
fn number(n: Option<usize>) -> String {
    n.map_or("null".to_string(), |n| n.to_string())
}

fn fmt_uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn json_is_one_line_that_holds_text_from_outside_escaped() {
        let g = Group::new("web");
        for (raw, _) in log::HOSTILE {
            let last = Last {
                at: UNIX_EPOCH,
                outcome: Outcome::RolledBack { reason: raw.to_string(), port: None },
                summary: raw.to_string(),
                tally: Tally::default(),
                haproxy: None,
            };
            let snap = Snapshot {
                pid: 1,
                config: Path::new(raw),
                reload_pending: false,
                now: Instant::now(),
                groups: vec![View { group: &g, last: Some(&last) }],
            };
            let j = json(&snap);
            assert!(!j.chars().any(log::is_unsafe), "{j:?}");
            // YAML reads JSON: each string means the text it was made of.
            let v: serde_yaml::Value = serde_yaml::from_str(&j).unwrap();
            assert_eq!(v["config"].as_str(), Some(*raw), "{j}");
            assert_eq!(v["groups"][0]["last_rollout"]["reason"].as_str(), Some(*raw), "{j}");
            assert_eq!(v["groups"][0]["last_rollout"]["summary"].as_str(), Some(*raw), "{j}");
            let t = text(&snap);
            assert_eq!(t[0], format!("rolld pid 1  config {raw}"), "the text is lines, escaped where sent");
        }
    }
}
