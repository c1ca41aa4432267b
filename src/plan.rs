//! Slots, and where a rollout moves them.
//!
//! With `surge`, a group of N processes is N slots: slot i owns the i-th
//! port of every workset (all worksets then have N ports), and exactly one
//! port of each slot is live. A rollout moves every slot to a port of
//! another workset, `surge` slots at a time, so that the host never runs
//! more than N + surge processes of the group. Without `surge` a rollout
//! moves the whole set at once (blue/green), and worksets may differ in
//! size. Pure: the daemon finds which ports are busy.
//!
//! A live set is known by its ports, which mean the same in every config.
//! A reload may add, remove, reorder or resize worksets, so the number of
//! a workset in the config that started a set names another workset, or
//! none, in the next one: every plan finds the live ports in the config it
//! is made for (`locate`), and a live port that config does not have is a
//! case of its own, never an index. Nothing here indexes config data: a
//! workset, or a slot of one, that is not there is no candidate.

use crate::config::GroupConfig;

/// Where one slot goes: `port`, in the place `slot` of the live set (its
/// port's place in its workset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub slot: usize,
    pub port: u16,
}

/// Every slot to workset `index` of `cfg`; `None` when it has no such
/// workset.
pub fn to_workset(cfg: &GroupConfig, index: usize) -> Option<Vec<Target>> {
    let ports = cfg.worksets.get(index)?;
    Some(ports.iter().enumerate().map(|(slot, &port)| Target { slot, port }).collect())
}

/// The slot of `port` and its workset, when `port` is in a workset of `cfg`.
pub fn locate(cfg: &GroupConfig, port: u16) -> Option<(usize, usize)> {
    cfg.worksets.iter().enumerate().find_map(|(w, ports)| ports.iter().position(|&p| p == port).map(|s| (s, w)))
}

/// The place of the first workset to try after the one of `cfg` that has
/// `port`: the first workset when none has it.
fn after(cfg: &GroupConfig, port: Option<u16>) -> usize {
    port.and_then(|p| locate(cfg, p)).map_or(0, |(_, w)| w + 1)
}

/// The worksets a blue/green rollout from the live ports `live` (none on
/// a first start) may move to, in the order to try them: from the one
/// after the workset of `cfg` that has the first live port, wrapping, and
/// none that shares a port with `live`.
pub fn workset_order(cfg: &GroupConfig, live: &[u16]) -> Vec<usize> {
    let n = cfg.worksets.len();
    let first = after(cfg, live.first().copied());
    (0..n)
        .map(|k| (first + k) % n)
        .filter(|&w| cfg.worksets.get(w).is_some_and(|ports| !ports.iter().any(|p| live.contains(p))))
        .collect()
}

/// Whether the next rollout of `cfg` moves the live set `live` slot by
/// slot (`next_slots`): `cfg` has `surge` and one port per slot for each
/// live process. A live set of another size is replaced whole.
pub fn by_slots(cfg: &GroupConfig, live: &[u16]) -> bool {
    cfg.surge.is_some() && !live.is_empty() && cfg.worksets.iter().all(|w| w.len() == live.len())
}

/// The next rollout of a surge group whose slot i is live on `live[i]`:
/// each slot to the first workset after the one of `cfg` that has its
/// live port (from the first, when none has it) whose port for that slot
/// is neither live nor busy (`busy` says which ports something else
/// holds), so that a fixed release reaches every slot and a reverted one
/// brings every slot back. An error names the slots that have nowhere to
/// go.
pub fn next_slots(cfg: &GroupConfig, live: &[u16], busy: impl Fn(u16) -> bool) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    let mut stuck = Vec::new();
    for (slot, &port) in live.iter().enumerate() {
        match next_port(cfg, live, slot, &busy) {
            Some(port) => out.push(Target { slot, port }),
            None => stuck.push(format!("slot {slot} (live on {port})")),
        }
    }
    if stuck.is_empty() { Ok(out) } else { Err(format!("no free port in another workset for {}", stuck.join(", "))) }
}

/// Where slot `slot` of the live set `live` moves (as `next_slots` moves
/// each slot): also the new port of a heal of that slot alone.
pub fn next_port(cfg: &GroupConfig, live: &[u16], slot: usize, busy: impl Fn(u16) -> bool) -> Option<u16> {
    let n = cfg.worksets.len();
    let first = after(cfg, Some(*live.get(slot)?));
    (0..n)
        .filter_map(|k| cfg.worksets.get((first + k) % n)?.get(slot).copied())
        .find(|&p| !live.contains(&p) && !busy(p))
}

/// How many slots a rollout of `plan` moves at a time: `surge` when the
/// group has it, a plan of one target per slot in order, and a live set of
/// as many processes laid out by slot (`live_slots`, their slots in
/// order); else all at once.
pub fn batch_size(cfg: &GroupConfig, plan: &[Target], live_slots: Option<&[usize]>) -> usize {
    let n = plan.len();
    let laid_out = live_slots.is_some_and(|s| s.len() == n && s.iter().enumerate().all(|(i, &s)| i == s));
    match cfg.surge {
        Some(k) if k < n && laid_out && plan.iter().enumerate().all(|(i, t)| t.slot == i) => k.max(1),
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
            haproxy: None,
            health: None,
        }
    }

    fn ports(t: &[Target]) -> Vec<u16> {
        t.iter().map(|t| t.port).collect()
    }

    #[test]
    fn slots_of_worksets() {
        let c = cfg(Some(1));
        let t = to_workset(&c, 1).unwrap();
        assert_eq!(t.iter().map(|t| (t.slot, t.port)).collect::<Vec<_>>(), vec![(0, 8501), (1, 8502), (2, 8503)]);
        assert_eq!(to_workset(&c, 3), None, "a workset that is not there");
        assert_eq!(locate(&c, 9002), Some((1, 2)));
        assert_eq!(locate(&c, 1234), None);
    }

    #[test]
    fn the_next_rollout_moves_every_slot_past_busy_ports() {
        let c = cfg(Some(1));
        // Slots 0 and 1 moved to workset 1, slot 2 still on 0 (a partial rollout).
        let t = next_slots(&c, &[8501, 8502, 8003], |_| false).unwrap();
        assert_eq!(ports(&t), vec![9001, 9002, 8503]);
        let t = next_slots(&c, &[8501, 8502, 8003], |p| p == 9001).unwrap();
        assert_eq!(t[0].port, 8001, "a busy port is skipped for the next workset");
        let e = next_slots(&c, &[8001, 8002, 8003], |p| p == 8502 || p == 9002).unwrap_err();
        assert!(e.contains("slot 1 (live on 8002)"), "{e}");
    }

    /// The live set is on 9001-9003, the third workset of `cfg`; these are
    /// the configs a reload may bring instead.
    fn without(c: &GroupConfig, gone: &[usize]) -> GroupConfig {
        let mut c = c.clone();
        c.worksets = c.worksets.iter().enumerate().filter(|(w, _)| !gone.contains(w)).map(|(_, p)| p.clone()).collect();
        c
    }

    #[test]
    fn a_live_set_is_found_in_a_new_config_by_its_ports() {
        let live = [9001, 9002, 9003];
        // The middle workset removed: the live one is now the second.
        let c = without(&cfg(Some(1)), &[1]);
        assert!(by_slots(&c, &live));
        assert_eq!(ports(&next_slots(&c, &live, |_| false).unwrap()), vec![8001, 8002, 8003]);
        assert_eq!(workset_order(&c, &live), vec![0]);
        // The live workset dropped: every slot to the first workset that
        // has a free port for it.
        let c = without(&cfg(Some(1)), &[2]);
        assert_eq!(ports(&next_slots(&c, &live, |_| false).unwrap()), vec![8001, 8002, 8003]);
        assert_eq!(ports(&next_slots(&c, &live, |p| p == 8002).unwrap()), vec![8001, 8502, 8003]);
        let e = next_slots(&c, &live, |p| p == 8002 || p == 8502).unwrap_err();
        assert_eq!(e, "no free port in another workset for slot 1 (live on 9002)");
        assert_eq!(workset_order(&c, &live), vec![0, 1]);
        // Worksets resized: the set is replaced whole.
        let mut c = cfg(Some(1));
        c.worksets = vec![vec![8001, 8002], vec![8501, 8502]];
        assert!(!by_slots(&c, &live));
        assert_eq!(workset_order(&c, &live), vec![0, 1]);
        assert_eq!(
            next_slots(&c, &live, |_| false).unwrap_err(),
            "no free port in another workset for slot 2 (live on 9003)"
        );
        // Nothing live, or no surge: no slots to move.
        assert!(!by_slots(&cfg(Some(1)), &[]) && !by_slots(&cfg(None), &live));
    }

    #[test]
    fn a_blue_green_rollout_takes_the_workset_after_the_live_one() {
        let c = cfg(None);
        assert_eq!(workset_order(&c, &[]), vec![0, 1, 2], "a first start");
        assert_eq!(workset_order(&c, &[8501, 8502, 8503]), vec![2, 0]);
        assert_eq!(workset_order(&c, &[9001, 9002, 9003]), vec![0, 1]);
        assert_eq!(workset_order(&c, &[8501, 8002, 8003]), vec![2], "a mix shares ports with two worksets");
        assert_eq!(workset_order(&c, &[1234]), vec![0, 1, 2], "a port no workset has");
    }

    #[test]
    fn batches_need_surge_and_a_live_set_laid_out_by_slot() {
        let c = cfg(Some(2));
        let plan = to_workset(&c, 1).unwrap();
        assert_eq!(batch_size(&c, &plan, Some(&[0, 1, 2])), 2);
        assert_eq!(batch_size(&c, &plan, None), 3, "a first start starts every slot at once");
        assert_eq!(batch_size(&c, &plan, Some(&[0, 1])), 3, "a live set of another shape is replaced whole");
        assert_eq!(batch_size(&cfg(None), &plan, Some(&[0, 1, 2])), 3, "no surge: blue/green");
        assert_eq!(batch_size(&cfg(Some(3)), &plan, Some(&[0, 1, 2])), 3);
        let shuffled = [plan[1], plan[0], plan[2]];
        assert_eq!(batch_size(&c, &shuffled, Some(&[0, 1, 2])), 3, "a plan out of slot order is not batched");
    }
}
