//! Rarest-first piece picker: start the piece the fewest connected peers have.
//!
//! Availability is counted from the peers' bitfields and haves, kept once in a
//! [`PeerPieces`]; wanted pieces sit in buckets by availability ([`buckets`]). A pick scans the rarest buckets for a piece the peer has, starting
//! at a random place inside each bucket so that leechers in the same swarm spread over equally
//! rare pieces. If a bounded scan finds nothing (the peer holds few of the wanted pieces), one
//! word-at-a-time pass over the peer's bitfield finds the rarest piece it can give.
//! Deadlines are ignored; `rivulet-picker-streaming` layers them on top of this picker.

mod bits;
mod buckets;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::peer_pieces::PeerPieces;
use rivulet_core::plugin::picker::{PeerKey, PiecePicker};

use crate::bits::set_bits;
use crate::buckets::Buckets;

/// How many wanted pieces a pick looks at in rarity order before it switches to the word pass.
const SCAN_BUDGET: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Wanted,
    InProgress,
    Done,
}

pub struct RarestFirst {
    state: Vec<State>,
    /// How many known peers have each piece.
    avail: Vec<u32>,
    /// Each peer's pieces: what a pick may ask of it, and what a departing peer takes back.
    peers: PeerPieces,
    /// The wanted pieces (not in progress, not done).
    wanted: Buckets,
    rng: fastrand::Rng,
}

impl Default for RarestFirst {
    fn default() -> Self {
        Self::with_rng(fastrand::Rng::new())
    }
}

impl RarestFirst {
    /// A picker whose tie-breaks follow `seed`, for reproducible tests and benchmarks.
    pub fn with_seed(seed: u64) -> Self {
        Self::with_rng(fastrand::Rng::with_seed(seed))
    }

    fn with_rng(rng: fastrand::Rng) -> Self {
        RarestFirst {
            state: Vec::new(),
            avail: Vec::new(),
            peers: PeerPieces::default(),
            wanted: Buckets::new(0),
            rng,
        }
    }

    /// What `peer` holds, as far as we were told.
    pub fn peer_pieces(&self, peer: PeerKey) -> Option<&Bitfield> {
        self.peers.get(peer)
    }

    /// Whether `piece` is wanted and not in progress, i.e. could be picked now.
    pub fn is_wanted(&self, piece: u32) -> bool {
        self.wanted.contains(piece)
    }

    /// Marks a wanted `piece` as in progress, as if it had been picked; false if it was not
    /// wanted (done, in progress or out of range).
    pub fn take(&mut self, piece: u32) -> bool {
        if !self.is_wanted(piece) {
            return false;
        }
        let p = piece as usize;
        self.wanted.remove(piece, self.avail[p]);
        self.state[p] = State::InProgress;
        true
    }

    fn add_avail(&mut self, piece: u32) {
        let p = piece as usize;
        let from = self.avail[p];
        let to = from.saturating_add(1);
        self.avail[p] = to;
        self.wanted.moved(piece, from, to);
    }

    fn sub_avail(&mut self, piece: u32) {
        let p = piece as usize;
        let from = self.avail[p];
        let to = from.saturating_sub(1);
        self.avail[p] = to;
        self.wanted.moved(piece, from, to);
    }
}

/// Scans the rarest buckets for a piece the peer has. Pieces no peer has are skipped: the peer
/// holds none of them, and in a sparse swarm they would eat the whole budget on every pick.
/// `Err(floor)` when the scan gave up: no piece the peer has is rarer than `floor`.
fn scan_rarest(
    wanted: &mut Buckets,
    rng: &mut fastrand::Rng,
    peer_has: &Bitfield,
) -> Result<Option<u32>, u32> {
    let mut budget = SCAN_BUDGET;
    for (avail, bucket) in wanted.rarest_first() {
        if avail == 0 || bucket.is_empty() {
            continue;
        }
        let start = rng.usize(..bucket.len());
        let (tail, head) = bucket.split_at(start);
        for &piece in head.iter().chain(tail) {
            if peer_has.get(piece) {
                return Ok(Some(piece));
            }
            budget -= 1;
            if budget == 0 {
                return Err(avail);
            }
        }
    }
    Ok(None)
}

/// The rarest wanted piece the peer has, intersecting bitfields 64 pieces at a time from a
/// random word on (the tie-break), stopping early at a piece of availability `floor`.
fn scan_words(
    wanted: &Buckets,
    avail: &[u32],
    rng: &mut fastrand::Rng,
    peer_has: &Bitfield,
    floor: u32,
) -> Option<u32> {
    let members = wanted.members();
    let words = members.word_count();
    if words == 0 {
        return None;
    }
    let first = rng.usize(..words);
    let mut best: Option<(u32, u32)> = None;
    for w in (first..words).chain(0..first) {
        let mut both = members.word(w) & peer_has.word(w);
        while both != 0 {
            let bit = both.leading_zeros();
            both &= !(1u64 << 63 >> bit);
            let piece = w as u32 * 64 + bit;
            let a = avail[piece as usize];
            if best.is_none_or(|(_, b)| a < b) {
                if a <= floor {
                    return Some(piece);
                }
                best = Some((piece, a));
            }
        }
    }
    best.map(|(piece, _)| piece)
}

impl PiecePicker for RarestFirst {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        let n = pieces as usize;
        self.state = vec![State::Wanted; n];
        self.avail = vec![0; n];
        self.peers.reset(pieces);
        self.wanted = Buckets::new(pieces);
        let mut order: Vec<u32> = (0..pieces).filter(|&p| !have.get(p)).collect();
        self.rng.shuffle(&mut order);
        for piece in order {
            self.wanted.insert(piece, 0);
        }
        for piece in set_bits(have).take_while(|&p| p < pieces) {
            self.state[piece as usize] = State::Done;
        }
    }

    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        if let Some(old) = self.peers.bitfield(peer, has) {
            for piece in set_bits(&old) {
                self.sub_avail(piece);
            }
        }
        let pieces = self.state.len() as u32;
        for piece in set_bits(has).take_while(|&p| p < pieces) {
            self.add_avail(piece);
        }
    }

    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        if self.peers.have(peer, piece) {
            self.add_avail(piece);
        }
    }

    fn peer_left(&mut self, peer: PeerKey) {
        if let Some(old) = self.peers.left(peer) {
            for piece in set_bits(&old) {
                self.sub_avail(piece);
            }
        }
    }

    fn piece_verified(&mut self, piece: u32) {
        let p = piece as usize;
        if let Some(state) = self.state.get_mut(p) {
            *state = State::Done;
            self.wanted.remove(piece, self.avail[p]);
        }
    }

    fn piece_lost(&mut self, piece: u32) {
        let p = piece as usize;
        match self.state.get_mut(p) {
            Some(state) if *state != State::Wanted => {
                *state = State::Wanted;
                self.wanted.insert(piece, self.avail[p]);
            }
            _ => {}
        }
    }

    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let peer_has = self.peers.get(peer)?;
        let piece = match scan_rarest(&mut self.wanted, &mut self.rng, peer_has) {
            Ok(found) => found,
            Err(floor) => scan_words(&self.wanted, &self.avail, &mut self.rng, peer_has, floor),
        }?;
        self.take(piece);
        Some(piece)
    }
}

rivulet_core::export_picker!(RarestFirst, "rarest-first", env!("CARGO_PKG_VERSION"));
