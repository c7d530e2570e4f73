//! A deterministic picker with state behind every method: urgent deadlines first, then rarest,
//! lowest index on ties. Shared by the scripted-picker plugin and by the test that runs it linked
//! in and loaded side by side.

use std::collections::BTreeMap;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct ScriptedPicker {
    have: Bitfield,
    in_progress: Bitfield,
    availability: Vec<u32>,
    peers: BTreeMap<PeerKey, Bitfield>,
    deadlines: BTreeMap<u32, u64>,
}

impl ScriptedPicker {
    fn forget(&mut self, peer: PeerKey) {
        if let Some(old) = self.peers.remove(&peer) {
            for p in old.ones() {
                self.availability[p as usize] -= 1;
            }
        }
    }
}

impl PiecePicker for ScriptedPicker {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.have = have.clone();
        self.in_progress = Bitfield::new(pieces);
        self.availability = vec![0; pieces as usize];
    }

    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        self.forget(peer);
        for p in has.ones() {
            self.availability[p as usize] += 1;
        }
        self.peers.insert(peer, has.clone());
    }

    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        let pieces = self.have.len();
        let known = self
            .peers
            .entry(peer)
            .or_insert_with(|| Bitfield::new(pieces));
        if known.set(piece) {
            self.availability[piece as usize] += 1;
        }
    }

    fn peer_left(&mut self, peer: PeerKey) {
        self.forget(peer);
    }

    fn piece_verified(&mut self, piece: u32) {
        self.have.set(piece);
        self.in_progress.clear(piece);
        self.deadlines.remove(&piece);
    }

    fn piece_lost(&mut self, piece: u32) {
        self.have.clear(piece);
        self.in_progress.clear(piece);
    }

    fn set_deadline(&mut self, piece: u32, deadline_ms: Option<u64>) {
        match deadline_ms {
            Some(d) => self.deadlines.insert(piece, d),
            None => self.deadlines.remove(&piece),
        };
    }

    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let peer_has = self.peers.get(&peer)?;
        let wanted = |p: u32| peer_has.get(p) && !self.have.get(p) && !self.in_progress.get(p);
        let urgent = self
            .deadlines
            .iter()
            .filter(|&(&p, _)| wanted(p))
            .min_by_key(|&(&p, &d)| (d, p))
            .map(|(&p, _)| p);
        let piece = urgent.or_else(|| {
            peer_has
                .ones()
                .filter(|&p| wanted(p))
                .min_by_key(|&p| (self.availability[p as usize], p))
        })?;
        self.in_progress.set(piece);
        Some(piece)
    }
}
