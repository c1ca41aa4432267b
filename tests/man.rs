//! The man pages against what they document: rolld(1) against `rolld
//! --help` and `rolld help COMMAND` (its synopsis is the usage, its options
//! the usage's options, its exit codes each command's), rolld.yml(5)
//! against `rolld::config::KEYS`, both ways; and both render with groff
//! without a warning. No daemon, no port.

mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use usage::*;

fn page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of section `name`: from `.SH name` to the next `.SH`.
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = page.lines().skip_while(|l| text(l) != name || !l.starts_with(".SH"));
    assert!(lines.next().is_some(), "no section {name}");
    lines.take_while(|l| !l.starts_with(".SH")).collect()
}

/// The arguments of a macro line, as roff splits them (quotes group).
fn args(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = rest.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => out.push(chars.by_ref().take_while(|&c| c != '"').collect()),
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek().filter(|&&n| n != ' ') {
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    out
}

/// A line of roff as it reads: font changes dropped, `\-` a hyphen, a
/// macro's arguments joined as it prints them (the alternating ones such
/// as `.BR` with no space between).
fn text(line: &str) -> String {
    let joined = match line.strip_prefix('.') {
        Some(m) => {
            let (name, rest) = m.split_once(' ').unwrap_or((m, ""));
            let a = args(rest);
            if name.len() == 2 && name.chars().all(|c| "BIR".contains(c)) { a.concat() } else { a.join(" ") }
        }
        None => line.to_string(),
    };
    let mut out = joined;
    for (from, to) in
        [("\\fB", ""), ("\\fI", ""), ("\\fR", ""), ("\\fP", ""), ("\\%", ""), ("\\&", ""), ("\\-", "-"), ("\\(aq", "'")]
    {
        out = out.replace(from, to);
    }
    out
}

/// The tag of each `.TP` in `lines`, as roff source.
fn tags<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines.windows(2).filter(|w| w[0] == ".TP").map(|w| w[1]).collect()
}

#[test]
fn rolld_1_synopsis_is_the_usage() {
    let man = page("rolld.1");
    let synopsis: Vec<String> =
        section(&man, "SYNOPSIS").into_iter().filter(|l| !l.starts_with('.')).map(text).collect();
    assert_eq!(synopsis, usage_lines(), "SYNOPSIS, line for line, is the usage of rolld --help");
}

#[test]
fn rolld_1_describes_every_command_and_option_and_no_other() {
    let man = page("rolld.1");
    let documented: BTreeSet<String> =
        tags(&section(&man, "COMMANDS")).into_iter().map(|t| command_of(&text(t))).collect();
    let known: BTreeSet<String> = commands().into_iter().collect();
    assert_eq!(documented, known, "COMMANDS has a .TP for each command of rolld help");
    for t in tags(&section(&man, "COMMANDS")) {
        assert!(usage_lines().contains(&text(t)), "the COMMANDS tag {t:?} is not a usage line");
    }
    let tagged: Vec<String> = tags(&section(&man, "OPTIONS")).into_iter().map(text).collect();
    assert_eq!(options(&tagged), options(&usage_lines()), "OPTIONS has a .TP for each option of the usage");
}

/// EXIT STATUS has a `.SS` for each command (`rolld CONFIG` is `run`;
/// one may name several, `rolld promote, rolld revert`), each code a `.TP`
/// tag `.B N`: the codes of `rolld help COMMAND`, no more, no fewer.
#[test]
fn rolld_1_gives_each_command_its_exit_codes() {
    let man = page("rolld.1");
    let mut documented: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    let lines = section(&man, "EXIT STATUS");
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(".SS") {
            names = text(line).split(", ").map(command_of).collect();
            for n in &names {
                assert!(documented.insert(n.clone(), Vec::new()).is_none(), "{n} twice in EXIT STATUS");
            }
        } else if *line == ".TP" {
            let tag = lines.get(i + 1).copied().unwrap_or_default();
            let code = tag.strip_prefix(".B ").and_then(|c| c.parse::<u8>().ok());
            let code = code.unwrap_or_else(|| panic!("an EXIT STATUS tag is not `.B CODE`: {tag:?}"));
            assert!(!names.is_empty(), "exit code {code} before any .SS");
            for n in &names {
                documented.get_mut(n).unwrap().push(code);
            }
        }
    }
    let from_help: BTreeMap<String, Vec<u8>> = commands().into_iter().map(|c| (c.clone(), exit_codes(&c))).collect();
    assert_eq!(documented, from_help, "EXIT STATUS of rolld(1) against rolld help COMMAND");
}

/// In the KEYS section of rolld.yml(5), each key is a `.TP` tag `.B KEY`,
/// its dotted path as in `rolld::config::KEYS`: every key there, each once,
/// and no other.
#[test]
fn rolld_yml_5_documents_every_key_and_only_those() {
    let man = page("rolld.yml.5");
    let mut documented = Vec::new();
    for tag in tags(&section(&man, "KEYS")) {
        let key = tag.strip_prefix(".B ").unwrap_or_else(|| panic!("a KEYS tag is not `.B KEY`: {tag:?}"));
        documented.push(text(key));
    }
    let once: BTreeSet<&String> = documented.iter().collect();
    assert_eq!(once.len(), documented.len(), "a key documented twice: {documented:?}");
    let keys: BTreeSet<String> = rolld::config::KEYS.iter().map(|k| k.to_string()).collect();
    let missing: Vec<&String> = keys.iter().filter(|k| !once.contains(k)).collect();
    let unknown: Vec<&&String> = once.iter().filter(|k| !keys.contains(**k)).collect();
    assert!(missing.is_empty(), "keys of rolld::config::KEYS not in rolld.yml(5): {missing:?}");
    assert!(unknown.is_empty(), "keys in rolld.yml(5) that rolld::config::KEYS does not list: {unknown:?}");
}

/// Each page renders with groff, every warning on (`-ww`), without one.
#[test]
fn both_pages_render_without_a_warning() {
    for name in ["rolld.1", "rolld.yml.5"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
        let run = std::process::Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path).output();
        let o = match run {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: groff is not installed (apt-get install groff-base): {name} not rendered");
                return;
            }
            Err(e) => panic!("groff: {e}"),
        };
        let warnings = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && warnings.is_empty(), "groff on {name}: {:?}\n{warnings}", o.status);
    }
}
