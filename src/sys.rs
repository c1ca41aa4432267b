//! Every `unsafe` call of rolld, each wrapped once.
//!
//! The rest of the program sees safe functions that return `io::Result`:
//! poll(2) on a set of descriptors, waitpid(2) for reaping, kill(2) on
//! process groups (by number, or through a pidfd), pidfd waits with a
//! deadline, and the prctl that makes rolld a child subreaper.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a libc return value into `io::Result`, reading errno on -1.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// A process rolld did not start (adopted from a predecessor): it
    /// cannot be waited for, only seen to end.
    Unknown,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
            ExitStatus::Unknown => write!(f, "status unknown: not rolld's child"),
        }
    }
}

fn decode(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    }
}

/// Reaps one exited child of any kind without blocking. `Ok(None)` when no
/// child has exited (or there is no child at all).
pub fn reap_any() -> io::Result<Option<(i32, ExitStatus)>> {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a valid c_int.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Ok(None),
        -1 => {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) { Ok(None) } else { Err(err) }
        }
        pid => Ok(Some((pid, decode(status)))),
    }
}

/// Waits for the child `pid` to end, and reaps it.
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a valid c_int.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Sends `sig` to the process group `pgid`. A group that no longer exists
/// is not an error: it is what a stop is waiting for.
pub fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to signal group <= 1"));
    }
    // SAFETY: kill has no memory effects.
    match cvt(unsafe { libc::kill(-pgid, sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Waits until one of `fds` is ready for the events asked (POLLIN,
/// POLLOUT) or `timeout` passes (`None`: no timeout). Returns the revents
/// of each descriptor. EINTR counts as a wakeup with nothing ready.
pub fn poll(fds: &[(BorrowedFd<'_>, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|(fd, events)| libc::pollfd { fd: fd.as_raw_fd(), events: *events, revents: 0 }).collect();
    let ms = match timeout {
        None => -1,
        // Round up so a deadline is never woken for early and spun on.
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: pfds is a valid array of pfds.len() pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![0; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds.iter().map(|p| p.revents).collect())
}

/// `poll` for readability only; whether each descriptor is ready.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let fds: Vec<(BorrowedFd<'_>, i16)> = fds.iter().map(|fd| (*fd, libc::POLLIN)).collect();
    Ok(poll(&fds, timeout)?.into_iter().map(|r| r != 0).collect())
}

/// A pidfd for `pid`: readable once the process has ended, whoever its
/// parent is. Always close-on-exec.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    cvt(raw).map(|fd| {
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
}

/// `pidfd_send_signal` with `flags`; the kernel fills the siginfo as
/// kill(2) would.
fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32, flags: libc::c_uint) -> io::Result<()> {
    let null = std::ptr::null::<libc::siginfo_t>();
    // SAFETY: integers and a null siginfo pointer, which the kernel reads as none.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, null, flags) };
    cvt(r as libc::c_int).map(|_| ())
}

/// Sends `sig` to the process group `pgid` led by the process behind
/// `pidfd` (`pgid` is its pid), never to a group of someone else's that
/// took the number. From Linux 6.9 the kernel finds the group through the
/// process itself (`PIDFD_SIGNAL_PROCESS_GROUP`), so members left after
/// the leader ended are reached, and a new group with its number is not.
/// Before, `kill(-pgid)` right after the pidfd shows the leader not yet
/// reaped (still holding its number); once it is reaped, nothing is sent.
/// A group that no longer exists is not an error.
pub fn pidfd_kill_group(pidfd: BorrowedFd<'_>, pgid: i32, sig: i32) -> io::Result<()> {
    const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;
    match pidfd_send_signal(pidfd, sig, PIDFD_SIGNAL_PROCESS_GROUP) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => kill_group_while_led(pidfd, pgid, sig),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// `kill(-pgid)` only while the leader behind `pidfd` is not yet reaped:
/// as the daemon's own children are signalled (see `pidfd_kill_group`).
pub fn kill_group_while_led(pidfd: BorrowedFd<'_>, pgid: i32, sig: i32) -> io::Result<()> {
    match pidfd_send_signal(pidfd, 0, 0) {
        Ok(()) => kill_group(pgid, sig),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes rolld the reaper of every orphaned descendant, as PID 1 already is.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(|_| ())
}

/// Whether the process group `pgid` still has a member (a zombie that is
/// not yet reaped counts).
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// The name of signal `n` (`SIGTERM`), or its number.
pub fn signal_name(n: i32) -> String {
    const NAMES: [&str; 14] =
        ["HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "WINCH", "ABRT", "ALRM", "CONT", "STOP", "TSTP", "PWR"];
    NAMES.iter().find(|s| signal_number(s) == Some(n)).map_or(n.to_string(), |s| format!("SIG{s}"))
}

/// The signal number for a name such as `TERM`, `SIGTERM` or `15`.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "ABRT" => libc::SIGABRT,
        "ALRM" => libc::SIGALRM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "PWR" => libc::SIGPWR,
        _ => return bare.parse().ok().filter(|n| (1..=64).contains(n)),
    };
    Some(n)
}

/// A netlink socket of protocol `protocol`, for one request and its answer.
pub struct Netlink(OwnedFd);

impl Netlink {
    pub fn open(protocol: i32) -> io::Result<Netlink> {
        // SAFETY: socket takes integers and returns a new descriptor.
        let fd = cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, protocol) })?;
        // SAFETY: fd is fresh and owned by nobody else.
        Ok(Netlink(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends `msg` to the kernel.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl is valid; it addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and addr are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Receives one datagram into `buf`; its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// The uid of the process at the other end of a Unix socket.
pub fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: an all-zero ucred is valid; getsockopt writes at most `len` bytes.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// The effective uid of rolld.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective gid of rolld.
pub fn egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// CLOCK_MONOTONIC in microseconds, as systemd's MONOTONIC_USEC wants it.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// A user account from the password database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

fn cstr(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name holds a NUL byte"))
}

/// Looks up a user by name, or by number when `name` is all digits.
pub fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = match name.parse::<u32>() {
        // SAFETY: every pointer is valid for the sizes given.
        Ok(uid) => unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) },
        Err(_) => {
            let c = cstr(name)?;
            // SAFETY: as above; c is NUL-terminated.
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) }
        }
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Ok(None);
    }
    // SAFETY: on success the strings point into buf, NUL-terminated.
    let text = |p: *const libc::c_char| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned();
    Ok(Some(User { name: text(pw.pw_name), uid: pw.pw_uid, gid: pw.pw_gid, home: text(pw.pw_dir) }))
}

/// Looks up a group id by name, or by number when `name` is all digits.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    let c = cstr(name)?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: an all-zero group is a valid out-parameter.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given.
    let rc = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some(gr.gr_gid))
}

/// The supplementary groups of `user`, with `gid` among them.
pub fn group_list(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let c = cstr(user)?;
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: groups holds `count` entries.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count <= n {
            n *= 2;
        } else {
            n = count;
        }
        if n > 65536 {
            return Err(io::Error::other("too many groups"));
        }
    }
}

/// Makes `cmd`'s child take `uid`, `gid` and `groups` before exec, in that
/// safe order: supplementary groups and gid while still privileged, uid
/// last. A failure aborts the spawn with its error.
pub fn set_credentials(cmd: &mut std::process::Command, uid: u32, gid: u32, groups: Vec<u32>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only the
    // async-signal-safe setgroups, setgid and setuid; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            cvt(libc::setgroups(groups.len(), groups.as_ptr()))?;
            cvt(libc::setgid(gid))?;
            cvt(libc::setuid(uid))?;
            Ok(())
        });
    }
}

/// Empties this thread's effective, permitted and inheritable capability
/// sets (and so its ambient one), and checks that they are empty.
fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default, PartialEq)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let none = [Data::default(); 2];
    // SAFETY: a version 3 header and two data structs, as capset(2) reads
    // them; pid 0 is the calling thread.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, none.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut now = [Data { effective: u32::MAX, permitted: u32::MAX, inheritable: u32::MAX }; 2];
    // SAFETY: as above; capget writes two data structs.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, now.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if now != none {
        return Err(io::Error::other("cannot drop capabilities"));
    }
    Ok(())
}

/// Runs `f` on a thread of its own whose file-system identity is `uid`,
/// `gid` and `groups`, with no capability at all, and returns what it
/// gives: what `f` opens is what that user could open (a root-only file
/// behind a symlink is refused, and so is another process's file through
/// /proc/PID/fd, which `CAP_SYS_PTRACE` would allow). The fsuid, the
/// fsgid, the supplementary groups and the capabilities of these raw
/// system calls belong to the calling thread alone (glibc's wrappers would
/// change every thread's groups), and end with it; its real and effective
/// uids stay rolld's, so the backend's user cannot signal it.
pub fn with_fs_identity<T: Send + 'static>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let thread = std::thread::Builder::new().name("rolld-as-user".into()).spawn(move || {
        // SAFETY: setgroups reads `groups.len()` gids; these system calls
        // change only this thread's credentials.
        let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // setfsgid and setfsuid return the previous id and report no
        // error: a second call with an invalid id reads the current one.
        // SAFETY: as above.
        let (fsgid, fsuid) = unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
            (libc::syscall(libc::SYS_setfsgid, u32::MAX), libc::syscall(libc::SYS_setfsuid, u32::MAX))
        };
        if (fsuid as u32, fsgid as u32) != (uid, gid) {
            return Err(io::Error::other(format!("cannot take uid {uid} and gid {gid} for file access")));
        }
        drop_capabilities()?;
        Ok(f())
    })?;
    thread.join().map_err(|_| io::Error::other("the thread reading as the user panicked"))?
}

/// One malloc arena for every thread: the worker threads of checks and
/// counts are short, and an arena each would keep their pages for good.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Opens /dev/null on any of descriptors 0, 1 and 2 that is closed, so
/// that nothing rolld opens later lands there (and is then written to as
/// if it were stderr, or handed to a child as its stdout).
pub fn ensure_std_fds() -> io::Result<()> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: the path is a NUL-terminated literal; open returns the
            // lowest free descriptor, which is `fd`.
            let got = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
            if got != fd {
                // SAFETY: closing the descriptor just opened, owned by nobody.
                unsafe { libc::close(got) };
            }
        }
    }
    Ok(())
}

/// The soft limit on open files, raised to the hard one; the limit as it
/// was, for children, which must not inherit rolld's.
pub fn raise_nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid rlimit to write into.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: raised is a valid rlimit.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
    Ok(lim)
}

/// What a child does between fork and exec, after `set_credentials` (so
/// as the child's own user): every signal back to its default action
/// (whatever rolld inherited ignored, such as SIGQUIT from a shell's `&`),
/// the open-files limit rolld had before it raised its own, then `dirs`
/// created (each may exist) and each `(path, fd)` of `outputs` opened for
/// appending onto `fd`: never through a symlink, never a FIFO or a device
/// (the spawn then fails with ELOOP or ENXIO). Nothing here allocates.
pub fn child_setup(
    cmd: &mut std::process::Command,
    nofile: Option<libc::rlimit>,
    dirs: Vec<std::ffi::CString>,
    outputs: Vec<(std::ffi::CString, RawFd)>,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (signal, setrlimit, mkdir, open, fstat,
    // fcntl, dup2, close) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            if let Some(lim) = nofile {
                cvt(libc::setrlimit(libc::RLIMIT_NOFILE, &lim))?;
            }
            for d in &dirs {
                if libc::mkdir(d.as_ptr(), 0o755) == -1 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
            for (path, target) in &outputs {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                let fd = cvt(libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o666 as libc::c_uint))?;
                let mut st: libc::stat = std::mem::zeroed();
                cvt(libc::fstat(fd, &mut st))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(io::Error::from_raw_os_error(libc::ENXIO));
                }
                cvt(libc::fcntl(fd, libc::F_SETFL, libc::O_APPEND))?;
                cvt(libc::dup2(fd, *target))?;
                libc::close(fd);
            }
            Ok(())
        });
    }
}

/// What a child runs, made whole before the fork: `argv` (the program
/// first) and the complete environment `env`, plus, when `pid_var` is
/// given, that variable set to the child's own pid, and, when `socket` is
/// given, that descriptor as the child's descriptor 3 (not close-on-exec;
/// the socket must not be 0, 1 or 2). Registered after every other step
/// of `cmd`'s child (`set_credentials`, `child_setup`): it is the child's
/// last one, and execs itself, so that the pid can be written into the
/// environment in the child. The program is looked for in the PATH of
/// `env`, as std does. Nothing is allocated after the fork (the digits go
/// into room made before it); a failed exec is reported by `cmd.spawn()`.
pub fn exec_in_child(
    cmd: &mut std::process::Command,
    argv: Vec<std::ffi::CString>,
    env: Vec<std::ffi::CString>,
    pid_var: Option<&str>,
    socket: Option<RawFd>,
) {
    use std::os::unix::process::CommandExt;
    /// The arrays execvpe takes, and the buffers they point into.
    struct Image {
        argv_ptrs: Vec<*const libc::c_char>,
        env_ptrs: Vec<*const libc::c_char>,
        /// Where the pid's digits go: room for 10 and a NUL.
        pid_digits: Option<*mut u8>,
        _argv: Vec<std::ffi::CString>,
        _env: Vec<std::ffi::CString>,
        _pid_entry: Option<Box<[u8]>>,
    }
    // SAFETY: the pointers point into the heap buffers the Image owns
    // (moving it moves none of them), and only the child, which has one
    // thread, writes through them.
    unsafe impl Send for Image {}
    // SAFETY: as above.
    unsafe impl Sync for Image {}

    let mut pid_entry: Option<Box<[u8]>> =
        pid_var.map(|name| [name.as_bytes(), b"=", &[0u8; PID_ROOM]].concat().into_boxed_slice());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    let pid_digits = pid_entry.as_mut().map(|entry| {
        let start = entry.as_mut_ptr();
        env_ptrs.push(start.cast_const().cast());
        // SAFETY: the entry is the name, '=' and PID_ROOM bytes.
        unsafe { start.add(entry.len() - PID_ROOM) }
    });
    env_ptrs.push(std::ptr::null());
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let image = Image { argv_ptrs, env_ptrs, pid_digits, _argv: argv, _env: env, _pid_entry: pid_entry };
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (getpid, dup2, fcntl, execvpe,
    // whose glibc version allocates nothing) on what was prepared before
    // the fork; the digits are written within the room made for them.
    unsafe {
        cmd.pre_exec(move || {
            // The whole Image, not its fields one by one: it is Send and Sync.
            let image = &image;
            if let Some(at) = image.pid_digits {
                let (digits, n) = decimal(libc::getpid() as u32);
                std::ptr::copy_nonoverlapping(digits.as_ptr(), at, n);
                *at.add(n) = 0;
            }
            if let Some(fd) = socket {
                // What the child has as 3 is one of rolld's descriptors,
                // all close-on-exec, and not std's pipe for exec errors
                // (whose read end, opened first, takes the lower number):
                // dup2 replaces it. The socket's own number closes at
                // exec. dup2 onto itself leaves the flag as it was: it is
                // cleared either way.
                if fd != 3 {
                    cvt(libc::dup2(fd, 3))?;
                }
                cvt(libc::fcntl(3, libc::F_SETFD, 0))?;
            }
            // glibc's execvpe looks the program up in the PATH of the
            // environment it runs in: make that the child's.
            libc::environ = image.env_ptrs.as_ptr().cast_mut().cast();
            libc::execvpe(image.argv_ptrs[0], image.argv_ptrs.as_ptr(), image.env_ptrs.as_ptr());
            Err(io::Error::last_os_error())
        });
    }
}

/// Room for a pid's digits (at most 10) and a NUL.
const PID_ROOM: usize = 11;

/// The decimal digits of `n` and how many there are, without allocating.
fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[..len].reverse();
    (digits, len)
}

/// Waits up to `timeout` for the child `pid` to end, and reaps it; on
/// expiry kills its process group first. `None`: it did not end in time.
#[cfg(test)]
pub fn wait_child(pid: i32, timeout: Duration) -> Option<ExitStatus> {
    use std::os::fd::AsFd;
    let pidfd = pidfd_open(pid).ok()?;
    let ended = poll_readable(&[pidfd.as_fd()], Some(timeout)).is_ok_and(|r| r[0]);
    if !ended {
        let _ = kill_group(pid, libc::SIGKILL);
    }
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a valid c_int.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    (ended && reaped == pid).then(|| decode(status))
}

/// Marks every descriptor from 3 up close-on-exec: those rolld inherited
/// from whoever started it must not reach its children either.
pub fn cloexec_from_3() -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    // SAFETY: close_range with CLOEXEC only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: one by one.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= 3)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; one closed in the
        // meantime (the directory's own) just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// Starts a TCP connection to `addr` without waiting for it: the socket
/// (non-blocking, close-on-exec) and whether it is connected already. When
/// it is not, the socket becomes writable once the connect is done, and
/// `take_error` gives its outcome.
pub fn connect_start(addr: &std::net::SocketAddr) -> io::Result<(std::net::TcpStream, bool)> {
    let sock = std::net::TcpStream::from(tcp_socket(addr, libc::SOCK_NONBLOCK)?);
    let connected = connect_begin(&sock, addr)?;
    Ok((sock, connected))
}

/// Waits until one of `fds` is writable, or has an error or a hangup,
/// or `timeout` passes. Returns the readiness of each descriptor; EINTR
/// counts as a wakeup with nothing ready.
pub fn poll_writable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }).collect();
    // Round up so a deadline is never woken for early and spun on.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: pfds is a valid array of pfds.len() pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// A C string of `s`, for the `*at` calls.
fn os_cstr(s: &std::ffi::OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// openat(2): `name` looked up in the directory `dir` (the working
/// directory for `None`), always close-on-exec.
pub fn open_at(
    dir: Option<BorrowedFd<'_>>,
    name: &std::ffi::OsStr,
    flags: i32,
    mode: u32,
) -> io::Result<std::fs::File> {
    let name = os_cstr(name)?;
    let dir = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a valid NUL-terminated name; openat returns a new descriptor.
    let fd = cvt(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The target of the symbolic link `link` refers to (a descriptor opened
/// with `O_PATH | O_NOFOLLOW`): readlinkat(2) with an empty name.
pub fn read_link_fd(link: BorrowedFd<'_>) -> io::Result<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlinkat(link.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf))
}

/// renameat(2) within the one directory `dir`: the names are looked up in
/// the directory held, whatever its path leads to now.
pub fn rename_at(dir: BorrowedFd<'_>, from: &std::ffi::OsStr, to: &std::ffi::OsStr) -> io::Result<()> {
    let (from, to) = (os_cstr(from)?, os_cstr(to)?);
    let d = dir.as_raw_fd();
    // SAFETY: two valid NUL-terminated names.
    cvt(unsafe { libc::renameat(d, from.as_ptr(), d, to.as_ptr()) }).map(|_| ())
}

/// unlinkat(2) of a file `name` in the directory `dir`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    let name = os_cstr(name)?;
    // SAFETY: a valid NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(|_| ())
}

/// Whether the file `fd` refers to (an `O_PATH` descriptor will do)
/// carries a POSIX access ACL, read through /proc/self/fd. A file system
/// without ACLs has none; any other failure is an error, for the caller
/// to fail closed on.
pub fn has_access_acl(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid NUL-terminated names; a null buffer of size 0 asks
    // only for the value's size.
    let n = unsafe { libc::getxattr(path.as_ptr(), c"system.posix_acl_access".as_ptr(), std::ptr::null_mut(), 0) };
    if n >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

/// `addr` as the C sockaddr that bind(2) and connect(2) take, and its length.
fn raw_sockaddr(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    use std::net::SocketAddr;
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned for it.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and aligned for it.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A new TCP socket of the family of `addr`, close-on-exec, with `flags`
/// (`SOCK_NONBLOCK`, or 0: blocking).
pub fn tcp_socket(addr: &std::net::SocketAddr, flags: i32) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) with constant arguments.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags, 0) })?;
    // SAFETY: fd is a new socket that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt(2) of an integer option.
pub fn set_sockopt(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    set_option(fd, level, name, &(value as libc::c_int))
}

/// getsockopt(2) of an integer option.
pub fn sockopt(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and size are valid for writes; the kernel writes at most `size` bytes.
    cvt(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut value).cast(), &mut size) })?;
    Ok(value)
}

/// bind(2) to `addr`.
pub fn bind(fd: BorrowedFd<'_>, addr: &std::net::SocketAddr) -> io::Result<()> {
    let (storage, len) = raw_sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) }).map(|_| ())
}

/// listen(2) with `backlog`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes integers only.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(|_| ())
}

/// connect(2) to `addr`, waiting for the handshake (a blocking socket).
pub fn connect(fd: BorrowedFd<'_>, addr: &std::net::SocketAddr) -> io::Result<()> {
    let (storage, len) = raw_sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), (&raw const storage).cast(), len) }).map(|_| ())
}

/// Attaches the classic BPF program `prog` to the SO_REUSEPORT group of
/// the socket `fd` (SO_ATTACH_REUSEPORT_CBPF), replacing the group's
/// program in one step.
pub fn attach_reuseport_cbpf(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // The kernel only reads the program; the pointer is `*mut` by the C type.
    let fprog = libc::sock_fprog { len, filter: prog.as_ptr().cast_mut() };
    let size = std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t;
    // SAFETY: fprog points to `len` valid instructions, alive for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            size,
        )
    })
    .map(|_| ())
}

/// TCP_INFO of the socket `fd`.
pub fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<libc::tcp_info> {
    // SAFETY: an all-zero tcp_info is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut size = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and size are valid for writes; the kernel writes at most `size` bytes.
    cvt(unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut size)
    })?;
    Ok(info)
}

/// The inode number of the file `fd` refers to (for a socket, the number
/// sock_diag and /proc/PID/fd show).
pub fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_ino)
}

/// Starts connecting `sock` (from `bound_tcp_socket`, or as
/// `connect_start` makes it) to `addr`: whether it is connected already
/// (else it becomes writable once the connect is done).
pub fn connect_begin(sock: &std::net::TcpStream, addr: &std::net::SocketAddr) -> io::Result<bool> {
    let (storage, len) = raw_sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    let r = unsafe { libc::connect(sock.as_raw_fd(), (&raw const storage).cast(), len) };
    match cvt(r) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// setsockopt(2) of one plain value.
fn set_option<T>(fd: BorrowedFd<'_>, level: i32, name: i32, value: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: value is valid for reads of `len` bytes.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) }).map(|_| ())
}

/// A TCP socket bound to `from` (non-blocking, close-on-exec), ready for
/// `connect_begin`: with SO_REUSEADDR, and SO_LINGER 0, so that
/// closing it sends a reset and leaves nothing in TIME_WAIT on either
/// side: the next connection from the same port may start at once.
pub fn bound_tcp_socket(from: &std::net::SocketAddr) -> io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let sock = std::net::TcpStream::from(tcp_socket(from, libc::SOCK_NONBLOCK)?);
    set_sockopt(sock.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_option(sock.as_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &libc::linger { l_onoff: 1, l_linger: 0 })?;
    bind(sock.as_fd(), from)?;
    Ok(sock)
}

/// A copy, close-on-exec, of descriptor `fd` of the process behind
/// `pidfd` (pidfd_getfd, Linux 5.6). The kernel allows it as it allows
/// ptrace(2): a process of rolld's own user, or CAP_SYS_PTRACE.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes integers and returns a new descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) } as RawFd;
    cvt(raw).map(|fd| {
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
}

/// A duplicate of `fd`, close-on-exec, numbered `floor` or above.
fn dup_above(fd: RawFd, floor: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number returns a new one.
    let raw = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) })?;
    // SAFETY: raw is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Starts `exe` with `argv` and an empty environment, in a process group
/// of its own, with `fds` as its descriptors 3, 4, ... in order, /dev/null
/// as 0, 1 and 2, every signal at its default action and unblocked, and
/// nothing else of rolld's. Returns its pid once it has exec'd, or the
/// error of its exec. Not through std's Command: std's pipe for exec
/// errors may take a number among the targets. Here every source, and
/// this pipe, are moved above the targets first; nothing allocates
/// between fork and exec.
pub fn spawn_with_fds(exe: &std::ffi::CStr, argv: &[std::ffi::CString], fds: &[BorrowedFd<'_>]) -> io::Result<i32> {
    let floor = 3 + RawFd::try_from(fds.len()).map_err(|_| io::Error::from_raw_os_error(libc::EMFILE))?;
    let high: Vec<OwnedFd> = fds.iter().map(|fd| dup_above(fd.as_raw_fd(), floor)).collect::<io::Result<_>>()?;
    let null = dup_above(std::fs::File::options().read(true).write(true).open("/dev/null")?.as_raw_fd(), floor)?;
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `pipe`.
    cvt(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (r0, w0) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let (r, w) = (dup_above(r0.as_raw_fd(), floor)?, dup_above(w0.as_raw_fd(), floor)?);
    // The exec must close the last write end, or the read below never ends.
    drop((r0, w0));
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let sources: Vec<RawFd> = high.iter().map(|h| h.as_raw_fd()).collect();
    // SAFETY: the child calls only async-signal-safe functions (setpgid,
    // signal, sigprocmask, dup2, close_range, execve, write, _exit) on data prepared
    // before the fork, then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; the child has one thread.
        unsafe {
            libc::setpgid(0, 0);
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            let mut ok = (0..3).all(|t| libc::dup2(null.as_raw_fd(), t) == t);
            for (i, &src) in sources.iter().enumerate() {
                ok = ok && libc::dup2(src, 3 + i as RawFd) == 3 + i as RawFd;
            }
            // Whatever else is open (a descriptor rolld inherited that
            // missed `cloexec_from_3`) closes at the exec; the pipe for
            // its error stays open until then.
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
            libc::syscall(libc::SYS_close_range, floor as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC);
            if ok {
                libc::execve(exe.as_ptr(), argv_ptrs.as_ptr(), envp.as_ptr());
            }
            let errno = *libc::__errno_location();
            libc::write(w.as_raw_fd(), (&raw const errno).cast(), std::mem::size_of::<libc::c_int>());
            libc::_exit(127);
        }
    }
    cvt(pid)?;
    drop(w);
    let mut errno: libc::c_int = 0;
    let size = std::mem::size_of::<libc::c_int>();
    // SAFETY: errno is valid for writes of `size` bytes. The read ends at
    // the exec (the child's end is close-on-exec) or with its error.
    let n = loop {
        match unsafe { libc::read(r.as_raw_fd(), (&raw mut errno).cast(), size) } {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            n => break n,
        }
    };
    if n == size as isize {
        let mut status = 0;
        // SAFETY: waitpid writes only into `status`; the child exits at once.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

/// What the keeper of `listen:` sockets does for its whole life: names
/// itself `name` (15 bytes at most), ignores the signals a terminal or an
/// operator's broad `kill` sends (SIGHUP, SIGINT, SIGQUIT, SIGUSR1,
/// SIGUSR2, SIGPIPE, SIGTSTP), and sleeps until SIGTERM or SIGKILL ends it.
pub fn sleep_forever(name: &std::ffi::CStr) -> ! {
    // SAFETY: prctl reads a NUL-terminated name; signal and pause have no
    // memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0);
        for sig in
            [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPIPE, libc::SIGTSTP]
        {
            libc::signal(sig, libc::SIG_IGN);
        }
        loop {
            libc::pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_digits_without_padding() {
        for n in [0, 7, 10, 4_194_304, u32::MAX] {
            let (digits, len) = decimal(n);
            assert_eq!(&digits[..len], n.to_string().as_bytes(), "{n}");
        }
    }
}
