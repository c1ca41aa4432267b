//! rolld: blue/green restarts of process groups without losing a request.
//!
//! `main` reads argv, runs a subcommand and maps its result to the exit
//! code; the logic lives in the library's modules.

use rolld::{client, config, daemon, group, keeper, log};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// A command of the command line: its usage lines and what it does (its
/// exit codes are in `client::EXIT_CODES`). `rolld --help` and `rolld help
/// NAME` are both made from this table, and the man page rolld(1) is
/// tested against what they print.
struct Command {
    /// Its name for `rolld help`; `run` is `rolld CONFIG`.
    name: &'static str,
    usage: &'static [&'static str],
    does: &'static str,
}

impl Command {
    /// Its exit codes, from `client::EXIT_CODES`.
    fn exits(&self) -> impl Iterator<Item = (u8, &'static str)> + '_ {
        let name = if self.name == "run" { "rolld CONFIG".to_string() } else { format!("rolld {}", self.name) };
        client::EXIT_CODES.iter().filter(move |e| e.0 == name).map(|e| (e.1, e.2))
    }
}

const BAKE_DOES: &str =
    "end the bake under way now: keep the new release (promote), or switch back to the old set (revert)";
const BAKE_USAGE: &[&str] =
    &["rolld promote CONFIG [--timeout SECS] [--run-dir DIR]", "rolld revert CONFIG [--timeout SECS] [--run-dir DIR]"];

const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        usage: &["rolld [--run-dir DIR] CONFIG"],
        does: "run the groups of CONFIG; SIGHUP rolls them, SIGTERM or SIGINT stops them",
    },
    Command {
        name: "check",
        usage: &["rolld check CONFIG"],
        does: "validate CONFIG as a start would, and print a summary",
    },
    Command {
        name: "reload",
        usage: &["rolld reload CONFIG [--wait] [--timeout SECS] [--run-dir DIR]"],
        does: "ask the daemon running CONFIG to roll; with --wait, follow the rollout",
    },
    Command {
        name: "status",
        usage: &["rolld status CONFIG [--json] [--timeout SECS] [--run-dir DIR]"],
        does: "show the live sets, processes and last rollout of the daemon",
    },
    Command { name: "promote", usage: BAKE_USAGE, does: BAKE_DOES },
    Command { name: "revert", usage: BAKE_USAGE, does: BAKE_DOES },
    Command {
        name: "help",
        usage: &["rolld help [COMMAND]", "rolld -h|--help", "rolld -V|--version"],
        does: "this usage, or a COMMAND's usage and exit codes; -V: the version",
    },
];

const MANUAL: &str = "exit codes: rolld help COMMAND; the manual: man rolld, man rolld.yml";

/// `text` in lines of at most 79 columns, the first after `first`, the
/// others after as many spaces.
fn wrap(text: &str, first: &str) -> String {
    let rest = " ".repeat(first.len());
    let mut lines = vec![first.to_string()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("one line at least");
        if line.len() > rest.len() && line.len() + 1 + word.len() > 79 {
            lines.push(format!("{rest}{word}"));
        } else {
            if line.len() > rest.len() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n") + "\n"
}

/// `rolld --help`: every command's usage lines and what it does (promote
/// and revert, which share theirs, once).
fn usage_text() -> String {
    let mut out = String::from("usage:\n");
    let mut last: &[&str] = &[];
    for c in COMMANDS {
        if c.usage == last {
            continue;
        }
        last = c.usage;
        for u in c.usage {
            out += &format!("  {u}\n");
        }
        out += &wrap(c.does, "      ");
    }
    out + MANUAL
}

/// `rolld help NAME`: the command's usage lines, what it does, and its
/// exit codes.
fn command_help(c: &Command) -> String {
    let mut out = String::new();
    for u in c.usage {
        out += &format!("usage: {u}\n");
    }
    out += &wrap(c.does, "");
    out += "exit status:\n";
    for (code, what) in c.exits() {
        out += &wrap(what, &format!("  {code}  "));
    }
    out + "see man rolld"
}

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    words: Vec<String>,
    run_dir: Option<PathBuf>,
    wait: bool,
    json: bool,
    timeout: Option<Duration>,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--run-dir" => a.run_dir = Some(PathBuf::from(it.next().ok_or("--run-dir needs a directory")?)),
            "--wait" => a.wait = true,
            "--json" => a.json = true,
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a number of seconds")?;
                let secs: f64 = v.parse().map_err(|_| format!("--timeout: not a number of seconds: {v}"))?;
                if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                    return Err(format!("--timeout: must be more than zero: {v}"));
                }
                a.timeout = Some(Duration::from_secs_f64(secs));
            }
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option {s}")),
            s => a.words.push(s.to_string()),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    // The keeper of a `listen:` group's sockets (see `keeper`) is this
    // binary under another name.
    if std::env::args_os().next().is_some_and(|a| a == keeper::NAME) {
        keeper::run();
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if matches!(argv.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{}", usage_text());
        return ExitCode::SUCCESS;
    }
    if argv.first().is_some_and(|a| a == "help") {
        return help(&argv[1..]);
    }
    if matches!(argv.first().map(String::as_str), Some("-V" | "--version")) {
        println!("rolld {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let a = match parse(&argv) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    let run_dir = a.run_dir.as_deref();
    let only = |allowed: bool, what: &str| if allowed { Ok(()) } else { Err(format!("{what} does not apply here")) };
    let code = match words.as_slice() {
        ["check", path] => only(!a.wait && !a.json && a.timeout.is_none() && run_dir.is_none(), "an option")
            .map(|()| check(Path::new(path))),
        ["reload", path] => only(!a.json, "--json").and_then(|()| {
            only(a.wait || a.timeout.is_none(), "--timeout without --wait")
                .map(|()| client::reload(Path::new(path), run_dir, a.wait, a.timeout))
        }),
        ["status", path] => {
            only(!a.wait, "--wait").map(|()| client::status(Path::new(path), run_dir, a.json, a.timeout))
        }
        [word @ ("promote" | "revert"), path] => only(!a.wait && !a.json, "--wait or --json")
            .map(|()| client::bake(Path::new(path), run_dir, word, a.timeout)),
        [path] if !COMMANDS.iter().any(|c| c.name == *path) => {
            only(!a.wait && !a.json && a.timeout.is_none(), "an option").map(|()| daemon::run(Path::new(path), run_dir))
        }
        [] => Err("missing CONFIG".into()),
        _ => Err(format!("unexpected arguments: {}", a.words.join(" "))),
    };
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => usage(&e),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("rolld: {}\n{}", log::escape(problem), usage_text());
    ExitCode::from(2)
}

/// `rolld help [COMMAND]`.
fn help(args: &[String]) -> ExitCode {
    let known = || COMMANDS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    match args {
        [] => println!("{}", usage_text()),
        [name] => match COMMANDS.iter().find(|c| c.name == name) {
            Some(c) => println!("{}", command_help(c)),
            None => return usage(&format!("help: no command {name} (known: {})", known())),
        },
        _ => return usage(&format!("help takes one COMMAND ({})", known())),
    }
    ExitCode::SUCCESS
}

/// `rolld check`: what it prints is escaped (a template's error holds text
/// the group's user wrote).
fn check(path: &Path) -> u8 {
    let shown = log::escape(&path.display().to_string());
    match config::load(path) {
        Ok(cfg) => {
            for w in config::warnings(&cfg.groups, config::ephemeral_range()) {
                eprintln!("{shown}: warning: {}", log::escape(&w));
            }
            println!("{shown}: ok");
            for g in &cfg.groups {
                let sets: Vec<String> = g.worksets.iter().map(|w| group::fmt_ports(w)).collect();
                if let Some(l) = &g.listen {
                    let steps = g.actions.len() - 1;
                    println!(
                        "  {}: listen {}, {} process(es) each on a socket of its own (check ports [{}]), {} check(s), {} after_start action(s)",
                        g.name,
                        l.addr,
                        l.procs,
                        sets.join(" | "),
                        g.checks.len(),
                        steps
                    );
                    guards(g);
                    continue;
                }
                println!(
                    "  {}: {} workset(s) [{}], {} check(s), {} after_start action(s)",
                    g.name,
                    g.worksets.len(),
                    sets.join(" | "),
                    g.checks.len(),
                    g.actions.len()
                );
                guards(g);
            }
            0
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{}", log::escape(e));
            }
            eprintln!("{shown}: {} problem(s)", errs.len());
            2
        }
    }
}

/// What `rolld check` says of a group's bake and health checks, if it has
/// either.
fn guards(g: &config::GroupConfig) {
    if !g.timing.bake.is_zero() {
        println!(
            "    bake {}: the old set is kept, to revert to, that long after each switch",
            group::fmt_duration(g.timing.bake)
        );
    }
    if let Some(h) = g.health {
        println!(
            "    health: the live set's checks every {}; a process failing {} in a row is replaced on its slot",
            group::fmt_duration(h.every),
            h.failures
        );
    }
}
