//! What a backend's user controls, and what rolld inherits, turned against
//! rolld: the real binary (as root where the point is `user:`), with
//! planted symlinks and FIFOs, root-only files, a crash that prints control
//! characters, ignored signals, a closed stdout, a descriptor limit, no
//! pidfds, a config read again that hangs, a template that is a link to a
//! root-only file, an LB config written through a user's directory, and
//! reloads that remove worksets under a live set.
//!
//! Ports: Harness k = 54..=61 and 65..=68 (25400-26122, 26500-26812).

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
