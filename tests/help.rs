//! `rolld --help` and `rolld help COMMAND`: the usage, each command's
//! usage lines and exit codes, and the usage error of an unknown command.
//! No daemon, no port.

mod usage;

use rolld::client::{NO_DAEMON, OK, ROLLED_BACK, STOPPED, TIMED_OUT};
use usage::*;

#[test]
fn help_prints_the_usage_and_points_to_the_manual() {
    let o = rolld(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let text = stdout(&o);
    assert!(text.starts_with("usage:\n"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("man rolld,") && last.contains("man rolld.yml"), "the last line: {last:?}");
    for other in [&["-h"][..], &["help"]] {
        let o = rolld(other);
        assert_eq!((o.status.code(), stdout(&o)), (Some(0), text.clone()), "rolld {other:?}");
    }
    // A usage error prints the same usage, after the problem, on stderr.
    let o = rolld(&["--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), format!("rolld: unknown option --bogus\n{text}"));
}

#[test]
fn help_reload_gives_its_usage_and_exit_codes() {
    let o = rolld(&["help", "reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("usage: rolld reload CONFIG [--wait] [--timeout SECS] [--run-dir DIR]\n"), "{text}");
    assert_eq!(exit_codes("reload"), [OK, ROLLED_BACK, NO_DAEMON, TIMED_OUT, STOPPED], "{text}");
    for (code, what) in [(OK, "live"), (ROLLED_BACK, "rolled back"), (TIMED_OUT, "--timeout"), (STOPPED, "stopped")] {
        assert!(text.contains(&format!("\n  {code}  ")) && text.contains(what), "{code} {what}: {text}");
    }
    assert!(text.ends_with("see man rolld\n"), "{text}");
}

/// Every command `rolld help` knows has usage lines, all of them in
/// `rolld --help`, and exit codes; every usage line of `--help` is a
/// command's.
#[test]
fn every_command_has_its_help_and_its_usage_lines_are_the_usage() {
    let names = commands();
    assert_eq!(names, ["run", "check", "reload", "status", "promote", "revert", "help"]);
    let lines = usage_lines();
    let mut covered = Vec::new();
    for name in &names {
        let o = rolld(&["help", name]);
        assert_eq!(o.status.code(), Some(0), "rolld help {name}: {}", stderr(&o));
        let own: Vec<String> =
            stdout(&o).lines().filter_map(|l| l.strip_prefix("usage: ")).map(str::to_string).collect();
        assert!(!own.is_empty(), "rolld help {name}: no usage line");
        for l in &own {
            assert!(lines.contains(l), "rolld help {name}: {l:?} is not in rolld --help: {lines:#?}");
            if command_of(l) == *name {
                covered.push(l.clone());
            }
        }
        let codes = exit_codes(name);
        assert!(codes.contains(&NO_DAEMON) && codes.windows(2).all(|w| w[0] < w[1]), "rolld help {name}: {codes:?}");
    }
    covered.sort();
    let mut all = lines.clone();
    all.sort();
    assert_eq!(covered, all, "each usage line is the usage of the command it names");
}

#[test]
fn an_unknown_command_is_a_usage_error_naming_the_known_ones() {
    let o = rolld(&["help", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(err.starts_with("rolld: help: no command nosuch (known: run, check, reload, "), "{err}");
    let o = rolld(&["help", "reload", "status"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// What the help says a client exits with is what it exits with, where no
/// daemon is needed: 2 for no daemon and for a usage error.
#[test]
fn clients_exit_as_their_help_says_without_a_daemon() {
    let dir = std::env::temp_dir().join(format!("rolld-help-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (run_dir, config) = (dir.join("run"), dir.join("rolld.yml"));
    std::fs::write(&config, "g:\n  cmd: x\n").unwrap();
    let (run_dir, config) = (run_dir.to_str().unwrap(), config.to_str().unwrap());
    for name in ["reload", "status", "promote", "revert"] {
        let o = rolld(&[name, config, "--run-dir", run_dir]);
        assert_eq!(o.status.code(), Some(i32::from(NO_DAEMON)), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("no rolld is running"), "{name}: {}", stderr(&o));
        assert!(exit_codes(name).contains(&NO_DAEMON));
    }
    let o = rolld(&["check", config]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
