//! What a backend's user controls, and what rolld inherits, turned against
//! rolld: the real binary (as root where the point is `user:`), with
//! planted symlinks and FIFOs, root-only files, a crash that prints control
//! characters, ignored signals, a closed stdout, a descriptor limit, no
//! pidfds, a config read again that hangs, a template that is a link to a
//! root-only file, an LB config written through a user's directory, a
//! render given up on a slow fsync (a FUSE file system), groups taken over
//! whose numbers are handed to strangers, a process name and a template
//! error that would forge lines, and reloads that remove worksets under a
//! live set.
//!
//! Ports: Harness k = 38, 39, 54..=61, 65..=70 and 90 (23800-23912,
//! 25400-26122, 26500-27012, 29000-29012).

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn nobody() -> (u32, u32) {
    let id = |a: &str| {
        String::from_utf8(Command::new("id").args([a, "nobody"]).output().unwrap().stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

fn mkfifo(path: &std::path::Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// A rollout whose new stderr file on `port` is something hostile: rolled
/// back at once, naming `why`, rolld still answering, nothing written
/// where the link points.
fn hostile_rollout(h: &Harness, why: &str) -> String {
    let t = Instant::now();
    let o = client(h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t.elapsed() < S(10), "the rollback took {:?}", t.elapsed());
    let out = text(&o);
    assert!(out.contains("cannot spawn") && out.contains(why), "no {why:?} in:\n{out}");
    assert_eq!(client(h, &["status"]).status.code(), Some(0), "rolld still answers");
    h.assert_live(0);
    out
}

/// Point 1: a backend's log file that is a symlink or a FIFO, with and
/// without `user:`. With `user:` the child opens it as that user.
fn planted_files(k: u16, user: bool) {
    if user && !is_root() {
        panic!("this test needs root (it runs backends as nobody)");
    }
    let mut h = Harness::new(&format!("hard-files-{user}"), k);
    std::fs::create_dir(h.path("logs")).unwrap();
    let extra = if user { "user: nobody" } else { "" };
    if user {
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(h.path("logs"), Some(uid), Some(gid)).unwrap();
    }
    // A root-only directory, standing for /etc/cron.d.
    std::fs::create_dir(h.path("rootonly")).unwrap();
    std::fs::set_permissions(h.path("rootonly"), std::fs::Permissions::from_mode(0o700)).unwrap();
    h.write_config(&Cfg { script: "server.py", extra, ..Cfg::default() });
    h.start();
    let [p0, p1] = h.ws[1];
    let target = h.path("rootonly/x");
    std::os::unix::fs::symlink(&target, h.path(&format!("logs/{p0}.err"))).unwrap();
    hostile_rollout(&h, "Too many levels of symbolic links");
    assert!(!target.exists(), "nothing created through the link");
    std::fs::remove_file(h.path(&format!("logs/{p0}.err"))).unwrap();
    std::fs::remove_file(h.path(&format!("logs/{p1}.err"))).ok();
    mkfifo(&h.path(&format!("logs/{p1}.err")));
    if user {
        // Planted by the backend's user.
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(h.path(&format!("logs/{p1}.err")), Some(uid), Some(gid)).unwrap();
    }
    hostile_rollout(&h, "No such device or address");
    std::fs::remove_file(h.path(&format!("logs/{p1}.err"))).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    h.assert_live(1);
    if user {
        let (uid, _) = nobody();
        let meta = std::fs::metadata(h.path(&format!("logs/{p0}.err"))).unwrap();
        assert_eq!(meta.uid(), uid, "created by the backend's user");
    }
    h.stop_ok(S(8));
}

#[test]
fn planted_log_files_as_root_with_user() {
    planted_files(54, true);
}

#[test]
fn planted_log_files_without_user() {
    planted_files(55, false);
}

/// Point 2: the stderr tail of a failed start is shown only from the
/// backend's own regular file, with control characters escaped.
#[test]
fn the_stderr_tail_shows_only_the_users_file_escaped() {
    if !is_root() {
        panic!("this test needs root (it runs backends as nobody)");
    }
    let mut h = Harness::new("hard-tail", 56);
    let (uid, gid) = nobody();
    std::fs::create_dir(h.path("logs")).unwrap();
    std::os::unix::fs::chown(h.path("logs"), Some(uid), Some(gid)).unwrap();
    h.write("evil.py", "import os, sys\nif os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), 'crash')):\n    sys.stderr.write('boom \\x1b[2Jcleared\\rback\\n')\n    sys.exit(3)\nos.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(sys.argv[0]), 'app.py'), sys.argv[1]])\n");
    h.write_config(&Cfg { script: "evil.py", extra: "user: nobody", ..Cfg::default() });
    h.start();
    h.touch("crash");
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("boom \\x1b[2Jcleared\\x0dback"), "the tail, escaped: {out}");
    assert!(!out.contains('\u{1b}') && !h.log_text().contains('\u{1b}'), "no raw escape reaches a client or the log");
    // A root-only file in the stderr file's place: the child (as nobody)
    // cannot open it, and rolld shows none of it.
    h.remove("crash");
    let [p0, _] = h.ws[1];
    let secret = h.path(&format!("logs/{p0}.err"));
    std::fs::remove_file(&secret).ok();
    std::fs::write(&secret, "SECRET-LINE\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    assert!(
        !text(&o).contains("SECRET") && !h.log_text().contains("SECRET"),
        "a root-only file's lines are never shown"
    );
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// Point 5: signals rolld inherited ignored are not passed on, nor
/// NOTIFY_SOCKET; a closed stdout becomes /dev/null.
#[test]
fn children_get_default_signals_and_no_notify_socket() {
    let mut h = Harness::new("hard-signals", 57);
    h.write_config(&Cfg::default());
    let sock = h.path("notify.sock");
    let _listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    h.env.push(("NOTIFY_SOCKET".into(), sock.display().to_string()));
    h.wrapper = vec!["/bin/sh".into(), "-c".into(), "trap '' QUIT; exec \"$0\" \"$@\" 1>&-".into()];
    h.start();
    let rolld = h.pid();
    let fd1 = std::fs::read_link(format!("/proc/{rolld}/fd/1")).unwrap();
    assert_eq!(fd1, std::path::Path::new("/dev/null"), "a closed stdout is /dev/null");
    let status = std::fs::read_to_string(format!("/proc/{rolld}/status")).unwrap();
    let ignored = |s: &str| {
        let line = s.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let quit = 1u64 << (libc::SIGQUIT - 1);
    assert_ne!(ignored(&status) & quit, 0, "the wrapper did leave SIGQUIT ignored in rolld");
    for p in h.ws[0] {
        let pid = h.backend_pids("app.py", p)[0];
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert_eq!(ignored(&st) & quit, 0, "backend {p} starts with SIGQUIT at its default");
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(!String::from_utf8_lossy(&env).contains("NOTIFY_SOCKET="), "backend {p} has no NOTIFY_SOCKET");
    }
    h.stop_ok(S(8));
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn soft_nofile(pid: i32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Point 8: rolld raises its own open-files limit (children keep theirs);
/// out of descriptors, it neither spins nor stops serving once they free.
#[test]
fn running_out_of_descriptors_neither_spins_nor_sticks() {
    let mut h = Harness::new("hard-fds", 58);
    h.write_config(&Cfg::default());
    h.wrapper = vec!["prlimit".into(), "--nofile=40:64".into()];
    h.start();
    let rolld = h.pid();
    assert_eq!(soft_nofile(rolld), 64, "rolld raised its soft limit to the hard one");
    let backend = h.backend_pids("app.py", h.ws[0][0])[0];
    assert_eq!(soft_nofile(backend), 40, "a backend keeps the limit rolld was given");
    let sock = std::fs::read_dir(h.path("run"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sock"))
        .unwrap();
    let held: Vec<_> = (0..100).filter_map(|_| std::os::unix::net::UnixStream::connect(&sock).ok()).collect();
    assert!(held.len() > 64, "only {} connections made", held.len());
    let c0 = cpu_ticks(rolld);
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_ticks(rolld) - c0;
    assert!(used < 40, "rolld used {used} ticks of CPU in 1.5 s while out of descriptors");
    h.wait_log("the EMFILE", "accept: Too many open files (os error 24); accepting again in 100 ms", S(5));
    drop(held);
    h.wait_for("rolld status to answer again", S(10), || client(&h, &["status"]).status.code() == Some(0));
    h.stop_ok(S(8));
}

/// Point 16: rolld SIGKILLed while its old set drains a request in flight:
/// the successor takes the draining set over and drains it (the request
/// completes), stops it, then rolls the live set over.
#[test]
fn a_takeover_during_a_drain_drains() {
    let mut h = Harness::new("hard-takeover-drain", 59);
    h.write_config(&Cfg::default());
    h.start();
    let port = h.ws[0][0];
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut s, b"GET /slow?s=4 HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut s, &mut buf).unwrap();
        (buf, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    h.signal(libc::SIGHUP);
    h.wait_log("the drain", "g after_start done in", S(20));
    h.wait_for("the state file to record the drain", S(5), || {
        std::fs::read_dir(h.path("run"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
            .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(&format!(" drain 0 {port} ")))
    });
    h.signal(libc::SIGKILL);
    h.wait_exit_any(S(5));
    h.spawn();
    h.wait_log("the takeover", "took over the draining set", S(10));
    let (reply, done) = slow.join().unwrap();
    assert!(reply.starts_with("HTTP/1.0 200") && reply.contains(&format!("slow done port {port}")), "{reply}");
    // The first rolld never finished its rollout; the successor's is the one.
    h.wait_count(" rollout ok: ", 1, S(30));
    let stopped = h.last_line(&format!("g:{port} stopped"));
    let since_stop = now_of_day() - line_time(&stopped).unwrap();
    assert!(
        since_stop <= done.elapsed().as_secs_f64() + 0.05,
        "port {port} was stopped before its request ended: {stopped}"
    );
    h.assert_live(0);
    h.stop_ok(S(8));
}

const NO_PIDFD_C: &str = r#"#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
/* Runs argv[1..] where pidfd_open fails with ENOSYS, as on a kernel
   before 5.3 or under an old container seccomp profile. */
int main(int argc, char **argv) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 434, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    if (argc < 2 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("no_pidfd");
        return 111;
    }
    execv(argv[1], argv + 1);
    perror("no_pidfd: execv");
    return 111;
}
"#;

/// Point 6: without pidfds, a rolld that takes over watches the adopted
/// processes through /proc, and its rollout of them ends.
#[test]
fn without_pidfds_a_takeover_still_sees_its_processes_end() {
    let mut h = Harness::new("hard-no-pidfd", 65);
    h.write("no_pidfd.c", NO_PIDFD_C);
    let bin = h.path("no_pidfd");
    let cc = Command::new("cc").arg("-o").arg(&bin).arg(h.path("no_pidfd.c")).status().expect("a C compiler (cc)");
    assert!(cc.success(), "cc no_pidfd.c failed");
    h.write_config(&Cfg::default());
    h.start();
    h.signal(libc::SIGKILL);
    h.wait_exit_any(S(5));
    h.wrapper = vec![bin.display().to_string()];
    h.spawn();
    h.wait_log("the takeover", "took over the live set", S(10));
    assert!(h.log_text().contains("watching it through /proc instead"), "{}", h.log_text());
    h.wait_count(" rollout ok: ", 1, S(30));
    h.assert_live(1);
    h.stop_ok(S(8));
}

/// The config read again on SIGHUP can take time: here its `user:` is
/// looked up while rolld's /etc/passwd is a FIFO nobody writes to (in a
/// mount namespace of rolld's own), so the lookup hangs. It hangs on a
/// worker: `rolld status` answers throughout, a second SIGHUP is queued,
/// the read ends (as an invalid config, "unknown user") once the FIFO is
/// closed, the queued reload reads again; a read that hangs for good is
/// given up after 30 s (its `reload --wait` exits 2 saying why), and
/// SIGTERM still ends rolld while another read hangs.
#[test]
fn a_config_read_that_hangs_holds_neither_status_nor_sigterm() {
    if !is_root() {
        panic!("this test needs root (it mounts over /etc/passwd in a mount namespace)");
    }
    let mut h = Harness::new("hard-slow-load", 66);
    h.write_config(&Cfg::default());
    h.wrapper = vec!["unshare".into(), "--mount".into(), "--propagation".into(), "private".into()];
    h.start();
    let fifo = h.path("passwd.fifo");
    mkfifo(&fifo);
    let pid = h.pid().to_string();
    let st = Command::new("nsenter")
        .args(["-t", &pid, "-m", "mount", "--bind"])
        .arg(&fifo)
        .arg("/etc/passwd")
        .status()
        .unwrap();
    assert!(st.success(), "nsenter mount --bind");
    h.write_config(&Cfg { extra: "user: rolld-no-such-user", ..Cfg::default() });
    h.signal(libc::SIGHUP);
    h.wait_log("the reload", "SIGHUP: reloading the config", S(5));
    let mut slowest = Duration::ZERO;
    let end = Instant::now() + S(2);
    while Instant::now() < end {
        let t = Instant::now();
        let o = client(&h, &["status"]);
        slowest = slowest.max(t.elapsed());
        assert_eq!(o.status.code(), Some(0), "status while the read hangs:\n{}", text(&o));
    }
    assert!(slowest < Duration::from_millis(500), "rolld status took {slowest:?} while the read hung");
    let o = client(&h, &["status", "--json"]);
    assert!(text(&o).contains("\"reload_pending\":true"), "a reload being read has not begun:\n{}", text(&o));
    assert!(!h.log_text().contains("problem(s) in the config"), "the read did not hang:\n{}", h.log_text());
    h.signal(libc::SIGHUP);
    h.wait_log("the second SIGHUP", "SIGHUP while the config is read: another rollout will follow", S(5));
    // A writer that opens and closes: the hanging read sees an empty file.
    let release = || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo).is_ok()
    };
    h.wait_for("the first read to be released", S(5), release);
    h.wait_count("unknown user", 1, S(5));
    // The queued reload reads again, and hangs again, the loop still live.
    assert_eq!(client(&h, &["status"]).status.code(), Some(0));
    h.wait_for("the queued read to be released", S(5), release);
    h.wait_count("unknown user", 2, S(5));
    assert_eq!(h.count("problem(s) in the config: nothing changed"), 2, "{}", h.log_text());
    // A read that hangs for good is given up after 30 s: its client is
    // told, and the next reload may start.
    let waiting = {
        let (bin, config, run) = (rolld_bin(), h.config.clone(), h.path("run"));
        std::thread::spawn(move || {
            Command::new(bin)
                .args(["reload", "--wait", "--timeout", "60"])
                .arg(config)
                .arg("--run-dir")
                .arg(run)
                .output()
        })
    };
    h.wait_count("reload request: reloading the config", 1, S(5));
    h.wait_log("the read to be given up", "reading the config took more than 30s", S(40));
    let o = waiting.join().unwrap().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("reading the config took more than 30s"), "{}", text(&o));
    h.wait_for("the given-up read to be released", S(5), release);
    h.wait_log("its late answer", "a read of the config given up has returned; its result is dropped", S(5));
    // Another read hangs when SIGTERM comes.
    h.signal(libc::SIGHUP);
    h.wait_count("SIGHUP: reloading the config", 2, S(5));
    std::thread::sleep(Duration::from_millis(300));
    h.assert_live(0);
    let t = Instant::now();
    h.stop_ok(S(5));
    assert!(t.elapsed() < S(4), "SIGTERM took {:?} with a read hanging", t.elapsed());
}

/// Templates are read as the group's user: with `user: nobody`, a template
/// turned into a link to a root-only file (standing for /etc/shadow) is a
/// config error on the next reload (`Permission denied`), the live set
/// keeps serving, and nothing of that file reaches the LB's config.
#[test]
fn a_template_is_read_as_the_groups_user() {
    if !is_root() {
        panic!("this test needs root (it runs backends as nobody)");
    }
    let mut h = Harness::new("hard-template-user", 67);
    std::fs::create_dir(h.path("logs")).unwrap();
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(h.path("logs"), Some(uid), Some(gid)).unwrap();
    h.write_config(&Cfg { script: "server.py", extra: "user: nobody", ..Cfg::default() });
    h.start();
    let rendered = h.read("lb.conf");
    assert!(rendered.contains(&h.ws[0][0].to_string()), "{rendered}");
    h.write("secret", "root:SECRET-HASH:19000:0:99999:7:::\n");
    std::fs::set_permissions(h.path("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(h.path("lb.templ")).unwrap();
    std::os::unix::fs::symlink(h.path("secret"), h.path("lb.templ")).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(2), "an invalid config:\n{}", text(&o));
    let out = text(&o);
    assert!(out.contains("lb.templ: Permission denied (os error 13)"), "{out}");
    assert!(!out.contains("SECRET"), "{out}");
    assert_eq!(h.read("lb.conf"), rendered, "the LB's config is unchanged");
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// An LB config under a directory the group's user may write is written
/// as that user: it lands in the user's directory (and is the user's), and
/// when the user turns a name on the way into a link to a directory of
/// root's (standing for /etc/modprobe.d), the rollout rolls back with
/// `Permission denied` and nothing is created there.
#[test]
fn an_output_under_a_users_directory_is_written_as_that_user() {
    if !is_root() {
        panic!("this test needs root (it runs backends as nobody)");
    }
    let mut h = Harness::new("hard-output-user", 68);
    let (uid, gid) = nobody();
    for d in ["logs", "userdir", "userdir/out"] {
        std::fs::create_dir(h.path(d)).unwrap();
        std::os::unix::fs::chown(h.path(d), Some(uid), Some(gid)).unwrap();
    }
    std::fs::create_dir(h.path("rootdir")).unwrap();
    let yaml = h.yaml(&Cfg { script: "server.py", extra: "user: nobody", ..Cfg::default() });
    let yaml = yaml.replace("'lb.conf'", "'userdir/out/lb.conf'");
    assert!(yaml.contains("userdir/out/lb.conf"), "{yaml}");
    std::fs::write(&h.config, yaml).unwrap();
    h.start();
    let meta = std::fs::metadata(h.path("userdir/out/lb.conf")).unwrap();
    assert_eq!(meta.uid(), uid, "written as the user");
    std::fs::remove_dir_all(h.path("userdir/out")).unwrap();
    std::os::unix::fs::symlink(h.path("rootdir"), h.path("userdir/out")).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains(&format!("written as uid {uid}")), "{out}");
    assert_eq!(std::fs::read_dir(h.path("rootdir")).unwrap().count(), 0, "nothing created in root's directory");
    h.assert_live(0);
    // Its own directory, made 0555 with the link in it: its owner may make
    // it writable again whenever it likes, so it is still written as the
    // user, and refused.
    std::fs::set_permissions(h.path("userdir"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("Permission denied") && out.contains(&format!("written as uid {uid}")), "{out}");
    assert_eq!(std::fs::read_dir(h.path("rootdir")).unwrap().count(), 0, "nothing created in root's directory");
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// A FUSE file system of tests/slow_fsync_fs.py mounted on `dir`, unmounted
/// and stopped when dropped.
struct SlowFs {
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl SlowFs {
    /// Mounts it; an fsync of a file holding `marker` waits for `release`.
    fn mount(dir: std::path::PathBuf, marker: &str, release: &std::path::Path) -> SlowFs {
        std::fs::create_dir_all(&dir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slow_fsync_fs.py");
        // The system python: python3-fusepy is a Debian package.
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&dir)
            .arg(marker)
            .arg(release)
            .spawn()
            .expect("python3 for the FUSE file system");
        let fs = SlowFs { dir, child };
        let mounted = || {
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            mounts.lines().any(|l| l.split(' ').nth(1) == fs.dir.to_str())
        };
        let t = Instant::now();
        while !mounted() {
            assert!(t.elapsed() < S(10), "the FUSE file system was not mounted on {} in 10 s", fs.dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        fs
    }
}

impl Drop for SlowFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A render given up never writes. The switch's render of the new ports
/// meets a slow fsync (a FUSE file system that holds it) and is given up
/// at action_timeout; the revert writes the old ports. When the fsync
/// returns, the late render must not rename its file over the revert's:
/// the LB would point at the set being stopped.
#[test]
fn a_render_given_up_never_writes() {
    if !is_root() {
        panic!("this test needs root (it mounts a FUSE file system)");
    }
    let mut h = Harness::new("hard-late-render", 90);
    let release = h.path("release");
    let fs = SlowFs::mount(h.path("lbfs"), &h.ports_text(1), &release);
    let yaml = h.yaml(&Cfg { action_timeout: 1.0, ..Cfg::default() }).replace("'lb.conf'", "'lbfs/lb.conf'");
    assert!(yaml.contains("lbfs/lb.conf"), "{yaml}");
    std::fs::write(&h.config, yaml).unwrap();
    h.start();
    let conf = h.path("lbfs/lb.conf");
    assert_eq!(std::fs::read_to_string(&conf).unwrap().trim(), h.ports_text(0));
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("lb.conf did not finish within 1s; given up, it will not write"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&conf).unwrap().trim(), h.ports_text(0), "the revert wrote the old ports");
    // The fsync returns; the render given up goes on to its rename.
    std::fs::write(&release, "").unwrap();
    let temps = || std::fs::read_dir(&fs.dir).unwrap().flatten().filter(|e| e.file_name() != "lb.conf").count();
    h.wait_for("the late render's temporary file to go", S(10), || temps() == 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&conf).unwrap().trim(), h.ports_text(0), "the late render did not land");
    h.assert_live(0);
    drop(fs);
    h.stop_ok(S(8));
}

/// Whether `pid` runs (its zombie does not count).
fn running(pid: i32) -> bool {
    !matches!(proc_state(pid).as_str(), "" | "Z" | "X")
}

/// The start time of `pid` (field 22 of /proc/PID/stat), as a state file
/// records it.
fn start_time(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// Starts `cmd` as process `pid`, leading a process group of its own: the
/// kernel's last pid is set just below `pid` (root only) until a spawn
/// gets it. This is how a number rolld once saw is handed to a stranger.
fn spawn_as_pid(cmd: &mut Command, pid: i32) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    for _ in 0..100 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).expect("root, to set ns_last_pid");
        let mut c = cmd.spawn().unwrap();
        if c.id() as i32 == pid {
            return c;
        }
        kill(c.id() as i32, libc::SIGKILL);
        let _ = c.wait();
    }
    panic!("cannot start a process as pid {pid}: another process holds it");
}

/// Point 6: the processes of a predecessor's rollout that a successor
/// stops are watched all at once, and a group is signalled only while
/// it is known to be the one its leader led. Three groups recorded as a
/// rollout's: `slow` ignores SIGTERM (SIGKILLed after stop_timeout);
/// `quick` ends at SIGTERM, and its number then goes to a stranger's new
/// group, which must not get the SIGKILL; `leaky` ends at SIGTERM but a
/// member that ignores it stays, and is killed as its leader ends, not
/// once `slow` has had its stop timeout.
#[test]
fn a_takeover_stops_each_group_as_its_leader_ends_and_spares_its_number() {
    if !is_root() {
        panic!("this test needs root (it sets ns_last_pid)");
    }
    let mut h = Harness::new("hard-takeover-stop", 69);
    h.write_config(&Cfg { stop_timeout: 3.0, ..Cfg::default() });
    h.start();
    let state = std::fs::read_dir(h.path("run"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "state"))
        .expect("a state file");
    h.stop_ok(S(8));
    h.write("ignore.sh", "trap '' TERM\n[ -n \"$1\" ] && echo $$ > \"$1\"\nsleep 30\n");
    h.write("leaky.sh", &format!("sh {} {}/straggler.pid &\nwait\n", h.path("ignore.sh").display(), h.dir.display()));
    let spawn = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        Command::new(args[0]).args(&args[1..]).process_group(0).spawn().unwrap()
    };
    let ignore = h.path("ignore.sh").display().to_string();
    let leaky = h.path("leaky.sh").display().to_string();
    let mut kids = Kids(vec![spawn(&["sh", &ignore]), spawn(&["sh", &leaky]), spawn(&["sleep", "30"])]);
    let [slow, leader, quick] = [0, 1, 2].map(|i| kids.0[i].id() as i32);
    let pid_file = h.path("straggler.pid");
    h.wait_for("the straggler to start", S(5), || h.read("straggler.pid").ends_with('\n'));
    let straggler: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let [p1, p2] = h.ws[1];
    let mut text = String::from("rolld-state 1\n");
    for (port, pid) in [(p1, slow), (p2, quick), (p1 + 2, leader)] {
        text.push_str(&format!("g other 1 {port} {pid} {}\n", start_time(pid)));
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&state).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    }
    h.spawn();
    let mut ended = None;
    h.wait_for("quick to end and be reaped", S(10), || {
        ended = kids.0[2].try_wait().unwrap();
        ended.is_some()
    });
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&ended.unwrap()), Some(libc::SIGTERM));
    // Its number now leads a stranger's group.
    kids.0.push(spawn_as_pid(Command::new("sleep").arg("30"), quick));
    h.wait_for("the straggler of leaky to be killed", S(10), || !running(straggler));
    assert!(kids.0[0].try_wait().unwrap().is_none(), "leaky's straggler was killed only with slow\n{}", h.log_text());
    h.wait_log("slow's SIGKILL", &format!("pid {slow} still running: SIGKILL"), S(10));
    h.wait_for("slow to be killed", S(5), || kids.0[0].try_wait().unwrap().is_some());
    h.wait_count("live on", 2, S(20));
    assert!(kids.0[3].try_wait().unwrap().is_none(), "the stranger's group with pid {quick} was killed");
    h.stop_ok(S(8));
}

/// Point 6, in the loop: a taken-over process that ends has its group
/// killed through its pidfd, never by number. Here rolld is stopped
/// (SIGSTOP) when the process ends, so that its number already leads a
/// stranger's group when rolld sees the end.
#[test]
fn a_taken_over_group_is_not_signalled_by_number_once_its_leader_ended() {
    if !is_root() {
        panic!("this test needs root (it sets ns_last_pid)");
    }
    let mut h = Harness::new("hard-takeover-reuse", 70);
    h.write_config(&Cfg { script: "server.py", start_timeout: 60.0, ..Cfg::default() });
    h.start();
    h.signal(libc::SIGKILL);
    h.wait_exit_any(S(5));
    // The successor's new set never gets ready: the set taken over stays
    // live for the test.
    h.touch("never");
    h.spawn();
    h.wait_log("the takeover", "took over the live set", S(10));
    let pid = *h.backend_pids("server.py", h.ws[0][0]).first().expect("the backend on the first port");
    h.signal(libc::SIGSTOP);
    h.wait_for("rolld to stop", S(5), || proc_state(h.pid()) == "T");
    kill(pid, libc::SIGKILL);
    h.wait_for("the backend to be reaped by its parent", S(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    let mut kids = Kids(vec![spawn_as_pid(Command::new("sleep").arg("30"), pid)]);
    h.signal(libc::SIGCONT);
    h.wait_log("the exit seen", &format!("pid {pid} exited unexpectedly"), S(10));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        kids.0[0].try_wait().unwrap().is_none(),
        "the stranger's group with pid {pid} was killed\n{}",
        h.log_text()
    );
    h.stop_ok(S(10));
}

/// What leaves rolld, line by line: every log line begins with its
/// timestamp, and no line anywhere is `end ok` or begins with the `z` of
/// a forged `x\nend ok\nz`; no raw ESC, CR or NUL reaches anyone.
fn assert_nothing_forged(h: &Harness, outputs: &[&str]) {
    let log = h.log_text();
    for l in log.lines() {
        assert!(line_time(l).is_some(), "a log line that is not rolld's: {l:?}\n{log}");
    }
    for text in outputs.iter().chain([&log.as_str()]) {
        for l in text.lines() {
            assert!(l != "end ok" && !l.starts_with('z'), "a forged line {l:?} in:\n{text}");
        }
        assert!(!text.contains(['\u{1b}', '\r', '\0']), "a raw control character in:\n{text:?}");
    }
}

/// `rolld status --json`, parsed by python's json module: the summary of
/// the last rollout of group `g`, decoded.
fn json_summary(h: &Harness) -> String {
    let o = client(h, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut py = Command::new(python())
        .args([
            "-c",
            "import json, sys; sys.stdout.write(json.load(sys.stdin)['groups'][0]['last_rollout']['summary'])",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), &o.stdout).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "status --json is not valid JSON:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8(out.stdout).unwrap()
}

/// A process whose name holds `x\nend ok\nz` (any local user can name a
/// process so) listens on a port of the next workset: the rollout is
/// refused naming it, escaped, and `reload --wait` exits 1, not 0 on a
/// forged `end ok`; the log, `status` and `status --json` show the name
/// escaped (the JSON decodes back to it).
#[test]
fn a_process_name_cannot_forge_an_outcome_or_a_line() {
    let mut h = Harness::new("hard-forged-comm", 38);
    h.write_config(&Cfg::default());
    h.start();
    let port = h.ws[1][0];
    h.write(
        "squat.py",
        "import socket, sys, time\n\
         open('/proc/self/comm', 'w').write('x\\nend ok\\nz')\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', int(sys.argv[1])))\n\
         s.listen()\n\
         open(sys.argv[2], 'w').close()\n\
         time.sleep(60)\n",
    );
    let mut squatter = Command::new(python())
        .arg(h.path("squat.py"))
        .arg(port.to_string())
        .arg(h.path("squat.ready"))
        .spawn()
        .unwrap();
    h.wait_for("the squatter to listen", S(10), || h.path("squat.ready").exists());
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "a refused rollout is not live:\n{out}");
    let name = format!("pid {} (x\\x0aend ok\\x0az)", squatter.id());
    assert!(out.contains(&name), "no {name:?} in:\n{out}");
    let status = text(&client(&h, &["status"]));
    assert!(status.contains(&name), "no {name:?} in:\n{status}");
    assert!(h.log_text().contains(&name), "no {name:?} in:\n{}", h.log_text());
    assert_nothing_forged(&h, &[&out, &status]);
    let summary = json_summary(&h);
    assert!(summary.contains(&format!("pid {} (x\nend ok\nz)", squatter.id())), "{summary:?}");
    squatter.kill().unwrap();
    squatter.wait().unwrap();
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// A template (the group's user may own it) whose error text holds a
/// newline, `end ok`, then CR, ESC and NUL: the config is invalid, and
/// `reload --wait` exits 2, not 0 on a forged `end ok`; the log and
/// `rolld check` show the text escaped.
#[test]
fn a_template_error_cannot_forge_an_outcome_or_a_line() {
    let mut h = Harness::new("hard-forged-template", 39);
    h.write_config(&Cfg::default());
    h.start();
    let rendered = h.read("lb.conf");
    h.write("lb.templ", "{{ ports|sort(**{\"x\\nend ok\\nz\\r\\u001b[2J\\u0000\": 1}) }}\n");
    let o = client(&h, &["reload", "--wait", "--timeout", "20"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "an invalid config:\n{out}");
    let shown = "x\\x0aend ok\\x0az\\x0d\\x1b[2J\\x00";
    assert!(out.contains(shown), "no {shown:?} in:\n{out}");
    assert!(h.log_text().contains(shown), "no {shown:?} in:\n{}", h.log_text());
    let check = Command::new(rolld_bin()).arg("check").arg(&h.config).output().unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    let check = text(&check);
    assert!(check.contains(shown), "rolld check: no {shown:?} in:\n{check}");
    assert_nothing_forged(&h, &[&out, &check]);
    assert_eq!(h.read("lb.conf"), rendered, "the LB's config is unchanged");
    h.assert_live(0);
    h.stop_ok(S(8));
}

/// The harness's config with `surge: 1` and the worksets `sets` (two ports
/// each) instead of its own two.
fn surge_yaml(h: &Harness, sets: &[[u16; 2]]) -> String {
    let yaml = h.yaml(&Cfg { extra: "surge: 1", ..Cfg::default() });
    let [[a0, a1], [b0, b1]] = h.ws;
    let block = format!("    - numprocs: [{a0}, {a1}]\n    - numprocs: [{b0}, {b1}]\n");
    assert!(yaml.contains(&block), "{yaml}");
    let sets: String = sets.iter().map(|[p, q]| format!("    - numprocs: [{p}, {q}]\n")).collect();
    yaml.replace(&block, &sets)
}

/// A `surge: 1` group started on its third workset (a port of each of the
/// first two held at start), the holders released: the harness and the
/// third workset's ports.
fn live_on_the_third_workset(name: &str, k: u16) -> (Harness, [u16; 2]) {
    let mut h = Harness::new(name, k);
    let [[a0, _], [b0, _]] = h.ws;
    let c = [20000 + 100 * k + 21, 20000 + 100 * k + 22];
    for p in c {
        assert!(!listens(p), "port {p} of test {name} is already in use before the test");
    }
    std::fs::write(&h.config, surge_yaml(&h, &[h.ws[0], h.ws[1], c])).unwrap();
    let holders = [
        std::net::TcpListener::bind(("127.0.0.1", a0)).unwrap(),
        std::net::TcpListener::bind(("127.0.0.1", b0)).unwrap(),
    ];
    h.start();
    assert!(h.line("live on").contains(&format!("live on {},{}", c[0], c[1])), "{}", h.log_text());
    drop(holders);
    (h, c)
}

/// rolld is still running, answers `status`, and `ports` serve.
fn still_serving(h: &mut Harness, ports: [u16; 2]) {
    let child = h.child.as_mut().expect("rolld started");
    assert!(child.try_wait().unwrap().is_none(), "rolld died\n{}", h.log_text());
    assert_eq!(client(h, &["status"]).status.code(), Some(0), "rolld answers");
    for p in ports {
        h.wait_for(&format!("port {p} to answer"), S(5), || answers(p));
    }
}

/// A reload that removes the workset before the live one: the live set's
/// place is found again in the new config by its ports (its old workset
/// number means another workset there), and the rollout moves each slot
/// to the next workset.
#[test]
fn a_reload_that_removes_a_workset_before_the_live_one_rolls() {
    let (mut h, c) = live_on_the_third_workset("hard-drop-middle", 60);
    std::fs::write(&h.config, surge_yaml(&h, &[h.ws[0], c])).unwrap();
    let o = client(&h, &["reload", "--wait", "--timeout", "30"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("-> {},{} in 2 batches of 1", h.ws[0][0], h.ws[0][1])), "{}", text(&o));
    let a = h.ws[0];
    still_serving(&mut h, a);
    for p in c {
        h.wait_for(&format!("port {p} to be closed"), S(5), || !listens(p));
    }
    h.stop_ok(S(8));
}

/// A reload that drops the live workset altogether, while a port of the
/// remaining ones is held in the one slot: the rollout is refused, naming
/// the slot, and the live set serves on. Once the port is free, the next
/// reload moves every slot.
#[test]
fn a_reload_that_drops_the_live_workset_refuses_or_rolls() {
    let (mut h, c) = live_on_the_third_workset("hard-drop-live", 61);
    std::fs::write(&h.config, surge_yaml(&h, &h.ws)).unwrap();
    let held = [
        std::net::TcpListener::bind(("127.0.0.1", h.ws[0][1])).unwrap(),
        std::net::TcpListener::bind(("127.0.0.1", h.ws[1][1])).unwrap(),
    ];
    let o = client(&h, &["reload", "--wait", "--timeout", "30"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("slot 1 (live on {})", c[1])), "{}", text(&o));
    still_serving(&mut h, c);
    drop(held);
    let o = client(&h, &["reload", "--wait", "--timeout", "30"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let a = h.ws[0];
    still_serving(&mut h, a);
    for p in c {
        h.wait_for(&format!("port {p} to be closed"), S(5), || !listens(p));
    }
    h.stop_ok(S(8));
}
