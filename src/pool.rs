//! The sockets of a `listen:` group, and the program that picks among them.
//!
//! rolld holds the public port itself: 2N listening sockets in one
//! SO_REUSEPORT group, two banks of N (bank b slot s is socket index
//! b*N+s), each handed to the process of its index as fd 3, and one more
//! socket (index 2N), the control socket, that rolld alone holds and
//! attaches every program through. An index is the place of a socket in
//! the kernel's group, which is the order of listen(2); when a member
//! leaves, the kernel moves the last one into its place. So rolld never
//! closes nor shuts down a socket of the pool while it runs.
//!
//! A classic BPF program (SO_ATTACH_REUSEPORT_CBPF: no bpf(2), no
//! capability) picks the socket of every new connection: one from loopback
//! whose source port is `check_from + i` (i < 2N) reaches socket i, so a
//! check reaches the process it names; every other one goes to a random
//! live socket. Replacing the program is one setsockopt, atomic for each
//! connection: that is the switch.
//!
//! What a process can do to the group through the socket it holds (Linux
//! 6.18, net/core/filter.c and sock_reuseport.c; the tests check each):
//! - attach a program (cBPF or eBPF) or a socket filter: no. Every member
//!   is locked (SO_LOCK_FILTER), which both reuseport attach paths check
//!   (EPERM). The control socket is not locked; only rolld holds it.
//! - detach the group's program (SO_DETACH_REUSEPORT_BPF): yes, the
//!   kernel does not check the lock there. New connections are then
//!   spread by hash over every member, the other bank and the control
//!   socket included, and checks no longer reach the socket they name,
//!   until rolld attaches a program again (`route`: at the start of each
//!   rollout, before its checks; at its switch; when a live process ends
//!   or serves again).
//! - clear SO_REUSEPORT on its socket: the kernel enters the group through
//!   the first listener of the best score it finds, and a listener without
//!   the option keeps what it is given. On an IPv6 or `[::]` pool socket 0
//!   comes first, so its process then takes every new connection of the
//!   port; any process can raise its socket's score (SO_INCOMING_CPU,
//!   SO_BINDTODEVICE) to do the same for a CPU or an interface. `check`
//!   sets the option again.
//! - shutdown(2) its socket: the socket leaves the group and the last
//!   member, the control socket, takes its index; what waited in its queue
//!   is reset. `check` tells; the indices cannot be mended.
//! - close its descriptor, change its backlog, or set O_NONBLOCK (shared
//!   with every holder of the socket, its successors in the slot too):
//!   nothing else changes.
//!
//! None of this reaches beyond the group's port: a process only ever moves
//! the group's own connections among the group's own sockets.

use crate::{state, sys, tcp};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// At most this many slots (2 * 128 sockets): the program stays far from
/// the kernel's limits (4096 instructions, and `net.core.optmem_max` bytes
/// once translated).
pub const MAX_SLOTS: usize = 128;

const LISTEN: u8 = 10;
/// States of a connection that a process may still be serving:
/// ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING.
/// A socket the process has closed has no inode any more, whatever its
/// state, and a connection in the accept queue has none yet.
const HELD_STATES: [u8; 6] = [1, 4, 5, 8, 9, 11];

/// The listening sockets of one `listen:` group.
pub struct Pool {
    addr: SocketAddr,
    slots: usize,
    check_from: u16,
    /// The 2N members, then the control socket.
    socks: Vec<OwnedFd>,
}

impl Pool {
    /// Opens 2 * `slots` listening sockets on `addr` plus the control
    /// socket, all close-on-exec, in one SO_REUSEPORT group whose first
    /// program sends public connections to `live`. `[::]` takes IPv4 too.
    /// Fails, closing everything, when the port is taken or anything else
    /// listens on it (whatever its address), since a socket of the same
    /// user could share the group and shift its indices.
    pub fn open(addr: SocketAddr, slots: usize, check_from: u16, live: &[usize]) -> io::Result<Pool> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(invalid(format!("{addr}: {slots} processes: listen takes 1 to {MAX_SLOTS}")));
        }
        if addr.port() == 0 {
            return Err(invalid(format!("{addr}: listen needs a port")));
        }
        let members = 2 * slots;
        if usize::from(check_from) + members > 65536 {
            return Err(invalid(format!("{addr}: check ports {check_from} + {members} go past 65535")));
        }
        let first = checked_program(addr, members, live, check_from)?;
        let port = addr.port();
        let busy = tcp::busy_ports(&[port]).map_err(|e| io::Error::other(format!("{addr}: {e}")))?;
        if let Some((_, who)) = busy.first() {
            return Err(in_use(addr, &format!("{who} already listens on port {port}")));
        }
        let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{addr}: {what}: {e}"));
        let mut socks = Vec::with_capacity(members + 1);
        for _ in 0..=members {
            let s = sys::tcp_socket(&addr, 0).map_err(|e| context("socket", e))?;
            sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
                .map_err(|e| context("SO_REUSEADDR", e))?;
            sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
                .map_err(|e| context("SO_REUSEPORT", e))?;
            if addr.is_ipv6() {
                sys::set_sockopt(s.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)
                    .map_err(|e| context("IPV6_V6ONLY", e))?;
            }
            match sys::bind(s.as_fd(), &addr) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(in_use(addr, "the port is taken")),
                r => r.map_err(|e| context("bind", e))?,
            }
            socks.push(s);
        }
        // The program attached to a socket that does not listen yet makes
        // the group; each listen(2) then appends a member, in index order.
        sys::attach_reuseport_cbpf(socks[0].as_fd(), &first).map_err(|e| context("SO_ATTACH_REUSEPORT_CBPF", e))?;
        for s in &socks {
            sys::listen(s.as_fd(), libc::SOMAXCONN).map_err(|e| context("listen", e))?;
        }
        for s in &socks[..members] {
            sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_LOCK_FILTER, 1)
                .map_err(|e| context("SO_LOCK_FILTER", e))?;
        }
        let pool = Pool { addr, slots, check_from, socks };
        pool.alone()?;
        Ok(pool)
    }

    /// The pool whose sockets are `socks` (2 * `slots` members then the
    /// control socket, in their pool's order), taken back from the keeper
    /// of a rolld that was killed. Refused unless each one listens on
    /// `addr` and they are the only listeners of the port. The program in
    /// place stays until the next `route`.
    pub fn adopt(addr: SocketAddr, slots: usize, check_from: u16, socks: Vec<OwnedFd>) -> io::Result<Pool> {
        if slots == 0 || slots > MAX_SLOTS || socks.len() != 2 * slots + 1 {
            return Err(invalid(format!("{addr}: {} sockets for {slots} processes", socks.len())));
        }
        let mut taken = Vec::with_capacity(socks.len());
        for (i, s) in socks.into_iter().enumerate() {
            let listener = std::net::TcpListener::from(s);
            let at = listener.local_addr().map_err(|e| io::Error::new(e.kind(), format!("{addr}: socket {i}: {e}")))?;
            if at != addr {
                return Err(invalid(format!("{addr}: socket {i} is bound to {at}")));
            }
            taken.push(OwnedFd::from(listener));
        }
        let pool = Pool { addr, slots, check_from, socks: taken };
        pool.check()?;
        pool.alone()?;
        Ok(pool)
    }

    /// Every socket, the control socket last: what the keeper holds.
    pub fn all(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.socks.iter().map(|s| s.as_fd())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// N: the slots of a bank.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The loopback source port of the checks of socket 0.
    pub fn check_from(&self) -> u16 {
        self.check_from
    }

    /// The socket handed to the process of `index` (< 2N), for its fd 3.
    /// It is close-on-exec here: only a dup2(2) onto 3 reaches a child.
    pub fn socket(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.socks.get(..2 * self.slots)?.get(index).map(|s| s.as_fd())
    }

    /// Replaces the program through the control socket: from now on, a
    /// new public connection waits in a random socket of `live`, a check
    /// in the socket it names. An empty `live`, or an index of none of the
    /// 2N sockets, is refused and the program in place stays.
    pub fn route(&self, live: &[usize]) -> io::Result<()> {
        let prog = checked_program(self.addr, 2 * self.slots, live, self.check_from)?;
        sys::attach_reuseport_cbpf(self.control(), &prog)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: SO_ATTACH_REUSEPORT_CBPF: {e}", self.addr)))
    }

    /// Connections waiting in the accept queue of socket `index` (the
    /// control socket, 2N, included): the TCP_INFO of a listener counts
    /// them in `tcpi_unacked`.
    pub fn queued(&self, index: usize) -> io::Result<u32> {
        let s = self.socks.get(index).ok_or_else(|| invalid(format!("{}: no socket {index}", self.addr)))?;
        Ok(sys::tcp_info(s.as_fd())?.tcpi_unacked)
    }

    /// Sets SO_REUSEPORT again on every socket (a process may have cleared
    /// it on its own), and fails when a socket no longer listens: a process
    /// shut it down, the last member took its index, and the pool no longer
    /// routes as its indices say.
    pub fn check(&self) -> io::Result<()> {
        for (i, s) in self.socks.iter().enumerate() {
            if sys::sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
                return Err(io::Error::other(format!(
                    "{}: socket {i} no longer listens (shut down by a process holding it): connections reach the wrong sockets",
                    self.addr
                )));
            }
            if sys::sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT)? == 0 {
                sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
            }
        }
        Ok(())
    }

    fn control(&self) -> BorrowedFd<'_> {
        self.socks[2 * self.slots].as_fd()
    }

    /// Fails unless the listeners of the port are exactly the pool's
    /// sockets. A socket of the same user with SO_REUSEPORT that listened
    /// first would have taken the pool's sockets into its own group.
    fn alone(&self) -> io::Result<()> {
        let mut ours = HashSet::new();
        for s in &self.socks {
            ours.insert(sys::inode(s.as_fd())?);
        }
        let rows =
            port_sockets(self.addr.port(), &[LISTEN]).map_err(|e| io::Error::other(format!("{}: {e}", self.addr)))?;
        let seen: HashSet<u64> = rows.iter().map(|r| r.inode).collect();
        if let Some(other) = seen.difference(&ours).next() {
            let what = format!("another socket (inode {other}) listens on port {}", self.addr.port());
            return Err(in_use(self.addr, &what));
        }
        if seen.len() != ours.len() {
            return Err(io::Error::other(format!("{}: cannot see every socket of the pool listen", self.addr)));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn in_use(addr: SocketAddr, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::AddrInUse, format!("cannot listen on {addr}: {why}"))
}

/// The program for `live`, or an error when it would send connections
/// nowhere or to a socket that is not a member.
fn checked_program(
    addr: SocketAddr,
    sockets: usize,
    live: &[usize],
    check_from: u16,
) -> io::Result<Vec<libc::sock_filter>> {
    if live.is_empty() {
        return Err(invalid(format!("{addr}: no live socket to send connections to")));
    }
    if let Some(i) = live.iter().find(|&&i| i >= sockets) {
        return Err(invalid(format!("{addr}: no socket {i} among {sockets}")));
    }
    Ok(program(sockets, live, check_from))
}

const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const LD_H_ABS: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
const LD_B_ABS: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const LD_H_IND: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_IND;
const AND_K: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
const LSH_K: u32 = libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K;
const SUB_K: u32 = libc::BPF_ALU | libc::BPF_SUB | libc::BPF_K;
const MOD_K: u32 = libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K;
const TAX: u32 = libc::BPF_MISC | libc::BPF_TAX;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
const JEQ_K: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE_K: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;
const RET_A: u32 = libc::BPF_RET | libc::BPF_A;

fn op(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// An ancillary load: what the kernel knows of the packet.
fn ancillary(what: i32) -> u32 {
    (libc::SKF_AD_OFF + what) as u32
}

/// A load at `offset` bytes into the network (IP) header. The kernel runs
/// the program with the packet's data pulled past the TCP header, so only
/// loads relative to the network header reach the headers.
fn net(offset: i32) -> u32 {
    (libc::SKF_NET_OFF + offset) as u32
}

/// The classic BPF program that picks, among `sockets` members, the one a
/// new connection waits in:
/// - from loopback (interface 1) with a TCP source port in
///   `[check_from, check_from + sockets)`: the index `port - check_from`;
/// - otherwise a random one of `live` (every member when `live` holds none;
///   indices that are not members are left out).
///
/// Every index it returns is below `sockets` (an index past the members
/// would make the kernel fall back to a hash over all of them, the
/// control socket included), and none of its loads can fail (a failed
/// load ends the program with 0): the ancillary loads always succeed, and
/// the TCP source port lies within the headers the kernel has checked
/// before it looks for a listener. IPv4 and IPv6 are told apart by the
/// packet's protocol; an IPv4 header's length is read from it. A TCP
/// header behind IPv6 extension headers is not found: such a packet from
/// loopback may reach any member.
pub fn program(sockets: usize, live: &[usize], check_from: u16) -> Vec<libc::sock_filter> {
    let mut live: Vec<usize> = live.iter().copied().filter(|&i| i < sockets).collect();
    live.sort_unstable();
    live.dedup();
    if live.is_empty() {
        live = (0..sockets).collect();
    }
    let Some(&last) = live.last() else { return vec![op(RET_K, 0)] };
    let first = u32::from(check_from);
    let end = first + sockets as u32;
    // Jumps are relative to the next instruction; PUBLIC is where public
    // connections are picked for.
    const PUBLIC: u8 = 16;
    let to_public = |pc: u8| PUBLIC - pc - 1;
    let mut p = vec![
        /* 0 */ op(LD_W_ABS, ancillary(libc::SKF_AD_IFINDEX)),
        /* 1 */ jump(JEQ_K, 1, 0, to_public(1)),
        /* 2 */ op(LD_W_ABS, ancillary(libc::SKF_AD_PROTOCOL)),
        /* 3 */ jump(JEQ_K, libc::ETH_P_IP as u32, 3, 0),
        /* 4 */ jump(JEQ_K, libc::ETH_P_IPV6 as u32, 0, to_public(4)),
        // IPv6: the TCP header follows the fixed 40 bytes.
        /* 5 */ op(LD_H_ABS, net(40)),
        /* 6 */ op(JA, 5),
        // IPv4: X = the header's length, 4 * IHL.
        /* 7 */ op(LD_B_ABS, net(0)),
        /* 8 */ op(AND_K, 0x0f),
        /* 9 */ op(LSH_K, 2),
        /* 10 */ op(TAX, 0),
        /* 11 */ op(LD_H_IND, net(0)),
        // A = the source port.
        /* 12 */ jump(JGE_K, first, 0, to_public(12)),
        /* 13 */ jump(JGE_K, end, to_public(13), 0),
        /* 14 */ op(SUB_K, first),
        /* 15 */ op(RET_A, 0),
    ];
    debug_assert_eq!(p.len(), usize::from(PUBLIC));
    if live.len() > 1 {
        p.push(op(LD_W_ABS, ancillary(libc::SKF_AD_RANDOM)));
        p.push(op(MOD_K, live.len() as u32));
        for (i, &index) in live[..live.len() - 1].iter().enumerate() {
            p.push(jump(JEQ_K, i as u32, 0, 1));
            p.push(op(RET_K, index as u32));
        }
    }
    p.push(op(RET_K, last as u32));
    p
}

/// For each of `groups` (process group ids), how many connections whose
/// local port is `port` (the server's side) a process of that group holds
/// open: the socket inodes sock_diag reports for the port, found among the
/// descriptors in /proc/PID/fd of every process whose group it is. A socket
/// held in several processes of a group counts once. Blocking: it reads
/// /proc. An error when the count cannot be taken (fail closed).
pub fn held(port: u16, groups: &[i32]) -> io::Result<Vec<usize>> {
    let open: HashSet<u64> = port_sockets(port, &HELD_STATES)?.iter().map(|r| r.inode).filter(|&i| i != 0).collect();
    let mut found: Vec<HashSet<u64>> = vec![HashSet::new(); groups.len()];
    if open.is_empty() || groups.is_empty() {
        return Ok(vec![0; groups.len()]);
    }
    // A process that ended meanwhile holds nothing any more.
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH);
    let cannot =
        |what: String, e: io::Error| io::Error::new(e.kind(), format!("cannot count connections: {what}: {e}"));
    for entry in std::fs::read_dir("/proc").map_err(|e| cannot("/proc".into(), e))? {
        let entry = entry.map_err(|e| cannot("/proc".into(), e))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let stat = match std::fs::read(entry.path().join("stat")) {
            Ok(b) => b,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(cannot(format!("/proc/{pid}/stat"), e)),
        };
        let Some(stat) = state::parse_stat(&String::from_utf8_lossy(&stat)) else {
            return Err(io::Error::other(format!("cannot count connections: /proc/{pid}/stat unreadable")));
        };
        let Some(g) = groups.iter().position(|&g| g == stat.pgrp).filter(|_| !stat.zombie) else { continue };
        let fds = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(d) => d,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(cannot(format!("/proc/{pid}/fd"), e)),
        };
        for fd in fds {
            let fd = match fd {
                Ok(fd) => fd,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(cannot(format!("/proc/{pid}/fd"), e)),
            };
            let target = match std::fs::read_link(fd.path()) {
                Ok(t) => t,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(cannot(format!("/proc/{pid}/fd"), e)),
            };
            if let Some(inode) = socket_inode(&target)
                && open.contains(&inode)
            {
                found[g].insert(inode);
            }
        }
    }
    Ok(found.iter().map(HashSet::len).collect())
}

/// The inode of a `socket:[N]` link target.
fn socket_inode(target: &std::path::Path) -> Option<u64> {
    target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// TCP sockets (IPv4 and IPv6) with the local port `port` in one of
/// `states`, over sock_diag, else from /proc/net/tcp and tcp6.
fn port_sockets(port: u16, states: &[u8]) -> io::Result<Vec<tcp::Row>> {
    let mask = states.iter().fold(0u32, |m, s| m | 1 << s);
    let rows = match diag(port, mask) {
        Ok(rows) => rows,
        Err(e1) => proc_rows()
            .map_err(|e2| io::Error::other(format!("cannot list the sockets of port {port}: netlink: {e1}; {e2}")))?,
    };
    Ok(rows.into_iter().filter(|r| r.port == port && states.contains(&r.state)).collect())
}

fn diag(port: u16, mask: u32) -> io::Result<Vec<tcp::Row>> {
    const NETLINK_SOCK_DIAG: i32 = 4;
    let filter = tcp::port_filter(&[port]);
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let nl = sys::Netlink::open(NETLINK_SOCK_DIAG)?;
        nl.send(&tcp::diag_request(family, mask, &filter))?;
        loop {
            let n = nl.recv(&mut buf)?;
            match tcp::parse_diag(&buf[..n], &mut rows) {
                Ok(true) => break,
                Ok(false) if n > 0 => {}
                Ok(false) => return Err(io::Error::other("sock_diag: empty answer")),
                // A kernel without IPv6 has no tcp6 sockets.
                Err(_)
                    if family == libc::AF_INET6 as u8
                        && matches!(tcp::nlmsg_errno(&buf[..n]), Some(libc::ENOENT | libc::EAFNOSUPPORT)) =>
                {
                    break;
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
    Ok(rows)
}

fn proc_rows() -> Result<Vec<tcp::Row>, String> {
    let mut rows = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(path) {
            Ok(t) => rows.extend(t.lines().filter_map(tcp::parse_row)),
            Err(e) if path.ends_with('6') && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    /// What the kernel shows the program of one SYN.
    struct Syn {
        ifindex: u32,
        protocol: u32,
        /// From the network header to the end of the TCP header.
        headers: Vec<u8>,
        random: u32,
    }

    fn ipv4(options: usize, sport: u16) -> Vec<u8> {
        let ihl = 5 + options;
        let mut h = vec![0u8; 4 * ihl];
        h[0] = 0x40 | ihl as u8;
        h[9] = libc::IPPROTO_TCP as u8;
        h[12..16].copy_from_slice(&[127, 0, 0, 1]);
        h[16..20].copy_from_slice(&[127, 0, 0, 1]);
        // Options: NOPs, so nothing in them looks like a port.
        h[20..].fill(1);
        h.extend(tcp_header(sport));
        h
    }

    fn ipv6(sport: u16) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[6] = libc::IPPROTO_TCP as u8;
        h[23] = 1;
        h[39] = 1;
        h.extend(tcp_header(sport));
        h
    }

    fn tcp_header(sport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&8080u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x02; // SYN
        t
    }

    /// Runs `prog` as the kernel does, for the instructions `program`
    /// emits; an unknown instruction panics. `Err` for a load that fails
    /// (the kernel would end the program with 0).
    fn run(prog: &[libc::sock_filter], syn: &Syn) -> Result<u32, String> {
        let load = |offset: i64, size: usize| -> Result<u32, String> {
            let at = offset - i64::from(libc::SKF_NET_OFF);
            if offset >= 0 || at < 0 {
                return Err(format!("load at {offset:#x} is not relative to the network header"));
            }
            let at = at as usize;
            let bytes = syn.headers.get(at..at + size).ok_or(format!("load past the headers at {at}"))?;
            Ok(bytes.iter().fold(0u32, |v, &b| v << 8 | u32::from(b)))
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        for _ in 0..prog.len() {
            let i = prog[pc];
            pc += 1;
            let k = i.k;
            match u32::from(i.code) {
                LD_W_ABS => {
                    a = match k as i32 - libc::SKF_AD_OFF {
                        libc::SKF_AD_IFINDEX => syn.ifindex,
                        libc::SKF_AD_PROTOCOL => syn.protocol,
                        libc::SKF_AD_RANDOM => syn.random,
                        _ => load(i64::from(k as i32), 4)?,
                    }
                }
                LD_H_ABS => a = load(i64::from(k as i32), 2)?,
                LD_B_ABS => a = load(i64::from(k as i32), 1)?,
                LD_H_IND => a = load(i64::from(x as i32) + i64::from(k as i32), 2)?,
                AND_K => a &= k,
                LSH_K => a <<= k,
                SUB_K => a = a.wrapping_sub(k),
                MOD_K => {
                    assert_ne!(k, 0, "the kernel refuses mod 0");
                    a %= k
                }
                TAX => x = a,
                JA => pc += k as usize,
                JEQ_K => pc += usize::from(if a == k { i.jt } else { i.jf }),
                JGE_K => pc += usize::from(if a >= k { i.jt } else { i.jf }),
                RET_K => return Ok(k),
                RET_A => return Ok(a),
                code => panic!("instruction {code:#x} at {} is not simulated", pc - 1),
            }
            assert!(pc < prog.len(), "jump past the end");
        }
        panic!("the program loops");
    }

    /// What the kernel's classic checker requires (net/core/filter.c,
    /// bpf_check_classic): at most 4096 instructions, jumps inside, the
    /// last one a return, no mod by 0.
    fn assert_valid(prog: &[libc::sock_filter]) {
        assert!(!prog.is_empty() && prog.len() <= libc::BPF_MAXINSNS as usize);
        for (pc, i) in prog.iter().enumerate() {
            let rest = prog.len() - pc - 1;
            match u32::from(i.code) {
                JA => assert!((i.k as usize) < rest),
                JEQ_K | JGE_K => assert!(usize::from(i.jt) < rest && usize::from(i.jf) < rest),
                MOD_K => assert_ne!(i.k, 0),
                _ => {}
            }
        }
        assert!(matches!(u32::from(prog[prog.len() - 1].code), RET_K | RET_A));
    }

    #[test]
    fn every_layout_sends_checks_to_their_socket_and_the_rest_to_live_ones() {
        for sockets in (2..=2 * 64).step_by(2) {
            let n = sockets / 2;
            let mixed: Vec<usize> = (0..sockets).filter(|i| i % 3 == 1).collect();
            let lives: Vec<Vec<usize>> = vec![
                vec![],
                vec![0],
                vec![sockets - 1],
                (0..n).collect(),
                (n..sockets).collect(),
                (0..sockets).collect(),
                mixed,
                vec![1, sockets + 5, 0, 1],
            ];
            for from in [1u16, 1024, 28700, (65536 - sockets) as u16, 65535] {
                let end = u32::from(from) + sockets as u32;
                let mut ports: Vec<u16> = vec![0, 80, 32768, 65535, from, from.saturating_sub(1)];
                for p in [end - 1, end, end + 1, u32::from(from) + 1] {
                    ports.extend(u16::try_from(p).ok());
                }
                for live in &lives {
                    let prog = program(sockets, live, from);
                    assert_valid(&prog);
                    let want: HashSet<usize> = match live.iter().copied().filter(|&i| i < sockets).collect() {
                        s if HashSet::is_empty(&s) => (0..sockets).collect(),
                        s => s,
                    };
                    for &port in &ports {
                        let check = u32::from(port) >= u32::from(from) && u32::from(port) < end;
                        let headers = [ipv4(0, port), ipv4(1, port), ipv4(10, port), ipv6(port)];
                        for (h, headers) in headers.into_iter().enumerate() {
                            let protocol = if h == 3 { libc::ETH_P_IPV6 } else { libc::ETH_P_IP } as u32;
                            for ifindex in [1, 2] {
                                for random in [0, 1, 2, 7, u32::MAX] {
                                    let syn = Syn { ifindex, protocol, headers: headers.clone(), random };
                                    let got = run(&prog, &syn).unwrap() as usize;
                                    let ctx = format!(
                                        "{sockets} sockets, live {live:?}, checks from {from}, port {port}, header {h}, if {ifindex}, rand {random}"
                                    );
                                    assert!(got < sockets, "{ctx}: {got}");
                                    if check && ifindex == 1 {
                                        assert_eq!(got, usize::from(port - from), "{ctx}");
                                    } else {
                                        assert!(want.contains(&got), "{ctx}: {got} is not live");
                                    }
                                }
                            }
                        }
                    }
                    // Random values spread over every live socket, and
                    // only over them.
                    let spread: HashSet<usize> = (0..2 * want.len() as u32)
                        .map(|random| {
                            let syn =
                                Syn { ifindex: 2, protocol: libc::ETH_P_IP as u32, headers: ipv4(0, from), random };
                            run(&prog, &syn).unwrap() as usize
                        })
                        .collect();
                    assert_eq!(spread, want, "{sockets} sockets, live {live:?}");
                }
            }
        }
    }

    #[test]
    fn other_protocols_and_interfaces_are_public() {
        let prog = program(4, &[2, 3], 28700);
        for protocol in [0, 0x0806, 0x8100] {
            let syn = Syn { ifindex: 1, protocol, headers: ipv4(0, 28700), random: 0 };
            assert_eq!(run(&prog, &syn), Ok(2), "protocol {protocol:#x}");
        }
        let syn = Syn { ifindex: 0, protocol: libc::ETH_P_IP as u32, headers: ipv4(0, 28701), random: 1 };
        assert_eq!(run(&prog, &syn), Ok(3));
        assert_eq!(program(0, &[], 1).len(), 1, "no socket: a program that still returns");
    }

    const WAIT: Duration = Duration::from_secs(5);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A connection to `to` from loopback port `sport`, as a check makes.
    fn connect_from(to: SocketAddr, sport: u16) -> io::Result<TcpStream> {
        let from: SocketAddr =
            if to.is_ipv4() { ([127, 0, 0, 1], sport).into() } else { (addr("[::1]:0").ip(), sport).into() };
        let s = sys::tcp_socket(&from, 0)?;
        sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        sys::bind(s.as_fd(), &from)?;
        sys::connect(s.as_fd(), &to)?;
        Ok(TcpStream::from(s))
    }

    fn queues(pool: &Pool) -> Vec<u32> {
        (0..=2 * pool.slots()).map(|i| pool.queued(i).unwrap()).collect()
    }

    /// The queues once they hold `total` connections, within `WAIT`.
    fn settled(pool: &Pool, total: u32) -> Vec<u32> {
        let deadline = Instant::now() + WAIT;
        loop {
            let q = queues(pool);
            if q.iter().sum::<u32>() >= total || Instant::now() > deadline {
                return q;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `count` connections from ephemeral ports, kept open.
    fn public(to: SocketAddr, count: usize, keep: &mut Vec<TcpStream>) {
        for _ in 0..count {
            keep.push(TcpStream::connect_timeout(&to, WAIT).unwrap());
        }
    }

    /// Checks reach the socket they name, public connections only live
    /// ones, and `route` moves new connections to the other bank.
    fn routes(listen: &str, to: &str, check_from: u16) {
        let (listen, to) = (addr(listen), addr(to));
        let pool = Pool::open(listen, 2, check_from, &[0, 1]).unwrap();
        let mut keep = Vec::new();
        for i in 0..4 {
            keep.push(connect_from(to, check_from + i).unwrap());
            let mut want = vec![0; 5];
            want[..=usize::from(i)].fill(1);
            assert_eq!(settled(&pool, u32::from(i) + 1), want, "check {i} on {listen} from {to}");
        }
        public(to, 40, &mut keep);
        let q = settled(&pool, 44);
        assert_eq!(q[0] + q[1], 42, "{q:?}");
        assert!(q[0] > 1 && q[1] > 1, "spread over both live sockets: {q:?}");
        assert_eq!(&q[2..], &[1, 1, 0]);

        let mut times = Vec::new();
        for live in [[0, 1], [2, 3]].iter().cycle().skip(1).take(101) {
            let t = Instant::now();
            pool.route(live).unwrap();
            times.push(t.elapsed());
        }
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let max = times.iter().max().unwrap();
        println!("route() on {listen}, 101 times: mean {} us, max {} us", mean.as_micros(), max.as_micros());
        public(to, 40, &mut keep);
        let r = settled(&pool, 84);
        assert_eq!(&r[..2], &q[..2], "nothing more for the old bank");
        assert!(r[2] > 1 && r[3] > 1 && r[2] + r[3] == 42, "{r:?}");
        assert_eq!(r[4], 0, "never the control socket");
    }

    #[test]
    fn routes_on_ipv4() {
        routes("127.0.0.1:28601", "127.0.0.1:28601", 28700);
    }

    #[test]
    fn routes_on_dual_stack_from_both_families() {
        if TcpListener::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 here: skipped");
            return;
        }
        routes("[::]:28602", "[::1]:28602", 28710);
        routes("[::]:28603", "127.0.0.1:28603", 28720);
    }

    /// The largest program: every other socket of the most slots live,
    /// which makes the longest jump table.
    #[test]
    fn the_largest_program_attaches() {
        let pool = Pool::open(addr("127.0.0.1:28612"), MAX_SLOTS, 28540, &[0]).unwrap();
        let live: Vec<usize> = (0..2 * MAX_SLOTS).step_by(2).collect();
        println!("program of {} instructions", program(2 * MAX_SLOTS, &live, 28540).len());
        let t = Instant::now();
        for _ in 0..100 {
            pool.route(&live).unwrap();
        }
        let mean = t.elapsed() / 100;
        println!("route() with {} sockets, {} live: mean {} us", 2 * MAX_SLOTS, live.len(), mean.as_micros());
        let mut keep = Vec::new();
        public(pool.addr(), 20, &mut keep);
        let q = settled(&pool, 20);
        assert!(q.iter().enumerate().all(|(i, &n)| n == 0 || i % 2 == 0 && i < 2 * MAX_SLOTS), "{q:?}");
    }

    /// What a successor does with the keeper's copies: the pool adopted
    /// from them routes as the first did, its program unchanged until the
    /// next `route`. Copies of another layout are refused.
    #[test]
    fn a_pool_adopted_from_copies_of_its_sockets_routes_as_before() {
        let at = addr("127.0.0.1:28613");
        let first = Pool::open(at, 2, 28780, &[0, 1]).unwrap();
        first.route(&[2, 3]).unwrap();
        let me = sys::pidfd_open(std::process::id() as i32).unwrap();
        let copy = |p: &Pool| -> Vec<OwnedFd> {
            p.all().map(|fd| sys::pidfd_getfd(me.as_fd(), std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap()).collect()
        };
        assert!(Pool::adopt(at, 1, 28780, copy(&first)).is_err(), "5 sockets are not 1 slot");
        assert!(Pool::adopt(addr("127.0.0.1:28614"), 2, 28780, copy(&first)).is_err(), "another address");
        let socks = copy(&first);
        drop(first);
        let pool = Pool::adopt(at, 2, 28780, socks).unwrap();
        let mut keep = Vec::new();
        keep.push(connect_from(at, 28780).unwrap());
        assert_eq!(settled(&pool, 1), vec![1, 0, 0, 0, 0], "a check reaches the socket it names");
        public(at, 20, &mut keep);
        let q = settled(&pool, 21);
        assert_eq!((q[0], q[1], q[2] + q[3], q[4]), (1, 0, 20, 0), "the program the first pool left: {q:?}");
        pool.route(&[1]).unwrap();
        public(at, 5, &mut keep);
        assert_eq!(settled(&pool, 26)[1], 5);
    }

    #[test]
    fn route_refuses_nothing_and_strangers() {
        let pool = Pool::open(addr("127.0.0.1:28604"), 1, 28730, &[0]).unwrap();
        assert_eq!(pool.route(&[]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let e = pool.route(&[2]).unwrap_err();
        assert!(e.to_string().contains("no socket 2"), "{e}");
        assert!(pool.socket(2).is_none(), "the control socket is never handed out");
        assert!(Pool::open(addr("127.0.0.1:28605"), 1, 65535, &[0]).is_err(), "check ports past 65535");
        assert!(Pool::open(addr("127.0.0.1:28605"), 0, 28730, &[0]).is_err());
        assert!(Pool::open(addr("127.0.0.1:28605"), 1, 28730, &[]).is_err());
    }

    #[test]
    fn a_taken_port_is_refused_by_name() {
        let other = TcpListener::bind("127.0.0.1:28606").unwrap();
        let e = Pool::open(addr("127.0.0.1:28606"), 2, 28740, &[0, 1]).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("127.0.0.1:28606"), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        drop(other);
        // On another address of the port: refused too.
        let other = TcpListener::bind("127.0.0.2:28606").unwrap();
        assert!(Pool::open(addr("127.0.0.1:28606"), 2, 28740, &[0, 1]).is_err());
        drop(other);
        Pool::open(addr("127.0.0.1:28606"), 2, 28740, &[0, 1]).unwrap();
    }

    /// A listener of the same user with SO_REUSEPORT on the same address:
    /// the kernel would let the pool's sockets join its group.
    fn sharer(at: SocketAddr) -> OwnedFd {
        let s = sys::tcp_socket(&at, 0).unwrap();
        sys::set_sockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).unwrap();
        sys::bind(s.as_fd(), &at).unwrap();
        sys::listen(s.as_fd(), 16).unwrap();
        s
    }

    #[test]
    fn a_group_shared_with_a_stranger_is_refused() {
        let at = addr("127.0.0.1:28607");
        let stranger = sharer(at);
        let e = Pool::open(at, 2, 28750, &[0, 1]).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(stranger);
        // Past the first look (a stranger that came in between): the
        // listeners are counted once the pool listens.
        let pool = Pool::open(at, 2, 28750, &[0, 1]).unwrap();
        pool.alone().unwrap();
        let stranger = sharer(at);
        let e = pool.alone().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains(&sys::inode(stranger.as_fd()).unwrap().to_string()), "{e}");
    }

    #[test]
    fn sockets_are_close_on_exec_and_filters_locked() {
        let pool = Pool::open(addr("127.0.0.1:28608"), 2, 28760, &[0, 1]).unwrap();
        for i in 0..4 {
            let fd = pool.socket(i).unwrap();
            let owned = fd.try_clone_to_owned().unwrap();
            let flags =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).unwrap();
            let flags = flags.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim().to_string();
            assert!(u32::from_str_radix(&flags, 8).unwrap() & libc::O_CLOEXEC as u32 != 0, "socket {i}: {flags}");
            assert_eq!(sys::sockopt(owned.as_fd(), libc::SOL_SOCKET, libc::SO_LOCK_FILTER).unwrap(), 1);
        }
        assert_eq!(sys::sockopt(pool.control(), libc::SOL_SOCKET, libc::SO_LOCK_FILTER).unwrap(), 0);
    }

    /// What a process can and cannot do to the group through its socket.
    #[test]
    fn what_a_process_holding_a_socket_can_do() {
        let at = addr("127.0.0.1:28609");
        let pool = Pool::open(at, 2, 28770, &[0, 1]).unwrap();
        let mut keep = Vec::new();
        // Its copy of socket 1 takes the checks of socket 1.
        let backend = TcpListener::from(pool.socket(1).unwrap().try_clone_to_owned().unwrap());
        keep.push(connect_from(at, 28771).unwrap());
        assert_eq!(settled(&pool, 1), vec![0, 1, 0, 0, 0], "before accept(), which would block");
        let (accepted, peer) = backend.accept().unwrap();
        assert_eq!(peer.port(), 28771);
        drop(accepted);

        // It cannot attach a program of its own: the socket is locked.
        let mine = program(4, &[1], 28770);
        let e = sys::attach_reuseport_cbpf(backend.as_fd(), &mine).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");

        // Closing its copy changes nothing: socket 1 keeps its index.
        drop(backend);
        pool.route(&[1]).unwrap();
        public(at, 3, &mut keep);
        assert_eq!(settled(&pool, 3), vec![0, 3, 0, 0, 0]);

        // It can detach the group's program (the kernel does not check the
        // lock there): connections then spread by hash over every member.
        let backend = TcpListener::from(pool.socket(1).unwrap().try_clone_to_owned().unwrap());
        sys::set_sockopt(backend.as_fd(), libc::SOL_SOCKET, libc::SO_DETACH_REUSEPORT_BPF, 0).unwrap();
        public(at, 60, &mut keep);
        let q = settled(&pool, 63);
        assert!(q[0] > 0 && q[2] > 0 && q[4] > 0, "hashed over all, control included: {q:?}");
        // route() puts a program back.
        pool.route(&[3]).unwrap();
        public(at, 3, &mut keep);
        assert_eq!(settled(&pool, 66)[3], q[3] + 3);

        // Cleared SO_REUSEPORT on its socket: check() sets it again.
        sys::set_sockopt(backend.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 0).unwrap();
        pool.check().unwrap();
        assert_eq!(sys::sockopt(backend.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT).unwrap(), 1);

        // A shutdown takes its socket out of the group, and the last
        // member, the control socket, takes its index: check() tells.
        TcpStream::from(OwnedFd::from(backend)).shutdown(std::net::Shutdown::Both).unwrap();
        let e = pool.check().unwrap_err();
        assert!(e.to_string().contains("socket 1 no longer listens"), "{e}");
        pool.route(&[1]).unwrap();
        let before = queues(&pool);
        public(at, 2, &mut keep);
        let after = settled(&pool, before.iter().sum::<u32>() + 2);
        assert_eq!((after[1], after[4]), (0, before[4] + 2), "{before:?} {after:?}");
    }

    #[test]
    fn held_counts_the_accepted_connections_of_a_process_group() {
        let own = state::identity(std::process::id() as i32).unwrap().1;
        let listener = TcpListener::bind("127.0.0.1:28610").unwrap();
        let to = listener.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(to).unwrap()).collect();
        let mut accepted = vec![listener.accept().unwrap().0, listener.accept().unwrap().0];
        // The third waits in the accept queue: held by no process yet.
        assert_eq!(held(28610, &[own, 1]).unwrap(), vec![2, 0]);
        let twice = accepted[0].try_clone().unwrap();
        assert_eq!(held(28610, &[own]).unwrap(), vec![2], "a socket held twice counts once");
        drop(twice);
        accepted.pop();
        assert_eq!(held(28610, &[own]).unwrap(), vec![1]);
        assert_eq!(held(28611, &[own]).unwrap(), vec![0], "another port");
        assert_eq!(held(28610, &[]).unwrap(), Vec::<usize>::new());

        // One handed to a process of another group (as its stdin), and no
        // longer held here: it counts for that group only.
        let given = accepted.pop().unwrap();
        let child = Child(
            std::process::Command::new("sleep").arg("30").stdin(OwnedFd::from(given)).process_group(0).spawn().unwrap(),
        );
        let pgid = child.0.id() as i32;
        assert_eq!(held(28610, &[own, pgid]).unwrap(), vec![0, 1]);
        drop((clients, child));
    }

    /// A child killed and reaped however the test ends.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
