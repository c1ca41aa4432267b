//! Unit tests of the smoke checks, against listeners of their own on
//! loopback (ports 26050-26099, each test its own; for the checks of
//! `listen:` processes, listeners on 28900-28949 and source ports
//! 28950-28999). They need ::1 on lo and fail, not skip, without it.

use super::*;
use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::thread::JoinHandle;

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[track_caller]
fn bind(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot listen on {addr} (is ::1 on lo?): {e}"))
}

fn http(host: Host, timeout_ms: u64) -> Check {
    Check::Http {
        host,
        path: "/".into(),
        status: 200,
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn with_headers(c: Check, h: &[(&str, &str)]) -> Check {
    match c {
        Check::Http { host, path, status, body, timeout, .. } => Check::Http {
            host,
            path,
            status,
            headers: h.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body,
            timeout,
        },
        c => c,
    }
}

fn with_body(c: Check, want: &str) -> Check {
    match c {
        Check::Http { host, path, status, headers, timeout, .. } => {
            Check::Http { host, path, status, headers, body: Some(want.into()), timeout }
        }
        c => c,
    }
}

fn tcp(host: Host) -> Check {
    Check::Tcp { host, timeout: Duration::from_secs(2) }
}

/// Answers `n` requests on `l` with `response`, closing each connection;
/// the heads of the requests it got, and how many connections closed
/// without a request (an HTTP check's first connection, which only finds
/// out whether the address accepts).
fn serve(l: TcpListener, response: &'static [u8], n: usize) -> JoinHandle<(Vec<String>, usize)> {
    std::thread::spawn(move || {
        let (got, empty) = answer(&l, response, n);
        (got.into_iter().map(|(_, head)| head).collect(), empty)
    })
}

/// `serve`, with the address each request came from.
fn serve_peers(l: TcpListener, response: &'static [u8], n: usize) -> JoinHandle<Vec<(SocketAddr, String)>> {
    std::thread::spawn(move || answer(&l, response, n).0)
}

fn answer(l: &TcpListener, response: &[u8], n: usize) -> (Vec<(SocketAddr, String)>, usize) {
    let (mut got, mut empty) = (Vec::new(), 0);
    while got.len() < n {
        let (mut s, peer) = l.accept().unwrap();
        let head = read_head(&mut s);
        if head.is_empty() {
            empty += 1;
            continue;
        }
        let _ = s.write_all(response);
        got.push((peer, String::from_utf8_lossy(&head).into_owned()));
    }
    (got, empty)
}

/// The head of the request on `s`, up to its empty line; empty when the
/// connection closed without one.
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    head
}

/// The header lines of a request head, lowercased names, in order.
fn header_lines(head: &str) -> Vec<(String, String)> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nv1.2.3\r\n";

// ------------------------------------------------------------ addresses

#[test]
fn address_list_of_each_host() {
    let table: [(Host, Option<Vec<SocketAddr>>); 5] = [
        (Host::Localhost, Some(vec![v6(8001), v4(8001)])),
        (Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some(vec![v4(8001)])),
        (Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), Some(vec![v6(8001)])),
        (Host::Ip("10.1.2.3".parse().unwrap()), Some(vec!["10.1.2.3:8001".parse().unwrap()])),
        (Host::Name("app.internal".into()), None),
    ];
    for (host, want) in table {
        assert_eq!(addresses(&host, 8001), want, "{host:?}");
    }
}

#[test]
fn host_as_shown_in_a_url() {
    let table = [
        (Host::Localhost, "localhost"),
        (Host::Ip("127.0.0.1".parse().unwrap()), "127.0.0.1"),
        (Host::Ip("::1".parse().unwrap()), "[::1]"),
        (Host::Name("app.internal".into()), "app.internal"),
    ];
    for (host, shown) in table {
        assert_eq!(host.to_string(), shown);
    }
}

// ------------------------------------------------------------ tcp

#[test]
fn tcp_localhost_passes_on_either_family() {
    for (addr, other) in [(v6(26050), v4(26050)), (v4(26051), v6(26051))] {
        let _l = bind(addr);
        assert_eq!(check_port(&[tcp(Host::Localhost)], addr.port()), Ok(()), "listening on {addr} only");
        // The other family alone is refused: that address is really tried.
        let host = Host::Ip(other.ip());
        let e = check_port(&[tcp(host)], addr.port()).unwrap_err();
        assert_eq!(e, format!("connect to {}:{}: {other} refused", Host::Ip(other.ip()), addr.port()));
    }
}

#[test]
fn tcp_failure_names_every_address() {
    let e = check_port(&[tcp(Host::Localhost)], 26052).unwrap_err();
    assert_eq!(e, "connect to localhost:26052: [::1]:26052 refused; 127.0.0.1:26052 refused");
}

#[test]
fn tcp_host_name_is_resolved() {
    let _l = bind(v4(26053));
    // "localhost" as a name goes through the resolver; any resolver maps it
    // to 127.0.0.1 at least.
    assert_eq!(check_port(&[tcp(Host::Name("localhost".into()))], 26053), Ok(()));
    let e = check_port(&[tcp(Host::Name("no-such-host.invalid".into()))], 26053).unwrap_err();
    assert!(e.starts_with("connect to no-such-host.invalid:26053: resolve no-such-host.invalid: "), "{e}");
}

// ------------------------------------------------------------ http

#[test]
fn http_localhost_passes_on_either_family_with_the_default_headers() {
    for addr in [v6(26054), v4(26055)] {
        let server = serve(bind(addr), OK, 1);
        assert_eq!(check_port(&[http(Host::Localhost, 2000)], addr.port()), Ok(()), "listening on {addr} only");
        let (heads, empty) = server.join().unwrap();
        assert_eq!(empty, 1, "one connection finds out that {addr} accepts, one carries the request");
        let h = header_lines(&heads[0]);
        assert!(heads[0].starts_with("GET / HTTP/1.1\r\n"), "{heads:?}");
        let hosts: Vec<_> = h.iter().filter(|(n, _)| n == "host").map(|(_, v)| v.as_str()).collect();
        assert_eq!(hosts, [format!("localhost:{}", addr.port())], "{heads:?}");
        assert!(h.contains(&("connection".into(), "close".into())), "{heads:?}");
    }
}

#[test]
fn http_headers_replace_rollds_own() {
    let server = serve(bind(v4(26056)), OK, 1);
    let c = with_headers(
        http(Host::Localhost, 2000),
        &[("host", "app.example"), ("User-Agent", "probe/1"), ("Authorization", "Bearer s3cret")],
    );
    assert_eq!(check_port(&[c], 26056), Ok(()));
    let (heads, _) = server.join().unwrap();
    let h = header_lines(&heads[0]);
    let get = |name: &str| h.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(get("host"), ["app.example"], "{heads:?}");
    assert_eq!(get("user-agent"), ["probe/1"], "{heads:?}");
    assert_eq!(get("authorization"), ["Bearer s3cret"], "{heads:?}");
    assert_eq!(get("connection"), ["close"], "{heads:?}");
}

#[test]
fn http_literal_host_sends_it_as_host() {
    let server = serve(bind(v6(26057)), OK, 1);
    assert_eq!(check_port(&[http(Host::Ip("::1".parse().unwrap()), 2000)], 26057), Ok(()));
    let (heads, _) = server.join().unwrap();
    assert!(header_lines(&heads[0]).contains(&("host".into(), "[::1]:26057".into())), "{heads:?}");
}

#[test]
fn http_wrong_status_shows_the_start_of_the_body_escaped() {
    let resp: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nInvalid HTTP_HOST header: 'localhost:26058'.\n\x1b[31m";
    let server = serve(bind(v4(26058)), resp, 1);
    let c = with_headers(http(Host::Localhost, 2000), &[("Authorization", "Bearer s3cret")]);
    let e = check_port(&[c], 26058).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        e,
        "GET http://localhost:26058/: [::1]:26058 refused; 127.0.0.1:26058 answered 400 (want 200), \
         the body begins \"Invalid HTTP_HOST header: 'localhost:26058'.\\n\\u{1b}[31m\""
    );
    assert!(!e.contains("s3cret"), "header values other than Host stay out of messages: {e}");
}

#[test]
fn http_body_must_contain_the_text() {
    let server = serve(bind(v6(26059)), OK, 2);
    assert_eq!(check_port(&[with_body(http(Host::Localhost, 2000), "v1.2.3")], 26059), Ok(()));
    let e = check_port(&[with_body(http(Host::Localhost, 2000), "v1.2.4")], 26059).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        e,
        "GET http://localhost:26059/: [::1]:26059 answered 200 with a body without \"v1.2.4\": \
         the body begins \"v1.2.3\\r\\n\"; 127.0.0.1:26059 refused"
    );
}

#[test]
fn http_long_body_is_cut_in_the_message() {
    static LONG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let resp = LONG.get_or_init(|| {
        let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'x', 5000));
        r
    });
    let server = serve(bind(v4(26060)), resp, 1);
    let e = check_port(&[with_body(http(Host::Localhost, 2000), "needle")], 26060).unwrap_err();
    server.join().unwrap();
    let shown = format!("the body begins \"{}...\"", "x".repeat(EXCERPT_CHARS));
    assert!(e.ends_with(&format!("127.0.0.1:26060 answered 200 with a body without \"needle\": {shown}")), "{e}");
}

#[test]
fn http_header_in_message_only_when_host_is_set() {
    let c = with_headers(http(Host::Localhost, 500), &[("Host", "app.example"), ("X-Token", "t0ken")]);
    let e = check_port(&[c], 26061).unwrap_err();
    assert_eq!(e, "GET http://localhost:26061/ (Host: app.example): [::1]:26061 refused; 127.0.0.1:26061 refused");
}

// ------------------------------------------------------------ time bounds

/// Accepts connections on `l` and holds them, never answering, until the
/// test ends.
fn hold(l: TcpListener) {
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
}

#[test]
fn an_address_that_hangs_costs_the_other_nothing() {
    hold(bind(v6(26062)));
    let server = serve(bind(v4(26062)), OK, 1);
    let t = Instant::now();
    assert_eq!(check_port(&[http(Host::Localhost, 3000)], 26062), Ok(()));
    assert!(t.elapsed() < Duration::from_millis(1500), "passed after {:?}, timeout 3s", t.elapsed());
    server.join().unwrap();
}

#[test]
fn a_check_never_takes_longer_than_its_timeout() {
    hold(bind(v6(26063)));
    hold(bind(v4(26063)));
    let t = Instant::now();
    let e = check_port(&[http(Host::Localhost, 600)], 26063).unwrap_err();
    let took = t.elapsed();
    // Both addresses share the one budget: one after the other would take
    // 1200 ms. The margin above 600 ms is for a loaded machine.
    assert!((Duration::from_millis(550)..Duration::from_millis(1100)).contains(&took), "took {took:?}");
    assert_eq!(
        e,
        "GET http://localhost:26063/: [::1]:26063 timed out after 600ms; 127.0.0.1:26063 timed out after 600ms"
    );
}

// ------------------------------------------------------------ listen: processes

#[test]
fn through_the_public_address_from_its_loopback() {
    let v4 = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let table = [
        ("0.0.0.0:8080", "127.0.0.1:8080", "127.0.0.1:32761"),
        ("127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:32761"),
        ("10.0.0.5:8080", "10.0.0.5:8080", "127.0.0.1:32761"),
        ("[::]:8080", "[::1]:8080", "[::1]:32761"),
        ("[::1]:8080", "[::1]:8080", "[::1]:32761"),
        ("[fd00::2]:8080", "[fd00::2]:8080", "[::1]:32761"),
        ("[::ffff:10.0.0.5]:8080", "10.0.0.5:8080", "127.0.0.1:32761"),
    ];
    for (public, target, source) in table {
        assert_eq!(through(v4(public), 32761), (v4(target), v4(source)), "{public}");
    }
}

/// Accepts connections on `l` and holds them until the test ends; the
/// address of each, as it comes.
fn accept_and_hold(l: TcpListener) -> mpsc::Receiver<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        // A connection reset while it waited has no peer any more: the
        // address comes from accept itself.
        while let Ok((s, peer)) = l.accept() {
            let _ = tx.send(peer);
            held.push(s);
        }
    });
    rx
}

/// The first `n` addresses from `accept_and_hold`, each within 5 s.
fn first(accepted: &mpsc::Receiver<SocketAddr>, n: usize) -> Vec<SocketAddr> {
    (0..n).map_while(|_| accepted.recv_timeout(Duration::from_secs(5)).ok()).collect()
}

fn tcp_ms(timeout_ms: u64) -> Check {
    Check::Tcp { host: Host::Localhost, timeout: Duration::from_millis(timeout_ms) }
}

#[test]
fn http_through_comes_from_the_source_port_with_the_configured_host() {
    let server = serve_peers(bind(v4(28900)), OK, 2);
    let public: SocketAddr = "0.0.0.0:28900".parse().unwrap();
    assert_eq!(check_through(&[http(Host::Localhost, 2000)], public, 28950), Ok(()));
    let named = with_headers(http(Host::Name("app.internal".into()), 2000), &[("X-Probe", "1")]);
    assert_eq!(check_through(&[named], public, 28950), Ok(()));
    let got = server.join().unwrap();
    assert_eq!(got.len(), 2, "one connection per check, no probe first: {got:?}");
    for (peer, _) in &got {
        assert_eq!(*peer, v4(28950), "{got:?}");
    }
    let host =
        |i: usize| header_lines(&got[i].1).into_iter().filter(|(n, _)| n == "host").map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(host(0), vec!["localhost:28900".to_string()], "{got:?}");
    assert_eq!(host(1), vec!["app.internal:28900".to_string()], "the host: setting only names the Host header");
    assert!(header_lines(&got[1].1).contains(&("x-probe".into(), "1".into())), "{got:?}");
    assert!(header_lines(&got[1].1).contains(&("connection".into(), "close".into())), "{got:?}");
}

#[test]
fn http_through_failure_names_the_address_the_source_port_and_the_answer() {
    let server = serve(bind(v4(28901)), b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nboom", 1);
    let public: SocketAddr = "127.0.0.1:28901".parse().unwrap();
    let c = with_headers(http(Host::Localhost, 2000), &[("Host", "app.example"), ("Authorization", "s3cret")]);
    let e = check_through(&[c], public, 28951).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        e,
        "GET http://127.0.0.1:28901/ from port 28951 (Host: app.example): answered 500 (want 200), \
         the body begins \"boom\""
    );
    let e = check_through(&[http(Host::Localhost, 500)], public, 28951).unwrap_err();
    assert_eq!(e, "GET http://127.0.0.1:28901/ from port 28951 (Host: localhost:28901): refused");
    let e = check_through(&[tcp_ms(500)], public, 28951).unwrap_err();
    assert_eq!(e, "connect to 127.0.0.1:28901 from port 28951: refused");
}

#[test]
fn tcp_through_passes_only_once_a_process_accepted() {
    let l = bind(v4(28902));
    let public: SocketAddr = "0.0.0.0:28902".parse().unwrap();
    let t = Instant::now();
    let e = check_through(&[tcp_ms(300)], public, 28952).unwrap_err();
    assert_eq!(e, "connect to 127.0.0.1:28902 from port 28952: connected, but no process accepted it within 300ms");
    assert!(t.elapsed() < Duration::from_millis(800), "took {:?}", t.elapsed());
    let accepted = accept_and_hold(l);
    assert_eq!(check_through(&[tcp_ms(2000)], public, 28952), Ok(()));
    // The reset connection of the failed check first, then this check's.
    assert_eq!(first(&accepted, 2), [v4(28952), v4(28952)]);
}

#[test]
fn tcp_through_passes_when_the_process_accepted_and_closed_already() {
    let l = bind(v4(28903));
    let closer = std::thread::spawn(move || {
        // Late enough that the check has looked, and found nothing, first.
        std::thread::sleep(Duration::from_millis(50));
        drop(l.accept().unwrap());
    });
    assert_eq!(check_through(&[tcp_ms(2000)], "127.0.0.1:28903".parse().unwrap(), 28953), Ok(()));
    closer.join().unwrap();
}

#[test]
fn two_hundred_checks_in_a_row_from_one_source_port() {
    let n = 200;
    let server = serve_peers(bind(v4(28904)), OK, n);
    let public: SocketAddr = "0.0.0.0:28904".parse().unwrap();
    for i in 0..n {
        assert_eq!(check_through(&[http(Host::Localhost, 2000)], public, 28954), Ok(()), "HTTP check {i}");
    }
    assert_eq!(server.join().unwrap().len(), n);
    // A server that keeps each connection open after its answer: rolld's
    // end closes first.
    let l = bind(v4(28909));
    let keeper = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            read_head(&mut s);
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
            held.push(s);
        }
    });
    let public: SocketAddr = "0.0.0.0:28909".parse().unwrap();
    for i in 0..n {
        assert_eq!(check_through(&[http(Host::Localhost, 2000)], public, 28959), Ok(()), "HTTP check {i}, kept open");
    }
    keeper.join().unwrap();
    let accepted = accept_and_hold(bind(v4(28905)));
    let public: SocketAddr = "0.0.0.0:28905".parse().unwrap();
    for i in 0..n {
        assert_eq!(check_through(&[tcp_ms(2000)], public, 28955), Ok(()), "TCP check {i}");
    }
    assert_eq!(first(&accepted, n).len(), n);
}

#[test]
fn ipv6_through_comes_from_the_v6_loopback() {
    let server = serve_peers(bind(v6(28906)), OK, 1);
    let public: SocketAddr = "[::]:28906".parse().unwrap();
    assert_eq!(check_through(&[http(Host::Localhost, 2000)], public, 28956), Ok(()));
    let got = server.join().unwrap();
    assert_eq!(got[0].0, v6(28956));
    assert!(header_lines(&got[0].1).contains(&("host".into(), "localhost:28906".into())), "{got:?}");
    let l = bind(v6(28907));
    let public: SocketAddr = "[::1]:28907".parse().unwrap();
    let e = check_through(&[tcp_ms(200)], public, 28957).unwrap_err();
    assert_eq!(e, "connect to [::1]:28907 from port 28957: connected, but no process accepted it within 200ms");
    let accepted = accept_and_hold(l);
    assert_eq!(check_through(&[tcp_ms(2000)], public, 28957), Ok(()));
    assert_eq!(first(&accepted, 2), [v6(28957), v6(28957)]);
}

#[test]
fn a_source_port_held_by_someone_else_is_named() {
    let _l = bind(v4(28908));
    let _other = bind(v4(28958));
    let public: SocketAddr = "0.0.0.0:28908".parse().unwrap();
    let e = check_through(&[tcp_ms(500)], public, 28958).unwrap_err();
    assert!(e.starts_with("connect to 127.0.0.1:28908 from port 28958: cannot bind 127.0.0.1:28958: "), "{e}");
    let e = check_through(&[http(Host::Localhost, 500)], public, 28958).unwrap_err();
    let want = "GET http://127.0.0.1:28908/ from port 28958 (Host: localhost:28908): cannot bind 127.0.0.1:28958: ";
    assert!(e.starts_with(want), "{e}");
}

/// Sets its flag when dropped, a failed assertion included.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn checks_from_one_port_pass_while_children_are_forked() {
    // A child holds a copy of every descriptor from its fork to its exec,
    // the socket of a check that just ended included: its reset leaves
    // late, and the next check from the port finds the pair taken a while.
    let stop = StopOnDrop(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let stopped = Arc::clone(&stop.0);
    let forker = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let mut c = std::process::Command::new("true");
            crate::sys::child_setup(&mut c, None, Vec::new(), Vec::new());
            c.status().unwrap();
        }
    });
    let n = 200;
    let server = serve_peers(bind(v4(28910)), OK, n);
    let public: SocketAddr = "0.0.0.0:28910".parse().unwrap();
    for i in 0..n {
        assert_eq!(check_through(&[http(Host::Localhost, 2000)], public, 28960), Ok(()), "check {i}");
    }
    assert_eq!(server.join().unwrap().len(), n);
    drop(stop);
    forker.join().unwrap();
}
