//! What each connected peer holds, as a picker keeps it from `peer_bitfield` and `peer_have`.
//!
//! Every picker that looks at peers' pieces needs the same bookkeeping; this is the one copy of
//! it, so that a picker (built in or a plugin) holds one bitfield per peer and no more.

use std::collections::HashMap;

use crate::bitfield::Bitfield;
use crate::plugin::picker::PeerKey;

#[derive(Debug, Default)]
pub struct PeerPieces {
    pieces: u32,
    peers: HashMap<PeerKey, Bitfield>,
}

impl PeerPieces {
    /// Forgets every peer; bitfields are kept at `pieces` pieces from now on.
    pub fn reset(&mut self, pieces: u32) {
        self.pieces = pieces;
        self.peers.clear();
    }

    /// Records `has` as all that `peer` holds, cut or padded to the torrent's length; returns the
    /// bitfield it replaces.
    pub fn bitfield(&mut self, peer: PeerKey, has: &Bitfield) -> Option<Bitfield> {
        let own = if has.len() == self.pieces {
            has.clone()
        } else {
            let mut own = Bitfield::new(self.pieces);
            for piece in has.ones().take_while(|&p| p < self.pieces) {
                own.set(piece);
            }
            own
        };
        self.peers.insert(peer, own)
    }

    /// Records that `peer` holds `piece`; true if that is news (in range, not known before).
    pub fn have(&mut self, peer: PeerKey, piece: u32) -> bool {
        let pieces = self.pieces;
        piece < pieces
            && self
                .peers
                .entry(peer)
                .or_insert_with(|| Bitfield::new(pieces))
                .set(piece)
    }

    /// Forgets `peer`; returns what it held.
    pub fn left(&mut self, peer: PeerKey) -> Option<Bitfield> {
        self.peers.remove(&peer)
    }

    /// What `peer` holds, if we were told anything of it.
    pub fn get(&self, peer: PeerKey) -> Option<&Bitfield> {
        self.peers.get(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_are_kept_at_the_torrents_length_and_haves_out_of_range_ignored() {
        let mut p = PeerPieces::default();
        p.reset(10);
        assert!(p.get(1).is_none());
        assert!(p.bitfield(1, &Bitfield::full(16)).is_none());
        assert_eq!(p.get(1).unwrap().len(), 10);
        assert_eq!(p.get(1).unwrap().count(), 10);
        assert!(!p.have(2, 10));
        assert!(p.have(2, 3));
        assert!(!p.have(2, 3));
        assert_eq!(p.left(2).unwrap().ones().collect::<Vec<_>>(), vec![3]);
        assert!(p.get(2).is_none());
    }
}
