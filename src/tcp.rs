//! Sockets on a set of local ports, from the kernel's TCP tables.
//!
//! Two questions are asked of these tables: how many connections could
//! still carry a request to a port (the drain), and whether anything
//! listens on a port, and who (the start). The tables are read over
//! NETLINK_SOCK_DIAG, asking the kernel for the wanted states and ports
//! only, so the kernel walks the host's sockets but formats and sends just
//! the few that matter; the text of /proc/net/tcp and tcp6, parsed whole,
//! is the fallback. Both parsers are pure. A third question, whether a
//! process accepted one given connection, is an exact netlink lookup.

/// States in which a server-side socket may still carry a request:
/// ESTABLISHED (01), SYN_RECV (03) and CLOSE_WAIT (08: the client has sent
/// everything, the server may still be answering). A connection that
/// completed its handshake but sits in the accept queue is ESTABLISHED too.
const BUSY_STATES: [u8; 3] = [0x01, 0x03, 0x08];
const LISTEN: u8 = 0x0A;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NETLINK_SOCK_DIAG: i32 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST_DUMP: u16 = 0x0301;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;

/// One row of a table: local port, state and socket inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub port: u16,
    pub state: u8,
    pub inode: u64,
}

/// Parses one data row; `None` for the header and for anything malformed.
pub fn parse_row(line: &str) -> Option<Row> {
    let mut f = line.split_ascii_whitespace();
    let _slot = f.next()?.strip_suffix(':')?;
    let local = f.next()?;
    let _remote = f.next()?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let (_addr, port) = local.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode
    let inode = f.nth(5)?.parse().ok()?;
    Some(Row { port, state, inode })
}

/// Connections that may carry a request, on any of `ports`, in `table`.
#[cfg(test)]
fn count_busy(table: &str, ports: &std::collections::HashSet<u16>) -> usize {
    table.lines().filter_map(parse_row).filter(|r| BUSY_STATES.contains(&r.state) && ports.contains(&r.port)).count()
}

/// Inodes of the sockets listening on `port` in `table`.
#[cfg(test)]
fn listeners(table: &str, port: u16) -> Vec<u64> {
    table.lines().filter_map(parse_row).filter(|r| r.state == LISTEN && r.port == port).map(|r| r.inode).collect()
}

/// inet_diag bytecode that keeps the sockets whose local port is one of
/// `ports`, as ss compiles `sport = :P1 or sport = :P2 ...`: a test per
/// port, each followed by a jump to the end (accept); a test that fails
/// goes on to the next one, and past the last one, 4 bytes beyond the end
/// (reject). The kernel then sends only the sockets of the drained set.
pub fn port_filter(ports: &[u16]) -> Vec<u8> {
    let len = 12 * ports.len() - 4;
    let mut bc = Vec::with_capacity(len);
    let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        bc.extend_from_slice(&[code, yes]);
        bc.extend_from_slice(&no.to_ne_bytes());
    };
    for (i, &port) in ports.iter().enumerate() {
        op(&mut bc, INET_DIAG_BC_S_EQ, 8, 12);
        op(&mut bc, 0, 0, port);
        if i + 1 < ports.len() {
            let to_end = (len - bc.len()) as u16;
            op(&mut bc, INET_DIAG_BC_JMP, 4, to_end);
        }
    }
    bc
}

/// An inet_diag dump request for TCP sockets of `family` in `states`, with
/// `filter` bytecode when it is not empty.
pub fn diag_request(family: u8, states: u32, filter: &[u8]) -> Vec<u8> {
    let total = 72 + if filter.is_empty() { 0 } else { 4 + filter.len() };
    let mut m = diag_head(total, NLM_F_REQUEST_DUMP, family, states);
    m.resize(72, 0); // inet_diag_sockid: no address filter
    if !filter.is_empty() {
        m.extend_from_slice(&((4 + filter.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        m.extend_from_slice(filter);
    }
    m
}

/// The netlink header and the inet_diag_req_v2 of a request of `total`
/// bytes, up to its inet_diag_sockid.
fn diag_head(total: usize, flags: u16, family: u8, states: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&states.to_ne_bytes());
    m
}

/// Parses one datagram of a dump answer into `rows`. `Ok(true)` once the
/// dump is complete.
pub fn parse_diag(mut buf: &[u8], rows: &mut Vec<Row>) -> Result<bool, String> {
    let u32_at = |b: &[u8], i: usize| b.get(i..i + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    while buf.len() >= 16 {
        let len = u32_at(buf, 0).unwrap_or(0) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            return Err(format!("malformed netlink message (length {len})"));
        }
        let body = &buf[16..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).map_or(0, |e| (e as i32).wrapping_neg());
                return Err(format!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)));
            }
            SOCK_DIAG_BY_FAMILY if body.len() >= 72 => rows.push(Row {
                port: u16::from_be_bytes([body[4], body[5]]),
                state: body[1],
                inode: u64::from(u32_at(body, 68).unwrap_or(0)),
            }),
            _ => {}
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(false)
}

/// TCP sockets in `states` (a mask of 1 << state), IPv4 and IPv6, by
/// netlink; only those on `ports` when the kernel takes the filter.
fn diag(states: u32, ports: &[u16]) -> std::io::Result<Vec<Row>> {
    let filter = if ports.is_empty() || ports.len() > 5000 { Vec::new() } else { port_filter(ports) };
    diag_with(states, &filter).or_else(|e| if filter.is_empty() { Err(e) } else { diag_with(states, &[]) })
}

fn diag_with(states: u32, filter: &[u8]) -> std::io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let nl = crate::sys::Netlink::open(NETLINK_SOCK_DIAG)?;
        nl.send(&diag_request(family, states, filter))?;
        loop {
            let n = nl.recv(&mut buf)?;
            match parse_diag(&buf[..n], &mut rows) {
                Ok(true) => break,
                Ok(false) if n > 0 => {}
                Ok(false) => return Err(std::io::Error::other("sock_diag: empty answer")),
                // A kernel without IPv6 has no tcp6 sockets to report; any
                // other error leaves the IPv6 count unknown.
                Err(_) if family == libc::AF_INET6 as u8 && no_ipv6(nlmsg_errno(&buf[..n])) => break,
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
    Ok(rows)
}

/// The errno of the first message of `buf`, when it is an NLMSG_ERROR.
pub fn nlmsg_errno(buf: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes([*buf.get(4)?, *buf.get(5)?]);
    let e = buf.get(16..20)?;
    (kind == NLMSG_ERROR).then(|| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]).wrapping_neg())
}

/// Whether an errno from the IPv6 dump means "this kernel has no IPv6".
fn no_ipv6(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::ENOENT | libc::EAFNOSUPPORT))
}

fn mask(states: &[u8]) -> u32 {
    states.iter().fold(0, |m, s| m | 1 << s)
}

/// Rows in `states` on `ports`, by netlink, or parsed from /proc when
/// netlink fails. When neither works, an error: a count that cannot be
/// taken is never zero.
fn rows(states: &[u8], ports: &[u16]) -> Result<Vec<Row>, String> {
    let all = either(diag(mask(states), ports).map_err(|e| e.to_string()), proc_rows)?;
    Ok(all.into_iter().filter(|r| states.contains(&r.state) && ports.contains(&r.port)).collect())
}

/// The netlink answer, else the /proc one, else both errors.
fn either(
    netlink: Result<Vec<Row>, String>,
    proc: impl FnOnce() -> Result<Vec<Row>, String>,
) -> Result<Vec<Row>, String> {
    netlink.or_else(|e1| proc().map_err(|e2| format!("cannot count connections: netlink: {e1}; {e2}")))
}

fn proc_rows() -> Result<Vec<Row>, String> {
    let mut all = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(path) {
            Ok(t) => all.extend(t.lines().filter_map(parse_row)),
            // A kernel without IPv6 has no tcp6: that is zero sockets.
            Err(e) if path.ends_with('6') && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(all)
}

/// Connections that may carry a request to any of `ports`, now.
pub fn connections(ports: &[u16]) -> Result<usize, String> {
    Ok(rows(&BUSY_STATES, ports)?.len())
}

/// The same count, port by port, in the order of `ports`.
pub fn connections_per_port(ports: &[u16]) -> Result<Vec<(u16, usize)>, String> {
    let rows = rows(&BUSY_STATES, ports)?;
    Ok(ports.iter().map(|&p| (p, rows.iter().filter(|r| r.port == p).count())).collect())
}

/// The ports of `ports` on which something listens now, each with a
/// description of the holder when it can be found (`pid 123 (nginx)`).
pub fn busy_ports(ports: &[u16]) -> Result<Vec<(u16, String)>, String> {
    let listening = rows(&[LISTEN], ports)?;
    Ok(ports
        .iter()
        .filter_map(|&p| {
            let inodes: Vec<u64> = listening.iter().filter(|r| r.port == p).map(|r| r.inode).collect();
            (!inodes.is_empty()).then(|| (p, holder(&inodes)))
        })
        .collect())
}

/// Which process holds one of these socket inodes, by a scan of /proc/*/fd.
fn holder(inodes: &[u64]) -> String {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(procs) = std::fs::read_dir("/proc") else { return "an unknown process".into() };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                // Any bytes its owner chose: shown escaped where the
                // message leaves rolld.
                let comm = std::fs::read(p.path().join("comm")).unwrap_or_default();
                return format!("pid {pid} ({})", String::from_utf8_lossy(&comm).trim_end_matches('\n'));
            }
        }
    }
    "a process rolld cannot see".into()
}

/// An inet_diag request for the one TCP socket whose local address is
/// `local` and whose peer is `remote`: an exact lookup, not a dump. Both
/// of one family.
fn lookup_request(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Vec<u8> {
    const NLM_F_REQUEST: u16 = 1;
    let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // Any state: a lookup does not filter by state.
    let mut m = diag_head(72, NLM_F_REQUEST, family as u8, u32::MAX);
    let raw = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            a
        }
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&remote.port().to_be_bytes());
    m.extend_from_slice(&raw(local.ip()));
    m.extend_from_slice(&raw(remote.ip()));
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    m
}

/// Whether a process has accepted the connection whose server side is at
/// `local` with peer `remote`. The kernel completes a handshake into the
/// listening socket whether or not anyone accepts; the connection then
/// waits in the accept queue as a socket without an inode, and gets one
/// when a process accepts it (it loses it again when that process closes
/// it). `Ok(false)` as well when there is no such connection.
pub fn accepted(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Result<bool, String> {
    let ask = || -> std::io::Result<Vec<u8>> {
        let nl = crate::sys::Netlink::open(NETLINK_SOCK_DIAG)?;
        nl.send(&lookup_request(local, remote))?;
        let mut buf = vec![0u8; 8192];
        let n = nl.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    };
    let answer = ask().map_err(|e| format!("sock_diag: {e}"))?;
    if nlmsg_errno(&answer) == Some(libc::ENOENT) {
        return Ok(false);
    }
    let mut rows = Vec::new();
    parse_diag(&answer, &mut rows)?;
    // Without a connection of that address pair, the kernel may answer
    // with the listening socket itself: that one has an inode too.
    Ok(rows.iter().any(|r| r.state != LISTEN && r.port == local.port() && r.inode != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F41 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F42 0100007F:D2F1 06 00000000:00000000 03:00000F5B 00000000     0        0 0 3 0000000000000000
   3: 0100007F:D2F2 0100007F:1F42 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:1F42 0100007F:D2F3 03 00000000:00000000 00:00000000 00000000     0        0 1005 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:1F43 0100007F:D2F4 08 00000000:00000000 00:00000000 00000000     0        0 1006 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F44 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F44 00000000000000000000000001000000:C001 01 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0000000000000000 20 4 1 10 -1
   2: 0000000000000000FFFF00000100007F:1F41 0000000000000000FFFF00000100007F:C002 01 00000000:00000000 00:00000000 00000000  1000        0 2003 1 0000000000000000 20 4 1 10 -1
";

    fn set(p: &[u16]) -> HashSet<u16> {
        p.iter().copied().collect()
    }

    #[test]
    fn a_count_that_cannot_be_taken_is_an_error_not_zero() {
        let row = Row { port: 8001, state: 1, inode: 7 };
        assert_eq!(either(Ok(vec![row]), || panic!("no fallback needed")), Ok(vec![row]));
        assert_eq!(either(Err("EPERM".into()), || Ok(vec![row])), Ok(vec![row]));
        let e = either(Err("Operation not permitted".into()), || Err("/proc/net/tcp: Too many open files".into()))
            .unwrap_err();
        assert_eq!(e, "cannot count connections: netlink: Operation not permitted; /proc/net/tcp: Too many open files");
    }

    #[test]
    fn only_enoent_and_eafnosupport_mean_no_ipv6() {
        let err = |errno: i32| {
            let mut m = vec![0u8; 36];
            m[0..4].copy_from_slice(&36u32.to_ne_bytes());
            m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m[16..20].copy_from_slice(&(-errno).to_ne_bytes());
            m
        };
        assert_eq!(nlmsg_errno(&err(libc::ENOENT)), Some(libc::ENOENT));
        assert!(no_ipv6(nlmsg_errno(&err(libc::ENOENT))));
        assert!(no_ipv6(nlmsg_errno(&err(libc::EAFNOSUPPORT))));
        assert!(!no_ipv6(nlmsg_errno(&err(libc::EPERM))), "a filter on netlink is not the absence of IPv6");
        assert!(!no_ipv6(nlmsg_errno(&err(libc::ENOMEM))));
        assert!(!no_ipv6(nlmsg_errno(&[0u8; 8])));
    }

    #[test]
    fn parses_rows_and_skips_header() {
        let rows: Vec<Row> = TCP.lines().filter_map(parse_row).collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0], Row { port: 8001, state: 0x0A, inode: 1001 });
        assert_eq!(rows[3].port, 0xD2F2);
        let rows6: Vec<Row> = TCP6.lines().filter_map(parse_row).collect();
        assert_eq!(rows6[1], Row { port: 8004, state: 0x01, inode: 2002 });
    }

    #[test]
    fn counts_server_side_request_states_only() {
        // 8001: one ESTABLISHED (listen not counted); 8002: TIME_WAIT not
        // counted, SYN_RECV counted, and the client-side row (local port
        // 0xD2F2 -> 8002) is not a server socket of 8002.
        assert_eq!(count_busy(TCP, &set(&[8001])), 1);
        assert_eq!(count_busy(TCP, &set(&[8002])), 1);
        assert_eq!(count_busy(TCP, &set(&[8003])), 1, "CLOSE_WAIT counts");
        assert_eq!(count_busy(TCP, &set(&[8001, 8002, 8003])), 3);
        assert_eq!(count_busy(TCP, &set(&[9000])), 0);
    }

    #[test]
    fn counts_tcp6_including_mapped_v4() {
        assert_eq!(count_busy(TCP6, &set(&[8004])), 1);
        assert_eq!(count_busy(TCP6, &set(&[8001])), 1);
        let both = format!("{TCP}{TCP6}");
        assert_eq!(count_busy(&both, &set(&[8001, 8004])), 3);
    }

    #[test]
    fn finds_listeners() {
        assert_eq!(listeners(TCP, 8001), vec![1001]);
        assert_eq!(listeners(TCP, 8002), Vec::<u64>::new());
        assert_eq!(listeners(TCP6, 8004), vec![2001]);
    }

    #[test]
    fn garbage_is_ignored() {
        for line in ["", "x", "0: zz:zz", "   0: 0100007F:XYZW 0:0 01 a b c d e 1", "1: a:1 b:2 GG"] {
            assert_eq!(parse_row(line), None, "{line:?}");
        }
    }

    fn diag_msg(state: u8, port: u16, inode: u32) -> Vec<u8> {
        let mut m = vec![0u8; 16 + 72];
        m[..4].copy_from_slice(&88u32.to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[16] = libc::AF_INET as u8;
        m[17] = state;
        m[20..22].copy_from_slice(&port.to_be_bytes());
        m[16 + 68..16 + 72].copy_from_slice(&inode.to_ne_bytes());
        m
    }

    #[test]
    fn parses_diag_answers() {
        let mut dgram = diag_msg(0x01, 8001, 7);
        dgram.extend(diag_msg(0x0A, 8002, 9));
        let mut rows = Vec::new();
        assert_eq!(parse_diag(&dgram, &mut rows), Ok(false));
        assert_eq!(rows, vec![Row { port: 8001, state: 1, inode: 7 }, Row { port: 8002, state: 10, inode: 9 }]);
        let mut done = vec![0u8; 20];
        done[..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert_eq!(parse_diag(&done, &mut rows), Ok(true));
        let mut err = done.clone();
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::EINVAL).to_ne_bytes());
        assert!(parse_diag(&err, &mut rows).unwrap_err().contains("Invalid argument"));
        let mut bad = diag_msg(1, 1, 1);
        bad[..4].copy_from_slice(&500u32.to_ne_bytes());
        assert!(parse_diag(&bad, &mut rows).is_err());
        assert_eq!(diag_request(2, 1 << 10, &[]).len(), 72);
        let with = diag_request(2, 1 << 10, &port_filter(&[80, 443]));
        assert_eq!(with.len(), 72 + 4 + 20);
        assert_eq!(u32::from_ne_bytes(with[..4].try_into().unwrap()) as usize, with.len());
    }

    /// The netlink path and the /proc path see the same sockets.
    #[test]
    fn netlink_and_proc_agree_on_live_sockets() {
        use std::net::{TcpListener, TcpStream};
        let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let l6 = TcpListener::bind("[::1]:0").ok();
        let p4 = l4.local_addr().unwrap().port();
        let mut ports = vec![p4];
        let mut keep =
            vec![TcpStream::connect(("127.0.0.1", p4)).unwrap(), TcpStream::connect(("127.0.0.1", p4)).unwrap()];
        let mut accepted = vec![l4.accept().unwrap().0];
        if let Some(l6) = &l6 {
            let p6 = l6.local_addr().unwrap().port();
            ports.push(p6);
            keep.push(TcpStream::connect(("::1", p6)).unwrap());
            accepted.push(l6.accept().unwrap().0);
        }
        let want = keep.len();
        let from_proc =
            proc_rows().unwrap().iter().filter(|r| BUSY_STATES.contains(&r.state) && ports.contains(&r.port)).count();
        let from_diag = diag_with(mask(&BUSY_STATES), &[]).unwrap().iter().filter(|r| ports.contains(&r.port)).count();
        let filtered = diag_with(mask(&BUSY_STATES), &port_filter(&ports)).unwrap();
        assert_eq!((from_diag, from_proc), (want, want), "accepted and queued connections both count");
        assert_eq!(filtered.len(), want, "the kernel keeps only the sockets of the ports: {filtered:?}");
        assert_eq!(connections(&ports), Ok(want));
        let busy = busy_ports(&ports).unwrap();
        assert_eq!(busy.len(), ports.len());
        assert!(busy[0].1.contains(&format!("pid {}", std::process::id())), "{busy:?}");
        drop((keep, accepted));
    }

    #[test]
    fn port_filter_is_what_ss_compiles() {
        // ss -Htn '( sport = :80 or sport = :443 )' compiles to this.
        let bc = port_filter(&[80, 443]);
        let ops: Vec<(u8, u8, u16)> = bc.chunks(4).map(|c| (c[0], c[1], u16::from_ne_bytes([c[2], c[3]]))).collect();
        assert_eq!(ops, vec![(11, 8, 12), (0, 0, 80), (1, 4, 12), (11, 8, 12), (0, 0, 443)]);
        assert_eq!(port_filter(&[8001]).len(), 8);
    }

    /// The evidence behind `accepted`: a connection the kernel completed
    /// into a listening socket has no inode until a process accepts it.
    #[test]
    fn a_connection_has_an_inode_once_accepted_and_not_before() {
        use std::net::{TcpListener, TcpStream};
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let l = TcpListener::bind(any).unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (server, client) = (c.peer_addr().unwrap(), c.local_addr().unwrap());
            let other = std::net::SocketAddr::new(client.ip(), client.port().wrapping_add(1).max(1));
            assert_eq!(accepted(server, client), Ok(false), "{any}: in the accept queue");
            assert_eq!(accepted(server, other), Ok(false), "{any}: no such connection, only the listener");
            let (s, _) = l.accept().unwrap();
            assert_eq!(accepted(server, client), Ok(true), "{any}: accepted");
            drop(s);
            assert_eq!(accepted(server, client), Ok(false), "{any}: closed by the process again");
            drop(c);
        }
    }

    #[test]
    fn lookup_request_names_one_socket() {
        let m = lookup_request("10.0.0.5:8080".parse().unwrap(), "127.0.0.1:32761".parse().unwrap());
        assert_eq!(m.len(), 72);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 1, "a request, not a dump");
        assert_eq!(&m[16..18], &[libc::AF_INET as u8, libc::IPPROTO_TCP as u8]);
        assert_eq!(&m[24..28], &[0x1f, 0x90, 0x7f, 0xf9], "ports in network order");
        assert_eq!(&m[28..32], &[10, 0, 0, 5]);
        assert_eq!(&m[44..48], &[127, 0, 0, 1]);
        assert_eq!(&m[64..72], &[0xff; 8]);
        let m6 = lookup_request("[::1]:8080".parse().unwrap(), "[::1]:32761".parse().unwrap());
        assert_eq!(m6[16], libc::AF_INET6 as u8);
        assert_eq!(m6[43], 1);
    }
}
