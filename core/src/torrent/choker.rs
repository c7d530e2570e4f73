//! Who we upload to: the best `upload_slots` interested peers (by what they give us while we
//! download, by what they take while we seed), plus one optimistic slot that rotates every 30 s
//! so newcomers get a chance; and a newly interested peer is unchoked at once when a slot is
//! free rather than at the next round ten seconds later.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::effects::Effects;
use super::peers::PeerState;
use crate::plugin::PeerKey;
use crate::wire::Message;

const OPTIMISTIC_EVERY: Duration = Duration::from_secs(30);

pub(crate) struct Choker {
    pub upload_slots: usize,
    last_optimistic: Instant,
}

impl Choker {
    pub fn new(upload_slots: usize) -> Self {
        Choker {
            upload_slots: upload_slots.max(1),
            last_optimistic: Instant::now(),
        }
    }

    /// Unchokes a newly interested peer if a slot is free.
    pub fn quick_unchoke(
        &self,
        peers: &mut HashMap<PeerKey, PeerState>,
        key: PeerKey,
        fx: &mut Effects,
    ) {
        let unchoked = peers.values().filter(|p| !p.am_choking).count();
        if unchoked < self.upload_slots + 1
            && let Some(p) = peers.get_mut(&key)
        {
            set_choke(p, false, fx);
        }
    }

    /// One choker round.
    pub fn rechoke(
        &mut self,
        peers: &mut HashMap<PeerKey, PeerState>,
        seeding: bool,
        fx: &mut Effects,
    ) {
        let mut ranked: Vec<(PeerKey, u64)> = peers
            .iter()
            .filter(|(_, p)| p.peer_interested)
            .map(|(k, p)| (*k, if seeding { p.up.rate() } else { p.down.rate() }))
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
        let regular: HashSet<PeerKey> =
            ranked.iter().take(self.upload_slots).map(|r| r.0).collect();
        let rotate = self.last_optimistic.elapsed() >= OPTIMISTIC_EVERY;
        let mut optimistic = peers.iter().find(|(_, p)| p.optimistic).map(|(k, _)| *k);
        if rotate || optimistic.is_none() {
            let choked: Vec<PeerKey> = ranked
                .iter()
                .map(|r| r.0)
                .filter(|k| !regular.contains(k))
                .collect();
            optimistic = (!choked.is_empty()).then(|| choked[rand::random_range(0..choked.len())]);
            self.last_optimistic = Instant::now();
        }
        for (k, p) in peers.iter_mut() {
            let keep = regular.contains(k) || Some(*k) == optimistic;
            p.optimistic = Some(*k) == optimistic;
            set_choke(p, !keep, fx);
        }
    }
}

pub(crate) fn set_choke(p: &mut PeerState, choke: bool, fx: &mut Effects) {
    if p.am_choking != choke {
        p.am_choking = choke;
        fx.send(
            &p.tx,
            if choke {
                Message::Choke
            } else {
                Message::Unchoke
            },
        );
    }
}
