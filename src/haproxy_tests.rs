//! The replies of HAProxy 2.6 as captured, the same with columns a later
//! HAProxy might add, and its error replies; then the conversation of a
//! switch and a drain with a made-up HAProxy on a Unix socket.

use super::*;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

/// `show stat -1 6 -1` of HAProxy 2.6.12, cut to what matters (the real
/// header has 100 more columns, which the parser skips by name).
const STAT_26: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,req_tot,hrsp_5xx,addr,cookie,mode,algo,\n\
app,s8001,0,0,2,5,,120,0,0,,0,,1,0,0,0,UP,1,1,0,118,3,127.0.0.1:8001,,http,,\n\
app,s8002,1,1,0,5,,7,0,0,,0,,0,2,1,1,MAINT,1,1,0,7,0,[::1]:8002,,http,,\n\
app,BACKEND,0,0,2,9,410,127,0,0,0,0,,1,2,1,1,UP,1,1,0,125,3,,,http,roundrobin,\n\n";

/// The same from a later HAProxy: columns inserted before and after the
/// ones rolld reads, and the order of some changed.
const STAT_FUTURE: &str = "# pxname,svname,new_first,qcur,qmax,scur,stot,econ,eresp,wretr,wredis,status,req_tot,hrsp_5xx,algo,addr,quic_x,h3_y,\n\
app,s8001,zz,0,0,2,120,1,0,0,0,UP,118,3,,127.0.0.1:8001,9,9,\n\
app,s8002,zz,1,1,0,7,0,2,1,1,MAINT,7,0,,[::1]:8002,9,9,\n\
app,BACKEND,zz,0,0,2,127,1,2,1,1,UP,125,3,roundrobin,,9,9,\n";

const STATE_26: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
3 app 1 s8001 127.0.0.1 2 0 1 1 63 1 0 2 0 0 0 0 - 8001 - 0 0 - - 0\n\
3 app 2 s8002 ::1 0 5 1 1 61 1 0 0 8 0 0 0 - 8002 - 0 0 - - 0\n\
4 other 1 x 10.0.0.1 2 8 1 1 61 1 0 0 8 0 0 0 - 8001 - 0 0 - - 0\n\n";

const STATE_FUTURE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port srv_new_thing\n\
3 app 1 s8001 127.0.0.1 2 0 8001 x\n\
3 app 2 s8002 ::1 0 5 8002 y\n";

#[test]
fn show_stat_is_read_by_column_names() {
    for (name, reply) in [("2.6", STAT_26), ("future", STAT_FUTURE)] {
        let s = parse_stat(reply).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.len(), 3, "{name}");
        let want = Stat {
            pxname: "app".into(),
            svname: "s8002".into(),
            addr: "[::1]:8002".into(),
            status: "MAINT".into(),
            algo: String::new(),
            qcur: 1,
            scur: 0,
            stot: 7,
            req_tot: 7,
            hrsp_5xx: 0,
            econ: 0,
            eresp: 2,
            wretr: 1,
            wredis: 1,
        };
        assert_eq!(s[1], want, "{name}");
        assert_eq!((s[0].scur, s[0].req_tot, s[0].hrsp_5xx, s[0].econ), (2, 118, 3, 1), "{name}");
        assert_eq!((s[2].svname.as_str(), s[2].algo.as_str()), ("BACKEND", "roundrobin"), "{name}");
    }
}

#[test]
fn show_servers_state_is_read_by_column_names() {
    for (name, reply) in [("2.6", STATE_26), ("future", STATE_FUTURE)] {
        let all = parse_servers_state(reply, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let app = parse_servers_state(reply, Some("app")).unwrap();
        assert_eq!(app.len(), 2, "{name}");
        assert_eq!(app[0], Server { name: "s8001".into(), addr: "127.0.0.1".into(), port: Some(8001), admin: 0 });
        assert_eq!((app[1].addr.as_str(), app[1].port, app[1].in_maint()), ("::1", Some(8002), true), "{name}");
        assert!(!app[0].in_maint());
        assert_eq!(all.len(), app.len() + usize::from(name == "2.6"), "{name}");
    }
}

/// Each reply that is not what was asked for, and the error it gives.
const ERROR_ROWS: &[(&str, &str, &str)] = &[
    ("stat", "No such proxy.\n\n", "No such proxy."),
    ("stat", "Permission denied\n\n", "Permission denied"),
    ("stat", "", "an empty reply"),
    ("stat", "# svname,addr,scur\nBACKEND,,0\n", "`show stat` has no pxname, svname or addr column"),
    (
        "stat",
        "# pxname,svname,scur,addr\napp,s1,lots,127.0.0.1:1\n",
        "`show stat`: \"lots\" is not a count (app,s1,lots,127.0.0.1:1)",
    ),
    ("state", "Can't find backend.\n\n", "Can't find backend."),
    (
        "state",
        "Unknown command, but maybe one of the following ones is a better match:\n  show fd\n",
        "Unknown command, but maybe one of the following ones is a better match:",
    ),
    ("state", "2\n# be_id be_name srv_name srv_addr srv_port srv_admin_state\n", "2"),
    (
        "state",
        "1\n# be_id be_name srv_name\n3 app s1\n",
        "`show servers state` lacks be_name, srv_name, srv_addr, srv_port or srv_admin_state",
    ),
    (
        "state",
        "1\n# be_name srv_name srv_addr srv_port srv_admin_state\napp s1 127.0.0.1\n",
        "`show servers state`: short line app s1 127.0.0.1",
    ),
    (
        "state",
        "1\n# be_name srv_name srv_addr srv_port srv_admin_state\napp s1 127.0.0.1 8001 x\n",
        "`show servers state`: bad srv_admin_state (app s1 127.0.0.1 8001 x)",
    ),
];

#[test]
fn error_replies_are_errors_with_haproxys_words() {
    let mut wrong = Vec::new();
    for (what, reply, want) in ERROR_ROWS {
        let got = match *what {
            "stat" => parse_stat(reply).map(|_| ()),
            _ => parse_servers_state(reply, None).map(|_| ()),
        };
        if got.as_ref().err().map(String::as_str) != Some(*want) {
            wrong.push(format!("{what} {reply:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let long = "x".repeat(500);
    assert_eq!(parse_stat(&long).unwrap_err(), format!("{}...", "x".repeat(SHOWN)), "a long reply is cut");
}

fn server(name: &str, addr: &str, port: u16) -> Server {
    Server { name: name.into(), addr: addr.into(), port: Some(port), admin: 1 }
}

#[test]
fn a_backend_is_checked_for_every_port_and_its_algorithm() {
    let servers = vec![server("a", "127.0.0.1", 8001), server("b", "::1", 8002), server("far", "10.0.0.2", 8003)];
    let backend = |algo: &str, servers: Vec<Server>| Backend { algo: algo.into(), servers };
    let rows: Vec<(Backend, &[u16], Vec<&str>)> = vec![
        (backend("roundrobin", servers.clone()), &[8001, 8002], vec![]),
        (backend("hdr(host)", servers.clone()), &[8001], vec![]),
        (
            backend("roundrobin", servers.clone()),
            &[8001, 8003, 8004],
            vec![
                "backend app has no server at a loopback address on port(s) 8003, 8004: it needs one for every port of every workset",
            ],
        ),
        (
            backend("rdp-cookie", servers.clone()),
            &[8001],
            vec![
                "backend app: balance \"rdp-cookie\" is not one rolld knows to leave a draining server alone (known: roundrobin, static-rr, leastconn, first, random, source, uri, url_param, hdr, hash)",
            ],
        ),
        (
            backend("leastconn", vec![server("a", "127.0.0.1", 8001), server("a2", "127.0.0.2", 8001)]),
            &[8001],
            vec!["backend app: servers a and a2 are both on port 8001"],
        ),
    ];
    for (b, ports, want) in rows {
        assert_eq!(problems(&b, "app", ports), want, "{b:?} {ports:?}");
    }
}

#[test]
fn a_receipt_counts_what_each_set_served_between_its_snapshots() {
    let before = parse_stat(STAT_26).unwrap();
    let mut after = before.clone();
    after[0].req_tot += 10; // 8001: the old set
    after[1].req_tot += 32; // 8002: the new set
    after[1].hrsp_5xx += 1;
    after[0].econ += 2;
    after[2].req_tot += 42; // the backend's own line: no port, not counted
    after[2].hrsp_5xx += 1; // its sum of its servers' 5xx: not counted twice
    let r = Receipt {
        before: Some(before),
        to: vec![8002],
        from: vec![8001],
        switch_took: Some(Duration::from_micros(800)),
        drain_took: Some(Duration::from_millis(120)),
        after: Some(after),
        ..Receipt::default()
    };
    let d = r.deltas().unwrap();
    assert_eq!((d.req_old, d.req_new, d.hrsp_5xx, d.econ), (10, 32, 1, 2));
    assert_eq!(
        r.line().unwrap(),
        "haproxy: switch 0.80ms, drain to 0 sessions 120ms, requests old 10 new 32, 5xx 1, econ 2, eresp 0, wretr 0, wredis 0"
    );
    assert_eq!(Receipt::default().line(), None, "no switch, no receipt");
}

/// A made-up HAProxy: servers s8001..s8004 on the loopback, their admin
/// states, sessions per port, and every command it was sent.
#[derive(Default)]
struct Fake {
    admin: BTreeMap<u16, Admin>,
    scur: BTreeMap<u16, u64>,
    /// 5xx responses and connection errors per port.
    errors: BTreeMap<u16, (u64, u64)>,
    pid: u32,
    log: Vec<String>,
}

const PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

impl Fake {
    /// As a config with every server `disabled` starts.
    fn started() -> Fake {
        Fake { pid: 100, admin: PORTS.iter().map(|&p| (p, Admin::Maint)).collect(), ..Fake::default() }
    }

    fn answer(&mut self, cmd: &str) -> String {
        self.log.push(cmd.to_string());
        if cmd == "show info" {
            return format!("Name: HAProxy\nPid: {}\n", self.pid);
        }
        if cmd.starts_with("show servers state") {
            let mut out = "1\n# be_id be_name srv_id srv_name srv_addr srv_admin_state srv_port\n".to_string();
            for p in PORTS {
                let admin = match self.admin.get(&p) {
                    Some(Admin::Maint) => 1,
                    Some(Admin::Drain) => 8,
                    _ => 0,
                };
                out.push_str(&format!("3 app 1 s{p} 127.0.0.1 {admin} {p}\n"));
            }
            return out + "\n";
        }
        if cmd == "show stat -1 6 -1" {
            let mut out = "# pxname,svname,qcur,scur,addr,algo,hrsp_5xx,econ\n".to_string();
            for p in PORTS {
                let (r5, econ) = self.errors.get(&p).unwrap_or(&(0, 0));
                out.push_str(&format!("app,s{p},0,{},127.0.0.1:{p},,{r5},{econ}\n", self.scur.get(&p).unwrap_or(&0)));
            }
            return out + "app,BACKEND,0,0,,roundrobin,,\n\n";
        }
        if let Some(rest) = cmd.strip_prefix("set server app/s") {
            let (port, state) = rest.split_once(" state ").unwrap();
            let admin = match state {
                "ready" => Admin::Ready,
                "drain" => Admin::Drain,
                _ => Admin::Maint,
            };
            self.admin.insert(port.parse().unwrap(), admin);
            return "\n".into();
        }
        if cmd.starts_with("shutdown sessions server app/s") {
            return "\n".into();
        }
        "Unknown command.\n\n".into()
    }
}

/// Serves `fake` on a socket of its own until the test ends.
fn serve(fake: Arc<Mutex<Fake>>, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rolld-hx-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while c.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            let reply = fake.lock().unwrap().answer(&String::from_utf8_lossy(&line));
            let _ = c.write_all(reply.as_bytes());
        }
    });
    path
}

fn sets(log: &[String]) -> Vec<String> {
    log.iter().filter(|c| c.starts_with("set ")).map(|c| c.replace("set server app/", "")).collect()
}

#[test]
fn a_switch_is_new_ready_then_old_drain_then_maint_and_a_drain_ends_in_maint() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h =
        Haproxy { socket: serve(fake.clone(), "switch"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    fake.lock().unwrap().admin.insert(8004, Admin::Ready);
    switch(&h, &mem, &PORTS, &[8001, 8002], &[]).unwrap();
    assert_eq!(
        sets(&fake.lock().unwrap().log),
        ["s8001 state ready", "s8002 state ready", "s8004 state maint"],
        "8003 was in maint already"
    );
    fake.lock().unwrap().log.clear();
    switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap();
    assert_eq!(
        sets(&fake.lock().unwrap().log),
        ["s8003 state ready", "s8004 state ready", "s8001 state drain", "s8002 state drain"],
        "the new ones first; nothing asked twice"
    );
    fake.lock().unwrap().scur.insert(8001, 2);
    fake.lock().unwrap().log.clear();
    assert_eq!(count(&h, &mem, &[8001, 8002]).0, Ok(vec![(8001, 2), (8002, 0)]));
    assert!(sets(&fake.lock().unwrap().log).is_empty(), "no maint while a session is open");
    fake.lock().unwrap().scur.insert(8001, 0);
    // Nothing else listens on these ports here: the kernel sees no
    // connection either.
    assert_eq!(count(&h, &mem, &[8001, 8002]).0, Ok(vec![(8001, 0), (8002, 0)]));
    assert_eq!(sets(&fake.lock().unwrap().log), ["s8001 state maint", "s8002 state maint"]);
    let _ = std::fs::remove_file(&h.socket);
}

#[test]
fn a_drain_cut_at_drain_timeout_shuts_its_sessions_down_and_says_so() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h = Haproxy { socket: serve(fake.clone(), "cut"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    switch(&h, &mem, &PORTS, &[8001, 8002], &[]).unwrap();
    switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap();
    fake.lock().unwrap().scur.insert(8002, 2);
    fake.lock().unwrap().log.clear();
    assert_eq!(cut(&h, &mem, &[8001, 8002]), Ok(2));
    let log = fake.lock().unwrap().log.clone();
    let acts: Vec<&String> = log.iter().filter(|c| c.starts_with("set ") || c.starts_with("shutdown ")).collect();
    assert_eq!(
        acts,
        [
            "set server app/s8001 state maint",
            "set server app/s8002 state maint",
            "shutdown sessions server app/s8001",
            "shutdown sessions server app/s8002"
        ]
    );
    let line = mem.take_receipt().unwrap().line().unwrap();
    assert!(line.contains(", drain cut at drain_timeout with 2 session(s)"), "{line}");
    let _ = std::fs::remove_file(&h.socket);
}

#[test]
fn a_reloaded_haproxy_gets_rollds_states_again() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h =
        Haproxy { socket: serve(fake.clone(), "reload"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap();
    // A reload without a state file: every server as its config says
    // (`disabled`).
    {
        let mut f = fake.lock().unwrap();
        f.pid = 200;
        f.admin = PORTS.iter().map(|&p| (p, Admin::Maint)).collect();
        f.log.clear();
    }
    let (counted, notes) = count(&h, &mem, &[8001, 8002]);
    assert_eq!(counted, Ok(vec![(8001, 0), (8002, 0)]));
    assert_eq!(notes, ["HAProxy was reloaded (worker pid 200 now): rolld's server states put back"]);
    assert_eq!(
        sets(&fake.lock().unwrap().log),
        [
            "s8003 state ready",
            "s8004 state ready",
            "s8001 state drain",
            "s8002 state drain",
            "s8001 state maint",
            "s8002 state maint"
        ]
    );
}

#[test]
fn a_state_set_by_someone_else_is_put_right_at_the_next_switch() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h =
        Haproxy { socket: serve(fake.clone(), "operator"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    switch(&h, &mem, &PORTS, &[8001, 8002], &[]).unwrap();
    {
        let mut f = fake.lock().unwrap();
        f.admin.insert(8003, Admin::Drain);
        f.admin.insert(8004, Admin::Ready);
        f.log.clear();
    }
    switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap();
    assert_eq!(
        sets(&fake.lock().unwrap().log),
        ["s8003 state ready", "s8001 state drain", "s8002 state drain"],
        "8004 was ready already"
    );
    let _ = std::fs::remove_file(&h.socket);
}

#[test]
fn without_haproxy_a_set_is_drained_only_if_haproxy_had_it_in_maint() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h = Haproxy { socket: serve(fake.clone(), "gone"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    switch(&h, &mem, &PORTS, &[8001, 8002], &[]).unwrap();
    std::fs::remove_file(&h.socket).unwrap();
    assert_eq!(count(&h, &mem, &[8003, 8004]).0, Ok(vec![(8003, 0), (8004, 0)]), "acknowledged in maint");
    let e = count(&h, &mem, &[8001, 8002]).0.unwrap_err();
    assert!(e.starts_with(&format!("HAProxy at {}: `show info`: ", h.socket.display())), "{e}");
    assert!(e.ends_with("; the servers of these ports may still get requests"), "{e}");
    let e = switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap_err();
    assert!(e.contains("No such file or directory"), "{e}");
}

#[test]
fn the_errors_of_a_bake_are_the_new_servers_own_since_the_rollout_began() {
    let fake = Arc::new(Mutex::new(Fake::started()));
    let h =
        Haproxy { socket: serve(fake.clone(), "errors"), backend: "app".into(), state_file: None, revert_errors: 5 };
    let mem = Memory::default();
    // Counts from an earlier release on the same ports are not this one's.
    fake.lock().unwrap().errors.insert(8003, (7, 1));
    begin(&h, &mem);
    switch(&h, &mem, &PORTS, &[8003, 8004], &[8001, 8002]).unwrap();
    assert_eq!(errors(&h, &mem, &[8003, 8004]).0, Ok((0, "5xx 0, econ 0, eresp 0".into())));
    {
        let mut f = fake.lock().unwrap();
        f.errors.insert(8003, (9, 1));
        f.errors.insert(8004, (0, 3));
        f.errors.insert(8001, (50, 50));
    }
    assert_eq!(errors(&h, &mem, &[8003, 8004]).0, Ok((5, "5xx 2, econ 3, eresp 0".into())), "8001 is not on trial");
    // A reloaded HAProxy counts from 0 again: what the old worker had
    // counted is kept, and what the new one counts is all new, even below
    // the rollout's first counts (8003 had 7 then).
    {
        let mut f = fake.lock().unwrap();
        f.pid = 300;
        f.errors.insert(8003, (1, 0));
        f.errors.insert(8004, (0, 0));
    }
    let (read, notes) = errors(&h, &mem, &[8003, 8004]);
    assert_eq!(read, Ok((6, "5xx 1, econ 0, eresp 0; 5 counted before HAProxy was reloaded".into())));
    assert_eq!(notes, ["HAProxy was reloaded (worker pid 300 now): rolld's server states put back"]);
    fake.lock().unwrap().errors.insert(8003, (3, 0));
    assert_eq!(errors(&h, &mem, &[8003, 8004]).0.map(|e| e.0), Ok(8), "5 before the reload, 3 since");
    // Without the rollout's own counters (a successor), from the first read.
    let fresh = Memory::default();
    assert_eq!(errors(&h, &fresh, &[8003]).0.map(|e| e.0), Ok(0));
    assert_eq!(errors(&h, &fresh, &[9999]).0, Err("backend app has no server on port 9999".into()));
    std::fs::remove_file(&h.socket).unwrap();
    let e = errors(&h, &mem, &[8003]).0.unwrap_err();
    assert!(e.contains("No such file or directory"), "{e}");
}

#[test]
fn only_names_haproxy_accepts_go_in_a_command() {
    assert!(valid_name("app-1.x_y:2"));
    for bad in ["", "a b", "a;shutdown sessions server a/b", "a\nb", "a/b", "é"] {
        assert!(!valid_name(bad), "{bad:?}");
    }
}

#[test]
fn the_state_file_is_replaced_never_written_through_a_symlink() {
    let t = std::env::temp_dir().join(format!("rolld-hx-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("precious"), "keep").unwrap();
    std::os::unix::fs::symlink(t.join("precious"), t.join("state")).unwrap();
    write_new(&t.join("state"), b"1\n").unwrap();
    assert_eq!(std::fs::read_to_string(t.join("precious")).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(t.join("state")).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(t.join("state")).unwrap(), "1\n");
    assert_eq!(std::fs::read_dir(&t).unwrap().count(), 2, "no temporary file left");
    std::fs::remove_dir_all(&t).unwrap();
}
