//! Reads waiting for pieces, and the deadlines they put on those pieces.
//!
//! A waiting read makes its missing pieces urgent (deadline "now"); a reader's readahead window
//! makes the pieces ahead of it due a little later. When nobody waits for a piece any more its
//! deadline is withdrawn, so the picker returns it to normal priority.

use std::collections::HashMap;
use std::ops::Range;

use super::effects::Effects;
use crate::bitfield::Bitfield;
use crate::plugin::PiecePicker;
use crate::rt::Sender;

#[derive(Default)]
pub(crate) struct Readers {
    next_id: u64,
    waits: HashMap<u64, (Range<u32>, Sender<()>)>,
    /// piece -> (waiting reads, earliest deadline ms)
    reads_on: HashMap<u32, (u32, u64)>,
    /// reader -> (prefetch window, deadline ms)
    windows: HashMap<u64, (Range<u32>, u64)>,
}

impl Readers {
    pub fn waiting(&self) -> usize {
        self.waits.len()
    }

    /// Whether any piece has a deadline (a waiting read or a readahead window).
    pub fn has_deadlines(&self) -> bool {
        !self.reads_on.is_empty() || !self.windows.is_empty()
    }

    /// The deadline currently on `piece`, if any.
    pub fn deadline(&self, piece: u32) -> Option<u64> {
        if let Some(&(_, d)) = self.reads_on.get(&piece) {
            return Some(d);
        }
        self.windows
            .values()
            .filter(|(r, _)| r.contains(&piece))
            .map(|&(_, d)| d)
            .min()
    }

    /// Every piece with a deadline, and that deadline.
    pub fn deadlines(&self) -> Vec<(u32, u64)> {
        let mut pieces: Vec<u32> = self.reads_on.keys().copied().collect();
        pieces.extend(self.windows.values().flat_map(|(r, _)| r.clone()));
        pieces.sort_unstable();
        pieces.dedup();
        pieces
            .into_iter()
            .filter_map(|p| Some((p, self.deadline(p)?)))
            .collect()
    }

    /// Registers a read of `pieces` that still misses some; returns its id.
    pub fn register(
        &mut self,
        pieces: Range<u32>,
        now_ms: u64,
        tx: Sender<()>,
        have: &Bitfield,
        picker: &mut dyn PiecePicker,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        for p in pieces.clone().filter(|&p| !have.get(p)) {
            let e = self.reads_on.entry(p).or_insert((0, now_ms));
            e.0 += 1;
            e.1 = e.1.min(now_ms);
            picker.set_deadline(p, self.deadline(p));
        }
        self.waits.insert(id, (pieces, tx));
        id
    }

    /// The read `id` finished or gave up.
    pub fn unregister(&mut self, id: u64, have: &Bitfield, picker: &mut dyn PiecePicker) {
        let Some((pieces, _)) = self.waits.remove(&id) else {
            return;
        };
        for p in pieces {
            if let Some(e) = self.reads_on.get_mut(&p) {
                e.0 -= 1;
                if e.0 == 0 {
                    self.reads_on.remove(&p);
                    if !have.get(p) {
                        picker.set_deadline(p, self.deadline(p));
                    }
                }
            }
        }
    }

    /// Replaces the readahead window of `reader` (`None` forgets it).
    pub fn set_window(
        &mut self,
        reader: u64,
        window: Option<(Range<u32>, u64)>,
        have: &Bitfield,
        picker: &mut dyn PiecePicker,
    ) {
        let old = match window.clone() {
            Some(w) => self.windows.insert(reader, w),
            None => self.windows.remove(&reader),
        };
        let touched = old
            .map(|(r, _)| r)
            .into_iter()
            .chain(window.map(|(r, _)| r));
        for r in touched {
            for p in r.filter(|&p| !have.get(p)) {
                picker.set_deadline(p, self.deadline(p));
            }
        }
    }

    /// `piece` is verified: wake the reads that wait for it.
    pub fn piece_ready(&mut self, piece: u32, fx: &mut Effects) {
        self.reads_on.remove(&piece);
        for (range, tx) in self.waits.values() {
            if range.contains(&piece) {
                fx.wake(tx);
            }
        }
    }

    /// Wakes every waiting read, to look at the torrent again (a storage failure, a pause).
    pub fn wake_all(&self, fx: &mut Effects) {
        for (_, tx) in self.waits.values() {
            fx.wake(tx);
        }
    }

    /// Fails every waiting read (their channels close).
    pub fn close_all(&mut self) {
        self.waits.clear();
    }
}
