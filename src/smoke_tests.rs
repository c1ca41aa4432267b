//! Unit tests of the smoke checks, against listeners of their own on
//! loopback (ports 26050-26099, each test its own). They need ::1 on lo and
//! fail, not skip, without it.

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
        let (mut heads, mut empty) = (Vec::new(), 0);
        while heads.len() < n {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            if head.is_empty() {
                empty += 1;
                continue;
            }
            let _ = s.write_all(response);
            heads.push(String::from_utf8_lossy(&head).into_owned());
        }
        (heads, empty)
    })
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
