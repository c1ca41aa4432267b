//! rolld: blue/green restarts of process groups without losing a request.
//!
//! `main` reads argv, runs a subcommand and maps its result to the exit
//! code; the logic lives in the library's modules.

use rolld::{client, config, daemon, group, keeper, log};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  rolld [--run-dir DIR] CONFIG
      run the groups of CONFIG; SIGHUP rolls them, SIGTERM stops them
  rolld check CONFIG
      validate CONFIG and print a summary (exit 0 valid, 2 not)
  rolld reload CONFIG [--wait] [--timeout SECS] [--run-dir DIR]
      ask the daemon running CONFIG to roll; with --wait, follow the rollout
      (exit 0 live, 1 rolled back, 2 no daemon or invalid config, 3 no answer
      in time or --timeout passed, 4 rolld stopped before the rollout ended)
  rolld status CONFIG [--json] [--timeout SECS] [--run-dir DIR]
      show the live sets, processes and last rollout of the daemon
      (exit 0, 2 no daemon, 3 no answer within --timeout, 10 s by default)
  rolld promote CONFIG [--timeout SECS] [--run-dir DIR]
  rolld revert CONFIG [--timeout SECS] [--run-dir DIR]
      end the bake under way now: keep the new release (promote), or switch
      back to the old set (revert) (exit 0 done, 1 no bake under way,
      2 no daemon, 3 no answer within --timeout)";

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
        println!("{USAGE}");
        return ExitCode::SUCCESS;
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
        [path] if !["check", "reload", "status", "promote", "revert"].contains(path) => {
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
    eprintln!("rolld: {}\n{USAGE}", log::escape(problem));
    ExitCode::from(2)
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
