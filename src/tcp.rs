//! Sockets on a set of local ports, read from /proc/net/tcp and tcp6.
//!
//! Two questions are asked of these tables: how many connections could
//! still carry a request to a port (the drain), and whether anything
//! listens on a port, and who (the start). The parsers are pure and take
//! the tables' text; the readers only add the file reads.

use std::collections::HashSet;

/// States in which a server-side socket may still carry a request:
/// ESTABLISHED (01), SYN_RECV (03) and CLOSE_WAIT (08: the client has sent
/// everything, the server may still be answering). A connection that
/// completed its handshake but sits in the accept queue is ESTABLISHED too.
const BUSY_STATES: [u8; 3] = [0x01, 0x03, 0x08];
const LISTEN: u8 = 0x0A;

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
pub fn count_busy(table: &str, ports: &HashSet<u16>) -> usize {
    table
        .lines()
        .filter_map(parse_row)
        .filter(|r| BUSY_STATES.contains(&r.state) && ports.contains(&r.port))
        .count()
}

/// Inodes of the sockets listening on `port` in `table`.
pub fn listeners(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .filter_map(parse_row)
        .filter(|r| r.state == LISTEN && r.port == port)
        .map(|r| r.inode)
        .collect()
}

fn tables() -> String {
    let mut all = String::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // A kernel without IPv6 has no tcp6: that is zero sockets, not an error.
        if let Ok(t) = std::fs::read_to_string(path) {
            all.push_str(&t);
        }
    }
    all
}

/// Connections that may carry a request to any of `ports`, now.
pub fn connections(ports: &[u16]) -> usize {
    let set: HashSet<u16> = ports.iter().copied().collect();
    count_busy(&tables(), &set)
}

/// The ports of `ports` on which something listens now, each with a
/// description of the holder when it can be found (`pid 123 (nginx)`).
pub fn busy_ports(ports: &[u16]) -> Vec<(u16, String)> {
    let t = tables();
    ports
        .iter()
        .filter_map(|&p| {
            let inodes = listeners(&t, p);
            (!inodes.is_empty()).then(|| (p, holder(&inodes)))
        })
        .collect()
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
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                    return format!("pid {pid} ({})", comm.trim());
                }
            }
        }
    }
    "a process rolld cannot see".into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
