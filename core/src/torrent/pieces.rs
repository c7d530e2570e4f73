//! The piece tracker: which pieces we have, which are being assembled or verified, the picker
//! that chooses new ones, and the evidence kept to blame a bad block on its sender.
//!
//! Invariants (see STATE.md): a piece is in exactly one of had / assembling / verifying /
//! wanted; the picker is told `piece_verified` or `piece_lost` for every piece it handed out;
//! `partial_bytes` is the sum of the assemblies' buffers and never exceeds the cap by more than
//! the urgent pieces readers wait for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::assembly::PieceAssembly;
use super::effects::Effects;
use crate::bitfield::Bitfield;
use crate::events::Event;
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::plugin::{PeerKey, PiecePicker};

/// Bytes of unfinished pieces held for the whole torrent (at least [`MIN_PARTIAL_PIECES`]
/// pieces): 40 peers each withholding the last block of the pieces they were given held 2.6 GB
/// before this bound.
const MAX_PARTIAL_BYTES: u64 = 128 << 20;
const MIN_PARTIAL_PIECES: u64 = 16;
/// Unfinished pieces one peer may hold besides those a reader waits for: its pipeline's worth
/// of pieces plus this.
const PEER_PARTIAL_SLACK: usize = 2;
/// Failed pieces kept to compare against their good copy.
const MAX_SUSPECTS: usize = 8;

/// Who to blame for a piece that failed or was proven wrong.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Blame {
    /// Addresses and the strikes each earned.
    pub strikes: Vec<(SocketAddr, u32)>,
}

pub(crate) struct PieceTracker {
    pub meta: Arc<Metainfo>,
    /// Where the padding is, so that its blocks are never requested.
    layout: Layout,
    pub have: Bitfield,
    pub assemblies: BTreeMap<u32, PieceAssembly>,
    /// Whole pieces handed to the verifiers and not yet reported back.
    pub verifying: HashSet<u32>,
    picker: Box<dyn PiecePicker>,
    pub picker_name: String,
    /// Replaces `picker` once if it reports a fault.
    fallback: Option<(String, Box<dyn PiecePicker>)>,
    /// Fetch only what readers wait for.
    pub lazy: bool,
    /// The storage may let verified pieces go (a bounded RAM cache).
    pub evicting: bool,
    /// Failed pieces with several senders, kept until a good copy names the liar.
    suspects: HashMap<u32, PieceAssembly>,
    partial_bytes: u64,
    /// The id the next assembly gets.
    next_assembly: u64,
}

/// Strikes for a piece that failed with one sender only: two such failures ban it.
pub(crate) const SOLE_FAILURE_STRIKES: u32 = 2;
/// Strikes that ban.
pub(crate) const BAN_STRIKES: u32 = 4;

impl PieceTracker {
    pub fn new(
        meta: Arc<Metainfo>,
        picker: (String, Box<dyn PiecePicker>),
        fallback: (String, Box<dyn PiecePicker>),
    ) -> Self {
        let n = meta.piece_count();
        PieceTracker {
            layout: Layout::new(&meta),
            meta,
            have: Bitfield::new(n),
            assemblies: BTreeMap::new(),
            verifying: HashSet::new(),
            picker_name: picker.0,
            picker: picker.1,
            fallback: Some(fallback),
            lazy: false,
            evicting: false,
            suspects: HashMap::new(),
            partial_bytes: 0,
            next_assembly: 0,
        }
    }

    /// Sets what we hold after the start-up check and tells the picker.
    pub fn init(&mut self, have: Bitfield) {
        self.picker.init(have.len(), &have);
        self.have = have;
    }

    pub fn picker(&mut self) -> &mut dyn PiecePicker {
        self.picker.as_mut()
    }

    pub fn complete(&self) -> bool {
        self.have.is_full()
    }

    pub fn partial_bytes(&self) -> u64 {
        self.partial_bytes
    }

    fn partial_cap(&self) -> u64 {
        MAX_PARTIAL_BYTES.max(MIN_PARTIAL_PIECES * self.meta.piece_length)
    }

    /// Whether a new, non-urgent piece may be started for a peer that already holds `started`
    /// unfinished pieces with a pipeline of `queue` blocks.
    pub fn may_start(&self, started: usize, queue: usize) -> bool {
        let blocks = self
            .meta
            .piece_length
            .div_ceil(crate::wire::BLOCK_SIZE as u64) as usize;
        let peer_cap = queue.div_ceil(blocks.max(1)) + PEER_PARTIAL_SLACK;
        started < peer_cap && self.partial_bytes < self.partial_cap()
    }

    /// Starts assembling `piece` for `key`; a piece that failed with several senders before is
    /// reserved for `key` alone.
    pub fn start(&mut self, piece: u32, key: PeerKey) {
        let len = self.meta.piece_len(piece);
        self.next_assembly += 1;
        let mut a = PieceAssembly::new(piece, self.next_assembly, len);
        for gap in self.layout.padding(self.layout.piece_range(piece)) {
            a.assume_zeros(gap);
        }
        if self.suspects.contains_key(&piece) {
            a.owner = Some(key);
        }
        self.partial_bytes += a.held();
        self.assemblies.insert(piece, a);
    }

    /// Drops an unfinished piece (its memory too); the picker may hand it out again.
    pub fn release(&mut self, piece: u32) {
        if let Some(a) = self.assemblies.remove(&piece) {
            self.partial_bytes -= a.held();
            self.picker.piece_lost(piece);
        }
    }

    /// Moves a whole piece from assembling to verifying.
    pub fn take_complete(&mut self, piece: u32) -> Option<PieceAssembly> {
        let a = self.assemblies.remove(&piece)?;
        self.partial_bytes -= a.held();
        self.verifying.insert(piece);
        Some(a)
    }

    /// Whether piece `i` may be started from a peer holding `has`: in range, not had, not
    /// started or being verified, held by the peer.
    pub fn can_start(&self, i: u32, has: &Bitfield) -> bool {
        i < self.have.len()
            && !self.have.get(i)
            && !self.assemblies.contains_key(&i)
            && !self.verifying.contains(&i)
            && has.get(i)
    }

    /// A new piece for `key` (holding `has`) from the picker. A picker that has nothing and
    /// reports a fault, or that names a piece it must not, is replaced by the fallback (told
    /// everything through `resync`), which is asked in its place.
    pub fn pick_new(
        &mut self,
        key: PeerKey,
        has: &Bitfield,
        fx: &mut Effects,
        resync: impl FnOnce(&mut dyn PiecePicker),
    ) -> Option<u32> {
        let reason = match self.picker.pick(key) {
            Some(i) if self.can_start(i, has) => return Some(i),
            Some(i) => format!(
                "picker '{}' returned piece {i}, which is not a piece to start (torrent has {})",
                self.picker_name,
                self.have.len()
            ),
            None => self.picker.fault()?,
        };
        let (name, mut picker) = self.fallback.take()?;
        tracing::error!("{reason}; continuing with the {name} picker");
        fx.emit(Event::PickerFault {
            picker: self.picker_name.clone(),
            error: reason,
            fallback: name.clone(),
        });
        // Pieces in progress count as had: the engine reports them verified or lost later.
        let mut taken = self.have.clone();
        for &piece in self.assemblies.keys().chain(&self.verifying) {
            taken.set(piece);
        }
        picker.init(self.have.len(), &taken);
        resync(picker.as_mut());
        self.picker = picker;
        self.picker_name = name;
        let i = self.picker.pick(key)?;
        self.can_start(i, has).then_some(i)
    }

    /// A piece passed its check and was stored. Returns the senders its good copy proves wrong
    /// (when an earlier copy failed with several senders).
    pub fn verified(&mut self, asm: &PieceAssembly) -> Blame {
        let piece = asm.index;
        self.verifying.remove(&piece);
        self.have.set(piece);
        self.picker.piece_verified(piece);
        let mut blame = Blame::default();
        if let Some(bad) = self.suspects.remove(&piece) {
            for addr in bad.senders_of_differing_blocks(asm) {
                blame.strikes.push((addr, BAN_STRIKES));
            }
        }
        blame
    }

    /// A piece failed its hash check. One sender: it is to blame. Several: nobody yet; the
    /// copy is kept and the piece is fetched again from one peer, whose good copy then shows
    /// whose blocks were wrong (four liars each sending one bad block once got the honest
    /// seeder that completed their pieces banned).
    pub fn failed(&mut self, asm: PieceAssembly) -> Blame {
        let piece = asm.index;
        self.verifying.remove(&piece);
        self.picker.piece_lost(piece);
        let senders = asm.contributors();
        let mut blame = Blame::default();
        if senders.len() == 1 {
            blame.strikes.push((senders[0], SOLE_FAILURE_STRIKES));
        } else if self.suspects.len() < MAX_SUSPECTS || self.suspects.contains_key(&piece) {
            self.suspects.insert(piece, asm);
        }
        blame
    }

    /// A piece could not be stored: it is wanted again.
    pub fn store_failed(&mut self, piece: u32) {
        // A spilled block that could not be written leaves its piece assembling: released
        // with the rest, and the picker told then.
        if self.verifying.remove(&piece) {
            self.picker.piece_lost(piece);
        }
    }

    /// The storage no longer holds a verified piece: it is wanted again. False if we did not
    /// have it.
    pub fn lost(&mut self, piece: u32) -> bool {
        if !self.have.clear(piece) {
            return false;
        }
        self.picker.piece_lost(piece);
        true
    }

    /// Bytes of the pieces we have (the last piece may be short).
    pub fn bytes_have(&self) -> u64 {
        let n = self.have.len();
        let mut bytes = self.have.count() as u64 * self.meta.piece_length;
        if n > 0 && self.have.get(n - 1) {
            bytes = bytes - self.meta.piece_length + self.meta.piece_len(n - 1);
        }
        bytes
    }
}
