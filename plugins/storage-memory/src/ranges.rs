//! Which bytes of a chunk hold written data: a small sorted set of disjoint ranges.

use std::ops::Range;

#[derive(Default)]
pub(crate) struct Ranges(Vec<Range<u64>>);

impl Ranges {
    /// Adds `r`, merging it with the ranges it touches or overlaps.
    pub(crate) fn insert(&mut self, r: Range<u64>) {
        if r.is_empty() {
            return;
        }
        let mut merged = r;
        self.0.retain(|have| {
            if have.end < merged.start || have.start > merged.end {
                return true;
            }
            merged = merged.start.min(have.start)..merged.end.max(have.end);
            false
        });
        let at = self.0.partition_point(|have| have.start < merged.start);
        self.0.insert(at, merged);
    }

    /// Whether every byte of `r` was written.
    pub(crate) fn covers(&self, r: &Range<u64>) -> bool {
        r.is_empty()
            || self
                .0
                .iter()
                .any(|have| have.start <= r.start && r.end <= have.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_and_overlapping_writes_merge() {
        let mut r = Ranges::default();
        r.insert(10..20);
        r.insert(30..40);
        assert!(!r.covers(&(15..35)));
        r.insert(20..30);
        assert!(r.covers(&(10..40)));
        r.insert(5..12);
        r.insert(50..60);
        assert!(r.covers(&(5..40)));
        assert!(!r.covers(&(39..51)));
        assert!(r.covers(&(55..55)));
        assert_eq!(r.0, vec![5..40, 50..60]);
    }
}
