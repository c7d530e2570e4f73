//! Wanted pieces grouped by availability, so the rarest are found without sorting.
//!
//! A piece sits in at most one bucket, the one of its current availability; moving it between
//! buckets, adding and removing it are O(1) (swap-remove with a position index).

use rivulet_core::bitfield::Bitfield;

const ABSENT: u32 = u32::MAX;

pub(crate) struct Buckets {
    /// `by_avail[a]` holds the member pieces that `a` peers have, in no particular order.
    by_avail: Vec<Vec<u32>>,
    /// Each piece's index inside its bucket, or `ABSENT`.
    pos: Vec<u32>,
    /// The same membership as a bitfield, for word-at-a-time intersection with a peer's pieces.
    members: Bitfield,
    /// No bucket below this one holds anything.
    lowest: usize,
}

impl Buckets {
    pub(crate) fn new(pieces: u32) -> Self {
        Buckets {
            by_avail: vec![Vec::new()],
            pos: vec![ABSENT; pieces as usize],
            members: Bitfield::new(pieces),
            lowest: 0,
        }
    }

    pub(crate) fn contains(&self, piece: u32) -> bool {
        self.members.get(piece)
    }

    pub(crate) fn members(&self) -> &Bitfield {
        &self.members
    }

    /// Adds `piece` with availability `avail`; no-op if already present.
    pub(crate) fn insert(&mut self, piece: u32, avail: u32) {
        if !self.members.set(piece) {
            return;
        }
        let a = avail as usize;
        if self.by_avail.len() <= a {
            self.by_avail.resize_with(a + 1, Vec::new);
        }
        let bucket = &mut self.by_avail[a];
        self.pos[piece as usize] = bucket.len() as u32;
        bucket.push(piece);
        self.lowest = self.lowest.min(a);
    }

    /// Removes `piece`, whose availability is `avail`; no-op if absent.
    pub(crate) fn remove(&mut self, piece: u32, avail: u32) {
        if !self.members.clear(piece) {
            return;
        }
        let at = std::mem::replace(&mut self.pos[piece as usize], ABSENT) as usize;
        let bucket = &mut self.by_avail[avail as usize];
        bucket.swap_remove(at);
        if let Some(&moved) = bucket.get(at) {
            self.pos[moved as usize] = at as u32;
        }
    }

    /// `piece`'s availability changed from `from` to `to`.
    pub(crate) fn moved(&mut self, piece: u32, from: u32, to: u32) {
        if self.contains(piece) {
            self.remove(piece, from);
            self.insert(piece, to);
        }
    }

    /// (availability, pieces) of the buckets from the rarest non-empty one upwards.
    pub(crate) fn rarest_first(&mut self) -> impl Iterator<Item = (u32, &[u32])> {
        while self
            .by_avail
            .get(self.lowest)
            .is_some_and(|bucket| bucket.is_empty())
        {
            self.lowest += 1;
        }
        let lowest = self.lowest;
        self.by_avail[lowest..]
            .iter()
            .enumerate()
            .map(move |(i, bucket)| ((lowest + i) as u32, bucket.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_and_remove_keep_positions_consistent() {
        let mut b = Buckets::new(10);
        for p in 0..10 {
            b.insert(p, 0);
        }
        b.moved(3, 0, 2);
        b.remove(0, 0);
        b.remove(9, 0);
        b.moved(5, 0, 1);
        let rest: Vec<Vec<u32>> = b.rarest_first().map(|(_, s)| s.to_vec()).collect();
        let mut zero = rest[0].clone();
        zero.sort();
        assert_eq!(zero, vec![1, 2, 4, 6, 7, 8]);
        assert_eq!(rest[1], vec![5]);
        assert_eq!(rest[2], vec![3]);
        for (a, bucket) in rest.iter().enumerate() {
            for (i, &p) in bucket.iter().enumerate() {
                assert_eq!(b.pos[p as usize] as usize, i, "piece {p} in bucket {a}");
            }
        }
        assert!(!b.contains(0));
        b.remove(3, 2);
        b.remove(5, 1);
        b.remove(1, 0);
        let rest: Vec<(u32, usize)> = b.rarest_first().map(|(a, s)| (a, s.len())).collect();
        assert_eq!(rest[0], (0, 5));
    }
}
