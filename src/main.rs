//! rolld: blue/green restarts of process groups without losing a request.
//!
//! `main` reads argv, runs a subcommand and maps its result to the exit
//! code; the logic lives in the modules below.

mod actions;
mod config;
mod daemon;
mod group;
mod log;
mod process;
mod signals;
mod smoke;
mod sys;
mod tcp;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage:
  rolld CONFIG          run the groups of CONFIG; SIGHUP rolls them, SIGTERM stops them
  rolld check CONFIG    validate CONFIG and print a summary (exit 0 valid, 2 not)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match argv.as_slice() {
        ["-h" | "--help"] => {
            println!("{USAGE}");
            0
        }
        ["-V" | "--version"] => {
            println!("rolld {}", env!("CARGO_PKG_VERSION"));
            0
        }
        ["check", path] => check(Path::new(path)),
        [path] if !path.starts_with('-') && *path != "check" => daemon::run(Path::new(path)),
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(code)
}

fn check(path: &Path) -> u8 {
    match config::load(path) {
        Ok(cfg) => {
            println!("{}: ok", path.display());
            for g in &cfg.groups {
                let sets: Vec<String> = g.worksets.iter().map(|w| group::fmt_ports(w)).collect();
                println!(
                    "  {}: {} workset(s) [{}], {} check(s), {} after_start action(s)",
                    g.name,
                    g.worksets.len(),
                    sets.join(" | "),
                    g.checks.len(),
                    g.actions.len()
                );
            }
            0
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{}: {} problem(s)", path.display(), errs.len());
            2
        }
    }
}
