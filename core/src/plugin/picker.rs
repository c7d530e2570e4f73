//! Piece-picking strategy: which piece to start next from a given peer.
//!
//! The engine owns block assembly; a picker only chooses pieces. A picked piece counts as in
//! progress until the engine reports it verified or lost, so a picker never hands the same piece
//! to two peers (the engine's endgame duplicates blocks on its own). Every call sits on the hot
//! path: O(log n) or amortised O(1) per call on 100,000 pieces.
//!
//! A picker learns what each peer holds from [`PiecePicker::peer_bitfield`] and
//! [`PiecePicker::peer_have`] and keeps what it needs (see [`crate::plugin::peer_pieces`]);
//! `pick` names only the peer. Passing the peer's bitfield on every pick made a dynamic picker
//! copy 12.5 KB per call on 100,000 pieces and hold a second copy of every peer's pieces.

use crate::bitfield::Bitfield;

/// The engine's short name for one connected peer; reused after [`PiecePicker::peer_left`].
pub type PeerKey = u32;

/// The notifications default to doing nothing, for pickers that do not care about them.
pub trait PiecePicker: Send {
    /// Called once, first: the torrent has `pieces` pieces and we already hold `have`.
    fn init(&mut self, pieces: u32, have: &Bitfield);
    /// A peer announced its whole bitfield (replaces anything known of it).
    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        let _ = (peer, has);
    }
    /// A peer announced one more piece.
    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        let _ = (peer, piece);
    }
    /// A peer is gone: forget its pieces.
    fn peer_left(&mut self, peer: PeerKey) {
        let _ = peer;
    }
    /// We verified and stored `piece`: never pick it again.
    fn piece_verified(&mut self, piece: u32) {
        let _ = piece;
    }
    /// `piece` is wanted again: it failed its hash check, its download was abandoned, or the
    /// storage dropped it.
    fn piece_lost(&mut self, piece: u32) {
        let _ = piece;
    }
    /// A reader waits for `piece` until `deadline_ms` (ms on the engine's clock), or no longer
    /// waits (`None`). Smaller deadlines are more urgent.
    fn set_deadline(&mut self, piece: u32, deadline_ms: Option<u64>) {
        let _ = (piece, deadline_ms);
    }
    /// The next piece to start downloading from `peer`; `None` if the peer has nothing we want
    /// that is not already in progress (or the picker was never told what it has).
    fn pick(&mut self, peer: PeerKey) -> Option<u32>;
    /// Why this picker can no longer pick, if it broke (a plugin that panicked). The engine asks
    /// when `pick` returns `None` and, on `Some`, replaces the picker with a fallback.
    fn fault(&self) -> Option<String> {
        None
    }
}
