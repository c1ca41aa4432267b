//! Tests of `resolve` against a made-up system: a few paths, users and
//! groups in a table, and rolld's own uid and gid. No file is touched and
//! no user looked up, so the root and the non-root cases both run
//! wherever the tests do. A rejected config is a row: the YAML added to a
//! valid group and every message it must give, in order.

use super::*;
use crate::config::testing::{BASE, FILE, with};
use crate::config::{Credentials, parse};

/// The made-up machine: the paths, users and gids below.
struct Fake {
    /// rolld's euid and egid.
    ids: (u32, u32),
}

const ROOT: Fake = Fake { ids: (0, 0) };
/// rolld running as uid 1000, gid 1000 (the user `deploy`).
const DEPLOY: Fake = Fake { ids: (1000, 1000) };

/// Directories, regular files (with their text) and other files.
const DIRS: &[&str] = &["/", "/srv", "/srv/app", "/srv/app/bin", "/srv/app/tmpl", "/srv/app/t.templ", "/etc/nginx"];
const FILES: &[(&str, &str)] = &[
    ("/srv/app/bin/server", "#!/bin/sh\n"),
    ("/srv/app/plain", ""),
    ("/srv/app/tmpl/up.templ", "{% for p in ports %}{{ p }} {% endfor %}{{ old_ports|join(',') }} {{ group }}"),
    ("/srv/app/tmpl/syntax.templ", "upstream {\n  server {{ p };\n}\n"),
    ("/srv/app/tmpl/undefined.templ", "{{ portz }}"),
    (ROOT_ONLY, "root:$y$j9T$secret:19000:0:99999:7:::"),
];
const OTHERS: &[&str] = &["/srv/app/fifo"];
/// A template only root may read (a link to /etc/shadow, say).
const ROOT_ONLY: &str = "/srv/app/tmpl/shadow.templ";
/// name, uid, gid, home.
const USERS: &[(&str, u32, u32, &str)] =
    &[("www", 33, 33, "/var/www"), ("deploy", 1000, 1000, "/home/deploy"), ("ldap-down", 0, 0, "")];
const GIDS: &[(&str, u32)] = &[("www", 33), ("web", 1001), ("deploy", 1000)];

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

impl System for Fake {
    fn kind(&self, path: &Path) -> io::Result<Kind> {
        let p = path.to_str().unwrap();
        if DIRS.contains(&p) {
            Ok(Kind::Dir)
        } else if FILES.iter().any(|(f, _)| *f == p) {
            Ok(Kind::File)
        } else if OTHERS.contains(&p) {
            Ok(Kind::Other)
        } else {
            Err(enoent())
        }
    }

    fn read_template(&self, path: &Path, as_user: Option<&Credentials>) -> io::Result<String> {
        if path == Path::new(ROOT_ONLY) && as_user.is_some_and(|c| c.uid != 0) {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        match FILES.iter().find(|(f, _)| Path::new(f) == path) {
            Some((_, text)) => Ok(text.to_string()),
            None if self.kind(path).is_ok() => Err(io::Error::other("not a regular file")),
            None => Err(enoent()),
        }
    }

    fn lookup_user(&self, name: &str) -> io::Result<Option<User>> {
        if name == "ldap-down" {
            return Err(io::Error::other("the directory server does not answer"));
        }
        let found = USERS.iter().find(|u| u.0 == name || name.parse() == Ok(u.1));
        Ok(found.map(|&(name, uid, gid, home)| User { name: name.into(), uid, gid, home: home.into() }))
    }

    fn lookup_gid(&self, name: &str) -> io::Result<Option<u32>> {
        Ok(name.parse().ok().or_else(|| GIDS.iter().find(|g| g.0 == name).map(|g| g.1)))
    }

    fn group_list(&self, user: &str, gid: u32) -> io::Result<Vec<u32>> {
        Ok(if user == "www" { vec![gid, 1001] } else { vec![gid] })
    }

    fn ids(&self) -> (u32, u32) {
        self.ids
    }

    /// Backend `app` has servers on 9001 and 9002 (round robin), `half`
    /// on 9001 only, `hashed` balances by rdp-cookie; socket /run/user.sock
    /// is at level user; any other backend is unknown.
    fn haproxy(&self, h: &Haproxy) -> Result<Backend, String> {
        use crate::haproxy::Server;
        if h.socket == Path::new("/run/user.sock") {
            return Err("the socket /run/user.sock is at level \"user\", not admin: rolld sets servers' states".into());
        }
        let server =
            |port: u16| Server { name: format!("s{port}"), addr: "127.0.0.1".into(), port: Some(port), admin: 1 };
        match h.backend.as_str() {
            "app" => Ok(Backend { algo: "roundrobin".into(), servers: vec![server(9001), server(9002)] }),
            "half" => Ok(Backend { algo: "roundrobin".into(), servers: vec![server(9001)] }),
            "hashed" => Ok(Backend { algo: "rdp-cookie".into(), servers: vec![server(9001), server(9002)] }),
            b => Err(format!("backend {b}: Can't find backend.")),
        }
    }
}

/// Parses (with no problem) and resolves on `sys`.
#[track_caller]
fn run(text: &str, sys: &Fake) -> Result<Vec<GroupConfig>, Vec<String>> {
    let p = parse(text, FILE, Path::new(BASE));
    assert!(p.errors.is_empty(), "the text itself has problems: {:#?}", p.errors);
    resolve(p.drafts, FILE, sys)
}

#[track_caller]
fn one(text: &str, sys: &Fake) -> GroupConfig {
    match run(text, sys) {
        Ok(mut g) if g.len() == 1 => g.pop().unwrap(),
        other => panic!("expected one resolved group, got {other:#?}"),
    }
}

/// Each row's YAML, added to group `g`, must give exactly its messages on
/// `sys`.
#[track_caller]
fn rows(sys: &Fake, table: &[(&str, &[&str])]) {
    let got = |yaml: &str| run(&with(yaml), sys).err().unwrap_or_default();
    crate::config::testing::rows(table, got, |w| format!("{FILE}: {w}"));
}

const NOENT: &str = "No such file or directory (os error 2)";

/// What only the system can say, rolld being root.
const ROOT_ROWS: &[(&str, &[&str])] = &[
    // the working directory
    ("  directory: nope\n", &["g.directory: /srv/app/nope: No such file or directory (os error 2)"]),
    ("  directory: plain\n", &["g.directory: /srv/app/plain is not a directory"]),
    ("  directory: fifo\n", &["g.directory: /srv/app/fifo is not a directory"]),
    // a program named with a slash, relative to the working directory
    ("  cmd: bin/nope {numproc}\n", &["g.cmd: program /srv/app/bin/nope not found"]),
    ("  cmd: ./tmpl {numproc}\n", &["g.cmd: program /srv/app/tmpl not found"]),
    ("  cmd: /srv/app/fifo\n", &["g.cmd: program /srv/app/fifo not found"]),
    ("  directory: bin\n  cmd: ../bin/nope\n", &["g.cmd: program /srv/app/bin/../bin/nope not found"]),
    // templates and outputs
    (
        "  after_start:\n    - replace_file: [numprocs, missing.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template /srv/app/missing.templ: No such file or directory (os error 2)"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, t.templ, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template /srv/app/t.templ: not a regular file"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, fifo, out.conf]\n",
        &["g.after_start[0].replace_file[1]: template /srv/app/fifo: not a regular file"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, tmpl/up.templ, nodir/out.conf]\n",
        &["g.after_start[0].replace_file[2]: output directory /srv/app/nodir does not exist"],
    ),
    (
        "  after_start:\n    - replace_file: [numprocs, tmpl/up.templ, plain/out.conf]\n",
        &["g.after_start[0].replace_file[2]: output directory /srv/app/plain does not exist"],
    ),
    (
        "  after_start:\n    - run_proc: 'true'\n    - replace_file: [numprocs, missing.templ, nodir/out.conf]\n",
        &[
            "g.after_start[1].replace_file[1]: template /srv/app/missing.templ: No such file or directory (os error 2)",
            "g.after_start[1].replace_file[2]: output directory /srv/app/nodir does not exist",
        ],
    ),
    // a template is read as the group's user
    (
        "  user: www\n  after_start:\n    - replace_file: [numprocs, tmpl/shadow.templ, out]\n",
        &["g.after_start[0].replace_file[1]: template /srv/app/tmpl/shadow.templ: Permission denied (os error 13)"],
    ),
    // users and groups
    ("  user: nobody-here\n", &["g.user: unknown user \"nobody-here\"; refusing to run the group as root"]),
    (
        "  user: nobody-here\n  group: no-group\n",
        &["g.user: unknown user \"nobody-here\"; refusing to run the group as root"],
    ),
    ("  user: '4242'\n", &["g.user: uid 4242 has no entry in the user database: give its group: too"]),
    ("  user: '4242'\n  group: no-group\n", &["g.group: unknown group \"no-group\""]),
    ("  group: no-group\n", &["g.group: unknown group \"no-group\""]),
    ("  user: www\n  group: no-group\n", &["g.group: unknown group \"no-group\""]),
    ("  user: ldap-down\n", &["g.user: cannot look up user \"ldap-down\": the directory server does not answer"]),
    // everything at once; a template is not read when its user is unknown
    (
        "  directory: nope\n  user: nobody-here\n  after_start:\n    - replace_file: [numprocs, tmpl/undefined.templ, out]\n",
        &[
            "g.directory: /srv/app/nope: No such file or directory (os error 2)",
            "g.user: unknown user \"nobody-here\"; refusing to run the group as root",
        ],
    ),
    (
        "  directory: nope\n  after_start:\n    - replace_file: [numprocs, tmpl/undefined.templ, out]\n",
        &[
            "g.directory: /srv/app/nope: No such file or directory (os error 2)",
            "g.after_start[0]: template /srv/app/tmpl/undefined.templ does not render with ports, old_ports and \
             group: undefined value: `portz` is undefined (in <string>:1)",
        ],
    ),
];

/// What HAProxy says of a `haproxy:` group's backend (group g is on
/// ports 9001 and 9002).
const HAPROXY_ROWS: &[(&str, &[&str])] = &[
    ("  haproxy:\n    socket: /run/h.sock\n    backend: app\n", &[]),
    ("  haproxy:\n    socket: /run/h.sock\n    backend: nope\n", &["g.haproxy: backend nope: Can't find backend."]),
    (
        "  haproxy:\n    socket: /run/user.sock\n    backend: app\n",
        &["g.haproxy: the socket /run/user.sock is at level \"user\", not admin: rolld sets servers' states"],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: half\n",
        &[
            "g.haproxy: backend half has no server at a loopback address on port(s) 9002: it needs one for every port of every workset",
        ],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: hashed\n",
        &[
            "g.haproxy: backend hashed: balance \"rdp-cookie\" is not one rolld knows to leave a draining server alone (known: roundrobin, static-rr, leastconn, first, random, source, uri, url_param, hdr, hash)",
        ],
    ),
    (
        "  haproxy:\n    socket: /run/h.sock\n    backend: app\n    state_file: /var/lib/haproxy/state\n",
        &["g.haproxy.state_file: directory /var/lib/haproxy does not exist"],
    ),
];

#[test]
fn what_haproxy_says_of_the_backend() {
    rows(&ROOT, HAPROXY_ROWS);
}

#[test]
fn what_only_the_system_can_say() {
    rows(&ROOT, ROOT_ROWS);
}

/// What a user that is not root may and may not ask for.
const DEPLOY_ROWS: &[(&str, &[&str])] = &[
    ("  user: www\n", &["g.user: switching needs rolld to run as root (it runs as uid 1000)"]),
    ("  group: web\n", &["g.group: switching needs rolld to run as root (it runs as uid 1000)"]),
    ("  user: deploy\n  group: web\n", &["g.user: switching needs rolld to run as root (it runs as uid 1000)"]),
    ("  user: '0'\n", &["g.user: switching needs rolld to run as root (it runs as uid 1000)"]),
];

#[test]
fn not_root_cannot_switch() {
    rows(&DEPLOY, DEPLOY_ROWS);
}

#[test]
fn a_config_with_no_problem_resolves_unchanged_but_for_credentials() {
    let text = with(
        "  cmd: bin/server --port={numproc}\n  after_start:\n    - replace_file: [numprocs, tmpl/up.templ, /etc/nginx/up.conf]\n",
    );
    let draft = parse(&text, FILE, Path::new(BASE)).drafts.pop().unwrap();
    assert_eq!(one(&text, &ROOT), draft.cfg);
    assert_eq!(one(&text, &DEPLOY), draft.cfg);
    assert_eq!(draft.cfg.argv[0], "/srv/app/bin/server");
}

#[test]
fn without_user_a_template_is_read_as_rolld() {
    one(&with("  after_start:\n    - replace_file: [numprocs, tmpl/shadow.templ, out]\n"), &ROOT);
}

#[test]
fn user_and_group_resolve_to_credentials_as_root() {
    let c = |extra: &str| one(&with(extra), &ROOT).credentials;
    let www = Some(("www".to_string(), "/var/www".to_string()));
    assert_eq!(c("  user: www\n"), Some(Credentials { uid: 33, gid: 33, groups: vec![33, 1001], user: www.clone() }));
    assert_eq!(
        c("  user: www\n  group: web\n"),
        Some(Credentials { uid: 33, gid: 1001, groups: vec![1001, 1001], user: www.clone() })
    );
    assert_eq!(c("  user: 33\n"), Some(Credentials { uid: 33, gid: 33, groups: vec![33, 1001], user: www }));
    assert_eq!(
        c("  group: web\n"),
        Some(Credentials { uid: 0, gid: 1001, groups: vec![1001], user: None }),
        "group: alone keeps root's uid, and only that group"
    );
    assert_eq!(
        c("  user: '4242'\n  group: '4243'\n"),
        Some(Credentials { uid: 4242, gid: 4243, groups: vec![4243], user: None }),
        "a uid with no entry: that uid, and the group given as its only group"
    );
    assert_eq!(c(""), None, "no user: and no group: is no switch");
}

#[test]
fn not_root_its_own_user_and_group_need_no_switch() {
    for extra in ["  user: deploy\n", "  user: '1000'\n", "  group: deploy\n", "  user: deploy\n  group: deploy\n"] {
        assert_eq!(one(&with(extra), &DEPLOY).credentials, None, "{extra}: no switch, and no setgroups at start");
    }
}

#[test]
fn a_template_must_render_with_what_a_rollout_gives_it() {
    let act = |t: &str| format!("  after_start:\n    - replace_file: [numprocs, tmpl/{t}, out.conf]\n");
    one(&with(&act("up.templ")), &ROOT);
    let errs = run(&with(&act("undefined.templ")), &ROOT).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let want = "test.yml: g.after_start[0]: template /srv/app/tmpl/undefined.templ does not render with ports, \
                old_ports and group: ";
    assert!(errs[0].starts_with(want) && errs[0].contains("undefined"), "{errs:#?}");
    let errs = run(&with(&act("syntax.templ")), &ROOT).unwrap_err();
    assert_eq!(errs.len(), 1, "a template that does not parse is not also rendered: {errs:#?}");
    let want = "test.yml: g.after_start[0].replace_file[1]: template /srv/app/tmpl/syntax.templ: syntax error";
    assert!(errs[0].starts_with(want), "{errs:#?}");
}

#[test]
fn every_group_is_resolved_and_reported() {
    let text = "a:\n  cmd: bin/nope\n  workset:\n    - numprocs: [9001]\n    - numprocs: [9002]\n\
                b:\n  cmd: prog\n  directory: gone\n  workset:\n    - numprocs: [9003]\n    - numprocs: [9004]\n";
    assert_eq!(
        run(text, &ROOT).unwrap_err(),
        [
            "test.yml: a.cmd: program /srv/app/bin/nope not found".to_string(),
            format!("test.yml: b.directory: /srv/app/gone: {NOENT}"),
        ]
    );
}
