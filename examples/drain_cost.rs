//! What one drain check costs while the host holds many TCP connections.
//!
//!   cargo run --release --example drain_cost -- [--conns 1000,10000,50000]
//!       [--inside 28200,28201,28202,28203] [--outside 28210,28211,28212,28213]
//!       [--runs 11]
//!
//! For each N it starts holder processes (this program, `hold` mode) that
//! open N established loopback connections to the `inside` ports: clients
//! bound to 127.0.0.2-127.0.0.9 (IP_BIND_ADDRESS_NO_PORT, so ephemeral
//! ports are chosen per 4-tuple), servers accepting on SO_REUSEPORT
//! listeners, every socket with SO_LINGER 0 so that nothing is left in
//! TIME_WAIT afterwards. The connections are spread over as many holders as
//! the open-file limit needs (two descriptors per connection). Then, `runs`
//! times, on the `outside` ports (no connection) and on the `inside` ports
//! (N connections), it times:
//!
//!   netlink  rolld::tcp::connections(), the drain's count (sock_diag)
//!   dump     an unfiltered sock_diag dump of the busy states, filtered by
//!            port in user space (rolld::tcp::diag_request with no filter)
//!   proc     the same count from /proc/net/tcp and tcp6, parsed with
//!            rolld::tcp::parse_row, as rolld's fallback does
//!   ss       `ss -Htn state established '( sport = :P or ... )'`, the whole
//!            process, its output lines counted
//!
//! Output: `RESULT<TAB>N<TAB>set<TAB>method<TAB>median_ms<TAB>min_ms<TAB>count`
//! lines, and `INFO` lines. Every wait is bounded; holders exit when their
//! stdin closes or their parent dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// rolld's drain states: ESTABLISHED, SYN_RECV, CLOSE_WAIT.
const BUSY_STATES: [u8; 3] = [0x01, 0x03, 0x08];
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;
const SOURCES: u8 = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("hold") => hold(&args[1..]),
        _ => run(&args),
    };
    std::process::exit(code);
}

fn die(msg: &str) -> ! {
    eprintln!("drain_cost: {msg}");
    std::process::exit(1);
}

fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').map(|x| x.trim().parse().unwrap_or_else(|_| die(&format!("bad number {x:?}")))).collect()
}

fn cvt(r: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, val: &T) -> std::io::Result<()> {
    // SAFETY: val points to a live T of the size given.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (val as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    cvt(r, "setsockopt").map(|_| ())
}

fn linger0(fd: libc::c_int) -> std::io::Result<()> {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &libc::linger { l_onoff: 1, l_linger: 0 })
}

fn sockaddr(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_ne_bytes(ip);
    a
}

/// A listener on 127.0.0.1:port that other holders share (SO_REUSEPORT).
fn listen_shared(port: u16) -> std::io::Result<TcpListener> {
    // SAFETY: plain socket calls on a fresh descriptor we own.
    unsafe {
        let fd = cvt(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0), "socket")?;
        let owned = OwnedFd::from_raw_fd(fd);
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &1i32)?;
        let a = sockaddr([127, 0, 0, 1], port);
        cvt(
            libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&a) as libc::socklen_t),
            &format!("bind 127.0.0.1:{port}"),
        )?;
        cvt(libc::listen(fd, 4096), "listen")?;
        Ok(TcpListener::from(owned))
    }
}

/// One client connection from 127.0.0.`src` to 127.0.0.1:port.
fn connect_from(src: u8, port: u16) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a fresh descriptor we own.
    unsafe {
        let fd = cvt(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0), "socket")?;
        let owned = OwnedFd::from_raw_fd(fd);
        setsockopt(fd, libc::IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &1i32)?;
        linger0(fd)?;
        let from = sockaddr([127, 0, 0, src], 0);
        cvt(
            libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&from) as libc::socklen_t),
            &format!("bind 127.0.0.{src}"),
        )?;
        let to = sockaddr([127, 0, 0, 1], port);
        cvt(
            libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&to) as libc::socklen_t),
            &format!("connect 127.0.0.{src} -> 127.0.0.1:{port}"),
        )?;
        Ok(owned)
    }
}

fn nofile() -> (libc::rlim_t, libc::rlim_t) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a valid rlimit to write into.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (r.rlim_cur, r.rlim_max)
}

/// Raises the open-file limit: to 120 000 where allowed (as `ulimit -n`
/// would, with CAP_SYS_RESOURCE), else the soft limit to the hard one.
fn raise_nofile() -> libc::rlim_t {
    let want = libc::rlimit { rlim_cur: 120_000, rlim_max: 120_000 };
    let (_, hard) = nofile();
    let fallback = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: both are valid rlimits; a refusal leaves the limit unchanged.
    unsafe {
        if hard >= want.rlim_max || libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            libc::setrlimit(libc::RLIMIT_NOFILE, &fallback);
        }
    }
    nofile().0
}

/// Holder mode: `hold PORTS CONNS SRC_OFFSET`. Prints `connected N` once
/// its clients are connected, then holds everything until stdin closes.
fn hold(args: &[String]) -> i32 {
    // SAFETY: prctl with integer arguments: die with the parent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let ports: Vec<u16> = list(args.first().map(String::as_str).unwrap_or_else(|| die("hold: no ports")));
    let conns: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| die("hold: no count"));
    let offset: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    raise_nofile();
    for &port in &ports {
        let l = listen_shared(port).unwrap_or_else(|e| die(&e.to_string()));
        std::thread::spawn(move || {
            let mut held = Vec::new();
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = linger0(s.as_raw_fd());
                        held.push(s);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                    Err(e) => die(&format!("accept on {port}: {e} (holding {})", held.len())),
                }
            }
        });
    }
    // Every holder listens before any connects, so that SO_REUSEPORT
    // spreads the connections evenly over the holders.
    println!("listening");
    let _ = std::io::stdout().flush();
    let mut stdin = BufReader::new(std::io::stdin());
    let mut go = String::new();
    if stdin.read_line(&mut go).unwrap_or(0) == 0 {
        return 0;
    }
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let k = offset + i;
        let src = 2 + (k % SOURCES as usize) as u8;
        let port = ports[(k / SOURCES as usize) % ports.len()];
        match connect_from(src, port) {
            Ok(fd) => clients.push(fd),
            Err(e) => die(&format!("{e} (after {i} connections)")),
        }
    }
    println!("connected {}", clients.len());
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = stdin.read_to_end(&mut sink);
    0
}

/// The drain count over /proc, as rolld's fallback computes it.
fn proc_count(ports: &[u16]) -> usize {
    let mut n = 0;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(path) {
            n += t
                .lines()
                .filter_map(rolld::tcp::parse_row)
                .filter(|r| BUSY_STATES.contains(&r.state) && ports.contains(&r.port))
                .count();
        }
    }
    n
}

fn ss_filter(ports: &[u16]) -> String {
    let parts: Vec<String> = ports.iter().map(|p| format!("sport = :{p}")).collect();
    format!("( {} )", parts.join(" or "))
}

fn ss_count(ports: &[u16]) -> usize {
    let out = Command::new("ss")
        .args(["-Htn", "state", "established", &ss_filter(ports)])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| die(&format!("ss: {e}")));
    if !out.status.success() {
        die(&format!("ss failed: {}", out.status));
    }
    out.stdout.iter().filter(|&&b| b == b'\n').count()
}

/// Every busy-state socket of the host, by an unfiltered sock_diag dump,
/// or the error that would make connections() fall back to /proc.
fn netlink_all() -> Result<Vec<rolld::tcp::Row>, String> {
    let mask = BUSY_STATES.iter().fold(0u32, |m, s| m | 1 << s);
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let nl = rolld::sys::Netlink::open(4).map_err(|e| e.to_string())?;
        nl.send(&rolld::tcp::diag_request(family, mask, &[])).map_err(|e| e.to_string())?;
        loop {
            let n = nl.recv(&mut buf).map_err(|e| e.to_string())?;
            if rolld::tcp::parse_diag(&buf[..n], &mut rows)? || n == 0 {
                break;
            }
        }
    }
    Ok(rows)
}

fn netlink_rows() -> Result<usize, String> {
    netlink_all().map(|r| r.len())
}

/// The count from an unfiltered dump, filtered by port here.
fn dump_count(ports: &[u16]) -> usize {
    netlink_all().map(|rows| rows.iter().filter(|r| ports.contains(&r.port)).count()).unwrap_or(usize::MAX)
}

/// Rows of /proc/net/tcp and tcp6, and how many of them are TIME_WAIT.
fn proc_lines() -> (usize, usize) {
    let mut rows = 0;
    let mut time_wait = 0;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(path) {
            for r in t.lines().filter_map(rolld::tcp::parse_row) {
                rows += 1;
                time_wait += usize::from(r.state == 0x06);
            }
        }
    }
    (rows, time_wait)
}

fn time<F: FnMut() -> usize>(mut f: F) -> (f64, usize) {
    let t = Instant::now();
    let n = f();
    (t.elapsed().as_secs_f64() * 1000.0, n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

struct Holders(Vec<Child>);

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for c in &mut self.0 {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn start_holders(n: usize, inside: &[u16], per_holder: usize) -> Holders {
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let count = n.div_ceil(per_holder).max(1);
    let ports = inside.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let mut holders = Holders(Vec::new());
    let mut offset = 0;
    for h in 0..count {
        let share = n / count + usize::from(h < n % count);
        let child = Command::new(&exe)
            .args(["hold", &ports, &share.to_string(), &offset.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn holder: {e}")));
        holders.0.push(child);
        offset += share;
    }
    // Every holder says `listening`, is told `go`, and says `connected K`
    // (bounded: connects on loopback are immediate, and a holder that fails
    // exits, which closes its stdout).
    let mut outs: Vec<BufReader<std::process::ChildStdout>> = Vec::new();
    for c in &mut holders.0 {
        let out = c.stdout.take().unwrap_or_else(|| die("holder without stdout"));
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        if line.trim() != "listening" {
            die("a holder failed before listening");
        }
        outs.push(r);
    }
    for c in &mut holders.0 {
        if let Some(i) = c.stdin.as_mut() {
            let _ = i.write_all(b"go\n");
            let _ = i.flush();
        }
    }
    let mut total = 0;
    for r in &mut outs {
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        match line.trim().strip_prefix("connected ").and_then(|k| k.parse::<usize>().ok()) {
            Some(k) => total += k,
            None => die("a holder failed before connecting everything"),
        }
    }
    if total != n {
        die(&format!("holders connected {total}, wanted {n}"));
    }
    holders
}

/// Waits (bounded) until the inside ports show `n` connections and the
/// listeners' accept queues are empty, so that nothing moves while timing.
fn settle(n: usize, inside: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = rolld::tcp::connections(inside).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new("ss")
            .args(["-Hltn", &ss_filter(inside)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let queued: usize =
            out.lines().filter_map(|l| l.split_whitespace().nth(1).and_then(|q| q.parse::<usize>().ok())).sum();
        if c == n && queued == 0 {
            return;
        }
        if Instant::now() >= deadline {
            die(&format!("connections did not settle: {c} counted (want {n}), {queued} in accept queues"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(args: &[String]) -> i32 {
    let conns: Vec<usize> = list(opt(args, "--conns").unwrap_or("1000,10000,50000"));
    let inside: Vec<u16> = list(opt(args, "--inside").unwrap_or("28200,28201,28202,28203"));
    let outside: Vec<u16> = list(opt(args, "--outside").unwrap_or("28210,28211,28212,28213"));
    let runs: usize = opt(args, "--runs").and_then(|s| s.parse().ok()).unwrap_or(11);
    let soft = raise_nofile();
    // Two descriptors per connection, some slack for the accept spread.
    let per_holder = (soft.saturating_sub(200) as f64 / 2.0 / 1.10) as usize;
    println!("INFO open-file limit {soft}: up to {per_holder} connections per holder process");
    match netlink_rows() {
        Ok(_) => println!("INFO netlink sock_diag works: connections() counts over netlink"),
        Err(e) => println!("INFO netlink sock_diag fails ({e}): connections() falls back to /proc"),
    }
    for &n in &conns {
        let holders = if n > 0 { Some(start_holders(n, &inside, per_holder)) } else { None };
        settle(n, &inside);
        let procs = holders.as_ref().map_or(0, |h| h.0.len());
        let (rows, time_wait) = proc_lines();
        println!(
            "INFO N={n}: {procs} holder process(es); netlink dump returns {} busy-state sockets (all ports); \
             /proc/net/tcp+tcp6 have {rows} rows, {time_wait} of them TIME_WAIT (other jobs' included)",
            netlink_rows().unwrap_or(0),
        );
        for (name, set, want) in [("outside", &outside, 0), ("inside", &inside, n)] {
            let mut t: [Vec<f64>; 4] = Default::default();
            let mut counts = [0usize; 4];
            for _ in 0..runs {
                let r = [
                    time(|| rolld::tcp::connections(set).unwrap_or_else(|e| panic!("{e}"))),
                    time(|| dump_count(set)),
                    time(|| proc_count(set)),
                    time(|| ss_count(set)),
                ];
                for (k, (ms, c)) in r.into_iter().enumerate() {
                    t[k].push(ms);
                    counts[k] = c;
                }
            }
            for (k, method) in ["netlink", "dump", "proc", "ss"].iter().enumerate() {
                if counts[k] != want {
                    println!("INFO N={n} {name} {method}: counted {} (want {want})", counts[k]);
                }
                let min = t[k].iter().copied().fold(f64::INFINITY, f64::min);
                let med = median(&mut t[k]);
                println!("RESULT\t{n}\t{name}\t{method}\t{med:.3}\t{min:.3}\t{}", counts[k]);
            }
        }
        drop(holders);
    }
    0
}
