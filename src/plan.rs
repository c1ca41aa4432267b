//! Slots, and where a rollout moves them.
//!
//! With `surge`, a group of N processes is N slots: slot i owns the i-th
//! port of every workset (all worksets then have N ports), and exactly one
//! port of each slot is live. A rollout moves every slot to a port of
//! another workset, `surge` slots at a time, so that the host never runs
//! more than N + surge processes of the group. Without `surge` a rollout
//! moves the whole set at once (blue/green), and worksets may differ in
//! size. Pure: the daemon finds which ports are busy.

use crate::config::GroupConfig;

/// Where one slot goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub slot: usize,
    pub port: u16,
    pub workset: usize,
}

/// Every slot to workset `index`.
pub fn to_workset(cfg: &GroupConfig, index: usize) -> Vec<Target> {
    cfg.worksets[index].iter().enumerate().map(|(slot, &port)| Target { slot, port, workset: index }).collect()
}

/// Each slot to its own workset, `worksets[slot]`.
pub fn per_slot(cfg: &GroupConfig, worksets: &[usize]) -> Vec<Target> {
    worksets.iter().enumerate().map(|(slot, &w)| Target { slot, port: cfg.worksets[w][slot], workset: w }).collect()
}

/// The slot of `port` and its workset, when `port` is in a workset of `cfg`.
pub fn locate(cfg: &GroupConfig, port: u16) -> Option<(usize, usize)> {
    cfg.worksets.iter().enumerate().find_map(|(w, ports)| ports.iter().position(|&p| p == port).map(|s| (s, w)))
}

/// The next rollout of a surge group whose slot i is live on workset
/// `live[i]`: each slot to the first workset after its own whose port for
/// that slot is free (`busy` says which are not), so that a fixed release
/// reaches every slot and a reverted one brings every slot back. An error
/// names the slots that have nowhere to go.
pub fn next_slots(cfg: &GroupConfig, live: &[usize], busy: impl Fn(u16) -> bool) -> Result<Vec<Target>, String> {
    let n = cfg.worksets.len();
    let mut out = Vec::new();
    let mut stuck = Vec::new();
    for (slot, &w) in live.iter().enumerate() {
        let found = (1..n).map(|k| (w + k) % n).find(|&ws| !busy(cfg.worksets[ws][slot]));
        match found {
            Some(ws) => out.push(Target { slot, port: cfg.worksets[ws][slot], workset: ws }),
            None => stuck.push(format!("slot {slot} (live on {})", cfg.worksets[w][slot])),
        }
    }
    if stuck.is_empty() { Ok(out) } else { Err(format!("no free port in another workset for {}", stuck.join(", "))) }
}

/// How many slots a rollout of `plan` moves at a time: `surge` when the
/// group has it and a live set laid out by slot (`live_slots`, its
/// processes' slots in order), else all at once.
pub fn batch_size(cfg: &GroupConfig, plan: &[Target], live_slots: Option<&[usize]>) -> usize {
    let n = plan.len();
    match (cfg.surge, live_slots) {
        (Some(k), Some(slots)) if k < n && slots.len() == n && slots.iter().enumerate().all(|(i, &s)| i == s) => k,
        _ => n.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Check, Timing};
    use std::path::PathBuf;

    fn cfg(surge: Option<usize>) -> GroupConfig {
        GroupConfig {
            name: "web".into(),
            base: PathBuf::from("/tmp"),
            argv: vec!["app".into()],
            directory: PathBuf::from("/tmp"),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            worksets: vec![vec![8001, 8002, 8003], vec![8501, 8502, 8503], vec![9001, 9002, 9003]],
            checks: vec![Check::Tcp { host: Default::default(), timeout: std::time::Duration::from_secs(1) }],
            actions: Vec::new(),
            timing: Timing::default(),
            stop_signal: libc::SIGTERM,
            drain_signal: None,
            surge,
            credentials: None,
            listen: None,
        }
    }

    #[test]
    fn slots_of_worksets() {
        let c = cfg(Some(1));
        let t = to_workset(&c, 1);
        assert_eq!(
            t.iter().map(|t| (t.slot, t.port, t.workset)).collect::<Vec<_>>(),
            vec![(0, 8501, 1), (1, 8502, 1), (2, 8503, 1)]
        );
        assert_eq!(locate(&c, 9002), Some((1, 2)));
        assert_eq!(locate(&c, 1234), None);
        let mixed = per_slot(&c, &[1, 0, 2]);
        assert_eq!(mixed.iter().map(|t| t.port).collect::<Vec<_>>(), vec![8501, 8002, 9003]);
    }

    #[test]
    fn the_next_rollout_moves_every_slot_past_busy_ports() {
        let c = cfg(Some(1));
        // Slots 0 and 1 moved to workset 1, slot 2 still on 0 (a partial rollout).
        let t = next_slots(&c, &[1, 1, 0], |_| false).unwrap();
        assert_eq!(t.iter().map(|t| t.port).collect::<Vec<_>>(), vec![9001, 9002, 8503]);
        let t = next_slots(&c, &[1, 1, 0], |p| p == 9001).unwrap();
        assert_eq!(t[0].port, 8001, "a busy port is skipped for the next workset");
        let e = next_slots(&c, &[0, 0, 0], |p| p == 8502 || p == 9002).unwrap_err();
        assert!(e.contains("slot 1 (live on 8002)"), "{e}");
    }

    #[test]
    fn batches_need_surge_and_a_live_set_laid_out_by_slot() {
        let c = cfg(Some(2));
        let plan = to_workset(&c, 1);
        assert_eq!(batch_size(&c, &plan, Some(&[0, 1, 2])), 2);
        assert_eq!(batch_size(&c, &plan, None), 3, "a first start starts every slot at once");
        assert_eq!(batch_size(&c, &plan, Some(&[0, 1])), 3, "a live set of another shape is replaced whole");
        assert_eq!(batch_size(&cfg(None), &plan, Some(&[0, 1, 2])), 3, "no surge: blue/green");
        assert_eq!(batch_size(&cfg(Some(3)), &plan, Some(&[0, 1, 2])), 3);
    }
}
