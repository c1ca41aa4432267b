//! What `rolld --help` and `rolld help COMMAND` print, read back: the
//! usage lines, the commands, the options, and each command's exit codes.
//! tests/help.rs checks the text; tests/man.rs checks rolld(1) against it.

#![allow(dead_code)]

use std::process::{Command, Output};

pub fn rolld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rolld")).args(args).output().expect("rolld runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The usage lines of `rolld --help`, without their indent.
pub fn usage_lines() -> Vec<String> {
    let o = rolld(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o).lines().filter_map(|l| l.strip_prefix("  rolld ")).map(|l| format!("rolld {l}")).collect()
}

/// The command a usage line is of, by the name `rolld help` takes:
/// `run` for `rolld [--run-dir DIR] CONFIG`, `help` for the options that
/// print.
pub fn command_of(usage: &str) -> String {
    let word = usage.split_whitespace().nth(1).unwrap_or_default();
    match word {
        w if w.starts_with('[') || w == "CONFIG" => "run".into(),
        w if w.starts_with('-') => "help".into(),
        w => w.into(),
    }
}

/// The options in `lines`: each word that starts with `-`.
pub fn options<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .flat_map(|l| l.as_ref().split(|c: char| c.is_whitespace() || "[]|,".contains(c)).map(str::to_string))
        .filter(|w| w.starts_with('-') && w.len() > 1)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The names `rolld help` knows, as its usage error lists them.
pub fn commands() -> Vec<String> {
    let o = rolld(&["help", "no-such-command"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let known = err.split_once("(known: ").and_then(|(_, r)| r.split_once(')')).map(|(k, _)| k);
    known.unwrap_or_else(|| panic!("no list of commands in:\n{err}")).split(", ").map(str::to_string).collect()
}

/// The exit codes `rolld help NAME` lists, in order.
pub fn exit_codes(name: &str) -> Vec<u8> {
    let o = rolld(&["help", name]);
    assert_eq!(o.status.code(), Some(0), "rolld help {name}: {}", stderr(&o));
    let out = stdout(&o);
    let (_, list) = out.split_once("\nexit status:\n").unwrap_or_else(|| panic!("no exit status in:\n{out}"));
    list.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_once("  ").and_then(|(code, _)| code.parse().ok()))
        .collect()
}
