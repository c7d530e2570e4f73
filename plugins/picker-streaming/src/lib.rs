//! Streaming piece picker: pieces a reader waits for first, earliest deadline first; everything
//! else rarest-first.
//!
//! The engine turns each waiting read into deadlines on the pieces under it and readahead into
//! later ones. Only pickable deadline pieces (wanted, not in progress) are kept ordered, so a pick
//! looks only at pieces that could be started; a deadline survives the piece being in progress
//! and applies again if the piece is lost.

use std::collections::{BTreeSet, HashMap};

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::picker::{PeerKey, PiecePicker};
use rivulet_picker_rarest_first::RarestFirst;

#[derive(Default)]
pub struct Streaming {
    rest: RarestFirst,
    deadlines: HashMap<u32, u64>,
    /// (deadline, piece) of the deadline pieces that are wanted and not in progress.
    urgent: BTreeSet<(u64, u32)>,
}

impl Streaming {
    /// A picker whose rarest-first tie-breaks follow `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Streaming {
            rest: RarestFirst::with_seed(seed),
            ..Default::default()
        }
    }
}

impl PiecePicker for Streaming {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.rest.init(pieces, have);
        self.deadlines.clear();
        self.urgent.clear();
    }

    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        self.rest.peer_bitfield(peer, has);
    }

    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        self.rest.peer_have(peer, piece);
    }

    fn peer_left(&mut self, peer: PeerKey) {
        self.rest.peer_left(peer);
    }

    fn piece_verified(&mut self, piece: u32) {
        self.rest.piece_verified(piece);
        if let Some(d) = self.deadlines.remove(&piece) {
            self.urgent.remove(&(d, piece));
        }
    }

    fn piece_lost(&mut self, piece: u32) {
        self.rest.piece_lost(piece);
        if let Some(&d) = self
            .deadlines
            .get(&piece)
            .filter(|_| self.rest.is_wanted(piece))
        {
            self.urgent.insert((d, piece));
        }
    }

    fn set_deadline(&mut self, piece: u32, deadline_ms: Option<u64>) {
        let old = match deadline_ms {
            Some(d) => self.deadlines.insert(piece, d),
            None => self.deadlines.remove(&piece),
        };
        if let Some(old) = old {
            self.urgent.remove(&(old, piece));
        }
        if let Some(d) = deadline_ms.filter(|_| self.rest.is_wanted(piece)) {
            self.urgent.insert((d, piece));
        }
    }

    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let peer_has = self.rest.peer_pieces(peer)?;
        let due = self
            .urgent
            .iter()
            .find(|&&(_, piece)| peer_has.get(piece))
            .copied();
        if let Some((d, piece)) = due {
            self.urgent.remove(&(d, piece));
            self.rest.take(piece);
            return Some(piece);
        }
        self.rest.pick(peer)
    }
}

rivulet_core::export_picker!(Streaming, "streaming", env!("CARGO_PKG_VERSION"));
