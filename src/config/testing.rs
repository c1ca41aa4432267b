//! What the config tests share: the file name and base they parse with, a
//! valid group to add lines to, the seed config, and the runner of tables
//! of rejected configs.

/// The name the file is given in every message.
pub const FILE: &str = "test.yml";
/// The config's directory in tests that touch nothing: nothing is there.
pub const BASE: &str = "/srv/app";

/// The seed config of the original project, `DIR` standing for its directory.
pub const SEED: &str = r#"app-servers:
  cmd: '../env/bin/python app.py {numproc}'
  directory: 'DIR'
  stderr: 'logs/tornado-{numproc}.err'
  stdout: 'logs/tornado-{numproc}.log'

  workset:
    - numprocs: [8001, 8002, 8003, 8004]
    - numprocs: [8501, 8502, 8503, 8504]

  smoke_test:
    - check_all_http_ports: numprocs

  after_start:
    - replace_file: [numprocs, 'example/nginx-tornado.conf.templ', 'example/nginx-tornado.conf']
    - run_proc: ps auxw| grep nginx | grep master | grep -v grep | awk '{print $2}' | xargs kill -HUP
"#;

/// A valid group `g` (two worksets, no directory) followed by `extra`,
/// whose lines are indented by two spaces; its `cmd` is `prog {numproc}`
/// unless `extra` has one.
pub fn with(extra: &str) -> String {
    let cmd = if extra.contains("  cmd: ") { "" } else { "  cmd: prog {numproc}\n" };
    format!("g:\n{cmd}  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n{extra}")
}

/// Runs a table: for each row, `got` of its YAML must be exactly its
/// messages, each made whole by `want`. Every wrong row is reported, not
/// only the first.
#[track_caller]
pub fn rows<S: AsRef<str>, M: AsRef<[W]>, W: AsRef<str>>(
    table: &[(S, M)],
    got: impl Fn(&str) -> Vec<String>,
    want: impl Fn(&str) -> String,
) {
    let mut wrong = Vec::new();
    for (yaml, messages) in table {
        let yaml = yaml.as_ref();
        let messages: Vec<String> = messages.as_ref().iter().map(|m| want(m.as_ref())).collect();
        let got = got(yaml);
        if got != messages {
            wrong.push(format!("row {yaml:?}\n  want: {messages:#?}\n  got:  {got:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {} row(s) wrong:\n{}", wrong.len(), table.len(), wrong.join("\n"));
}
