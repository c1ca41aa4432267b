//! Arbitrary bytes as kernel TCP tables: every line to `tcp::parse_row` (the
//! /proc/net/tcp and tcp6 text), the whole input to `tcp::parse_diag` (one
//! NETLINK_SOCK_DIAG datagram). Errors and `None` only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in String::from_utf8_lossy(data).lines() {
        let _ = rolld::tcp::parse_row(line);
    }
    let mut rows = Vec::new();
    let _ = rolld::tcp::parse_diag(data, &mut rows);
    // Each row comes from a message of at least 16 + 72 bytes.
    assert!(rows.len() <= data.len() / 88, "{} rows from {} bytes", rows.len(), data.len());
});
